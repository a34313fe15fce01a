"""`logpipe prune` removes the message records whose last line is older than the cut-off, on
both stores, and keeps the others (issue 23)."""

from __future__ import annotations

import pytest

from logpipe.common.cli import main
from logpipe.store.elasticsearch import ElasticsearchSink
from logpipe.store.sqlite import SqliteSink

pytestmark = pytest.mark.integration

OLD, NEW = 1_600_000_000_000, 4_000_000_000_000  # 2020 and 2096: far either side of "30d ago"


def grouped() -> dict:
    def parts(qid: str, t: int) -> dict:
        return {f"{qid}-1": {"t": t, "o": 1, "from": "<a@example.com>", "size": 10},
                f"{qid}-2": {"t": t + 1000, "o": 2,
                             "rcpt": [{"to": "<b@example.org>", "status": "sent"}]}}
    return {"mx/OLDQ1": ("mx", "OLDQ1", parts("OLDQ1", OLD)),
            "mx/NEWQ1": ("mx", "NEWQ1", parts("NEWQ1", NEW))}


@pytest.mark.parametrize("kind", ["sqlite", "elasticsearch"])
def test_prune_removes_old_message_records(kind, tmp_path, request, capsys):
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db"
        sink = SqliteSink(url)
        sink.prepare()
    else:
        request.getfixturevalue("es_client")  # a clean node, cleaned again afterwards
        url = request.getfixturevalue("es_url")
        sink = ElasticsearchSink(url)
        sink.prepare()
    sink.write_messages(grouped())
    if kind != "sqlite":
        sink.refresh_messages()
    sink.close()
    assert main(["prune", "--older-than", "30d", "--store", url]) in (0, None)
    out = capsys.readouterr().out
    assert "and 1 message records older than" in out
    if kind == "sqlite":
        sink = SqliteSink(url)
    else:
        sink = ElasticsearchSink(url)
        sink.refresh_messages()
    assert [r["qid"] for r in sink.stream_messages("*")] == ["NEWQ1"]
    sink.close()
