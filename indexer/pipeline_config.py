"""The pipeline config, in one module: its types, reading a file, the built-in types, and
:func:`load_pipeline` (the built-ins overridden type by type by a user's file, which is what
``--config`` means everywhere).

The pipeline config is TOML (Python reads it without a dependency, and grok patterns fit in
literal strings ``'...'``). One table per type::

    [types.mail]
    patterns = ['%{SYSLOGBASE} %{GREEDYDATA:msg}']   # grok expressions, tried in order
    pattern_definitions = { QID = '[0-9A-Za-z]{14}' } # inline custom patterns (optional)
    patterns_dir = ['patterns/']                      # Logstash-format pattern files (optional)

    [types.mail.date]                                 # -> @timestamp (optional)
    field = 'timestamp'
    formats = ['syslog', 'ISO8601']                   # 'syslog' = MMM d HH:mm:ss, year inferred
    timezone = 'UTC'

    [types.mail.fields]                               # edits after parsing (optional)
    convert = { pid = 'int', size = 'int' }
    add = { service = 'mail' }
    rename = { logsource = 'source_host' }
    remove = ['timestamp']
    add_tags = ['mail']

The indexer's bounds on one record (optional; these are the defaults)::

    [limits]
    max_line_bytes = 1048576      # the line, and any one text value (the shipper cuts at 1 MiB)
    max_fields = 1000             # fields of the event, nested ones included
    max_record_bytes = 16777216   # the item as it was on the broker list
    oversize = "dead-letter"      # or "truncate": cut, tagged _truncated, and stored

Built-in types (syslog, mail, apache, sshd) ship as ``indexer/pipelines/*.toml``; a user file
given with ``--config`` overrides them type by type.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from logpipe.common.errors import ConfigError
from logpipe.indexer.filters import compile_when, config_tables, parse_filters
from logpipe.indexer.steps import mutate_step

# ecs_compatibility of a type: classic grok field names, or the ECS ones (indexer/grok/ecs.py)
ECS_MODES = ("disabled", "v1", "v8")

BUILTIN_DIR = Path(__file__).resolve().parent / "pipelines"
BUILTIN_TYPES = ("syslog", "mail", "apache", "sshd")
_CONVERSIONS = {"int", "float", "string", "bool"}


@dataclass
class DateSpec:
    field: str = "timestamp"
    formats: list[str] = dc_field(default_factory=lambda: ["syslog", "ISO8601"])
    timezone: str = "UTC"
    target: str = "@timestamp"
    locale: str | None = None   # a language of indexer.date_locales (None: English)


@dataclass
class FieldEdits:
    convert: dict[str, str] = dc_field(default_factory=dict)
    add: dict[str, object] = dc_field(default_factory=dict)
    rename: dict[str, str] = dc_field(default_factory=dict)
    remove: list[str] = dc_field(default_factory=list)
    add_tags: list[str] = dc_field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.convert or self.add or self.rename or self.remove or self.add_tags)


def edits_step(edits: FieldEdits):
    """A type's ``[fields]`` as one mutate step (Logstash mutate's order: rename, convert, then
    add -- which sets, replacing a value the event has --, remove, tags)."""
    added = list(edits.add.items())
    removed = list(edits.remove)
    tags_added = list(edits.add_tags)

    def then(doc: dict, tags: list) -> None:
        for name, value in added:
            doc[name] = value
        for name in removed:
            doc.pop(name, None)
        for tag in tags_added:
            if tag not in tags:
                tags.append(tag)
    return mutate_step({"rename": dict(edits.rename), "convert": dict(edits.convert)}, then)


@dataclass(frozen=True)
class Route:
    """``[[types.NAME.route]] when = 'QUERY' type = 'OTHER'``: events of this type that match
    the query (Lucene syntax, as in search) are parsed and stored as type OTHER."""

    when: str
    type: str
    query: object = None  # the compiled query (query.tree)


@dataclass
class TypeConfig:
    """How to parse and enrich one type of record."""

    name: str
    patterns: list[str] = dc_field(default_factory=list)
    pattern_definitions: dict[str, str] = dc_field(default_factory=dict)
    patterns_dir: list[str] = dc_field(default_factory=list)
    date: DateSpec | None = None
    fields: FieldEdits = dc_field(default_factory=FieldEdits)
    source: str = ""  # the file it came from, for error messages
    ecs_compatibility: str = "disabled"  # "v1"/"v8": ECS field names (indexer/grok/ecs.py)
    routes: list[Route] = dc_field(default_factory=list)
    filters: list = dc_field(default_factory=list)  # indexer.filters.Filter, in order

    def chain(self) -> list:
        """The steps that run on an event after the type's grok and date (the first steps,
        which :class:`indexer.pipeline.Pipeline` runs on the line): the ``[fields]`` edits as
        a mutate step, then the filters, in order."""
        steps = [] if self.fields.empty else [edits_step(self.fields)]
        return steps + [f.run for f in self.filters]


OVERSIZE_MODES = ("dead-letter", "truncate")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What the indexer takes of one record (indexer/limits.py enforces it): a record over a
    bound is dead-lettered with the bound in its reason, or, with ``oversize = "truncate"``,
    cut to fit, tagged ``_truncated`` and stored. Records from logpipe's own shipper fit the
    defaults (it cuts lines at 1 MiB); other clients may push anything."""

    max_line_bytes: int = MIB
    max_fields: int = 1000
    max_record_bytes: int = 16 * MIB
    oversize: str = "dead-letter"

    @property
    def truncate(self) -> bool:
        return self.oversize == "truncate"


