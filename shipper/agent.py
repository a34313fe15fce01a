"""The agent's main loop: poll inputs, batch, push, confirm, remember.

Single-threaded apart from the syslog listener: reading, encoding and pushing alternate. A batch
is written to the broker before the replies of the one before it are read (``IN_FLIGHT`` = 2
batches out), so the broker stores one while the agent reads and encodes the next; a batch's
offsets are stored only once the broker confirmed it (at most the batches in flight are sent
again after a crash) and memory holds at most those batches, the one being filled and the
inputs' small buffers.

* **Batches** are bounded by ``batch_lines`` and by time (``batch_wait`` once the inputs have
  nothing more right now).
* **Backpressure**: RPUSH returns the list length; above ``high_water`` reading pauses (nothing is
  dropped, files simply wait) until the length is below ``low_water``.
* **Broker down**, at start-up or later: waited for with exponential backoff and jitter; offsets
  stay where they are; one log line when it goes down, one when it is back. A wrong password,
  missing permission or a key that is not a list is a mistake: BrokerError, exit 2.
* **--once** exits as soon as every line read is confirmed, even with the list above the high
  mark; with lines still unsent and the list full it waits, and says so once.
* **SIGTERM/SIGINT**: stop reading, push what is held (for up to ``shutdown_timeout`` seconds if
  the broker is down), save the registry, exit 0.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections import deque

import orjson

from logpipe.common.broker import DEFAULT_PREFIX, Keys, redact
from logpipe.common.loop import DONE, SKIP, SYSTEM_CLOCK, Clock, Step, Ticker
from logpipe.common.retry import SHIPPER_PUSH
from logpipe.common.wire import DEFAULT_RECORDS_PER_ITEM, pack, split_frames
from logpipe.shipper.inputs.base import Chunk, Context, Input, input_class
from logpipe.shipper.framing import Outgoing
from logpipe.shipper.registry import Registry
from logpipe.shipper.sender import BrokerUnavailable, open_sender
from logpipe.shipper.status import shipper_name, status_path, write_status

STATUS_EVERY = 2.0
IN_FLIGHT = 2  # batches written to the broker before the oldest one's replies are read
IDLE_MIN, IDLE_MAX = 0.005, 0.25


def _vm_hwm() -> int | None:
    """Peak resident memory of this process in KiB (Linux)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Batch:
    def __init__(self):
        self.values = Outgoing()
        self.chunks: list[Chunk] = []
        self.started = 0.0
        self._packed: Outgoing | None = None

    def packed(self) -> Outgoing:
        """The batch as compressed items (``common/wire.py``), made once (a resend reuses them)."""
        if self._packed is None:
            out = Outgoing()
            items = []
            for part in self.values.parts:
                for blob, n in split_frames(part.blob, part.count, DEFAULT_RECORDS_PER_ITEM):
                    items.append(pack(blob, n))
            out.add(items)
            self._packed = out
        return self._packed

    def add(self, chunks: list[Chunk], now: float) -> int:
        n = 0
        for c in chunks:
            if not self.chunks:
                self.started = now
            self.chunks.append(c)
            n += self.values.add(c.values)
        return n

    def __bool__(self) -> bool:
        return bool(self.chunks)


