"""Grok throughput: logpipe's Matcher against pygrok and against a bare regex loop.

    .venv/bin/python bench/grok_bench.py [--seconds 1.5] [--lines 20000]

Cases (lines from logpipe's generator, plus the matching ../shared/corpus files when present):

* mail: the eleven patterns of the 2013 Logstash config (imported by ``import-logstash`` when the
  seed is present, else the same expressions embedded below), tried in order;
* mail type: the built-in ``mail`` type's patterns (sendmail, postfix, dovecot, milters,
  MailScanner: 21 patterns over logpipe's library); pygrok gets the same patterns and logpipe's
  pattern definitions, so both run the very same expressions;
* syslog: ``%{SYSLOGLINE}``;
* apache: ``%{COMBINEDAPACHELOG}``.

Engines, on the same lines:

* logpipe: ``Matcher.match`` (captures, types, tags, time budget), searching with PCRE2's JIT
  where the C module is built (indexer/grok/native.py);
* logpipe-re: the same Matcher with that module turned off (``LOGPIPE_GROK_NATIVE=0``): Python's
  ``re`` (or ``regex``) does every search; "vs re" is logpipe's rate over this one's;
* pygrok: ``Grok(expr).match`` per pattern, tried in order (compiled once; pygrok's own bundled
  pattern library);
* bare: the compiled ``regex`` pattern's ``search()`` per pattern in order, results discarded --
  the floor for a backtracking engine that tries patterns in turn (what pygrok does minus its
  overhead);
* bare-engine: the same loop over the engine logpipe actually runs (the stdlib's ``re`` for
  patterns it treats identically, else ``regex``), for reference: what logpipe's captures,
  types and dispatch cost on top of the search itself.

Each engine runs over the lines for about ``--seconds`` in all, split in ``--rounds`` turns taken
alternately with the other engines; its best turn counts. Ratios are printed.
"""

# ruff: noqa: E501 -- the 2013 config's patterns, one a line as it wrote them
from __future__ import annotations

import argparse
import os
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logpipe.indexer.grok.matcher import Matcher  # noqa: E402
from logpipe.services.loggen import generate  # noqa: E402

SHARED = Path(os.environ.get("LOGPIPE_SHARED", ROOT.parent / "shared"))

# The eleven patterns of the 2013 config, for runs without ../shared (same text as imported).
_B = r"%{SYSLOGTIMESTAMP:timestamp} (?:%{SYSLOGFACILITY} )?%{SYSLOGHOST:logsource} "
_SM = _B + r"(?<program>(sendmail|sm-mta[^,\[]+))(?:\[%{POSINT:pid}\])?: "
MAIL_PATTERNS = [
    _SM + r"(?<qid>\S+): timeout waiting for input from %{IPORHOST:timeoutHost} .*",
    _SM + r"(?<qid>\S+): Milter (\(?<milter>\S+\)| add|): (?<milterMsg>.*)",
    _SM + r"(?<qid>\S+): <(?<unknownUser>\S+)>\.\.\. User unknown",
    _SM + r"STARTTLS=(?<starttls>\S+), ((relay=%{IPORHOST:relay}( \[%{IPORHOST:relayip}\]( \(may be forged\))?)?|version=(?<version>\S+)|verify=%{DATA:verify}|cipher=(?<cipher>[^,]+)|bits=(?<bits>\S+))(, |$))*",
    _SM + r"(?<qid>NOQUEUE): connect from (%{IPORHOST:host})?( ?\[%{IPORHOST:ip}\])?( ?\(may be forged\)?)?",
    _SM + r"(?<qid>\S+): ((to=(?<to>[^,]+)|from=(?<from>[^,]+)|ctladdr=(?<ctladdr>[^,]+)|delay=(?<delay>(\d+\+)?\d+:\d+:\d+)|xdelay=(?<xdelay>\d+:\d+:\d+)|mailer=(?<mailer>[^,]+)|pri=(?<pri>[^,]+)|dsn=(<dsn>[^,]+)|size=(?<size>\d+)|class=(?<class>\d+)|nrcpts=(?<nrcpts>\d+)|msgid=(?<msgid>[^,]+)|proto=(?<proto>[^,]+)|daemon=(?<daemon>[^,]+)|bodytype=(?<bodytype>\S+)|relay=(%{IPORHOST:relay})?( ?\[%{IPORHOST:relayip}\])?( ?\(may be forged\)?)?|reject=(?<reject>.*)|stat=(?<stat>[^,]+)|ruleset=(?<ruleset>[^,]+)|arg1=(?<arg1>[^,]+))(, |$))*",
    _B + r"(?<program>(dovecot))(?:\[%{POSINT:pid}\])?: imap-login: Login: user=<%{DATA:user}>, method=%{DATA:method}, rip=%{IPORHOST:rip}, lip=%{IPORHOST:lip}, mpid=%{INT:mpid}(, TLS)?, session=<%{DATA:session}>",
    _B + r"(?<program>(dovecot))(?:\[%{POSINT:pid}\])?: imap\(%{DATA:user}\): (?<status>Disconnected: Logged out|Disconnected for inactivity) in=%{INT:in} out=%{INT:out}",
    _B + r"(?<program>(opendkim))(?:\[%{POSINT:pid}\])?: (?<qid>\S+): (?<milterMsg>.*)",
    _B + r"(?<program>(milter-greylist))(?:\[%{POSINT:pid}\])?: (?<qid>\S+): (?<milterMsg>.*)",
    _B + r"(?<program>(MailScanner))(?:\[%{POSINT:pid}\])?: (?<mailScannerMsg>.*)",
]


