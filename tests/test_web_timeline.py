"""A mail message's story from its events (search/web/timeline.py)."""

from logpipe.search.web.timeline import classify, handoffs, story, verdict_of


def test_postfix_message_story_and_hand_off():
    events = [
        {"@timestamp": "t1", "program": "postfix/smtpd", "qid": "3F2A1B8C9D",
         "message": "3F2A1B8C9D: client=mx.example.org[10.0.0.1]"},
        {"@timestamp": "t2", "program": "postfix/qmgr", "qid": "3F2A1B8C9D",
         "from": "<a@example.org>", "size": 1234,
         "message": "3F2A1B8C9D: from=<a@example.org>, size=1234, nrcpt=1 (queue active)"},
        {"@timestamp": "t3", "program": "postfix/smtp", "qid": "3F2A1B8C9D",
         "to": "<b@example.net>", "relay": "relay.example.net[10.0.0.2]:25", "delay": "0.4",
         "dsn": "4.4.1", "status": "deferred (connect to relay.example.net: Connection refused)",
         "message": "3F2A1B8C9D: to=<b@example.net>, status=deferred (Connection refused)"},
        {"@timestamp": "t4", "program": "postfix/smtp", "qid": "3F2A1B8C9D",
         "to": "<b@example.net>", "relay": "relay.example.net[10.0.0.2]:25", "delay": "300",
         "dsn": "2.0.0", "status": "sent (250 2.0.0 Ok: queued as 9A8B7C6D5E)",
         "message": "3F2A1B8C9D: to=<b@example.net>, status=sent (250 2.0.0 Ok: queued as "
                    "9A8B7C6D5E)"},
    ]
    s = story("3F2A1B8C9D", events)
    assert [step["kind"] for step in s["steps"]] == ["received", "received", "delivery",
                                                    "delivery"]
    assert s["attempts"] == 2
    assert s["verdict"] == "sent"
    assert s["handoffs"] == ["9A8B7C6D5E"]
    assert ("size", "1234") in s["steps"][1]["fields"]


def test_sendmail_hand_off_and_verdicts():
    sent = {"qid": "p4F210QG076036", "to": "<x@y>", "stat": "Sent (9C004AE545 Message "
            "accepted for delivery)", "message": "..."}
    assert handoffs([sent]) == ["9C004AE545"]
    assert classify({"program": "milter-greylist", "message": "delayed for 00:15:00"}) == "milter"
    assert classify({"program": "sendmail", "message": "ruleset=check_rcpt, reject=550 5.7.1"}) \
        == "rejected"
    assert verdict_of("Deferred: 451 4.3.5 Server configuration problem") == "deferred"
    assert verdict_of("Sent (ok)") == "sent"
    assert verdict_of("bounced (host said: 550 User unknown)") == "bounced"
    assert story("none", [])["verdict"] == "none"
