"""packaging/containers.conf, the configuration file the RPM installs.

It changes nothing (every option is commented out) and documents every
option of config._DEFAULTS with its default, so an admin who uncomments a
line gets the documented behaviour.
"""

import os
import re

import pytest
from six.moves import configparser

from containerhooks import config

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(TOP, "packaging", "containers.conf")

# "#name = value": an option commented out, showing its default.
OPTION = re.compile(r"^#(\w+) =(?: (.*))?$")


def _lines():
    with open(CONF) as f:
        return f.read().splitlines()


@pytest.fixture
def uncommented(tmp_path):
    """A copy of containers.conf with every option line uncommented."""
    path = tmp_path / "containers.conf"
    path.write_text("\n".join(
        line[1:] if OPTION.match(line) else line for line in _lines()) + "\n")
    return str(path)


def test_as_shipped_gives_the_defaults():
    assert config.load(CONF)._replace(path=None) == \
        config.load(os.devnull)._replace(path=None)


def test_documents_every_option_with_its_default():
    shown = {}
    for line in _lines():
        m = OPTION.match(line)
        if m:
            assert m.group(1) not in shown, "shown twice: " + line
            shown[m.group(1)] = m.group(2) or ""
    assert shown == dict(config._DEFAULTS)


def test_uncommented_options_are_in_the_section(uncommented):
    parser = configparser.RawConfigParser()
    parser.read(uncommented)
    assert parser.sections() == [config.SECTION]
    assert dict(parser.items(config.SECTION)) == dict(config._DEFAULTS)


def test_uncommented_gives_the_defaults(uncommented):
    assert config.load(uncommented)._replace(path=None) == \
        config.load(os.devnull)._replace(path=None)


def test_every_option_is_explained():
    # The line above each option is prose of a comment, not another option
    # and not a blank line.
    lines = _lines()
    for i, line in enumerate(lines):
        if OPTION.match(line):
            above = lines[i - 1]
            assert above.startswith("# ") and not OPTION.match(above), line


def test_is_ascii():
    # Hooks run in the C locale; plain ASCII reads the same under any
    # Python and locale.
    with open(CONF, "rb") as f:
        f.read().decode("ascii")
