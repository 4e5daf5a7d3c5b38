"""The daemons of dev/services, stopped and started again by a test.

dev/services runs dockerd, podman system service, libvirtd and the
registry as plain background processes (this machine has no systemd),
with their pid files and logs in its RUN directory.  A fault test stops
one as "dev/services stop" does (SIGTERM to the pid of its pid file, then
SIGKILL after a while), and starts it again as "dev/services start" does:
the same command line and preparation (from dev/services itself), its
log file appended to, a session of its own, a child of init rather than
of the test, the pid file updated, and waits until it answers.

down() and restarting() start the daemon again in a finally, so that it
answers after the test whatever happened, and the run that started the
daemons ("make test") still stops it by its pid file; paused() freezes
one (a registry that hangs) and always thaws it.  A daemon that
dev/services did not start (no pid file) fails the test: it is not the
test's to stop.
"""

import contextlib
import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import sys
import time

from containerhooks import procfs

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_services():
    path = os.path.join(TOP, "dev", "services")
    loader = importlib.machinery.SourceFileLoader("dev_services", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


services = _load_services()

STOP_TIMEOUT = 60
START_TIMEOUT = 60

# Starts cmd in a session of its own with stdout and stderr appended to the
# log and prints its pid, then exits: the daemon is left to init, as the
# daemons dev/services starts are.
_SPAWN = """
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,
                     stderr=subprocess.STDOUT, start_new_session=True)
print(p.pid)
"""


def _service(name):
    for service in services.SERVICES:
        if service[0] == name:
            return service
    raise ValueError("dev/services runs no %r" % name)


def pid_file(name):
    return os.path.join(services.RUN, name + ".pid")


def pid(name):
    """The pid dev/services recorded for name (AssertionError if none)."""
    try:
        with open(pid_file(name)) as f:
            return int(f.read())
    except (IOError, ValueError) as e:
        raise AssertionError(
            "%s was not started by dev/services (%s): the fault tests stop "
            "and start only the daemons it started" % (name, e))


def answers(name):
    return services.answers(_service(name)[2])


def alive(p):
    """Whether process p runs (a zombie does not)."""
    return procfs.alive(p)


def stop(name, timeout=STOP_TIMEOUT):
    """Stop name as dev/services does; return how long it took to end."""
    p = pid(name)
    started = time.time()
    try:
        os.kill(p, signal.SIGTERM)
    except ProcessLookupError:
        return 0.0
    deadline = started + timeout
    while alive(p) and time.time() < deadline:
        time.sleep(0.05)
    if alive(p):
        os.kill(p, signal.SIGKILL)
        while alive(p):
            time.sleep(0.05)
    return time.time() - started


def start(name, timeout=START_TIMEOUT):
    """Start name as dev/services does; return how long until it answered."""
    _, cmd, check, prepare = _service(name)
    if prepare:
        prepare()
    log = os.path.join(services.RUN, name + ".log")
    started = time.time()
    # In RUN, as dev/services starts them: conmon leaves an "oom" file in
    # the daemon's directory, which must not be the checkout.
    out = subprocess.check_output([sys.executable, "-c", _SPAWN, log] + cmd,
                                  cwd=services.RUN)
    new = int(out.decode().strip())
    with open(pid_file(name), "w") as f:
        f.write(str(new))
    deadline = started + timeout
    while time.time() < deadline and alive(new):
        if services.answers(check):
            return time.time() - started
        time.sleep(0.1)
    with open(log, "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    raise AssertionError("%s did not answer within %ds after a restart "
                         "(%s); last lines of %s:\n%s"
                         % (name, timeout, "running" if alive(new)
                            else "it exited", log, tail))


@contextlib.contextmanager
def down(name):
    """name stopped for the body; started again afterwards, always."""
    stop(name)
    try:
        yield
    finally:
        if not answers(name):
            start(name)


@contextlib.contextmanager
def restarting(name):
    """Yields restart(), which stops and starts name and returns (seconds
    to stop, seconds to answer again); name answers after the body,
    whatever happened."""
    def restart():
        stopped = stop(name)
        return stopped, start(name)
    try:
        yield restart
    finally:
        if not answers(name):
            start(name)


@contextlib.contextmanager
def paused(name):
    """name frozen (SIGSTOP) for the body: connections to it are accepted
    by the kernel and then get no answer, as from a daemon that hangs;
    thawed (SIGCONT) afterwards, always."""
    p = pid(name)
    os.kill(p, signal.SIGSTOP)
    try:
        yield p
    finally:
        os.kill(p, signal.SIGCONT)