@dataclass
class PipelineConfig:
    types: dict[str, TypeConfig] = dc_field(default_factory=dict)
    default_type: str = "syslog"
    limits: Limits | None = None  # None: Limits() (a file without [limits] keeps the base's)

    @property
    def bounds(self) -> Limits:
        return self.limits or Limits()

    def for_type(self, name: str) -> TypeConfig:
        return self.types.get(name) or self.types.get(self.default_type) or TypeConfig(name)

    def merged(self, other: "PipelineConfig") -> "PipelineConfig":
        return PipelineConfig(types={**self.types, **other.types},
                              default_type=other.default_type or self.default_type,
                              limits=other.limits or self.limits)


def read_pipeline(path: str | Path) -> PipelineConfig:
    """Read one pipeline config file (no built-ins); errors name the file and the offending
    key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config: {exc.strerror}", str(path)) from None
    return parse_pipeline(text, str(path))


def parse_pipeline(text: str, source: str = "<config>") -> PipelineConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ConfigError(f"not valid TOML: {exc}", source, line) from None
    types = data.get("types", {})
    if not isinstance(types, dict):
        raise ConfigError("'types' must be a table of [types.NAME] sections", source)
    config = PipelineConfig(default_type=str(data.get("default_type", "syslog")),
                            limits=_parse_limits(data["limits"], source)
                            if "limits" in data else None)
    base = Path(source).parent if source and not source.startswith("<") else Path(".")
    for name, body in types.items():
        config.types[name] = _parse_type(name, body, source, base)
    return config


def _parse_type(name: str, body: dict, source: str, base: Path) -> TypeConfig:
    where = f"[types.{name}]"
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be a table", source)
    patterns = body.get("patterns", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"{where} patterns must be a list of strings", source)
    defs = body.get("pattern_definitions", {})
    if not isinstance(defs, dict) or not all(isinstance(v, str) for v in defs.values()):
        raise ConfigError(f"{where} pattern_definitions must map names to strings", source)
    dirs = [str((base / d)) if not os.path.isabs(d) else d for d in body.get("patterns_dir", [])]
    date = None
    if "date" in body:
        d = body["date"]
        if not isinstance(d, dict):
            raise ConfigError(f"{where}.date must be a table", source)
        locale = None
        if "locale" in d:
            from logpipe.indexer.date_locales import language
            try:
                locale = language(str(d["locale"]))
            except ValueError as exc:
                from logpipe.indexer.filters import line_of
                raise ConfigError(f"{where}.date: {exc}", source,
                                  line_of(source, "locale", str(d["locale"]))) from None
        date = DateSpec(field=d.get("field", "timestamp"),
                        formats=list(d.get("formats", ["syslog", "ISO8601"])),
                        timezone=d.get("timezone", "UTC"), target=d.get("target", "@timestamp"),
                        locale=locale)
    f = body.get("fields", {})
    edits = FieldEdits(convert=dict(f.get("convert", {})), add=dict(f.get("add", {})),
                       rename=dict(f.get("rename", {})), remove=list(f.get("remove", [])),
                       add_tags=list(f.get("add_tags", [])))
    for key, kind in edits.convert.items():
        if kind not in _CONVERSIONS:
            raise ConfigError(f"{where}.fields.convert.{key}: unknown type {kind!r} "
                              f"(use one of {', '.join(sorted(_CONVERSIONS))})", source)
    ecs = body.get("ecs_compatibility", "disabled")
    if ecs not in ECS_MODES:
        raise ConfigError(f"{where} ecs_compatibility must be 'disabled', 'v1' or 'v8', "
                          f"not {ecs!r}", source)
    return TypeConfig(name=name, patterns=list(patterns), pattern_definitions=dict(defs),
                      patterns_dir=dirs, date=date, fields=edits, source=source,
                      ecs_compatibility=ecs, routes=_parse_routes(body.get("route", []), where,
                                                                  source),
                      filters=parse_filters(body.get("filter", []), where, source))


def _parse_limits(body, source: str) -> Limits:
    if not isinstance(body, dict):
        raise ConfigError("[limits] must be a table", source)
    known = ("max_line_bytes", "max_fields", "max_record_bytes", "oversize")
    for key in body:
        if key not in known:
            raise ConfigError(f"[limits] unknown key {key!r} (known: {', '.join(known)})", source)
    values: dict[str, Any] = {}
    for key in known[:3]:
        if key in body:
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"[limits] {key} must be a positive integer, got {value!r}",
                                  source)
            values[key] = value
    if "oversize" in body:
        if body["oversize"] not in OVERSIZE_MODES:
            raise ConfigError(f"[limits] oversize must be \"dead-letter\" or \"truncate\", "
                              f"got {body['oversize']!r}", source)
        values["oversize"] = body["oversize"]
    return Limits(**values)


def _parse_routes(items, where: str, source: str) -> list[Route]:
    routes = []
    for k, item in enumerate(config_tables(items, "route", where, source), 1):
        at = f"{where} route {k}"
        if not isinstance(item, dict) or not isinstance(item.get("when"), str) or \
                not isinstance(item.get("type"), str) or not item["type"]:
            raise ConfigError(f"{at}: needs when = 'QUERY' and type = 'TYPE' (strings)", source)
        routes.append(Route(item["when"], item["type"], compile_when(item["when"], at, source)))
    return routes


@functools.lru_cache(maxsize=1)
def builtin_pipeline() -> PipelineConfig:
    """All four built-in types (parsed once per process)."""
    config = PipelineConfig()
    for name in BUILTIN_TYPES:
        config = config.merged(read_pipeline(BUILTIN_DIR / f"{name}.toml"))
    config.default_type = "syslog"
    return config


def load_pipeline(path: str | Path | None = None) -> PipelineConfig:
    """The built-in pipeline, overridden type by type by the config file at ``path`` if given."""
    base = builtin_pipeline()
    if not path:
        return PipelineConfig(types=dict(base.types), default_type=base.default_type,
                              limits=base.limits)
    return base.merged(read_pipeline(path))
