"""The Vdsm hook contract, seen from inside a hook script.

Vdsm runs every executable in /usr/libexec/vdsm/hooks/<hook>/ as the vdsm
user, passes the VM's custom properties and vmId as environment variables,
and hands the data (domain XML or JSON) as a temporary file named by
_hook_domxml or _hook_json, which it reads back by name after the scripts
ran (lib/vdsm/common/hooks.py, _runHooksDir).  The exit code says what
happened: 0 ok, 1 error (later scripts still run), 2 error (later scripts are
skipped).  stdout is discarded; stderr is logged, and for before_vm_start it
becomes the VM's exit message in Engine, so a failing hook writes exactly one
line there.

This module keeps imports light: a hook on a VM that is not a container must
cost little more than starting the interpreter, and the stats hooks run
every few seconds.  Neither logging.handlers (with socket and pickle) nor
tempfile (with shutil and random) is imported on a hook's usual path: the
syslog handler is made when a first record is logged, and the data file is
replaced through a file made by state.create_temp.
"""

import io
import json
import logging
import os
import sys

from containerhooks import errors
from containerhooks import paths

log = logging.getLogger("containerhooks.hookenv")

# Exit codes understood by Vdsm.
OK = 0
ERROR = 1
ERROR_STOP = 2

DOMXML = "_hook_domxml"
JSON = "_hook_json"


def run(func, failure_rc=ERROR_STOP, quick_exit=False):
    """The exit boundary shared by all hooks.

    Calls func(env) with a copy of the environment.  A package error becomes
    one line on stderr and exit code failure_rc; anything unexpected is
    logged with its traceback and reported as one line too.

    quick_exit: on success, end the process at once (os._exit) once the
    log handlers are flushed, without tearing the interpreter down or
    freeing what func returned: for the stats hooks, where both cost about
    as much as the work itself (the data is written and renamed by then,
    nothing else is buffered).
    """
    setup_logging()
    try:
        kept = func(dict((k, text(v)) for k, v in os.environ.items()))
    except errors.Error as e:
        log.error("%s failed: %s", _hook_name(), e)
        _fail(str(e), failure_rc)
    except Exception as e:
        log.exception("%s failed unexpectedly", _hook_name())
        _fail("vdsm-hook-containers: unexpected %s in %s: %s (details in "
              "the host log)" % (type(e).__name__, _hook_name(), e),
              failure_rc)
    if quick_exit:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(OK)
    del kept
    sys.exit(OK)


def text(value):
    """value, a string of os.environ or sys.argv, as the UTF-8 text it is.

    Vdsm passes custom properties as UTF-8 (Engine's text).  Python 3.6 (EL8)
    in the C locale decodes the environment and argv as ASCII and keeps
    every other byte as a lone surrogate (surrogateescape): "\u00fc" would
    arrive as two surrogates, differ from the same value in the domain XML
    and be refused.  Python 3.7+ switches to UTF-8 in the C locale (PEP
    538, 540); Python 2 keeps bytes, which the parsers decode."""
    if sys.version_info[0] < 3:
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value        # not UTF-8: the parsers refuse its surrogates


def _fail(message, rc):
    # One line: Vdsm puts the whole stderr into the VM's exit message.
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()
    sys.exit(rc)


def _hook_name():
    return os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0])))


def read_data(env, key):
    """Return the bytes of the hook's data file."""
    with open(env[key], "rb") as f:
        return f.read()


def replace_data(env, key, data):
    """Replace the hook's data file atomically with data: bytes, or a list
    of bytes-like chunks written one after the other.

    Vdsm reads the file back by name even if the hook fails, so a hook that
    dies halfway must leave either the old or the new content, never a mix:
    write a temporary file beside it and rename it over.
    """
    path = env[key]
    dirname = os.path.dirname(os.path.abspath(path))
    # Imported here: a hook on a VM that is not a container replaces
    # nothing.
    from containerhooks import state
    fd, tmp = state.create_temp(dirname, ".containers-")
    try:
        with io.open(fd, "wb") as f:
            if isinstance(data, list):
                f.writelines(data)
            else:
                f.write(data)
        os.rename(tmp, path)
    except Exception:
        _remove_quietly(tmp)
        raise


def read_json(env):
    return json.loads(read_data(env, JSON).decode("utf-8"))


def write_json(env, obj):
    replace_data(env, JSON, json.dumps(obj).encode("utf-8"))


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def setup_logging():
    """Log to syslog (journald on a host), or to paths.LOG_FILE if set.

    Never to stderr: that is reserved for the one-line error above.
    """
    root = logging.getLogger("containerhooks")
    if root.handlers:
        return
    root.setLevel(logging.DEBUG)
    # A record that cannot be written (a full disk, a closed syslog) must
    # not print logging's traceback on stderr, the VM's exit message.
    logging.raiseExceptions = False
    handler = None
    log_file = getattr(paths, "LOG_FILE", None)
    if log_file:
        try:
            # UTF-8 whatever the locale (a VM's values may not be ASCII);
            # SysLogHandler encodes as UTF-8 itself.
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except (IOError, OSError):
            handler = None
        fmt = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    elif os.path.exists("/dev/log"):
        handler = _Deferred(_syslog)
        fmt = "vdsm-hook-containers[%(process)d]: %(name)s %(levelname)s " \
              "%(message)s"
    if handler is None:
        root.addHandler(logging.NullHandler())
        return
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)


def _syslog():
    import logging.handlers
    return logging.handlers.SysLogHandler(address="/dev/log")


class _Deferred(logging.Handler):
    """A handler that makes the real one (make()) when a first record
    comes: most hook runs log nothing, and logging.handlers costs a stats
    hook a fifth of its imports.  Records go to the real handler with this
    one's formatter."""

    def __init__(self, make):
        logging.Handler.__init__(self)
        self._make = make
        self._handler = None

    def emit(self, record):
        try:
            if self._handler is None:
                self._handler = self._make()
                self._handler.setFormatter(self.formatter)
            self._handler.handle(record)
        except Exception:
            self.handleError(record)

    def flush(self):
        if self._handler is not None:
            self._handler.flush()

    def close(self):
        if self._handler is not None:
            self._handler.close()
        logging.Handler.close(self)
