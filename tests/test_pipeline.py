"""record -> grok -> enrich -> event, with the built-in pipelines."""

from datetime import datetime, timezone

from logpipe.common.record import Record
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc).timestamp()


def process(line, rtype="mail", **fields):
    pipeline = Pipeline(load_pipeline(None))
    return pipeline.process(Record(id="r1", line=line, host="mx1", path="/var/log/maillog",
                                   offset=42, type=rtype, fields=fields, received_at=RECEIVED))


def test_sendmail_delivery_becomes_a_typed_event():
    event = process("Nov 28 11:59:58 mail1 sendmail[812]: j061bXn5000812: from=<a@b.org>, "
                    "size=2262, class=0, nrcpts=1, msgid=<x@b.org>, proto=ESMTP, daemon=MTA, "
                    "relay=localhost [127.0.0.1]")
    doc = event.doc
    assert event.id == "r1"
    assert (doc["qid"], doc["from"], doc["size"], doc["nrcpts"], doc["pid"]) == \
        ("j061bXn5000812", "<a@b.org>", 2262, 1, 812)
    assert (doc["relay"], doc["relayip"], doc["program"]) == ("localhost", "127.0.0.1", "sendmail")
    assert doc["@timestamp"] == "2026-11-28T11:59:58.000Z"
    assert (doc["host"], doc["path"], doc["type"], doc["offset"]) == \
        ("mx1", "/var/log/maillog", "mail", 42)
    assert doc["message"].startswith("Nov 28 11:59:58 mail1 sendmail[812]")
    assert doc["tags"] == []


def test_unparsed_line_is_kept_and_tagged():
    doc = process("this is not a mail log line at all").doc
    assert doc["tags"] == ["_grokparsefailure"]
    assert doc["message"] == "this is not a mail log line at all"
    assert doc["@timestamp"] == "2026-11-28T12:00:00.000Z"  # the receive time


def test_timezone_of_the_input_applies_to_syslog_times():
    doc = process("Nov 28 12:59:58 mail1 sendmail[1]: j061bXn5000812: to=<c@d.org>, "
                  "delay=00:00:01, mailer=esmtp, pri=1, relay=x. [10.0.0.1], dsn=2.0.0, "
                  "stat=Sent (ok)", timezone="Europe/Paris").doc
    assert doc["@timestamp"] == "2026-11-28T11:59:58.000Z"
    assert doc["stat"] == "Sent (ok)" and doc["timezone"] == "Europe/Paris"


def test_a_capture_named_like_record_metadata_keeps_both():
    # SYSLOGLINE captures the text after the tag as "message"; the line stays in message.
    doc = process("Nov 28 11:00:00 web1 cron[5]: job done", rtype="syslog").doc
    assert doc["message"] == "Nov 28 11:00:00 web1 cron[5]: job done"
    assert doc["grok_message"] == "job done" and doc["program"] == "cron"