class Agent:
    def __init__(self, config, url: str, log, key: str, clock: Clock = SYSTEM_CLOCK):
        self.cfg = config
        self.clock = clock
        # the shipping loop's steps (see _loop), stopped by a signal at any time
        self.ticker = Ticker([
            Step("status", self._status_step),
            Step("backpressure", self._backpressure_step),
            Step("read", self._read_step),
            Step("confirm", self._confirm_step),
            Step("send", self._send_step),
            Step("nap", self._nap_step),
        ], clock)
        self.log = log
        self.url = url
        self.key = key
        self.retry_policy = SHIPPER_PUSH
        # the figures `logpipe stats --prefix P` reads: "host: inputs" -> JSON
        self.status_name = shipper_name(config.host, config.inputs)
        self.status_keys = Keys(prefix=getattr(config, "prefix", "") or DEFAULT_PREFIX, raw=key)
        self.registry = Registry(config.registry, fsync=config.fsync, log=log)
        self.sender = open_sender(url, key, log=log)
        self.ctx = Context(host=config.host, registry=self.registry, log=log, once=config.once)
        self.inputs: list[Input] = []
        self.stopping = False
        self.stop_time = 0.0
        self.paused = False
        self._resent = False  # a batch had to be sent again (see _settle)
        self._waiting_said = False
        self.broker_down_since: float | None = None
        self.list_length = 0
        self.lines = 0
        self.bytes = 0
        self._rate_mark = (self.clock.now(), 0, 0)
        self.rates = (0.0, 0.0)
        self._next_status = 0.0
        self._next_status_log = 0.0
        self._status_file = status_path(self.registry.path)

    # -- signals --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_time = self.clock.now()
            self.ticker.stop()
            self.log.info("stopping", signal=signal.Signals(signum).name)

    def _sleep(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while not self.stopping:  # a stop request is heard within a tenth of a second
            left = end - self.clock.now()
            if left <= 0:
                return
            self.clock.sleep(min(left, 0.1))

    # -- main -----------------------------------------------------------------------------------
    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.registry.lock()
        try:
            self.registry.load()
            self._start_inputs()
            if self._wait_for_broker():
                self.log.info("started", broker=redact(self.url), list=self.key,
                              host=self.cfg.host, inputs=len(self.inputs),
                              registry=str(self.registry.path))
                # What start-up made (modules, classes: ~100k objects, typer's and redis' mostly) lives
                # as long as the process: the cyclic collector need not walk it again, while shipping
                # or at exit (the final collection cost a --once run 30-40 ms).
                gc.freeze()
                self._loop()
            return 0
        finally:
            for inp in self.inputs:
                try:
                    inp.stop()
                except Exception:  # noqa: BLE001
                    pass
            try:
                self.registry.save(full=True)
            finally:
                # the last report says how it ended: a --once run that read everything is
                # "finished" (not a shipper gone silent), anything else "stopped"
                self._write_status(self.clock.now(), final="finished" if self.cfg.once
                                   and not self.stopping else "stopped")
                self.registry.unlock()
                self.sender.close()
                for s, h in old.items():
                    signal.signal(s, h)

    def _start_inputs(self) -> None:
        from logpipe.shipper.inputs.file import FileInput, recover_and_prune

        for spec in self.cfg.inputs:
            inp = input_class(spec.input, spec.where)(spec, self.ctx)
            inp.start()
            self.inputs.append(inp)
        recover_and_prune([i for i in self.inputs if isinstance(i, FileInput)], self.registry,
                          self.clock.now())

    def _wait_for_broker(self) -> bool:
        """Reach the broker before reading anything: a broker that is not up yet is waited for
        exactly like one that goes away later (backoff, one line when down, one when back); a
        wrong password, missing permission or a key that is not a list raise BrokerError.
        False: stopped by a signal while waiting."""
        backoff = self.retry_policy.start(self.clock.now)
        while not self.stopping:
            try:
                self.list_length = self.sender.check()
            except BrokerUnavailable as exc:
                self._broker_down(exc, held_lines=0)
                backoff.wait(self._sleep)
                continue
            self._broker_up()
            return True
        return False

    def _broker_down(self, exc: Exception, held_lines: int) -> None:
        """Note an outage once (its first failure), not at every retry."""
        if self.broker_down_since is None:
            now = self.clock.now()
            self.broker_down_since = now
            self.log.warning("broker_down", broker=redact(self.url), error=str(exc)[:200],
                             held_lines=held_lines, action="retrying with backoff; offsets held")
            self._write_status(now)
        elif self.clock.now() >= self._next_status:
            self._write_status(self.clock.now())  # the figures (the syslog spool's) go on

    def _broker_up(self) -> None:
        if self.broker_down_since is not None:
            self.log.info("broker_up", broker=redact(self.url),
                          down_for=round(self.clock.now() - self.broker_down_since, 1))
            self.broker_down_since = None

    def _loop(self) -> None:
        """Ship until stopped or (every input done) finished, as named steps on the agent's clock:

        * ``status``: the status file and the broker's shipper entry, every ``STATUS_EVERY``;
        * ``backpressure`` (while paused): confirm what is out, wait for the list to fall below
          the low mark (``--once``: finish once everything read is on the broker);
        * ``read``: poll the inputs into the batch being filled;
        * ``confirm``: nothing more to read right now: have what is out confirmed (offsets move);
        * ``send``: a full, drained or old enough batch goes out (pipelined when there is room);
        * ``nap``: nothing read: sleep, a little longer each time (up to ``IDLE_MAX``).
        """
        self._batch = Batch()
        # (batch, handle), oldest first: written to the broker, replies not read yet
        self._inflight: deque[tuple[Batch, object]] = deque()
        self._idle, self._got, self._gave_up = IDLE_MIN, 0, False
        self.ticker.run()
        if self._gave_up:  # stopping while the broker is down: offsets stay where they are
            return
        # clean stop (signal, or every input done): send what is held
        if not self._settle(self._inflight, 0):
            return
        now = self.clock.now()
        batch = self._batch
        for inp in self.inputs:
            batch.add(inp.flush(now), now)
        if batch:
            self._send(batch)
        self.log.info("stopped", lines=self.lines, bytes=self.bytes)

    def _give_up(self) -> str:
        self._gave_up = True
        self.ticker.stop()
        return DONE

    def _status_step(self) -> str | None:
        now = self.ticker.now
        if now < self._next_status:  # written since by a broker outage or a pause
            return SKIP
        self._write_status(now)
        return None

    def _backpressure_step(self) -> str | None:
        if not self.paused:
            return SKIP
        if not self._settle(self._inflight, 0):
            return self._give_up()
        if self._check_resume():
            return None  # below the low mark: reading goes on in this tick
        if self.cfg.once:
            if self._once_finished(self._batch, self.ticker.now):
                if self._batch:  # only offset moves (skipped empty lines): no push
                    self._confirmed(self._batch)
                    self._batch = Batch()
                self.ticker.stop()  # every line read is on the broker: a full list is no reason
                return DONE
            self._say_waiting(self._batch)
        self._sleep(0.5)
        return DONE

    def _read_step(self) -> None:
        now, batch, got = self.ticker.now, self._batch, 0
        for inp in self.inputs:
            room = self.cfg.batch_lines - len(batch.values)
            if room <= 0:
                break
            got += batch.add(inp.poll(room, now), now)
            got += batch.add(inp.expire(now), now)
        self._got = got

    def _confirm_step(self) -> str | None:
        if not self._inflight or self._got:
            return SKIP
        # nothing more to read right now: have what is out confirmed (offsets move)
        return None if self._settle(self._inflight, 0) else self._give_up()

    def _send_step(self) -> str | None:
        cfg, batch, now = self.cfg, self._batch, self.ticker.now
        full = len(batch.values) >= cfg.batch_lines
        # Nothing more to read right now: a batch waits up to batch_wait for company,
        # unless every input is finished (--once), when there is nothing to wait for.
        drained = not self._got and (now - batch.started >= cfg.batch_wait
                                     or all(inp.done for inp in self.inputs))
        if not (batch and (full or drained or now - batch.started >= max(cfg.batch_wait, 1.0))):
            return SKIP
        # this batch is written before the replies of the one before are read, unless the
        # list may reach the high mark: then only after them (pause at most one batch over)
        keep = IN_FLIGHT - 1 if self._may_pipeline(self._inflight, batch) else 0
        if not self._settle(self._inflight, keep):
            return self._give_up()
        if self.paused:
            return DONE  # held until the list is below the low mark
        self._inflight.append((batch, self._start(batch)))
        self._batch = Batch()
        return DONE

    def _nap_step(self) -> None:
        if self._got:
            self._idle = IDLE_MIN
            return
        if all(inp.done for inp in self.inputs) and not self._batch:
            self.ticker.stop()  # every input finished (--once) and everything sent
            return
        self._sleep(self._idle)
        self._idle = min(self._idle * 2, IDLE_MAX)

    def _may_pipeline(self, inflight: deque, batch: Batch) -> bool:
        """``batch`` may be written before the batches in flight are confirmed: none of them failed to
        be written (it is sent again first), and the list stays below the high mark even if all land."""
        if any(handle is None for _, handle in inflight):
            return False
        hw = self.cfg.high_water
        return not hw or self.list_length + len(batch.values) + sum(len(b.values) for b, _ in inflight) < hw

    def _settle(self, inflight: deque, keep: int) -> bool:
        """Read replies, oldest batch first, until at most ``keep`` batches are unconfirmed. False:
        gave up (stopping while the broker is down)."""
        self._resent = False
        while len(inflight) > keep:
            if not self._complete(*inflight.popleft()):
                return False
            if self._resent:
                keep = 0  # the batches behind a resent one go again too, before any new one
        return True

    def _start(self, batch: Batch):
        if not batch.values:
            return "empty"
        try:
            return self.sender.start(self._wire(batch))
        except BrokerUnavailable:
            return None  # _complete retries it

    def _complete(self, batch: Batch, handle) -> bool:
        if handle == "empty":
            self._confirmed(batch)
            return True
        if handle is not None:
            try:
                self.list_length = self.sender.finish(handle)
            except BrokerUnavailable:
                return self._send(batch)
            self._confirmed(batch)
            return True
        return self._send(batch)

    def _send(self, batch: Batch) -> bool:
        """Push until confirmed, then run the acks and save the registry. False: gave up
        (stopping while the broker is down; offsets were not moved)."""
        self._resent = True
        backoff = self.retry_policy.start(self.clock.now)
        while True:
            try:
                if batch.values:
                    self.list_length = self.sender.push(self._wire(batch))
                break
            except BrokerUnavailable as exc:
                now = self.clock.now()
                self._broker_down(exc, held_lines=len(batch.values))
                if self.stopping and now - self.stop_time >= self.cfg.shutdown_timeout:
                    self.log.warning("gave_up_on_shutdown", held_lines=len(batch.values),
                                     effect="file lines are read again at the next start")
                    return False
                backoff.wait(self._sleep)
        self._confirmed(batch)
        return True

    def _wire(self, batch: Batch) -> Outgoing:
        """What goes on the list: the records, or (``compress = "zlib"``) compressed runs of them."""
        return batch.packed() if getattr(self.cfg, "compress", "none") == "zlib" else batch.values

    def _confirmed(self, batch: Batch) -> None:
        """The broker has every record of ``batch``: move offsets, save the registry."""
        self._broker_up()
        for chunk in batch.chunks:
            self.lines += len(chunk.values)
            self.bytes += chunk.nbytes
            if chunk.ack is not None:
                chunk.ack()
        self.registry.save()
        hw = self.cfg.high_water
        if hw and self.list_length >= hw and not self.paused:
            self.paused = True
            self.log.warning("backpressure_pause", list_length=self.list_length, high_water=hw,
                             low_water=self.cfg.low_water)
            self._write_status(self.clock.now())

    def _once_finished(self, batch: Batch, now: float) -> bool:
        """--once: every input is at its end and nothing read is unsent (pending multiline
        events are taken into the batch first, so they count as unsent)."""
        if not all(inp.done for inp in self.inputs):
            return False
        for inp in self.inputs:
            batch.add(inp.flush(now), now)
        return not batch.values

    def _say_waiting(self, batch: Batch) -> None:
        """Once per pause: what the agent waits for while the list is above the high mark."""
        if self._waiting_said:
            return
        self._waiting_said = True
        unread = not all(inp.done for inp in self.inputs)
        self.log.warning("waiting_for_room", unsent_lines=len(batch.values),
                         unread_input="yes" if unread else "no", list=self.key,
                         list_length=self.list_length, resume_below=self.cfg.low_water,
                         action="an indexer must drain the list; nothing is dropped")

    def _check_resume(self) -> bool:
        try:
            self.list_length = self.sender.length()
        except BrokerUnavailable:
            return False
        if self.list_length < self.cfg.low_water:
            self.paused = False
            self._waiting_said = False
            self.log.info("backpressure_resume", list_length=self.list_length)
            return True
        return False

    # -- status ---------------------------------------------------------------------------------
    def _write_status(self, now: float, final: str | None = None) -> None:
        self._next_status = now + STATUS_EVERY
        t0, l0, b0 = self._rate_mark
        if now - t0 >= 1.0:
            self.rates = ((self.lines - l0) / (now - t0), (self.bytes - b0) / (now - t0))
            self._rate_mark = (now, self.lines, self.bytes)
        sources = []
        for inp in self.inputs:
            sources.extend(inp.status())
        write_status(self._status_file, {
            "pid": os.getpid(), "host": self.cfg.host, "updated": time.time(),
            "broker": "down" if self.broker_down_since is not None else "up",
            "broker_url": redact(self.url), "list": self.key, "paused": self.paused,
            "list_length": self.list_length,
            "totals": {"lines": self.lines, "bytes": self.bytes,
                       "dropped": sum(s.get("dropped", 0) for s in sources),
                       "lines_per_s": round(self.rates[0], 1),
                       "bytes_per_s": round(self.rates[1], 1)},
            "rss_peak_kb": _vm_hwm(),
            "sources": sources,
        })
        if self.broker_down_since is None:
            lag = sum(s.get("lag", 0) or 0 for s in sources)
            self.sender.publish(self.status_keys, self.status_name,
                                orjson.dumps({"host": self.cfg.host, "updated": time.time(),
                                              "state": final or "running",
                                              "lines": self.lines, "bytes": self.bytes,
                                              "lines_per_s": 0.0 if final else
                                              round(self.rates[0], 1),
                                              "lag_bytes": lag, "sources": len(sources),
                                              "dropped": sum(s.get("dropped", 0) for s in sources),
                                              "spool_bytes": sum(s.get("spool_bytes", 0)
                                                                 for s in sources),
                                              "paused": self.paused}))
        si = self.cfg.status_interval
        if si and now >= self._next_status_log:
            self._next_status_log = now + si
            lag = sum(s.get("lag", 0) or 0 for s in sources)
            self.log.info("status", lines=self.lines, bytes=self.bytes,
                          lines_per_s=round(self.rates[0]), lag_bytes=lag,
                          sources=len(sources), list_length=self.list_length,
                          broker="down" if self.broker_down_since is not None else "up",
                          paused=self.paused)
