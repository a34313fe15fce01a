"""`logpipe test` (indexer/parse_tests.py) and `logpipe import-logstash --tests-from`: real
pipelines, real files, the exit codes and diffs a CI job sees."""

from __future__ import annotations

from logpipe.common.cli import main

SENDMAIL = ("Jan  6 02:37:33 Jupiter sendmail[809]: j061bW9V000809: to=cpan-testers@perl.org, "
            "delay=00:00:01, mailer=relay, relay=localhost [127.0.0.1], dsn=2.0.0, stat=Sent (ok)")


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_passing_cases_exit_zero_on_the_builtin_types(tmp_path, capsys):
    f = tmp_path / "t.toml"
    f.write_text(f'''
[[case]]
type = "mail"
line = "{SENDMAIL}"
absent = ["from"]
[case.expect]
qid = "j061bW9V000809"
relay = "localhost"
relayip = "127.0.0.1"
pid = 809
"[syslog][x]" = 1
''')
    code, out, _ = run(capsys, "test", str(f))
    assert code == 1 and "missing      [syslog][x]: expected 1" in out
    f.write_text(f.read_text().replace('"[syslog][x]" = 1\n', ""))
    code, out, _ = run(capsys, "test", str(f), "-v")
    assert code == 0, out
    assert "ok    " in out and out.strip().endswith("1 case: 1 passed, 0 failed")


def test_a_failing_case_shows_a_diff_per_field_and_exits_one(tmp_path, capsys):
    f = tmp_path / "t.toml"
    f.write_text(f'''# a comment
[[case]]
name = "good"
type = "mail"
line = "{SENDMAIL}"
[case.expect]
stat = "Sent (ok)"

[[case]]
name = "bad"
type = "mail"
strict = true
line = "{SENDMAIL}"
absent = ["relayip"]
[case.expect]
qid = "j061bW9V000810"
nosuch = "x"
relay = "localhost"
''')
    code, out, _ = run(capsys, "test", str(f))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"FAIL  {f}:9  bad (type mail)"
    assert lines[1] == f"      line: {SENDMAIL}"
    assert '      different    qid: expected "j061bW9V000810", got "j061bW9V000809"' in lines
    assert '      missing      nosuch: expected "x"' in lines
    assert '      present      relayip: expected absent, got "127.0.0.1"' in lines
    assert '      extra        stat: "Sent (ok)"' in lines          # strict: unexpected fields
    assert not any("extra        message" in x or "extra        @timestamp" in x for x in lines)
    assert lines[-1] == "2 cases: 1 passed, 1 failed"


def test_a_config_its_types_drop_and_conversions(tmp_path, capsys):
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('''
[types.app]
patterns = ['%{WORD:level} %{INT:code:int} %{GREEDYDATA:msg}']
[[types.app.filter]]
drop = {}
when = 'level:DEBUG'
''')
    f = tmp_path / "t.toml"
    f.write_text('''config = "pipeline.toml"
type = "app"
[[case]]
line = "ERROR 42 disk full"
[case.expect]
level = "ERROR"
code = 42
msg = "disk full"
[[case]]
line = "DEBUG 1 noise"
dropped = true
[[case]]
line = "ERROR 42 disk full"
[case.expect]
code = "42"
''')
    code, out, _ = run(capsys, "test", str(f))
    assert code == 1
    assert 'different    code: expected "42", got 42' in out   # types count
    assert out.strip().endswith("3 cases: 2 passed, 1 failed")
    # --config on the command line wins over the file's
    other = tmp_path / "other.toml"
    other.write_text("[types.app]\npatterns = ['%{WORD:level} %{GREEDYDATA:msg}']\n")
    code, out, _ = run(capsys, "test", str(f), "--config", str(other))
    assert code == 1 and "missing      code: expected 42" in out


