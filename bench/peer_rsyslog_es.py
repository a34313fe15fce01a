"""logpipe against a C pipeline into the same Elasticsearch node (issue 27).

    python bench/peer_rsyslog_es.py [--lines 200000] [--runs 2] [--es URL]

One node started by the project's launcher (services/elasticsearch.py), warmed up. The C peer is
Debian's rsyslog: imfile reads the generated maillog, mmnormalize (liblognorm) parses each line
with the rulebase written here (:data:`RULEBASE`, the same fields and values as the built-in
``mail`` type), omelasticsearch bulk-indexes the documents (5,000 per bulk, like logpipe's
batches). logpipe: ``ship --once`` queues the same lines, then ``index --burst -w 2`` (timed)
indexes them. Both sides write one index each (``peer-rsyslog``, ``peer-logpipe``) under
logpipe's own index template (logpipe's is ``peer-logpipe-%Y``: the lines are from one year).
Runs alternate C, logpipe, logpipe, C, ..., after an untimed 20,000-line run of each side (the node's
JIT warms up on both kinds of writes there). logpipe keeps its mail message records (one more
document per message, which the C peer has no equivalent of); with ``--records-apart`` (the
default) a third side runs logpipe with them off (``LOGPIPE_MESSAGES=0``), in turn with the other
two, so that the like-for-like figures and the records' own cost are printed apart.

Parse parity is checked line by line on the C peer's documents as stored: every line's fields
(and values) must equal ``logpipe grok parse --type mail``'s, or the bench fails (exit 1).

Printed per side (medians): lines/s to all-visible (every document counted by the node) and,
for logpipe, to exit; CPU seconds of the pipeline's processes (rsyslogd; shipper + indexer +
workers + broker), and of the node while it ran; bulk requests and their sizes as the node
counts them (``_nodes/stats/indices/bulk``: shard-level bulk operations, one index of one
shard each here).

Skipped (exit 0, with the reason) where rsyslogd, its imfile/mmnormalize modules or
rsyslog-elasticsearch's omelasticsearch are not installed (``apt-get install rsyslog
rsyslog-elasticsearch``; mmnormalize ships inside Debian 12's ``rsyslog`` package).
"""

# ruff: noqa: E501, W291 -- the rulebase is liblognorm text: one rule a line, trailing spaces meant
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RSYSLOG_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")
C_INDEX, LP_INDEX = "peer-rsyslog", "peer-logpipe"
BULK = 5000

