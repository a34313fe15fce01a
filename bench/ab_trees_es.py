"""Before/after on one Elasticsearch node: ``index --burst -w 2`` of the same lines by two source
trees, alternating (A, B, B, A, ...), every run from an empty broker and empty indices.

    git worktree add /tmp/before <commit>
    python bench/ab_trees_es.py --trees /tmp/before,. [--lines 200000] [--runs 4]

A tree is a checkout of this repository; ``PATH+NAME=VALUE`` adds environment variables to its
runs (``.+LOGPIPE_MESSAGES=0``: this tree without message records), ``PATH+python=INTERPRETER``
runs it with another venv's packages (a tree whose pins differ: ``+python=/tmp/before-venv/bin/
python``); several are joined by ``+``. Each tree runs with this venv's packages unless told,
and its own code (PYTHONPATH). Printed per run and as medians over the runs after
the first pair (the node's JIT warms up there): wall seconds of the burst, CPU seconds of the
indexer and its workers, CPU seconds of the node while it ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trees", required=True, help="two trees, comma-separated")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    from elasticsearch import Elasticsearch

    from bench.bytecode import compile_tree
    from bench.peer_rsyslog_es import proc_cpu
    from logpipe.common.broker import connect
    from logpipe.services.elasticsearch import ElasticsearchNode
    from logpipe.services.loggen import generate, write_lines
    from logpipe.services.valkey import ValkeyServer

    trees = [t.strip() for t in args.trees.split(",")]
    for tree in trees:  # both start from compiled modules, as from an installed wheel
        compile_tree(tree.partition("+")[0])
    tmp = tempfile.mkdtemp(prefix="logpipe-ab-")
    log = os.path.join(tmp, "maillog")
    with open(log, "w") as fh:
        write_lines(generate("mail", args.lines, seed=7), fh)
    node = ElasticsearchNode(heap="512m")
    url = node.start().rstrip("/")
    es = Elasticsearch(url)
    results: dict[str, list[tuple[float, float, float]]] = {t: [] for t in trees}
    try:
        with ValkeyServer() as broker:
            for run in range(args.runs):
                for tree in trees if run % 2 == 0 else trees[::-1]:
                    connect(broker.url).flushall()
                    for name in es.indices.get(index="logpipe-messages-*,logpipe-held-parts,ab-*",
                                               ignore_unavailable=True, allow_no_indices=True):
                        es.indices.delete(index=name)
                    path, _, extra = tree.partition("+")
                    env = {**os.environ, "LOGPIPE_HOME": tempfile.mkdtemp(dir=tmp),
                           "PYTHONPATH": os.path.abspath(path), "LOGPIPE_REDIS_URL": broker.url}
                    python = sys.executable
                    for pair in filter(None, extra.split("+")):
                        name, _, value = pair.partition("=")
                        if name == "python":  # the tree's own venv (its pinned packages)
                            python = value
                        else:
                            env[name] = value
                    # `python -m` puts its working directory first on sys.path, before
                    # PYTHONPATH: run in the tree, or every tree would run the caller's code
                    quiet = dict(env=env, cwd=os.path.abspath(path), check=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    check_tree(path, quiet, python)
                    cli = [python, "-m", "logpipe.common.cli"]
                    subprocess.run([*cli, "ship", "--type", "mail", "--once", log], **quiet)
                    t0, cpu0, n0 = time.perf_counter(), os.times(), proc_cpu(node.pid)
                    subprocess.run([*cli, "index", "--store", f"{url}/?index=ab-%Y", "--burst",
                                    "--workers", "2", "--batch-size", "5000"], **quiet)
                    cpu1 = os.times()
                    cpu = (cpu1.children_user + cpu1.children_system
                           - cpu0.children_user - cpu0.children_system)
                    results[tree].append((time.perf_counter() - t0, cpu, proc_cpu(node.pid) - n0))
                    wall, cpu, ncpu = results[tree][-1]
                    print(f"run {run + 1} {tree}: wall {wall:.2f} s, cpu {cpu:.2f} s, "
                          f"node {ncpu:.2f} s", flush=True)
        for tree, runs in results.items():
            timed = runs[1:] or runs
            med = [statistics.median(r[i] for r in timed) for i in range(3)]
            print(f"median {tree} (runs 2-{len(runs)}): wall {med[0]:.2f} s, cpu {med[1]:.2f} s "
                  f"({med[1] / args.lines * 1e6:.1f} us/line), node {med[2]:.2f} s")
    finally:
        node.stop()


def check_tree(path: str, run_options: dict, python: str = sys.executable) -> None:
    """Fails unless a run with these options imports logpipe from ``path``."""
    found = subprocess.run([python, "-c", "import logpipe; print(logpipe.__file__)"],
                           **{**run_options, "stdout": subprocess.PIPE}, text=True).stdout.strip()
    if not found.startswith(os.path.abspath(path) + os.sep):
        raise SystemExit(f"a run meant for {path} imports logpipe from {found}")


if __name__ == "__main__":
    main()
