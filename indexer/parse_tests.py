"""``logpipe test``: parsing under test. A test file (TOML) holds cases, each an input line and the
fields expected on the event the pipeline makes of it; every case runs, each failing one is shown
as a diff per field (missing, different, extra, present though expected absent), and any failure
makes the exit code non-zero, so a pipeline config can be kept under test in CI.

The file::

    config = "pipeline.toml"     # optional (relative to this file); --config overrides;
                                 # none: the built-in types
    patterns_dir = ["patterns"]  # optional: for `pattern` cases
    strict = false               # optional: true reports fields nobody expected (extra)

    [[case]]
    name = "sendmail delivery"   # optional
    type = "mail"                # the record's type (else --type, else the config's default)
    line = "Jan  6 02:37:33 Jupiter sendmail[809]: j061bW9V000809: to=<a@b.org>, stat=Sent"
    absent = ["relayip"]         # optional: fields that must not be there
    [case.expect]
    qid = "j061bW9V000809"
    stat = "Sent"
    "[source][address]" = "..."  # a nested field: [a][b] or a.b

A case may give ``pattern = "%{SYSLOGLINE}"`` instead of a type: the grok expression alone is
run (with ``patterns_dir``), and ``expect`` names its captures (``logpipe import-logstash
--tests-from`` writes such cases from a pattern project's YAML tests). ``dropped = true`` expects
a ``drop`` filter to drop the event. ``tags`` in ``expect`` compares the event's tags.

:func:`pipeline_runner` is the one place that runs the pipeline; everything else here is the
file format and the comparison.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from logpipe.common.errors import ConfigError
from logpipe.common.record import Record

# fields every event carries that a case need not name (strict mode does not call them extra)
FRAME_FIELDS = frozenset({"@timestamp", "message", "host", "path", "type", "received_at",
                          "offset", "tags"})
_CASE_KEYS = {"name", "type", "line", "pattern", "expect", "absent", "dropped", "host", "strict"}
_TOP_KEYS = {"config", "patterns_dir", "strict", "case", "type"}
_RECEIVED_AT = 1_767_225_600.0   # 2026-01-01T00:00:00Z: @timestamp is the same on every run


def pipeline_runner(config: str | Path | None, default_type: str | None
                    ) -> Callable[[Record], dict | None]:
    """The adapter to the indexer's pipeline: a function record -> the event's document (None
    when dropped). The one call into the pipeline's API (re-point it when that API changes)."""
    from logpipe.indexer.pipeline import Pipeline
    from logpipe.indexer.pipeline_config import load_pipeline

    pipeline = Pipeline(load_pipeline(config), default_type)
    pipeline.compile_all()

    def run(record: Record) -> dict | None:
        event = pipeline.process(record)
        return None if event is None else event.doc
    return run


@dataclass
class Case:
    number: int
    line_no: int | None
    name: str
    line: str
    expect: dict
    type: str | None = None
    pattern: str | None = None
    absent: list = field(default_factory=list)
    dropped: bool = False
    host: str = "test"
    strict: bool = False


@dataclass
class TestFile:
    path: str
    cases: list[Case]
    config: str | None = None
    patterns_dir: list[str] = field(default_factory=list)


def _case_lines(text: str) -> list[int]:
    return [n for n, row in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*case\s*\]\]", row)]


