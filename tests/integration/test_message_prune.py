"""`logpipe prune` removes the message records whose last line is older than the cut-off, on
both stores, and keeps the others (issue 23)."""

from __future__ import annotations

import sqlite3

import pytest

from logpipe.common.cli import main
from logpipe.store.elasticsearch import ElasticsearchStore
from logpipe.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

OLD, NEW = 1_600_000_000_000, 4_000_000_000_000  # 2020 and 2096: far either side of "30d ago"


def grouped() -> dict:
    def parts(qid: str, t: int) -> dict:
        return {f"{qid}-1": {"t": t, "o": 1, "from": "<a@example.com>", "size": 10},
                f"{qid}-2": {"t": t + 1000, "o": 2,
                             "rcpt": [{"to": "<b@example.org>", "status": "sent"}]}}
    def delivered(msgid: str, t: int) -> tuple:  # a dovecot LMTP line, held by its message-id
        return ("mx", f"<{msgid}>", {f"{msgid}-lmtp": {"t": t, "o": 9, "mbox": {
            "user": "b", "saved": True, "mailbox": "INBOX", "text": "saved mail to INBOX"}}})
    return {"mx/OLDQ1": ("mx", "OLDQ1", parts("OLDQ1", OLD)),
            "mx/NEWQ1": ("mx", "NEWQ1", parts("NEWQ1", NEW)),
            "mx/<old@example.com>": delivered("old@example.com", OLD),
            "mx/<new@example.com>": delivered("new@example.com", NEW)}


@pytest.mark.parametrize("kind", ["sqlite", "elasticsearch"])
def test_prune_removes_old_message_records(kind, tmp_path, request, capsys):
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db"
        sink = SqliteStore(url)
        sink.prepare()
    else:
        request.getfixturevalue("es_client")  # a clean node, cleaned again afterwards
        url = request.getfixturevalue("es_url")
        sink = ElasticsearchStore(url)
        sink.prepare()
    sink.write_messages(grouped())
    if kind != "sqlite":
        sink.refresh_messages()
    sink.close()
    assert main(["prune", "--older-than", "30d", "--store", url]) in (0, None)
    out = capsys.readouterr().out
    assert "and 1 message records older than" in out
    if kind == "sqlite":
        sink = SqliteStore(url)
    else:
        sink = ElasticsearchStore(url)
        sink.refresh_messages()
    assert [r["qid"] for r in sink.stream_messages("*")] == ["NEWQ1"]
    assert held_msgids(sink, kind) == ["new@example.com"]  # old held parts go too
    sink.close()


def held_msgids(sink, kind: str) -> list[str]:
    if kind == "sqlite":
        conn = sqlite3.connect(sink.path)
        try:
            return sorted({m for (m,) in conn.execute("SELECT msgid FROM message_held")})
        finally:
            conn.close()
    from logpipe.store.elasticsearch.messages import HELD_INDEX
    sink.client.indices.refresh(index=HELD_INDEX)
    hits = sink.client.search(index=HELD_INDEX, size=100)["hits"]["hits"]
    return sorted(h["_source"]["msgid"] for h in hits)
