"""Settings and the pipeline config.

Settings come from, in order: command-line flags, environment (``LOGPIPE_REDIS_URL``,
``LOGPIPE_STORE_URL``, ``LOGPIPE_HOME``), then the embedded services that ``logpipe up`` started
(recorded in ``$LOGPIPE_HOME/services.json``).

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

Built-in types (syslog, mail, apache, sshd) ship as ``indexer/pipelines/*.toml``; a user file
given with ``--config`` overrides them type by type.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field as dc_field
from pathlib import Path

from common.errors import ConfigError

ENV_REDIS = "LOGPIPE_REDIS_URL"
ENV_REDIS_FILE = "LOGPIPE_REDIS_URL_FILE"
ENV_STORE = "LOGPIPE_STORE_URL"
ENV_HOME = "LOGPIPE_HOME"

_CONVERSIONS = {"int", "float", "string", "bool"}


def home() -> Path:
    """The state directory: registry, embedded services, the embedded store."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".logpipe")


@dataclass
class DateSpec:
    field: str = "timestamp"
    formats: list[str] = dc_field(default_factory=lambda: ["syslog", "ISO8601"])
    timezone: str = "UTC"
    target: str = "@timestamp"


@dataclass
class FieldEdits:
    convert: dict[str, str] = dc_field(default_factory=dict)
    add: dict[str, object] = dc_field(default_factory=dict)
    rename: dict[str, str] = dc_field(default_factory=dict)
    remove: list[str] = dc_field(default_factory=list)
    add_tags: list[str] = dc_field(default_factory=list)


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


@dataclass
class PipelineConfig:
    types: dict[str, TypeConfig] = dc_field(default_factory=dict)
    default_type: str = "syslog"

    def for_type(self, name: str) -> TypeConfig:
        return self.types.get(name) or self.types.get(self.default_type) or TypeConfig(name)

    def merged(self, other: "PipelineConfig") -> "PipelineConfig":
        return PipelineConfig(types={**self.types, **other.types},
                              default_type=other.default_type or self.default_type)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read a pipeline config file; errors name the file and the offending key."""
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
    config = PipelineConfig(default_type=str(data.get("default_type", "syslog")))
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
        date = DateSpec(field=d.get("field", "timestamp"),
                        formats=list(d.get("formats", ["syslog", "ISO8601"])),
                        timezone=d.get("timezone", "UTC"), target=d.get("target", "@timestamp"))
    f = body.get("fields", {})
    edits = FieldEdits(convert=dict(f.get("convert", {})), add=dict(f.get("add", {})),
                       rename=dict(f.get("rename", {})), remove=list(f.get("remove", [])),
                       add_tags=list(f.get("add_tags", [])))
    for key, kind in edits.convert.items():
        if kind not in _CONVERSIONS:
            raise ConfigError(f"{where}.fields.convert.{key}: unknown type {kind!r} "
                              f"(use one of {', '.join(sorted(_CONVERSIONS))})", source)
    return TypeConfig(name=name, patterns=list(patterns), pattern_definitions=dict(defs),
                      patterns_dir=dirs, date=date, fields=edits, source=source)


# --- where the broker and the store are -------------------------------------------------------

def services_file() -> Path:
    """Written by ``logpipe up``: the URLs and pids of the embedded services."""
    return home() / "services.json"


def embedded_services() -> dict:
    """What ``logpipe up`` recorded, while its services are up (``down`` clears ``ready``)."""
    import json

    try:
        info = json.loads(services_file().read_text())
    except (OSError, ValueError):
        return {}
    return info if info.get("ready") else {}


def resolve_redis_url(explicit: str | None = None, role: str = "indexer") -> str:
    """Flag, then ``LOGPIPE_REDIS_URL``, then ``LOGPIPE_REDIS_URL_FILE``, then the broker
    ``logpipe up`` started (the URL file of its ``role`` user: shipper or indexer).

    A flag or variable naming a file (a path, no ``scheme://``) is read as a URL file, so the
    secret need not be in argv: the file must be private (0600)."""
    from common.private import read_secret

    url = explicit or os.environ.get(ENV_REDIS)
    if url and "://" not in url:
        if not os.path.exists(url):
            raise ConfigError(f"broker {url!r} is neither a URL (redis://[user:password@]host:"
                              f"port/db, rediss:// for TLS) nor an existing URL file")
        return read_secret(url, "broker URL file")
    if url:
        return url
    if os.environ.get(ENV_REDIS_FILE):
        return read_secret(os.environ[ENV_REDIS_FILE], "broker URL file")
    embedded = embedded_services().get("url_files", {}).get(role)
    if embedded:
        return read_secret(embedded, "broker URL file")
    raise ConfigError("no broker: pass --redis redis://[user:password@]host:port/db or a URL "
                      f"file, set {ENV_REDIS} or {ENV_REDIS_FILE}, or run `logpipe up` to start "
                      "the embedded one")


def default_store_url() -> str:
    return "sqlite:///" + str(home() / "events.db")


def resolve_store_url(explicit: str | None = None) -> str:
    """Flag, then ``LOGPIPE_STORE_URL``, then the store ``logpipe up`` chose, then the embedded
    SQLite store under ``LOGPIPE_HOME``."""
    return (explicit or os.environ.get(ENV_STORE) or embedded_services().get("store_url")
            or default_store_url())
