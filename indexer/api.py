"""What the search side (``logpipe ui``'s page and the search CLI) may use of the indexer: one
module, so that the import contracts allow one import from search/ into indexer/ (pyproject's
``ignore_imports``) and the indexer's modules can move behind it.

- dead letters: :func:`dead_letters` (the queue: ``iter``/``get``/``delete``/``counts_by_stage``),
  :data:`STAGES`, :func:`valid_entry_id` (an id the broker would not refuse),
  :func:`replay_letters` (what ``logpipe dlq replay`` does);
- health: :func:`health_figures` (``logpipe stats``'s figures, the last hour, broker memory);
- parsing: :func:`load_parse_pipeline` (the parse pipeline of a config, compiled),
  :func:`closest_pattern` (which grok pattern of a record's type got furthest on its line) and
  :func:`explain` (how far one pattern gets: ``logpipe grok debug``'s answer).

Everything here is plain functions over a broker client, a store and a config path; nothing
knows about HTTP or terminals.
"""

from __future__ import annotations

import dataclasses

from logpipe.common.broker import Keys
from logpipe.common.errors import LogpipeError
from logpipe.common.record import decode
from logpipe.indexer import stats as _stats
from logpipe.indexer.dlq import STAGES, DeadLetter, DeadLetterQueue, valid_entry_id
from logpipe.indexer.grok import explain as _explain
from logpipe.indexer.grok.matcher import matcher_for
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import load_pipeline
from logpipe.indexer.replay import replay_letters

explain = _explain.explain


def dead_letters(client, keys: Keys) -> DeadLetterQueue:
    """The dead-letter queue on the broker ``client`` under ``keys``."""
    return DeadLetterQueue(client, keys)


def health_figures(client, keys: Keys) -> dict:
    """``logpipe stats``'s figures (each shipper with ``age_s`` and ``silent``), the last hour
    minute by minute (``history``) and the broker's memory (``memory``)."""
    figures = _stats.collect(client, keys)
    figures["history"] = _stats.history(client, keys)
    figures["memory"] = _stats.broker_memory(client)
    return figures


def load_parse_pipeline(config_path: str | None) -> Pipeline:
    """The parse pipeline of a config file (None: the built-in one), every pattern compiled
    (a broken config fails here, with the file and what is wrong)."""
    pipeline = Pipeline(load_pipeline(config_path))
    pipeline.compile_all()
    return pipeline


def closest_pattern(pipeline: Pipeline, raw: bytes, record_id: str,
                    line_max: int | None = None) -> dict | None:
    """Which of the record type's patterns got furthest on a queued record's line (``grok
    debug``'s answer): {type, pattern, matched, pieces, good, failed_piece, line, start, end};
    None when the record does not decode or its type has no patterns. ``line_max``: only this
    many characters of the line are tried (a bounded answer for a huge line)."""
    try:
        record = decode(raw, record_id)
    except LogpipeError:
        return None
    if line_max is not None and len(record.line) > line_max:
        record = dataclasses.replace(record, line=record.line[:line_max])
    tc = pipeline.config.for_type(record.type or pipeline.default_type)
    if not tc.patterns:
        return None
    found = _explain.closest_pattern(matcher_for(tc), record.line)
    return None if found is None else {"type": tc.name, **found}


__all__ = ["STAGES", "DeadLetter", "DeadLetterQueue", "Pipeline", "dead_letters", "valid_entry_id",
           "replay_letters", "health_figures", "load_parse_pipeline", "closest_pattern",
           "explain"]