# liblognorm v2: one rule per line shape of the built-in mail type (the generated maillog's 17
# shapes, and sendmail's catch-all `QID: text` as the grok type has it); "%.:@type%" merges a shared part's fields into the document.
RULEBASE = r"""version=2
type=@hdr:%timestamp:date-rfc3164% %logsource:word% 
type=@relay:%relay:char-to{"extradata":" "}% [%relayip:char-to{"extradata":"]"}%]
type=@relay:[%relayip:char-to{"extradata":"]"}%]
type=@sm:%.:@hdr%%program:literal{"text":"sendmail"}%[%pid:char-to{"extradata":"]"}%]: 
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: from=%from:char-to{"extradata":","}%, size=%size:char-to{"extradata":","}%, class=%class:char-to{"extradata":","}%, nrcpts=%nrcpts:char-to{"extradata":","}%, msgid=%msgid:char-to{"extradata":","}%, proto=%proto:char-to{"extradata":","}%, daemon=%daemon:char-to{"extradata":","}%, relay=%.:@relay%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: to=%to:char-to{"extradata":","}%, ctladdr=%ctladdr:char-to{"extradata":","}%, delay=%delay:char-to{"extradata":","}%, xdelay=%xdelay:char-to{"extradata":","}%, mailer=%mailer:char-to{"extradata":","}%, pri=%pri:char-to{"extradata":","}%, relay=%.:@relay%, dsn=%dsn:char-to{"extradata":","}%, stat=%stat:rest%
rule=:%.:@sm%STARTTLS=%starttls:char-to{"extradata":","}%, relay=%.:@relay%, version=%version:char-to{"extradata":","}%, verify=%verify:char-to{"extradata":","}%, cipher=%cipher:char-to{"extradata":","}%, bits=%bits:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: Milter %milterAction:char-to{"extradata":":"}%: %milterMsg:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: Milter: %milterMsg:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: ruleset=%ruleset:char-to{"extradata":","}%, arg1=%arg1:char-to{"extradata":","}%, relay=%.:@relay%, reject=%reject:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: %sendmailMsg:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: <%unknownUser:char-to{"extradata":">"}%>... User unknown
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: connect from %host:word% [%ip:char-to{"extradata":"]"}%]
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: connect from [%ip:char-to{"extradata":"]"}%]
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: timeout waiting for input from %timeoutHost:word% [%relayip:char-to{"extradata":"]"}%] %sendmailMsg:rest%
rule=:%.:@sm%%qid:char-to{"extradata":":"}%: timeout waiting for input from [%relayip:char-to{"extradata":"]"}%] %sendmailMsg:rest%
rule=:%.:@hdr%%program:literal{"text":"milter-greylist"}%: %qid:char-to{"extradata":":"}%: %milterMsg:rest%
rule=:%.:@hdr%%program:literal{"text":"opendkim"}%[%pid:char-to{"extradata":"]"}%]: %qid:char-to{"extradata":":"}%: %milterMsg:rest%
rule=:%.:@hdr%%program:literal{"text":"MailScanner"}%[%pid:char-to{"extradata":"]"}%]: Message %qid:word% from %relayip:word% (%from:char-to{"extradata":")"}%) to %to:word% %mailScannerMsg:rest%
rule=:%.:@hdr%%program:literal{"text":"dovecot"}%: %service:char-to{"extradata":"-"}%-login: Login: user=<%user:char-to{"extradata":">"}%>, method=%method:char-to{"extradata":","}%, rip=%rip:char-to{"extradata":","}%, lip=%lip:char-to{"extradata":","}%, mpid=%mpid:char-to{"extradata":","}%, %tls:char-to{"extradata":","}%, session=<%session:char-to{"extradata":">"}%>
rule=:%.:@hdr%%program:literal{"text":"dovecot"}%: %service:char-to{"extradata":"("}%(%user:char-to{"extradata":")"}%): %status:string-to{"extradata":" in="}% in=%in:word% out=%out:rest%
"""

