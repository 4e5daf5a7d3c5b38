"""The README says what the code does: its engine-config line is the one
the code's regexes give, and CI runs the test command it gives."""

import os
import re

from containerhooks import cli

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(TOP, "README.md")
CI = os.path.join(TOP, ".ci", "run")


def engine_config_value():
    return cli.engine_config_value()


def test_readme_engine_config_line_matches_code():
    with open(README) as f:
        text = f.read()
    block = re.search(r"<!-- engine-config:start.*?-->(.*?)"
                      r"<!-- engine-config:end -->", text, re.S).group(1)
    line = [l for l in block.splitlines()
            if l.startswith("engine-config -s")][0]
    expected = "engine-config -s UserDefinedVMProperties='%s' --cver=4.7" \
        % engine_config_value()
    assert line == expected


def test_cli_prints_the_readme_line(capsys):
    assert cli.main(["engine-config", "--cver", "4.7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "engine-config -s UserDefinedVMProperties='%s' " \
        "--cver=4.7" % engine_config_value()
    assert out[1] == "systemctl restart ovirt-engine"


def test_ci_runs_the_readme_test_command():
    with open(README) as f:
        text = f.read()
    section = text[text.index("## The two commands"):]
    section = section[:section.index("\n## ", 1)]
    [test] = [l.split("#")[0].strip() for l in section.splitlines()
              if l.startswith("    make ") and "every test" in l]
    with open(CI) as f:
        commands = [l.strip() for l in f
                    if l.strip() and not l.lstrip().startswith(("#", "echo"))]
    assert test == "make test"
    assert test in commands


def test_reverse_order_run_collects_every_file():
    """The README's reverse-order line hands `make test` a list with
    newlines (what $(ls) prints); the recipe must keep it one command."""
    import subprocess
    files = sorted(f for f in os.listdir(os.path.join(TOP, "tests"))
                   if f.endswith("_test.py"))
    tests = "\n".join("tests/" + f for f in reversed(files))
    out = subprocess.check_output(
        ["make", "-n", "-C", TOP, "test", "TESTS=" + tests],
        universal_newlines=True)
    [line] = [l for l in out.splitlines() if " -m pytest " in l]
    assert line.split()[-len(files):] == tests.split("\n")


# What a reader of the repository cannot follow: notes, documents and
# sessions that live outside it.
OUTSIDE = [
    re.compile(r"\bdocs/"),
    re.compile(r"shared/notes|house-style"),
    re.compile(r"notes on the (Vdsm )?hook contract", re.I),
    re.compile(r"docs of the hook contract", re.I),
    re.compile(r"closing notes?\b", re.I),
]


def test_nothing_points_outside_the_repository():
    import subprocess
    names = subprocess.check_output(
        ["git", "-C", TOP, "ls-files", "-z"]).decode("utf-8").split("\0")
    found = []
    for name in names:
        if not name or name == "tests/readme_test.py":
            continue
        path = os.path.join(TOP, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data:
            continue
        for number, line in enumerate(
                data.decode("utf-8", "replace").splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                found.append("%s:%d: %s" % (name, number, line.strip()))
    assert found == []


def test_command_table_has_each_command_once():
    # One table (a blank line would end it: the rows after it show as
    # text), one row per command of the CLI's parser.
    import argparse
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Host command: vdsm-containers"):]
    section = section[:section.index("\n## ", 1)]
    table = section[section.index("| command | what |"):].split("\n\n")[0]
    rows = table.splitlines()[2:]
    assert rows and all(r.startswith("| `") for r in rows), rows
    named = [re.match(r"\| `([a-z-]+)", r).group(1) for r in rows]
    [sub] = [a for a in cli._parser()._actions
             if isinstance(a, argparse._SubParsersAction)]
    assert sorted(named) == sorted(sub.choices)
    assert "--version" in section