def load_tests(path: str | Path) -> TestFile:
    """Read a test file; ConfigError with file and line for anything malformed."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the test file: {exc.strerror}", where) from None
    except UnicodeDecodeError:
        raise ConfigError("the test file is not UTF-8 text", where) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"not valid TOML: {exc}", where, int(m.group(1)) if m else None) \
            from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))} (known: "
                          f"{', '.join(sorted(_TOP_KEYS))})", where)
    raw_cases = data.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError("no test cases: write each as a [[case]] table with `line` and "
                          "[case.expect]", where)
    lines = _case_lines(text)
    base = Path(path).parent
    strict_all = data.get("strict", False)
    cases = []
    for k, raw in enumerate(raw_cases):
        at = lines[k] if k < len(lines) else None

        def bad(message: str) -> ConfigError:
            return ConfigError(f"case {k + 1}: {message}", where, at)
        if not isinstance(raw, dict):
            raise bad("a case is a [[case]] table")
        unknown = set(raw) - _CASE_KEYS
        if unknown:
            raise bad(f"unknown key(s) {', '.join(sorted(unknown))} (known: "
                      f"{', '.join(sorted(_CASE_KEYS))})")
        line = raw.get("line")
        if not isinstance(line, str):
            raise bad("`line` (the input line, a string) is missing or not a string")
        expect = raw.get("expect", {})
        if not isinstance(expect, dict):
            raise bad("`expect` is a table of field = value ([case.expect])")
        absent = raw.get("absent", [])
        if not isinstance(absent, list) or not all(isinstance(a, str) for a in absent):
            raise bad("`absent` is a list of field names")
        if not expect and not absent and not raw.get("dropped"):
            raise bad("expects nothing: give [case.expect], `absent` or `dropped = true`")
        for key in ("name", "type", "pattern", "host"):
            if key in raw and not isinstance(raw[key], str):
                raise bad(f"`{key}` is a string")
        if "type" in raw and "pattern" in raw:
            raise bad("give `type` (run the pipeline) or `pattern` (one grok expression), "
                      "not both")
        cases.append(Case(k + 1, at, raw.get("name") or f"case {k + 1}", line, expect,
                          raw.get("type") or data.get("type"), raw.get("pattern"), absent,
                          bool(raw.get("dropped", False)), raw.get("host", "test"),
                          bool(raw.get("strict", strict_all))))
    config = data.get("config")
    if config is not None and not isinstance(config, str):
        raise ConfigError("`config` is the path of a pipeline config", where)
    dirs = data.get("patterns_dir", [])
    if isinstance(dirs, str):
        dirs = [dirs]
    return TestFile(where, cases, str(base / config) if config else None,
                    [str(base / d) for d in dirs])


def lookup(doc: dict, name: str) -> tuple[bool, Any]:
    """A field of an event: a top-level key, else ``[a][b]`` or ``a.b`` into nested objects."""
    if name in doc:
        return True, doc[name]
    parts = re.findall(r"\[([^\[\]]+)\]", name) if name.startswith("[") else name.split(".")
    node: Any = doc
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _same(expected, got) -> bool:
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(a, b) for a, b in zip(expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(expected[k], got[k]) for k in got)
    return type(expected) is type(got) and expected == got or \
        (isinstance(expected, float) and isinstance(got, int) and expected == got)


def _show(value) -> str:
    import orjson
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def compare(case: Case, doc: dict | None) -> list[str]:
    """The differences between what a case expects and the event: one line each."""
    if doc is None:
        return [] if case.dropped else ["dropped      the event was dropped (a drop filter)"]
    if case.dropped:
        return ["kept         expected the event dropped, it was kept"]
    out = []
    for name, expected in case.expect.items():
        found, got = lookup(doc, name)
        if not found:
            out.append(f"missing      {name}: expected {_show(expected)}")
        elif not _same(expected, got):
            out.append(f"different    {name}: expected {_show(expected)}, got {_show(got)}")
    for name in case.absent:
        found, got = lookup(doc, name)
        if found:
            out.append(f"present      {name}: expected absent, got {_show(got)}")
    if case.strict:
        named = set(case.expect) | set(case.absent)
        for name, value in _flat(doc).items():
            if name in named or name.split(".")[0] in FRAME_FIELDS or \
                    "[" + "][".join(name.split(".")) + "]" in named:
                continue
            out.append(f"extra        {name}: {_show(value)}")
    return out


@dataclass
class Outcome:
    case: Case
    differences: list[str]
    doc: dict | None


def run_file(tests: TestFile, config: str | None = None, default_type: str | None = None,
             runner: Callable[[Record], dict | None] | None = None) -> list[Outcome]:
    """Run every case of a test file; ``config`` (the command line's) wins over the file's."""
    run = None
    matchers: dict[str, Any] = {}
    outcomes = []
    for case in tests.cases:
        if case.pattern is not None:
            from logpipe.indexer.grok.matcher import Matcher
            matcher = matchers.get(case.pattern)
            if matcher is None:
                matcher = matchers[case.pattern] = Matcher([case.pattern],
                                                           patterns_dirs=tests.patterns_dir,
                                                           source=tests.path)
            captures, tags = matcher.match(case.line)
            doc: dict | None = dict(captures or {})
            assert doc is not None
            doc.setdefault("message", case.line)
            if tags:
                doc["tags"] = tags
        else:
            if run is None:
                run = runner or pipeline_runner(config or tests.config, default_type)
            record = Record(id=f"test-{case.number}", line=case.line, host=case.host,
                            path=tests.path, type=case.type or default_type or "",
                            received_at=_RECEIVED_AT)
            doc = run(record)
        outcomes.append(Outcome(case, compare(case, doc), doc))
    return outcomes


def report(tests: TestFile, outcomes: list[Outcome], verbose: bool = False) -> list[str]:
    """The lines ``logpipe test`` prints for one file."""
    out = []
    for o in outcomes:
        c = o.case
        where = f"{tests.path}:{c.line_no}" if c.line_no else tests.path
        if not o.differences:
            if verbose:
                out.append(f"ok    {where}  {c.name}")
            continue
        run = f"pattern {c.pattern}" if c.pattern else f"type {c.type or '(default)'}"
        out.append(f"FAIL  {where}  {c.name} ({run})")
        out.append(f"      line: {c.line}")
        out += [f"      {d}" for d in o.differences]
    return out


# ---------------------------------------------------------------- pattern projects' YAML cases

def _toml_string(s: str) -> str:
    import json
    return json.dumps(s, ensure_ascii=False)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        raise ValueError("null")
    return _toml_string(str(v))


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_string(k)


def yaml_cases_to_toml(directory: str | Path, patterns_dir: list[str] | None = None,
                       output_dir: str | Path | None = None) -> tuple[str, int]:
    """A pattern project's YAML test cases (files with ``pattern:``, ``data:`` and ``results:``,
    ``data`` one line or a list of lines) as a ``logpipe test`` file: (TOML text, case count).
    ConfigError with file (and line, when YAML says it) for a malformed one."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - the indexer extra is missing
        raise ConfigError("reading YAML test cases needs PyYAML (pip install "
                          "'logpipe[indexer]')") from None
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"not a directory: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigError(f"no YAML test cases (*.yaml, *.yml) under {root}")
    base = Path(output_dir) if output_dir else Path.cwd()
    out = ["# test cases imported from " + str(root) + " (logpipe import-logstash --tests-from);",
           "# run them with: logpipe test THIS_FILE"]
    if patterns_dir:
        dirs = [str(Path(d).resolve().relative_to(base.resolve()))
                if Path(d).resolve().is_relative_to(base.resolve()) else str(Path(d).resolve())
                for d in patterns_dir]
        out.append("patterns_dir = [" + ", ".join(_toml_string(d) for d in dirs) + "]")
    count = 0
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", str(path),
                              mark.line + 1 if mark is not None else None) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", str(path)) from None
        for k, doc in enumerate(d for d in docs if d is not None):
            if not isinstance(doc, dict) or "pattern" not in doc or "data" not in doc:
                raise ConfigError(f"document {k + 1}: a test case has `pattern:`, `data:` and "
                                  f"`results:`", str(path))
            pattern, data, results = doc["pattern"], doc["data"], doc.get("results") or {}
            if not isinstance(pattern, str) or not isinstance(results, dict):
                raise ConfigError(f"document {k + 1}: `pattern` is a string and `results` a "
                                  f"mapping of field: value", str(path))
            lines = data if isinstance(data, list) else [data]
            for n, line in enumerate(lines):
                count += 1
                name = f"{path.relative_to(root)} #{k + 1}" + (f".{n + 1}" if len(lines) > 1 else "")
                out += ["", "[[case]]",
                        f"name = {_toml_string(name)}",
                        f"pattern = {_toml_string(pattern)}",
                        f"line = {_toml_string(str(line))}"]
                # the pattern must match (no failure tag); a null result: the field is absent
                nulls = ["tags"] + [str(f) for f, v in results.items() if v is None]
                out.append("absent = [" + ", ".join(_toml_string(f) for f in nulls) + "]")
                out.append("[case.expect]")
                for f, v in results.items():
                    if v is not None:
                        out.append(f"{_toml_key(str(f))} = {_toml_value(v)}")
    return "\n".join(out) + "\n", count




def import_yaml_tests(directory: str, output: str | None, patterns_dir: list[str]) -> None:
    """``logpipe import-logstash --tests-from DIR [-o tests.toml]``."""
    import sys

    import typer

    text, count = yaml_cases_to_toml(directory, patterns_dir,
                                     Path(output).parent if output else None)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}: {count} case{'s' if count != 1 else ''} "
                   f"(run them: logpipe test {output})", err=True)
    else:
        sys.stdout.write(text)


__all__ = ["pipeline_runner", "load_tests", "run_file", "report", "compare", "Case", "TestFile",
           "import_yaml_tests",
           "yaml_cases_to_toml"]
