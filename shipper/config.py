r"""Shipper settings: flags for the simple case, a TOML file (``--config``) for several inputs.

::

    [shipper]
    redis = "/etc/logpipe/shipper.url"  # a 0600 URL file (`logpipe acl setup`), or a URL; a
                                        # file holding a password must be 0600 itself
    list = "logpipe:raw"
    prefix = "logpipe"          # of logpipe's own keys: `logpipe stats --prefix` finds this agent
    registry = "/var/lib/logpipe/shipper-registry.json"
    host = "mail1"              # default: this machine's hostname
    batch_lines = 5000          # records per RPUSH batch
    batch_wait = 0.2            # seconds a partial batch may wait for more lines
    high_water = 1000000        # pause reading when the list is longer ...
    low_water = 500000          # ... and resume below this
    status_interval = 60        # log a status line every N seconds (0: never)

    [[input]]
    input = "file"              # file | stdin | syslog
    paths = ["/var/log/maillog", "/var/log/mail/*.log"]
    exclude = ["*.gz"]
    type = "mail"               # the record type the indexer parses it as
    fields = { env = "prod" }   # static fields on every record
    max_bytes = 1048576         # longer lines are cut and tagged "truncated"
    keep_empty = false
    start_at = "beginning"      # or "end": files present at the first start skip their backlog

    [input.multiline]           # optional (Filebeat's model)
    pattern = '^[[:space:]]'    # Python regex: '^\s'
    negate = false
    match = "after"
    max_lines = 500
    timeout = 5

    [[input]]
    input = "syslog"
    listen = ["udp://127.0.0.1:5514", "tls://0.0.0.0:6514"]   # host left out: 127.0.0.1
    type = "syslog"
    tls_cert = "/etc/logpipe/syslog.pem"      # tls:// (RFC 5425) only
    tls_key = "/etc/logpipe/syslog.key"       # 0600
    tls_client_ca = "/etc/logpipe/senders-ca.pem"   # optional: senders need a certificate
"""

from __future__ import annotations

import re
import socket
import tomllib
from typing import Any
from dataclasses import dataclass, field, fields as dc_fields
from pathlib import Path
from urllib.parse import urlsplit

from logpipe.common.errors import ConfigError
from logpipe.shipper.encode import DEFAULT_MAX_BYTES
from logpipe.shipper.multiline import MultilineSpec


@dataclass
class InputSpec:
    input: str = "file"
    paths: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    type: str = ""
    fields: dict = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_BYTES
    keep_empty: bool = False
    start_at: str = "beginning"
    scan_interval: float = 1.0
    rotate_grace: float = 5.0
    listen: list[str] = field(default_factory=list)
    queue_size: int = 100_000
    spool_dir: str = ""         # syslog: the on-disk spool (default: beside the registry)
    spool_max_bytes: int = 256 * 1024 * 1024  # ... its size cap (UDP beyond it is dropped, counted)
    spool_fsync: str = "batch"  # ... "batch" (per TCP/TLS read), "interval" (1 s) or "off"
    tls_cert: str = ""          # syslog tls:// listener: server certificate (PEM)
    tls_key: str = ""           # ... its private key (a 0600 file)
    tls_client_ca: str = ""     # ... verify senders' certificates against this CA
    tls_client_auth: str = "required"  # ... with tls_client_ca: "required" or "optional"
    multiline: MultilineSpec | None = None
    where: str = "input"        # for messages: "[[input]] #2 in /etc/logpipe/shipper.toml"


@dataclass
class ShipperConfig:
    redis: str | None = None
    list_key: str = ""
    prefix: str = "logpipe"     # of logpipe's own broker keys (the shipper status hash)
    registry: Path | None = None
    host: str = ""
    batch_lines: int = 5000
    batch_wait: float = 0.2
    high_water: int = 1_000_000
    low_water: int = 500_000
    status_interval: float = 0.0
    shutdown_timeout: float = 10.0
    fsync: bool = True
    compress: str = "none"      # "zlib": records batched and compressed into one list item each
    once: bool = False
    log_level: str = "info"
    inputs: list[InputSpec] = field(default_factory=list)

    def validate(self, source: str | None = None) -> "ShipperConfig":
        if self.batch_lines < 1:
            raise ConfigError("batch_lines must be at least 1", source)
        if self.compress not in ("none", "zlib"):
            raise ConfigError(f"compress must be 'none' or 'zlib', got {self.compress!r}", source)
        if self.high_water and self.low_water >= self.high_water:
            raise ConfigError(f"low_water ({self.low_water}) must be below high_water "
                              f"({self.high_water})", source)
        if not self.host:
            self.host = socket.gethostname()
        return self


_SHIPPER_KEYS = {"redis", "list", "prefix", "registry", "host", "batch_lines", "batch_wait",
                 "high_water", "low_water", "status_interval", "shutdown_timeout", "fsync", "log_level",
                 "compress"}
_INPUT_KEYS = {f.name for f in dc_fields(InputSpec)} - {"where"}
_ML_KEYS = {f.name for f in dc_fields(MultilineSpec)}