def mail_patterns() -> list[str]:
    seed = SHARED / "seed" / "logstash-maillog.conf"
    if seed.exists():
        from logpipe.indexer.logstash_import import convert, parse_logstash
        plugins, _ = parse_logstash(seed.read_text(encoding="utf-8"), str(seed))
        doc, _ = convert(plugins, str(seed))
        return doc["types"]["mail"]["patterns"]
    return MAIL_PATTERNS


def corpus(*names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        p = SHARED / "corpus" / name
        if p.exists():
            out += [ln.rstrip("\n") for ln in p.open(encoding="utf-8", errors="replace")]
    return out


def rate(fn, lines: list[str], seconds: float) -> float:
    """Lines per second of fn over the lines (in slices of 500, repeated) for about `seconds`."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    slices = [lines[i:i + 500] for i in range(0, len(lines), 500)]
    for chunk in itertools.cycle(slices):
        for line in chunk:
            fn(line)
        done += len(chunk)
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - start)


def mail_type_patterns() -> list[str]:
    from logpipe.indexer.pipeline_config import load_pipeline as load
    return list(load(None).types["mail"].patterns)


def logpipe_definitions() -> dict[str, str]:
    from logpipe.indexer.grok.library import builtin_definitions
    return {name: d.regex for name, d in builtin_definitions().items()}


def engines(patterns: list[str], pygrok_definitions: dict[str, str] | None = None):
    matcher = Matcher(patterns)
    os.environ["LOGPIPE_GROK_NATIVE"] = "0"
    try:
        on_re = Matcher(patterns)
    finally:
        del os.environ["LOGPIPE_GROK_NATIVE"]
    regexes = [c.regex.search for c in matcher.compiled]

    def bare(line: str):
        for search in regexes:
            if search(line) is not None:
                return

    from pygrok import Grok
    groks = [Grok(p, custom_patterns=pygrok_definitions or {}).match for p in patterns]

    def pygrok(line: str):
        for g in groks:
            r = g(line)
            if r is not None:
                return r
        return None

    fast = [(c.fast or c.regex).search for c in matcher.compiled]

    def bare_engine(line: str):
        for search in fast:
            if search(line) is not None:
                return

    return {"logpipe": matcher.match, "logpipe-re": on_re.match, "pygrok": pygrok, "bare": bare,
            "bare-engine": bare_engine}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1.5, help="time per engine and case")
    ap.add_argument("--lines", type=int, default=20000, help="generated lines per case")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per engine (best one counts)")
    args = ap.parse_args(argv)
    mail_lines = (list(generate("mail", args.lines, seed=1))
                  + corpus("mail_extra.log", "sendmail-auth.log", "sendmail-reject.log",
                           "dovecot.log"))
    cases = [
        ("mail type (built-in)", mail_type_patterns(), mail_lines, logpipe_definitions()),
        ("mail (11 seed patterns)", mail_patterns(),
         mail_lines, None),
        ("syslog (SYSLOGLINE)", ["%{SYSLOGLINE}"],
         list(generate("syslog", args.lines, seed=1)) + corpus("linux.log", "openssh.log"), None),
        ("apache (COMBINEDAPACHELOG)", ["%{COMBINEDAPACHELOG}"],
         list(generate("apache", args.lines, seed=1)), None),
    ]
    from logpipe.indexer.grok import native
    print(f"PCRE2 module: {'built' if native.available() else 'not built: logpipe and logpipe-re both run re'}")
    print(f"{'case':28} {'lines':>6} {'logpipe/s':>10} {'on re/s':>9} {'pygrok/s':>9} {'bare/s':>9} "
          f"{'bare-eng/s':>10} {'vs re':>6} {'vs pygrok':>9} {'vs bare':>8} {'vs bare-eng':>11}")
    for name, patterns, lines, pygrok_definitions in cases:
        fns = engines(patterns, pygrok_definitions)
        # engines take turns in short rounds and keep their best round, so that load from
        # other processes on a shared machine hits them all alike
        got = {k: 0.0 for k in fns}
        for _ in range(args.rounds):
            for k, fn in fns.items():
                got[k] = max(got[k], rate(fn, lines, args.seconds / args.rounds))
        print(f"{name:28} {len(lines):6d} {got['logpipe']:10,.0f} {got['logpipe-re']:9,.0f} "
              f"{got['pygrok']:9,.0f} {got['bare']:9,.0f} {got['bare-engine']:10,.0f} "
              f"{got['logpipe'] / got['logpipe-re']:5.2f}x {got['logpipe'] / got['pygrok']:8.2f}x "
              f"{got['logpipe'] / got['bare']:7.2f}x "
              f"{got['logpipe'] / got['bare-engine']:10.2f}x")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
