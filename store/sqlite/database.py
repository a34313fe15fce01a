"""The embedded store's database: the file, its options and its connections.

:class:`Database` owns what every part of the store (:mod:`store.sqlite.writer`,
:mod:`store.sqlite.reader`, :mod:`store.sqlite.maintenance`, :mod:`store.sqlite.retention`,
:mod:`store.sqlite.messages`) shares: the options of the URL, the writing connection and the lock
that serialises its use within the process, each reading thread's own connection (WAL lets
readers run side by side, and beside the writer; every read statement runs under the calling
thread's :class:`store.budget.Budget`), and the schema set-up.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from logpipe.common.errors import ConfigError, StoreError
from logpipe.store import budget as budgets
from logpipe.store.sqlite import functions, migrations
from logpipe.store.sqlite.schema import (
    immediate,
    parse_url,
    queue_writers,
    unqueue_writers,
)

# the budget is checked every this many SQLite instructions (well under a millisecond; a
# full-text index lookup is one instruction, so a check may come later in those)
PROGRESS_STEPS = 20_000
# page cache of each reading thread's connection (the writer's is cache_mb); the file is
# memory-mapped, so the cache holds little more than what mmap does not
READ_CACHE_MB = 32


class Database:
    """One SQLite store file: options, connections, schema (see the module docstring)."""

    def __init__(self, url: str, **options):
        self.url = url
        self.path, url_options = parse_url(url)
        opts = {**url_options, **options}
        try:
            self.timeout = float(opts.get("timeout", 30))
            self.cache_mb = int(opts.get("cache_mb", 256))
            self.batch_size = max(1, int(opts.get("batch_size", 10000)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad option in store URL {url!r}: {exc}") from None
        self.fts = str(opts.get("fts", "inline")).lower()
        if self.fts not in ("inline", "deferred"):
            raise ConfigError(f"bad fts={self.fts!r} in {url!r} (use inline or deferred)")
        self.synchronous = str(opts.get("synchronous", "normal")).upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigError(f"bad synchronous={self.synchronous.lower()!r} in {url!r} "
                              "(use full or normal)")
        self.conn: sqlite3.Connection | None = None   # the writing connection, opened on first use
        self.ready = False    # the tables are there (checked or made)
        self.migrated = False   # this process brought the schema up to date (prepare)
        self.wrote = False    # something was written: worth a PRAGMA optimize at close
        self.lock = threading.RLock()
        # each reading thread's own connection (opened on first use), all of them for close()
        self._read_local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []

    # ---------------------------------------------------------------- connection and schema
    def connect(self, create: bool) -> sqlite3.Connection:
        if self.conn is not None:
            return self.conn
        memory = self.path == ":memory:"
        if not memory:
            if create:
                try:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:  # a local directory does not come up later: say so now
                    raise StoreError(f"cannot create the embedded store's directory "
                                    f"{Path(self.path).parent}: {exc.strerror or exc}",
                                    permanent=True) from None
            elif not os.path.exists(self.path):
                raise StoreError(f"no embedded store at {self.path}: nothing has been indexed "
                                "there yet (start `logpipe up` or `logpipe index`, or pass "
                                "--store)", permanent=True)
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:  # no permission, not a directory: nothing to wait for
            raise StoreError(f"cannot open the embedded store {self.path}: {exc}",
                            permanent=True) from None
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = {-1024 * self.cache_mb}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA mmap_size = 1073741824")
        # checkpoint every ~40 MB of WAL rather than 4 MB: index pages that every batch touches
        # are copied back once, not at every commit (a third off the commit time)
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        if not memory:
            self._set_wal(conn)
            queue_writers(conn, self.path, self.timeout)
        functions.register(conn)  # an in-memory store reads on this connection
        self.conn = conn
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() == "wal":
                    return
            except sqlite3.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise StoreError(f"cannot switch {self.path} to WAL mode (is it on a network "
                                "file system or locked by another program?)")
            time.sleep(0.05)

    def prepare(self) -> None:
        """Create the tables and indexes, or bring an older store's up to date (the numbered
        steps of :mod:`store.sqlite.migrations`); safe to call from several processes at
        once."""
        with self.lock:
            conn = self.connect(create=True)
            try:
                with immediate(conn):
                    migrations.migrate(conn, self.path)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot create the embedded store at {self.path}: {exc}") \
                    from None
            self.ready = self.migrated = True

    def connection(self) -> sqlite3.Connection:
        """The writing connection of a store that exists and holds the events table (a plain
        error otherwise: nothing indexed there yet)."""
        conn = self.connect(create=False)
        if not self.ready:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'events'").fetchone()
            if row is None:
                raise StoreError(f"{self.path} holds no logpipe events (nothing indexed yet?)",
                                permanent=True)
            self.ready = True
        return conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's read connection (opened on first use), under the thread's budget:
        checked before the block, and an interrupted statement raises the budget's error. An
        in-memory store has one connection only: it is shared, behind the lock."""
        budget = budgets.current()
        if budget is not None:
            budget.check()
        conn = getattr(self._read_local, "conn", None)
        try:
            if conn is not None:
                yield conn
            elif self.path == ":memory:":
                with self.lock:
                    yield self.connection()
            else:
                yield self._open_read_conn()
        except sqlite3.OperationalError as exc:
            functions.raise_failure(exc)
            budget = budgets.current()
            if "interrupted" in str(exc) and budget is not None and budget.stopped:
                raise budget.error() from None
            raise StoreError(f"embedded store {self.path}: {exc}") from None

    def _open_read_conn(self) -> sqlite3.Connection:
        with self.lock:
            self.connection()  # the store exists and holds events (checked once, said plainly)
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA cache_size = {-1024 * READ_CACHE_MB}")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA mmap_size = 1073741824")
            conn.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the embedded store {self.path}: {exc}") from None
        conn.set_progress_handler(_progress, PROGRESS_STEPS)
        functions.register(conn)
        self._read_local.conn = conn
        with self.lock:
            self._read_conns.append(conn)
        return conn

    def close(self) -> None:
        """Every connection closed (the reading threads' too); the store opens again on use."""
        with self.lock:
            for read_conn in self._read_conns:
                try:
                    read_conn.close()
                except sqlite3.Error:
                    pass
            self._read_conns = []
            self._read_local = threading.local()
            if self.conn is not None:
                try:
                    if self.wrote:
                        self.conn.execute("PRAGMA optimize")
                except sqlite3.Error:
                    pass
                unqueue_writers(self.conn)
                self.conn.close()
                self.conn = None
                self.ready = self.migrated = False


def _progress() -> int:
    """The read connections' progress handler: nonzero interrupts the running statement."""
    budget = budgets.current()
    return 1 if budget is not None and budget.tick() else 0
