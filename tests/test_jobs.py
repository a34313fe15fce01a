"""BatchProcessor against a real Valkey, with a scripted in-memory sink that can push back."""

from __future__ import annotations

import orjson
import pytest

from logpipe.common.broker import Broker, Keys
from logpipe.common.loop import FakeClock
from logpipe.indexer.pipeline_config import PipelineConfig, TypeConfig
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.jobs import BatchProcessor, JobSettings, StoreUnavailable
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.replay import replay
from logpipe.store.base import Outcome, OutcomeMismatch, Status


class ScriptedSink:
    """Stores by id; rejects ids in ``reject``; answers RETRY for the first ``down`` calls."""

    def __init__(self, reject=(), down=0):
        self.docs: dict[str, dict] = {}
        self.reject = set(reject)
        self.down = down
        self.calls = 0
        self.prepared = 0
        self.messages: dict[str, tuple] = {}

    def prepare(self):
        self.prepared += 1

    def write_messages(self, grouped):
        self.messages.update(grouped)
        return len(grouped)

    def write(self, events):
        self.calls += 1
        if self.calls <= self.down:
            return [Outcome(Status.RETRY, "store unreachable")] * len(events)
        out = []
        for e in events:
            if e.id in self.reject:
                out.append(Outcome(Status.REJECTED, "mapper_parsing_exception: bad ip"))
            elif e.id in self.docs:
                out.append(Outcome(Status.DUPLICATE))
            else:
                self.docs[e.id] = e.doc
                out.append(Outcome(Status.INDEXED))
        return out


def make_records(n, rtype="plain"):
    return [Record(id=record_id("h", "f", i * 10), line=f"line {i}", host="h", path="/f",
                   offset=i * 10, type=rtype, received_at=1764288000.0 + i) for i in range(n)]


@pytest.fixture
def setup(redis_client):
    settings = JobSettings(redis_url="unused", store_url="unused", store_wait=2)
    pipeline = Pipeline(PipelineConfig(types={"plain": TypeConfig("plain")}, default_type="plain"))
    return redis_client, settings, pipeline


def claim(client, items):
    keys = Keys()
    client.rpush(keys.raw, *items)
    key, n = Broker(client, keys).claim_batch(10_000)
    assert n == len(items)
    return key


def test_batch_is_indexed_then_forgotten(setup):
    client, settings, pipeline = setup
    records = make_records(5)
    key = claim(client, [encode(r) for r in records])
    sink = ScriptedSink()
    counts = BatchProcessor(client, settings, sink, pipeline).run(key)
    assert counts.seconds > 0
    assert counts.counts() == {"records": 5, "indexed": 5, "duplicate": 0, "dead_lettered": 0}
    assert set(sink.docs) == {r.id for r in records}
    assert sink.docs[records[2].id]["message"] == "line 2"
    assert sink.docs[records[2].id]["@timestamp"] == "2025-11-28T00:00:02.000Z"
    assert not client.exists(key)
    assert client.zcard(Keys().batches) == 0


def test_processing_a_batch_twice_is_harmless(setup):
    client, settings, pipeline = setup
    items = [encode(r) for r in make_records(3)]
    key = claim(client, items)
    sink = ScriptedSink()
    BatchProcessor(client, settings, sink, pipeline).run(key)
    # A worker died after the store confirmed but before the key was deleted: same items again.
    client.rpush(key, *items)
    counts = BatchProcessor(client, settings, sink, pipeline).run(key)
    assert counts.duplicate == 3 and counts.indexed == 0
    assert len(sink.docs) == 3


def test_undecodable_and_rejected_records_go_to_the_dlq_once(setup):
    client, settings, pipeline = setup
    good = make_records(3)
    key = claim(client, [encode(good[0]), b"\xff\xfebroken", encode(good[1]), encode(good[2])])
    sink = ScriptedSink(reject={good[1].id})
    counts = BatchProcessor(client, settings, sink, pipeline).run(key)
    assert counts.counts() == {"records": 4, "indexed": 2, "duplicate": 0, "dead_lettered": 2}
    letters = list(DeadLetterQueue(client).iter())
    assert sorted(l.stage for l in letters) == ["decode", "index"]
    index_letter = next(l for l in letters if l.stage == "index")
    assert index_letter.record_id == good[1].id
    assert "bad ip" in index_letter.reason
    assert orjson.loads(index_letter.record)["line"] == "line 1"
    # The same records dead-lettered again (a retried batch) do not add entries.
    dlq = DeadLetterQueue(client)
    dlq.add(index_letter.record, good[1].id, "index", "again")
    assert len(dlq) == 2


def test_store_down_waits_then_succeeds(setup):
    client, settings, pipeline = setup
    key = claim(client, [encode(r) for r in make_records(4)])
    sink = ScriptedSink(down=2)
    clock = FakeClock()
    counts = BatchProcessor(client, settings, sink, pipeline, clock=clock).run(key)
    assert counts.indexed == 4 and sink.calls == 3
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > 0  # backed off twice, on the clock
    assert not client.exists(key)


def test_store_down_too_long_keeps_the_batch(setup):
    client, settings, pipeline = setup
    key = claim(client, [encode(r) for r in make_records(4)])
    clock = FakeClock()
    with pytest.raises(StoreUnavailable, match="4 records not stored after 2s: store unreachable"):
        BatchProcessor(client, settings, ScriptedSink(down=10**6), pipeline, clock=clock).run(key)
    waited = clock.now() - 1000.0  # FakeClock starts at 1000: time moved only by the backoff
    assert waited - clock.sleeps[-1] < settings.store_wait <= waited  # gave up at store_wait
    assert client.llen(key) == 4
    assert client.zscore(Keys().batches, key) is not None


