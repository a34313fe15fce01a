"""The per-record pipeline: record -> the type's chain -> event.

A type's chain is an ordered list of steps, run the way Logstash runs a filter block: first the
type's own grok on the line (with its routes to other types) and its date, which build the
event (captures, ``@timestamp``, ``message``, ``host``, ``path``, ``type``, ...), then
:meth:`TypeConfig.chain`: the ``[fields]`` edits as a mutate step and the ``[[filter]]`` entries
(grok on any field, kv, mutate, date, dissect, json, translate, drop, if / else if / else), in
the config's order (:mod:`indexer.steps`, read by :mod:`indexer.filters`). The entry point for
one line is :meth:`Pipeline.process` (a :class:`Record` in, an :class:`Event` or None out);
:func:`event_for_line` wraps it for a config file and a line.

Parsing failures are not errors: the event is stored with ``_grokparsefailure`` (as Logstash does)
so nothing is lost and the line stays searchable. Only records that cannot become an event at all
raise, and the caller dead-letters them with stage ``parse``.
"""

from __future__ import annotations

from logpipe.common.record import Record
from logpipe.indexer.enrich import (OWN_KEYS, flat_key, from_syslog_input, place_capture,
                                    received_datetime, timestamp_for)
from logpipe.indexer.hostnames import normalise_hostnames
from logpipe.indexer.pipeline_config import PipelineConfig, TypeConfig
from logpipe.common.errors import ConfigError, ReservedFieldError
from logpipe.query.evaluate import matches
from logpipe.store.base import Event
from logpipe.store.fields import RESERVED_FIELDS, RESERVED_RENAMED


# the syslog header a routed event hands to its new type: classic names, then ECS mode's
_HEADER = (("timestamp", "timestamp"), ("logsource", "[host][hostname]"),
           ("program", "[process][name]"), ("pid", "[process][pid]"), ("message", "message"))


def handoff_line(line: str, captures: dict) -> str:
    """The line a routed event's new type parses: when the source type read a syslog header
    (BSD, RFC 3339 or RFC 5424: timestamp, host, program, pid) and the bare message, a BSD-style
    line rebuilt from them (``TIMESTAMP HOST PROGRAM[PID]: MESSAGE``), so a target whose
    patterns expect that frame (mail, sshd) reads an RFC 5424 message too; else the line as
    received."""
    found = []
    for classic, ecs in _HEADER:
        value = captures.get(classic, captures.get(ecs))
        found.append(None if value is None else str(value))
    stamp, host, program, pid, message = found
    if not (stamp and host and program) or message is None:
        return line
    return f"{stamp} {host} {program}{f'[{pid}]' if pid else ''}: {message}"


