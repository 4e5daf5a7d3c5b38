"""The README's engine-config line is the one the code's regexes give."""

import os
import re

from containerhooks import config
from containerhooks import properties

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


def engine_config_value():
    regexes = properties.engine_regexes(config.ENGINES)
    return ";".join("%s=%s" % item for item in regexes.items())


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
