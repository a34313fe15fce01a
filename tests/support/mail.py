"""Sendmail delivery records, a known share of them unindexable by Elasticsearch.

Every ``BAD_EVERY``-th record carries a field nested deeper than Elasticsearch's
``index.mapping.depth.limit`` (20), a permanent per-item mapping failure (a dead letter); the fix
is a pipeline that removes the field (``remove = ['trace']``). Every ``MASKED_EVERY``-th line
names a relay with a masked address (``123.456.789.1``): not a failure, the event is stored and
tagged ``_malformed_field`` (issue 9).
"""

from __future__ import annotations

import subprocess
import sys
import time

from logpipe.common.record import Record, encode, record_id

BAD_EVERY = 97
MASKED_EVERY = 89
TOO_DEEP = 21


# the pipeline fix for those records: the mail type without the too-deep field
FIX_PIPELINE = """
# These records carry a trace nested deeper than Elasticsearch takes; drop it.
[types.mail]
patterns = ['%{SENDMAIL_MESSAGE}']
[types.mail.fields]
remove = ['trace']
"""


def deep_trace(levels: int = TOO_DEEP) -> dict:
    value: dict = {"hop": "mx.example.org"}
    for _ in range(levels):
        value = {"via": value}
    return value


def mail_records(n: int, host: str = "mx1") -> tuple[list[bytes], set[str]]:
    items, bad = [], set()
    for i in range(n):
        qid = f"r4F{i:011d}"
        broken = i % BAD_EVERY == 5
        masked = i % MASKED_EVERY == 3
        ip = "123.456.789.1" if masked else f"10.{i % 250}.{i % 7}.{i % 200 + 1}"
        line = (f"Nov 28 10:{(i // 60) % 60:02d}:{i % 60:02d} {host} sendmail[{1000 + i % 50}]: "
                f"{qid}: to=<user{i}@example.org>, delay=00:00:01, xdelay=00:00:01, "
                f"mailer=esmtp, pri=120{i % 10}, relay=mx.example.org. [{ip}], dsn=2.0.0, "
                f"stat=Sent (ok {i})")
        rid = record_id(host, "dev:ino:fp", i * 300)
        if broken:
            bad.add(rid)
        items.append(encode(Record(id=rid, line=line, host=host, path="/var/log/maillog",
                                   offset=i * 300, type="mail", received_at=time.time(),
                                   fields={"trace": deep_trace()} if broken else {})))
    return items, bad


def logpipe(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=timeout, **kw)
