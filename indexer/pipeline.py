"""The per-record pipeline: record -> grok -> enrich -> event.

Parsing failures are not errors: the event is stored with ``_grokparsefailure`` (as Logstash does)
so nothing is lost and the line stays searchable. Only records that cannot become an event at all
raise, and the caller dead-letters them with stage ``parse``.
"""

from __future__ import annotations

from common.record import Record
from indexer.enrich import RESERVED, apply_edits, received_datetime, timestamp_for
from indexer.pipeline_config import PipelineConfig, TypeConfig
from store.base import Event


class Pipeline:
    """Everything a worker needs to turn records of any type into events."""

    def __init__(self, config: PipelineConfig, default_type: str | None = None):
        self.config = config
        self.default_type = default_type or config.default_type
        self._matchers: dict[str, object] = {}

    def _matcher(self, tc: TypeConfig):
        matcher = self._matchers.get(tc.name)
        if matcher is None:
            from indexer.grok.matcher import matcher_for
            matcher = self._matchers[tc.name] = matcher_for(tc)
        return matcher

    def compile_all(self) -> None:
        """Compile every type's patterns now, so a broken pattern stops the command at start-up
        (with its file and position) instead of failing every batch in the workers."""
        for tc in self.config.types.values():
            if tc.patterns:
                self._matcher(tc)

    def process(self, record: Record) -> Event:
        rtype = record.type or self.default_type
        tc = self.config.for_type(rtype)
        tags = list(record.tags)
        if tc.patterns:
            captures, grok_tags = self._matcher(tc).match(record.line)
            captures = captures or {}
            tags.extend(grok_tags)
        else:
            captures = {}
        doc: dict = {}
        doc.update(record.fields)
        for name, value in captures.items():
            doc[f"grok_{name}" if name in RESERVED else name] = value
        received = received_datetime(record.received_at)
        doc["@timestamp"] = timestamp_for(captures, tc.date, received,
                                          record.fields.get("timezone"), tags)
        doc["message"] = record.line
        doc["host"] = record.host
        doc["path"] = record.path
        doc["type"] = rtype
        if record.offset is not None:
            doc["offset"] = record.offset
        doc["received_at"] = record.received_at
        apply_edits(doc, tc.fields, tags)
        doc["tags"] = tags
        return Event(record.id, doc)