class Pipeline:
    """Everything a worker needs to turn records of any type into events."""

    def __init__(self, config: PipelineConfig, default_type: str | None = None):
        self.config = config
        self.default_type = default_type or config.default_type
        self._matchers: dict[str, object] = {}
        self._chains: dict[str, list] = {}
        self._received: tuple = (None, None)  # the last (received_at, its datetime)

    def _matcher(self, tc: TypeConfig):
        matcher = self._matchers.get(tc.name)
        if matcher is None:
            from logpipe.indexer.grok.matcher import matcher_for
            matcher = self._matchers[tc.name] = matcher_for(tc)
        return matcher

    def compile_all(self) -> None:
        """Compile every type's patterns now, so a broken pattern stops the command at start-up
        (with its file and position) instead of failing every batch in the workers; a route to
        a type nobody defined stops it too."""
        for tc in self.config.types.values():
            if tc.patterns:
                self._matcher(tc)
            for route in tc.routes:
                if route.type not in self.config.types:
                    raise ConfigError(f"[types.{tc.name}] route to unknown type {route.type!r} "
                                      f"(known: {', '.join(sorted(self.config.types))})",
                                      tc.source or None)

    def _grok(self, tc: TypeConfig, line: str) -> tuple[dict, list[str]]:
        if not tc.patterns:
            return {}, []
        captures, tags = self._matcher(tc).match(line)
        return captures or {}, tags

    def _route(self, tc: TypeConfig, record: Record, captures: dict) -> str | None:
        """The type the first matching route of ``tc`` sends this event to, if any."""
        if not tc.routes:
            return None
        doc: dict = dict(record.fields)
        for name, value in captures.items():
            place_capture(doc, name, value)
        doc.update(message=record.line, host=record.host, path=record.path, type=tc.name)
        for route in tc.routes:
            if route.type in self.config.types and matches(route.query, doc):
                return route.type
        return None

    def process(self, record: Record) -> Event | None:
        """The event for a record; None when a ``drop`` filter of its type drops it."""
        rtype = record.type or self.default_type
        tc = self.config.for_type(rtype)
        captures, grok_tags = self._grok(tc, record.line)
        routed = self._route(tc, record, captures) if tc.routes else None
        if routed is not None and routed != tc.name:
            # the new type parses the bare message under the header the source type read; what
            # the source type captured stays, the new type's captures on top
            rtype, tc = routed, self.config.types[routed]
            line = handoff_line(record.line, captures)
            routed_captures, grok_tags = self._grok(tc, line)
            if grok_tags and line != record.line:
                # patterns written for the line as received (a frame the header rebuild does
                # not reproduce) still get their chance
                again, again_tags = self._grok(tc, record.line)
                if not again_tags:
                    routed_captures, grok_tags = again, again_tags
            captures = {**captures, **routed_captures}
        tags = list(record.tags) + grok_tags
        doc: dict = dict(record.fields)
        if captures.keys() <= OWN_KEYS:  # every name its own key (flat_key): one update
            doc.update(captures)
        else:
            for name, value in captures.items():
                # place_capture's flat case inline: one call less per capture
                key = flat_key(name)
                if key is None:  # a field reference ([a][b]): nested
                    place_capture(doc, name, value)
                else:
                    doc[key] = value
        # a batch's records mostly share their received_at (and it is never 0 on the wire)
        received_at = record.received_at
        if self._received[0] == received_at and received_at:
            received = self._received[1]
        else:
            received = received_datetime(received_at)
            self._received = (received_at, received)
        doc["@timestamp"] = timestamp_for(captures, tc.date, received,
                                          record.fields.get("timezone"), tags)
        doc["message"] = record.line
        doc["host"] = record.host
        doc["path"] = record.path
        doc["type"] = rtype
        from_syslog_input(doc, captures)
        if record.offset is not None:
            doc["offset"] = record.offset
        doc["received_at"] = record.received_at
        chain = self._chains.get(tc.name)
        if chain is None:
            chain = self._chains[tc.name] = tc.chain()
        for step in chain:
            if not step(doc, tags):
                return None
        if "@metadata" in doc:   # Logstash's [@metadata]: the pipeline's own, never stored
            del doc["@metadata"]
        normalise_hostnames(doc)   # after every step: a field any of them set counts
        if not RESERVED_FIELDS.isdisjoint(doc):
            rename_reserved(doc)
        doc["tags"] = tags
        return Event(record.id, doc)


def event_for_line(line: str, config: str | PipelineConfig | None = None,
                   type_name: str | None = None, received_at: float = 0.0,
                   host: str = "", path: str = "") -> Event | None:
    """One line through a pipeline config (a TOML file's path, a loaded config, or None for
    the built-ins), as the indexer runs it: the event, or None when a drop step dropped it.
    Errors (a config that cannot be read, a record that cannot be processed) raise."""
    from logpipe.indexer.pipeline_config import load_pipeline
    cfg = config if isinstance(config, PipelineConfig) else load_pipeline(config)
    pipeline = Pipeline(cfg)
    return pipeline.process(Record(id="line", line=line, host=host, path=path,
                                   type=type_name or cfg.default_type,
                                   received_at=received_at))


def rename_reserved(doc: dict) -> None:
    """A field a record or a filter set under a name the stores keep for themselves
    (store.fields.RESERVED_FIELDS: ``_id``, ``_malformed_source``, ...) is kept under
    ``input<name>`` (``input_id``), so a search shows what was stored and finds it by that
    name; when that name is taken too, :class:`ReservedFieldError` (the record is
    dead-lettered with the reason, stage ``parse``)."""
    for name in sorted(RESERVED_FIELDS.intersection(doc)):
        target = RESERVED_RENAMED + name
        if target in doc:
            raise ReservedFieldError(
                f"field {name!r} is kept for the store's own use, and {target!r}, the name it "
                f"is stored under instead, is taken too: rename one of them ([types.T.fields] "
                f"rename or a mutate filter)")
        doc[target] = doc.pop(name)

