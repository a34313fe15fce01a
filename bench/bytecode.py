"""Compile a source tree's bytecode before a bench times processes started from it
(``python bench/bytecode.py [TREE ...]``, or :func:`compile_tree` from a bench).

An installed wheel has its ``.pyc`` files (pip compiles them at install); a checkout run with
``PYTHONDONTWRITEBYTECODE`` set (as on this project's machines) has none and recompiles every
module in every process it starts: about 0.2 CPU s per process, which a bench would count as
the pipeline's. py_compile writes the files whatever that variable says, and the interpreter
reads them whatever it says.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGES = ("common", "indexer", "query", "search", "services", "shipper", "store", "logpipe")


def compile_tree(root: str | Path) -> int:
    """Compile the tree's packages; returns how many of them compiled without error."""
    root = Path(root)
    return sum(bool(compileall.compile_dir(str(root / name), quiet=1))
               for name in PACKAGES if (root / name).is_dir())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Compile a source tree's bytecode (before "
                                                 "timing processes started from it).")
    parser.add_argument("trees", nargs="*", default=[str(Path(__file__).resolve().parent.parent)],
                        help="checkouts of this repository (default: this one)")
    for tree in parser.parse_args().trees:
        print(f"{tree}: {compile_tree(tree)} of {len(PACKAGES)} packages compiled")


if __name__ == "__main__":
    main()