# the document: the line, the type, the time it was read, and every parsed field
RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imfile")
module(load="mmnormalize")
module(load="omelasticsearch")
template(name="doc" type="list") {{
  constant(value="{{\\"message\\":\\"") property(name="rawmsg" format="json")
  constant(value="\\",\\"type\\":\\"mail\\",\\"@timestamp\\":\\"")
  property(name="timereported" dateFormat="rfc3339")
  constant(value="\\",") property(name="$!all-json" position.from="2")
}}
input(type="imfile" file="{log}" tag="mail" ruleset="mail" freshStartTail="off"
      addMetadata="off")
ruleset(name="mail" queue.type="LinkedList" queue.dequeueBatchSize="{bulk}" queue.size="100000") {{
  action(type="mmnormalize" rulebase="{rulebase}" useRawMsg="on")
  action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" searchIndex="{index}"
         template="doc" bulkmode="on" maxbytes="10m" esVersion.major="8"
         errorFile="{work}/es-errors.json")
}}
"""


NO_RECORDS = "logpipe-records-off"


def missing_packages() -> str | None:
    rsyslogd = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd"
                                            if Path("/usr/sbin/rsyslogd").exists() else None)
    if rsyslogd is None:
        return "rsyslogd is not installed (apt-get install rsyslog rsyslog-elasticsearch)"
    for module, package in (("imfile", "rsyslog"), ("mmnormalize", "rsyslog"),
                            ("omelasticsearch", "rsyslog-elasticsearch")):
        if not (RSYSLOG_MODULES / f"{module}.so").exists():
            return f"rsyslog's {module} module is missing (Debian package {package})"
    return None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Node:
    def __init__(self, url: str, pid: int | None):
        from elasticsearch import Elasticsearch

        self.url, self.pid = url, pid
        self.es = Elasticsearch(url, request_timeout=300)

    def cpu(self) -> float:
        return proc_cpu(self.pid) if self.pid else 0.0

    def bulk_stats(self) -> tuple[int, int]:
        nodes = self.es.nodes.stats(metric="indices", index_metric="bulk")["nodes"]
        bulk = [n["indices"].get("bulk", {}) for n in nodes.values()]
        return (sum(b.get("total_operations", 0) for b in bulk),
                sum(b.get("total_size_in_bytes", 0) for b in bulk))

    def count(self, index: str) -> int:
        try:
            return int(self.es.count(index=index)["count"])
        except Exception:  # noqa: BLE001 - not created yet
            return 0

    def fresh(self, index: str) -> None:
        from logpipe.store.elasticsearch.template import index_template

        self.es.indices.delete(index=index, ignore_unavailable=True)
        self.es.indices.put_index_template(name=f"logpipe-{index}", **index_template(index + "*"))


def wait_visible(node: Node, index: str, n: int, t0: float, proc=None, hang_s: float = 1800,
                 exited: dict | None = None):
    """Seconds from t0 until the node counts n documents (refresh_interval 1 s, as on both).
    With ``exited``, the moment ``proc`` exits is noted there as it happens (a burst may end
    before its last documents are visible: they are stored, the node's refresh is pending)."""
    while True:
        if proc is not None and exited is not None and "at" not in exited \
                and proc.poll() is not None:
            exited["at"] = time.perf_counter() - t0
        if node.count(index) >= n:
            return time.perf_counter() - t0
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            raise SystemExit(f"{proc.args[0]} failed with {proc.returncode}")
        if time.perf_counter() - t0 > hang_s:
            raise SystemExit(f"{index}: only {node.count(index)} of {n} documents after {hang_s} s")
        time.sleep(0.05)


def run_rsyslog(node: Node, log: str, n: int, tmp: str) -> dict:
    node.fresh(C_INDEX)
    work = Path(tempfile.mkdtemp(dir=tmp, prefix="rsyslog-"))
    rulebase = work / "mail.rb"
    rulebase.write_text(RULEBASE)
    conf = work / "rsyslog.conf"
    port = node.url.rsplit(":", 1)[1].strip("/")
    conf.write_text(RSYSLOG_CONF.format(work=work, log=log, bulk=BULK, rulebase=rulebase,
                                        port=port, index=C_INDEX))
    node_cpu0, bulk0 = node.cpu(), node.bulk_stats()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(work / "pid")],
                            stdout=subprocess.DEVNULL, stderr=open(work / "stderr", "wb"))
    try:
        visible = wait_visible(node, C_INDEX, n, t0, proc)
        cpu = proc_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    node_cpu = node.cpu() - node_cpu0
    bulk1 = node.bulk_stats()
    errors = work / "es-errors.json"
    if errors.exists() and errors.stat().st_size:
        raise SystemExit(f"omelasticsearch reported errors: {errors.read_text()[:2000]}")
    return dict(visible=visible, exit=None, cpu=cpu, broker_cpu=0.0, node_cpu=node_cpu,
                bulks=bulk1[0] - bulk0[0], bulk_bytes=bulk1[1] - bulk0[1])


