"""Issue 24's small parts without a browser: CSV cells defused, host names with the root's
dot, saved searches kept atomically 0600; ``logpipe search --csv`` on the embedded store."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from logpipe.common.errors import QueryError
from logpipe.indexer.hostnames import normal_hostname, normalise_hostnames
from logpipe.search.export import csv_cell, csv_lines, ndjson_lines
from logpipe.search.web.saved import Conflict, SavedSearches
from logpipe.store.base import Event
from logpipe.store.sqlite import SqliteStore


@pytest.mark.parametrize("value,cell", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=x", "'\t=x"), ("mx.example.net", "mx.example.net"), ("a=b", "a=b"), (-3, "'-3"),
    (None, ""), (True, "true"), (["=a", "b"], "'=a,b"), ({"k": 1}, '{"k":1}'),
])
def test_csv_cells_are_defused(value, cell):
    assert csv_cell(value) == cell


def test_csv_and_ndjson_lines():
    events = [{"_id": "1", "@timestamp": "2013-05-15T02:00:00Z", "message": 'a "quoted", line\n2',
               "host": "=evil"}]
    rows = list(csv.reader(io.StringIO("".join(csv_lines(events, ["host", "message"])))))
    assert rows == [["host", "message"], ["'=evil", 'a "quoted", line\n2']]
    (line,) = ndjson_lines(events)
    assert line.endswith("\n") and orjson.loads(line) == {k: v for k, v in events[0].items()
                                                          if k != "_id"}


def test_trailing_dot_host_names_are_one_value():
    doc = {"relay": "mx.example.net.", "host": "mail1", "logsource": "relay.", "to": "a@b."}
    normalise_hostnames(doc)
    assert doc == {"relay": "mx.example.net", "relay_raw": "mx.example.net.", "host": "mail1",
                   "logsource": "relay.", "to": "a@b."}      # a bare label keeps its dot
    assert normal_hostname(".") == "." and normal_hostname("a..") == "a.."
    kept = {"relay": "x.example.", "relay_raw": "mine"}
    normalise_hostnames(kept)
    assert kept == {"relay": "x.example", "relay_raw": "mine"}


def test_saved_searches_are_kept_atomically_0600(tmp_path):
    saved = SavedSearches(tmp_path / "state")
    saved.save("bounces", {"q": "stat:Bounced*", "from": "now-1d", "columns": "qid,relay",
                           "sort": "asc"})
    path = tmp_path / "state" / "ui-saved-searches.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temporary left over
    with pytest.raises(Conflict):
        saved.save("bounces", {"q": "*"})
    saved.save("bounces", {"q": "stat:Deferred*"}, replace=True)
    saved.save("all", {})
    saved.rename("all", "everything")
    with pytest.raises(Conflict):
        saved.rename("everything", "bounces")
    with pytest.raises(LookupError):
        saved.delete("nothing")
    with pytest.raises(QueryError):
        saved.save("  ", {})
    assert [(s["name"], s["q"], s["columns"], s["sort"]) for s in SavedSearches(
        tmp_path / "state").list()] == [("bounces", "stat:Deferred*", [], "desc"),
                                         ("everything", "", [], "desc")]
    saved.delete("everything")
    assert [s["name"] for s in saved.list()] == ["bounces"]


def test_search_csv_on_the_embedded_store(tmp_path):
    url = "sqlite:///" + str(tmp_path / "events.db")
    sink = SqliteStore(url)
    sink.write([Event(f"e{i}", {"@timestamp": f"2013-05-15T02:00:0{i}Z", "host": "mail1",
                                "type": "mail", "message": f"line {i}",
                                "relay": "=HYPERLINK(1)" if i == 0 else "mx.example.net"})
                for i in range(3)])
    sink.close()
    logpipe = str(Path(sys.executable).with_name("logpipe"))
    out = subprocess.run([logpipe, "search", "--store", url, "--csv", "--all", "-f",
                          "@timestamp,relay,message", "*"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows == [["'@timestamp", "relay", "message"],
                    ["2013-05-15T02:00:02Z", "mx.example.net", "line 2"],
                    ["2013-05-15T02:00:01Z", "mx.example.net", "line 1"],
                    ["2013-05-15T02:00:00Z", "'=HYPERLINK(1)", "line 0"]]
    bad = subprocess.run([logpipe, "search", "--store", url, "--csv", "--json", "*"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--csv" in bad.stderr