def test_replay_removes_what_now_succeeds(setup):
    client, settings, pipeline = setup
    records = make_records(3)
    key = claim(client, [encode(r) for r in records])
    sink = ScriptedSink(reject={records[0].id, records[1].id})
    BatchProcessor(client, settings, sink, pipeline).run(key)
    dlq = DeadLetterQueue(client)
    assert len(dlq) == 2
    sink.reject = {records[1].id}  # "the mapping was fixed" for one of them
    counts = replay(dlq, pipeline, sink)
    assert counts == {"replayed": 2, "indexed": 1, "duplicate": 0, "still_failing": 1}
    left = list(dlq.iter())
    assert [l.record_id for l in left] == [records[1].id]
    # Replaying again is idempotent: nothing new is stored, the failing one stays.
    assert replay(dlq, pipeline, sink)["still_failing"] == 1
    assert len(sink.docs) == 2


class MiscountingSink(ScriptedSink):
    """Answers ``extra`` outcomes more (negative: fewer) than it was given events."""

    def __init__(self, extra):
        super().__init__()
        self.extra = extra

    def write(self, events):
        out = super().write(events)
        return out[:len(out) + self.extra] if self.extra < 0 else out + out[:self.extra]


@pytest.mark.parametrize("extra", [-1, 1])
def test_a_store_that_miscounts_fails_loudly_and_keeps_the_batch(setup, extra):
    client, settings, pipeline = setup
    key = claim(client, [encode(r) for r in make_records(4)])
    with pytest.raises(OutcomeMismatch, match="outcomes for 4 events"):
        BatchProcessor(client, settings, MiscountingSink(extra), pipeline).run(key)
    assert client.llen(key) == 4
    assert client.zscore(Keys().batches, key) is not None
    assert len(DeadLetterQueue(client)) == 0


@pytest.mark.parametrize("extra", [-1, 1])
def test_replay_against_a_store_that_miscounts_deletes_nothing(setup, extra):
    client, settings, pipeline = setup
    records = make_records(3)
    key = claim(client, [encode(r) for r in records])
    BatchProcessor(client, settings, ScriptedSink(reject={r.id for r in records}),
                   pipeline).run(key)
    dlq = DeadLetterQueue(client)
    assert len(dlq) == 3
    with pytest.raises(OutcomeMismatch):
        replay(dlq, pipeline, MiscountingSink(extra))
    assert len(dlq) == 3


class RaisingSink(ScriptedSink):
    """Raises (as a store's client does on a value it cannot serialise) whenever the events it
    is given include one of ``poison``, storing nothing of that call."""

    def __init__(self, poison):
        super().__init__()
        self.poison = set(poison)

    def write(self, events):
        if any(e.id in self.poison for e in events):
            self.calls += 1
            raise TypeError("Integer exceeds 64-bit range")
        return super().write(events)


def test_an_event_that_makes_the_store_raise_is_dead_lettered_alone(setup):
    client, settings, pipeline = setup
    records = make_records(9)
    key = claim(client, [encode(r) for r in records])
    sink = RaisingSink(poison={records[2].id, records[7].id})
    result = BatchProcessor(client, settings, sink, pipeline).run(key)
    assert result.counts() == {"records": 9, "indexed": 7, "duplicate": 0, "dead_lettered": 2}
    assert set(sink.docs) == {r.id for r in records} - sink.poison
    letters = {letter.record_id: letter for letter in DeadLetterQueue(client).iter()}
    assert set(letters) == sink.poison
    assert all(x.stage == "index" and "64-bit" in x.reason for x in letters.values())
    assert not client.exists(key)


def test_a_record_that_breaks_the_pipeline_is_dead_lettered_alone(setup):
    client, settings, pipeline = setup

    class Broken:
        config = pipeline.config  # (its bounds: [limits])

        def process(self, record):
            if record.line == "line 1":
                raise KeyError("boom")
            return pipeline.process(record)

    key = claim(client, [encode(r) for r in make_records(3)])
    sink = ScriptedSink()
    result = BatchProcessor(client, settings, sink, Broken()).run(key)
    assert (result.indexed, result.dead_lettered) == (2, 1)
    [letter] = DeadLetterQueue(client).iter()
    assert letter.stage == "parse" and "KeyError" in letter.reason and sink.calls == 1


def test_each_brokers_indexer_gets_a_metrics_port_of_its_own():
    from logpipe.indexer.fanout import per_broker_args

    args = ["--store", "sqlite:///x.db", "--metrics-host", "127.0.0.1"]
    assert per_broker_args(args, 3, 9100) == [[*args, "--metrics-port", port]
                                              for port in ("9100", "9101", "9102")]
    assert per_broker_args(args, 2, None) == [args, args]


def test_several_brokers_refuse_a_metrics_port_with_no_room_for_one_each():
    from typer.testing import CliRunner

    from logpipe.indexer.cli import index_app

    result = CliRunner().invoke(index_app, ["--redis", "redis://127.0.0.1:1/0 redis://127.0.0.1:2/0",
                                            "--store", "sqlite:////nonexistent/x.db",
                                            "--metrics-port", "65535"])
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert "65535 leaves no room for one port per broker (2 brokers need 65535 to 65536)" in said


def test_the_failure_a_job_records_follows_the_error_type():
    from logpipe.common.errors import StoreError
    from logpipe.indexer.results import FailureKind

    assert FailureKind.of_error(StoreUnavailable("not stored after 30s")) is \
        FailureKind.STORE_UNAVAILABLE
    assert FailureKind.of_error(StoreError("store unreachable: 503")) is \
        FailureKind.STORE_UNAVAILABLE
    assert FailureKind.of_error(StoreError("wrong password", permanent=True)) is \
        FailureKind.STORE_ERROR
    assert FailureKind.of_error(KeyError("a bug")) is FailureKind.ERROR
