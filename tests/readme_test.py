"""The README's engine-config line is the one the code's regexes give."""

import os
import re

from containerhooks import cli

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


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
