"""The hook contract's helpers that a stats hook leans on: the data file
replaced atomically from chunks, the syslog handler made only when a
record comes, and the quick exit that keeps what was logged."""

import json
import logging
import os
import stat
import subprocess
import sys

import pytest

from containerhooks import hookenv

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Kept(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def logger():
    log = logging.getLogger("containerhooks.hookenv-test")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def test_deferred_handler_is_made_at_the_first_record(logger):
    made = []

    def make():
        made.append(Kept())
        return made[-1]
    handler = hookenv._Deferred(make)
    handler.setFormatter(logging.Formatter("hook: %(message)s"))
    logger.addHandler(handler)
    assert made == []

    logger.info("one %s", 1)
    logger.warning("two")

    assert len(made) == 1
    assert made[0].lines == ["hook: one 1", "hook: two"]


def test_deferred_handler_that_cannot_be_made_fails_no_hook(logger,
                                                            monkeypatch,
                                                            capsys):
    # No syslog socket: the record is lost, the hook goes on (and says
    # nothing on stderr, the VM's exit message).
    monkeypatch.setattr(logging, "raiseExceptions", False)

    def make():
        raise IOError(2, "No such file or directory", "/dev/log")
    logger.addHandler(hookenv._Deferred(make))
    logger.error("lost")
    assert capsys.readouterr().err == ""


def test_replace_data_from_chunks(tmp_path):
    path = tmp_path / "hook.json"
    path.write_bytes(b'[{"vmId": "a"}]')
    env = {hookenv.JSON: str(path)}

    hookenv.replace_data(env, hookenv.JSON,
                         [b"[", memoryview(b'{"vmId": "b"}, 1'), b"]"])

    assert json.loads(path.read_bytes()) == [{"vmId": "b"}, 1]
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ["hook.json"]


def test_replace_data_failing_halfway_leaves_the_file(tmp_path):
    path = tmp_path / "hook.json"
    path.write_bytes(b"[1]")
    env = {hookenv.JSON: str(path)}

    with pytest.raises(TypeError):
        hookenv.replace_data(env, hookenv.JSON, [b"[2, ", u"not bytes"])

    assert path.read_bytes() == b"[1]"
    assert os.listdir(str(tmp_path)) == ["hook.json"]


SCRIPT = """
import logging, sys
sys.path.insert(0, %(lib)r)
from containerhooks import hookenv, paths
paths.LOG_FILE = %(log)r
def work(env):
    logging.getLogger("containerhooks.test").info("logged before the exit")
    return [object() for _ in range(10)]
hookenv.run(work, quick_exit=True)
print("not reached")
"""


def test_quick_exit_keeps_what_was_logged(tmp_path):
    log = str(tmp_path / "hook.log")
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT % {"lib": os.path.join(TOP, "lib"),
                                         "log": log}],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    with open(log) as f:
        assert "logged before the exit" in f.read()