_TYPES: dict[str, Any] = {
    "redis": str, "list": str, "prefix": str, "registry": str, "host": str,
    "batch_lines": int, "batch_wait": (int, float), "high_water": int, "low_water": int,
    "status_interval": (int, float), "shutdown_timeout": (int, float), "fsync": bool,
    "log_level": str, "compress": str, "input": str, "paths": list, "exclude": list, "type": str, "fields": dict,
    "max_bytes": int, "keep_empty": bool, "start_at": str, "scan_interval": (int, float),
    "rotate_grace": (int, float), "listen": list, "queue_size": int, "multiline": dict,
    "spool_dir": str, "spool_max_bytes": int, "spool_fsync": str,
    "tls_cert": str, "tls_key": str, "tls_client_ca": str, "tls_client_auth": str,
    "pattern": str, "negate": bool, "match": str, "max_lines": int, "timeout": (int, float),
}


class _Lines:
    """Line numbers for keys, since tomllib reports none for valid documents."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]")

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def find(self, key: str, section: str | None = None, nth: int = 0) -> int | None:
        """The line of ``key =`` in the ``nth`` ``[section]``/``[[section]]`` (``key=""``: the
        header itself); ``section=None``: anywhere."""
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=") if key else None
        counts: dict[str, int] = {}
        top, idx = None, 0
        for i, text in enumerate(self.lines, 1):
            m = self._HEADER.match(text)
            if m:
                name = m.group(2)
                top = name.split(".")[0]
                if m.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    idx = counts[name]
                elif name == top:
                    idx = 0
                if key_re is None and top == section and idx == nth and name == section:
                    return i
                continue
            if key_re is not None and key_re.match(text) and (
                    section is None or (top == section and idx == nth)):
                return i
        return None


def _check(value, key: str, where: str, src: str, line: int | None):
    want = _TYPES.get(key)
    if want is None:
        return value
    if isinstance(value, bool) and want in (int, (int, float)):
        ok = False
    else:
        ok = isinstance(value, want)
    if not ok:
        name = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
                dict: "a table"}.get(want, "a number")
        raise ConfigError(f"{where}: '{key}' must be {name}, not {value!r}", src, line)
    if want is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings", src, line)
    return value


def load_config(path: str | Path) -> ShipperConfig:
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read shipper config: {exc.strerror}", src) from None
    except UnicodeDecodeError:
        raise ConfigError("shipper config is not UTF-8 text", src) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"not valid TOML: {exc}", src, int(m.group(1)) if m else None) from None
    lines = _Lines(text)
    cfg = ShipperConfig()
    for top in data:
        if top not in ("shipper", "input"):
            raise ConfigError(f"unknown section [{top}] (use [shipper] and [[input]])", src,
                              lines.find("", top) or lines.find(top))
    shipper = data.get("shipper", {})
    if not isinstance(shipper, dict):
        raise ConfigError("[shipper] must be a table", src)
    for key, value in shipper.items():
        line = lines.find(key, "shipper")
        if key not in _SHIPPER_KEYS:
            raise ConfigError(f"[shipper]: unknown key '{key}' (known: "
                              f"{', '.join(sorted(_SHIPPER_KEYS))})", src, line)
        _check(value, key, "[shipper]", src, line)
        attr = "list_key" if key == "list" else key
        setattr(cfg, attr, Path(value).expanduser() if key == "registry" else value)
    inputs = data.get("input", [])
    if not isinstance(inputs, list):
        raise ConfigError("inputs are declared as [[input]] tables", src, lines.find("input"))
    for n, body in enumerate(inputs):
        where = f"[[input]] #{n + 1}"
        cfg.inputs.append(_parse_input(body, where, src, lines, n))
    if cfg.redis and "://" in cfg.redis and urlsplit(cfg.redis).password:
        from logpipe.common.private import check_private
        check_private(path, "shipper config (its redis URL holds a password)")
    return cfg.validate(src)


def _parse_input(body: dict, where: str, src: str, lines: _Lines, n: int) -> InputSpec:
    from logpipe.shipper.inputs.base import input_class

    head = lines.find("", "input", n)
    spec = InputSpec(where=f"{where} in {src}")
    for key, value in body.items():
        line = lines.find(key, "input", n) or head
        if key not in _INPUT_KEYS:
            raise ConfigError(f"{where}: unknown key '{key}' (known: "
                              f"{', '.join(sorted(_INPUT_KEYS))})", src, line)
        _check(value, key, where, src, line)
        if key == "multiline":
            for mk, mv in value.items():
                if mk not in _ML_KEYS:
                    raise ConfigError(f"{where}.multiline: unknown key '{mk}' (known: "
                                      f"{', '.join(sorted(_ML_KEYS))})", src,
                                      lines.find(mk, "input", n) or line)
                _check(mv, mk, f"{where}.multiline", src, lines.find(mk, "input", n) or line)
            if "pattern" not in value:
                raise ConfigError(f"{where}.multiline needs a 'pattern'", src, line)
            value = MultilineSpec(**value).validate(f"{where}.multiline", src,
                                                    lines.find("pattern", "input", n) or line)
        setattr(spec, key, value)
    input_class(spec.input, where, src, lines.find("input", "input", n) or head)
    validate_input(spec, src, head)
    return spec


def validate_input(spec: InputSpec, src: str | None = None, line: int | None = None) -> None:
    where = spec.where.split(" in ")[0]
    if spec.input == "file" and not spec.paths:
        raise ConfigError(f"{where}: a file input needs 'paths' (files or globs)", src, line)
    if spec.input == "syslog" and not spec.listen:
        raise ConfigError(f"{where}: a syslog input needs 'listen', e.g. "
                          f"[\"udp://0.0.0.0:5514\", \"tcp://0.0.0.0:5514\"]", src, line)
    if spec.start_at not in ("beginning", "end"):
        raise ConfigError(f"{where}: start_at must be 'beginning' or 'end'", src, line)
    if spec.max_bytes < 16:
        raise ConfigError(f"{where}: max_bytes must be at least 16", src, line)
    if spec.spool_fsync not in ("batch", "interval", "off"):
        raise ConfigError(f"{where}: spool_fsync must be 'batch', 'interval' or 'off'", src, line)
    if spec.spool_max_bytes < 4096:
        raise ConfigError(f"{where}: spool_max_bytes must be at least 4096", src, line)
    for name, value in spec.fields.items():
        if not isinstance(name, str):
            raise ConfigError(f"{where}: field names must be strings", src, line)


@dataclass
class ShipperFlags:
    """The ``logpipe ship`` command line, as given (None: the flag was not used)."""

    paths: list[str] = field(default_factory=list)
    config: Path | None = None
    registry: Path | None = None
    default_registry: Path | None = None
    redis: str | None = None
    list_key: str | None = None
    prefix: str | None = None
    host: str | None = None
    rtype: str | None = None
    fields: dict = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    multiline_pattern: str | None = None
    multiline_negate: bool = False
    multiline_match: str = "after"
    multiline_timeout: float = 5.0
    max_bytes: int | None = None
    keep_empty: bool = False
    listen: list[str] = field(default_factory=list)
    tls_cert: str | None = None       # for tls:// listeners
    tls_key: str | None = None
    tls_client_ca: str | None = None
    batch_lines: int | None = None
    batch_wait: float | None = None
    high_water: int | None = None
    low_water: int | None = None
    status_interval: float | None = None
    fsync: bool = True
    once: bool = False
    log_level: str | None = None
    compress: str | None = None


def config_from_flags(flags: ShipperFlags) -> ShipperConfig:
    """The agent's settings: the config file (if any), overridden by the flags that were given,
    plus the inputs the command line names. Raises ConfigError with what to fix."""
    import dataclasses

    cfg = load_config(flags.config) if flags.config else ShipperConfig()
    given = {name: getattr(flags, name) for name in (
        "redis", "list_key", "prefix", "host", "batch_lines", "batch_wait", "high_water",
        "low_water", "status_interval", "log_level", "compress")}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None},
                              registry=Path(flags.registry or cfg.registry or flags.default_registry
                                            or "registry.json").expanduser().absolute(),
                              once=flags.once)
    if flags.high_water is not None and flags.low_water is None and flags.high_water:
        cfg.low_water = min(cfg.low_water, flags.high_water // 2)
    if not flags.fsync:
        cfg.fsync = False
    ml = None
    if flags.multiline_pattern:
        ml = MultilineSpec(flags.multiline_pattern, flags.multiline_negate,
                           flags.multiline_match,
                           timeout=flags.multiline_timeout).validate("--multiline")
    common: dict[str, Any] = dict(type=flags.rtype or "", fields=flags.fields, multiline=ml,
                                  keep_empty=flags.keep_empty)
    if flags.max_bytes is not None:
        common["max_bytes"] = flags.max_bytes
    files = [p for p in flags.paths if p != "-"]
    if files:
        spec = InputSpec(input="file", paths=files, exclude=list(flags.exclude),
                         where="command line", **common)
        validate_input(spec)
        cfg.inputs.append(spec)
    if "-" in flags.paths:
        cfg.inputs.append(InputSpec(input="stdin", where="stdin", **common))
    if flags.listen:
        cfg.inputs.append(InputSpec(input="syslog", listen=list(flags.listen), where="--syslog",
                                    tls_cert=flags.tls_cert or "", tls_key=flags.tls_key or "",
                                    tls_client_ca=flags.tls_client_ca or "",
                                    **{**common, "type": flags.rtype or "syslog"}))
    if not cfg.inputs:
        raise ConfigError("nothing to ship: give files or globs, '-' for stdin, --syslog-udp/"
                          "--syslog-tcp, or --config FILE with [[input]] sections")
    cfg.validate(str(flags.config) if flags.config else None)
    if flags.once and any(i.input == "syslog" for i in cfg.inputs):
        raise ConfigError("--once cannot be used with a syslog listener (it never ends)")
    return cfg