def test_malformed_test_files_are_one_line_errors_with_file_and_line(tmp_path, capsys):
    cases = {
        '[[case]]\nline = "x"\n[case.expect\n': ":3: not valid TOML",
        'title = "x"\n': "unknown key(s) title",
        '# nothing\n': "no test cases",
        '[[case]]\nline = "a"\n[case.expect]\nx = 1\n\n[[case]]\nlin = "b"\n':
            ":6: case 2: unknown key(s) lin",
        '[[case]]\nline = "a"\n': ":1: case 1: expects nothing",
        '[[case]]\nline = "a"\ntype = "x"\npattern = "%{WORD}"\n[case.expect]\nx = 1\n':
            "not both",
        '[[case]]\nline = "a"\nabsent = "x"\n': "`absent` is a list",
    }
    for text, what in cases.items():
        f = tmp_path / "bad.toml"
        f.write_text(text)
        code, out, err = run(capsys, "test", str(f))
        assert code == 2, text
        assert err.startswith(f"logpipe: error: {f}") and what in err, (text, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "test", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read the test file" in err


def test_a_broken_pipeline_config_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[types.app]\npatterns = ['%{NOSUCHPATTERN:x}']\n")
    f = tmp_path / "t.toml"
    f.write_text('[[case]]\ntype = "app"\nline = "a"\n[case.expect]\nx = "a"\n')
    code, _, err = run(capsys, "test", str(f), "--config", str(cfg))
    assert code == 2 and "NOSUCHPATTERN" in err and "Traceback" not in err


# ---------------------------------------------------------------- --tests-from

def write_project(root):
    (root / "patterns").mkdir(parents=True)
    (root / "patterns" / "app").write_text(
        "APP_USER [a-z]+\nAPP_LOGIN login user=%{APP_USER:app_user} from=%{IP:app_ip}\n")
    (root / "test").mkdir()
    (root / "test" / "login.yaml").write_text('''---
pattern: "%{APP_LOGIN}"
data: "login user=alice from=192.0.2.1"
results:
  app_user: alice
  app_ip: 192.0.2.1
---
pattern: "^%{APP_USER:who}( %{INT:n:int})?$"
data:
  - "bob 7"
  - "carol 8"
results:
  who: bob
  n: 7
''')
    (root / "test" / "null.yml").write_text('''pattern: "^%{APP_USER:who}( %{INT:n})?$"
data: "dave"
results:
  who: dave
  n: null
''')


def test_tests_from_imports_a_pattern_projects_yaml_cases(tmp_path, capsys, monkeypatch):
    write_project(tmp_path / "proj")
    out_file = tmp_path / "tests.toml"
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "import-logstash", "--tests-from", str(tmp_path / "proj" / "test"),
                       "--patterns-dir", str(tmp_path / "proj" / "patterns"), "-o", str(out_file))
    assert code == 0, err
    assert "4 cases" in err
    text = out_file.read_text()
    assert 'patterns_dir = ["proj/patterns"]' in text   # relative to the test file
    code, out, _ = run(capsys, "test", str(out_file))
    # the second line of the list case does not give the results written for the first
    assert code == 1, out
    assert 'different    who: expected "bob", got "carol"' in out
    assert "different    n: expected 7, got 8" in out
    assert out.strip().endswith("4 cases: 3 passed, 1 failed")


def test_tests_from_reports_malformed_yaml_with_file_and_line(tmp_path, capsys):
    d = tmp_path / "t"
    d.mkdir()
    (d / "a.yaml").write_text('pattern: "%{WORD}"\ndata: "x"\nresults:\n  a: [1\n')
    code, _, err = run(capsys, "import-logstash", "--tests-from", str(d))
    assert code == 2 and f"{d / 'a.yaml'}:" in err and "not valid YAML" in err
    (d / "a.yaml").write_text('data: "x"\n')
    code, _, err = run(capsys, "import-logstash", "--tests-from", str(d))
    assert code == 2 and "`pattern:`, `data:` and `results:`" in err
    code, _, err = run(capsys, "import-logstash")
    assert code == 2 and "--tests-from" in err