def run_logpipe(node: Node, broker, log: str, n: int, workers: int,
                records: bool = True) -> dict:
    from logpipe.common.broker import connect

    # every run starts from nothing, as the C peer's does: no events, and no message records
    # (a run after another would find every record already whole and write none of them)
    for name in node.es.indices.get(index=f"{LP_INDEX}-*,logpipe-messages-*,logpipe-held-parts",
                                    ignore_unavailable=True, allow_no_indices=True):
        node.es.indices.delete(index=name)  # by name: no wildcard deletes on ES 9
    connect(broker.url).flushall()
    store = f"{node.url.rstrip('/')}/?index={LP_INDEX}-%Y"  # one index (one year of lines)
    cli = [sys.executable, "-m", "logpipe.common.cli"]
    # the broker URL (a password in it) through the environment, never argv
    env = {**os.environ, "LOGPIPE_HOME": tempfile.mkdtemp(prefix="logpipe-peer-home-"),
           "LOGPIPE_MESSAGES": "1" if records else "0", "LOGPIPE_REDIS_URL": broker.url}
    broker_cpu0, node_cpu0, bulk0 = proc_cpu(broker.pid), node.cpu(), node.bulk_stats()
    cpu0 = children_cpu()
    subprocess.run([*cli, "ship", "--type", "mail", "--once", log],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ship_cpu = children_cpu() - cpu0
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cli, "index", "--store", store, "--burst",
                             "--workers", str(workers), "--batch-size", str(BULK)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    noted: dict = {}
    visible = wait_visible(node, LP_INDEX + "-*", n, t0, proc, exited=noted)
    if proc.wait(1800) != 0:
        raise SystemExit(f"index --burst failed with {proc.returncode}")
    exited = noted.get("at", time.perf_counter() - t0)
    cpu = children_cpu() - cpu0
    bulk1 = node.bulk_stats()
    return dict(visible=visible, exit=exited, cpu=cpu, ship_cpu=ship_cpu,
                broker_cpu=proc_cpu(broker.pid) - broker_cpu0, node_cpu=node.cpu() - node_cpu0,
                bulks=bulk1[0] - bulk0[0], bulk_bytes=bulk1[1] - bulk0[1])


def parse_parity(node: Node, log: str) -> tuple[int, int, list[str]]:
    """(lines whose stored fields equal grok's, lines, the first differences)."""
    from elasticsearch import helpers

    grok = subprocess.run([sys.executable, "-m", "logpipe.common.cli", "grok", "parse", "--type",
                           "mail", log], check=True, capture_output=True, text=True).stdout
    expected: dict[str, list[dict]] = {}
    for line in grok.splitlines():
        fields = json.loads(line)
        expected.setdefault(fields.pop("message"), []).append(fields)
    same = total = 0
    diffs: list[str] = []
    for hit in helpers.scan(node.es, index=C_INDEX, query={"query": {"match_all": {}}},
                            size=5000):
        doc = dict(hit["_source"])
        message = doc.pop("message")
        for extra in ("type", "@timestamp"):
            doc.pop(extra, None)
        total += 1
        wanted = expected.get(message) or [None]
        if doc in wanted:
            same += 1
            wanted.remove(doc)
        elif len(diffs) < 5:
            diffs.append(f"{message}\n  rsyslog {doc}\n  logpipe {wanted[0]}")
    lines = sum(len(v) for v in expected.values()) + same
    return same, max(total, lines), diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--records-apart", action=argparse.BooleanOptionalAction, default=True,
                        help="also run logpipe without its message records (LOGPIPE_MESSAGES=0)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each side, alternating "
                                                             "C, logpipe, logpipe, C, ...")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--heap", default="512m", help="the node's heap (when started here)")
    parser.add_argument("--es", help="an Elasticsearch URL (else a node is started); its CPU is "
                                     "then not measured")
    args = parser.parse_args()
    reason = missing_packages()
    if reason:
        print(f"SKIPPED: {reason}")
        return
    from bench.bytecode import compile_tree
    from bench.index_bench import make_records, warm_up
    from logpipe.services.loggen import generate
    from logpipe.services.valkey import ValkeyServer

    # logpipe's processes start from compiled modules, as from an installed wheel: a checkout
    # run with PYTHONDONTWRITEBYTECODE recompiles every module in every process it starts
    compile_tree(Path(__file__).resolve().parent.parent)
    tmp = tempfile.mkdtemp(prefix="logpipe-peer-")
    node_proc = None
    try:
        if args.es:
            node = Node(args.es, None)
        else:
            from logpipe.services.elasticsearch import ElasticsearchNode
            node_proc = ElasticsearchNode(heap=args.heap)
            node = Node(node_proc.start(), node_proc.pid)
        lines = list(generate("mail", args.lines, seed=7))
        log = os.path.join(tmp, "maillog")
        with open(log, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        warm_up(node.url, make_records(min(len(lines), 40_000), lines[:40_000]))
        sides = ["rsyslog", "logpipe"] + ([NO_RECORDS] if args.records_apart else [])
        results: dict[str, list[dict]] = {side: [] for side in sides}
        # each run turns the order round (C, logpipe, apart; logpipe, apart, C; ...) and every
        # other run reverses it: each side runs first, in the middle and last as often
        parity = None
        with ValkeyServer() as broker:
            # one untimed small run of each side first: the node's first message-record
            # indices, mgets and conditional writes (and rsyslog's first documents) are
            # compiled by its JIT there, not in the first timed run
            warm = os.path.join(tmp, "maillog-warm-up")
            with open(warm, "w") as fh:
                fh.write("\n".join(lines[:20_000]) + "\n")
            run_rsyslog(node, warm, min(len(lines), 20_000), tmp)
            run_logpipe(node, broker, warm, min(len(lines), 20_000), args.workers)
            for run in range(args.runs):
                turned = sides[run % len(sides):] + sides[:run % len(sides)]
                for side in (turned if run % 2 == 0 else turned[::-1]):
                    if side == "rsyslog":
                        results[side].append(run_rsyslog(node, log, args.lines, tmp))
                        if parity is None:
                            parity = parse_parity(node, log)
                    else:
                        results[side].append(run_logpipe(node, broker, log, args.lines,
                                                         args.workers,
                                                         records=side != NO_RECORDS))
                    print(f"  run {run + 1} {side}: " + ", ".join(
                        f"{k} {v:.2f}" for k, v in results[side][-1].items()
                        if isinstance(v, float)), flush=True)
            # what a run costs before its first line and after its last: an empty file
            # shipped, an empty list indexed (start-up, the workers' fork and exit)
            empty = os.path.join(tmp, "maillog-empty")
            open(empty, "w").close()
            fixed = [run_logpipe(node, broker, empty, 0, args.workers) for _ in range(3)]
        report(args, results, parity, fixed)
    finally:
        if node_proc is not None:
            node_proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args, results: dict[str, list[dict]], parity, fixed: list[dict]) -> None:
    n = args.lines
    med = lambda side, key: statistics.median(r[key] for r in results[side])  # noqa: E731
    per100k = 100_000 / n
    same, total, diffs = parity
    print(f"lines {n:,}; {args.runs} runs each, alternating; medians; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    print(f"parse parity (rsyslog+mmnormalize documents vs grok parse --type mail): "
          f"{same:,} of {total:,} lines with the same fields and values")
    c_vis = med("rsyslog", "visible")
    print(f"{'':28s} {'lines/s visible':>16s} {'lines/s exit':>13s} {'CPU s/100k':>11s} "
          f"{'node CPU s/100k':>16s} {'bulks':>6s} {'bulk MB':>8s}")
    names = {"rsyslog": "rsyslog (imfile+mmnormalize+omes)",
             "logpipe": f"logpipe (ship+index -w {args.workers})",
             NO_RECORDS: "logpipe, message records off"}
    for side in results:
        cpu = med(side, "cpu") + med(side, "broker_cpu")
        exit_rate = f"{n / med(side, 'exit'):13,.0f}" if side != "rsyslog" else f"{'':>13s}"
        name = names[side]
        print(f"{name:28s} {n / med(side, 'visible'):16,.0f} {exit_rate} {cpu * per100k:11.2f} "
              f"{med(side, 'node_cpu') * per100k:16.2f} {med(side, 'bulks'):6.0f} "
              f"{med(side, 'bulk_bytes') / 1e6:8.1f}")
    lp = results["logpipe"]
    print(f"logpipe CPU apart: shipper {med('logpipe', 'ship_cpu') * per100k:.2f}, index + "
          f"workers {(med('logpipe', 'cpu') - med('logpipe', 'ship_cpu')) * per100k:.2f}, "
          f"broker {med('logpipe', 'broker_cpu') * per100k:.2f} s per 100k lines; "
          f"exit - all-visible {statistics.median(r['exit'] - r['visible'] for r in lp):+.2f} s "
          f"(negative: the burst ended before the node's refresh showed its last documents)")
    fixed_ship = statistics.median(r["ship_cpu"] for r in fixed)
    fixed_index = statistics.median(r["cpu"] - r["ship_cpu"] for r in fixed)
    print(f"fixed cost of a logpipe run (an empty file shipped, an empty list indexed; median of "
          f"{len(fixed)}): shipper {fixed_ship:.2f} CPU s, index + workers {fixed_index:.2f} CPU "
          f"s, {statistics.median(r['exit'] for r in fixed):.2f} s to exit; "
          f"{(fixed_ship + fixed_index) / med('logpipe', 'cpu'):.0%} of logpipe's CPU in a run "
          f"of {n:,} lines; beyond it, per line in its processes (the broker apart): " + ", ".join(
              f"{(med(side, 'cpu') - fixed_ship - fixed_index) / n * 1e6:.1f} CPU us "
              f"({'records on' if side == 'logpipe' else 'records off'})"
              for side in results if side != "rsyslog") +
          f", rsyslogd {med('rsyslog', 'cpu') / n * 1e6:.1f} (start-up included)")
    for side in [s for s in results if s != "rsyslog"]:
        ratio_exit = c_vis / med(side, "exit")
        ratio_vis = c_vis / med(side, "visible")
        cpu_ratio = (med(side, "cpu") + med(side, "broker_cpu")) / med("rsyslog", "cpu")
        what = "logpipe" if side == "logpipe" else "logpipe without message records"
        # each run against the C peer's run of the same round: the spread the medians hide
        rounds = list(zip(results["rsyslog"], results[side]))
        by_round = sorted(c["visible"] / lp_run["exit"] for c, lp_run in rounds)
        cpu_by_round = sorted((lp_run["cpu"] + lp_run["broker_cpu"]) / c["cpu"]
                              for c, lp_run in rounds)
        print(f"ratio {what} / rsyslog lines/s: {ratio_exit:.2f} to exit, {ratio_vis:.2f} to "
              f"all-visible (target >= 1.2); CPU per line {cpu_ratio:.2f}x rsyslogd's "
              f"(target <= 1); run by run {by_round[0]:.2f}-{by_round[-1]:.2f} to exit, "
              f"{cpu_by_round[0]:.2f}x-{cpu_by_round[-1]:.2f}x CPU")
    if NO_RECORDS in results:
        extra = lambda key: (med("logpipe", key) - med(NO_RECORDS, key)) * per100k  # noqa: E731
        print(f"the message records' own cost: logpipe {extra('cpu') + extra('broker_cpu'):+.2f}"
              f" CPU s per 100k lines, the node {extra('node_cpu'):+.2f}, "
              f"{extra('bulk_bytes') / 1e6:+.1f} bulk MB")
    if same != total:
        print("parse parity FAILED:\n" + "\n".join(diffs))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
