"""The helper service: the root helper, already loaded, behind a socket.

A VM start through "sudo -n containers-helper" pays, before the engine
sees a single request, for sudo, a fresh Python interpreter and the import
of the Docker SDK (requests, urllib3...): about 150 ms, more than half of
what "docker run -d" takes in all.  This service (root, a systemd unit in
the RPM, like Vdsm's own supervdsm) imports all of that once, listens on
a unix socket, and forks a child for each request: the child runs exactly
the helper's command line (helper.main), so the validation of every
argument, the confinement taken from containers.conf and the exit codes
are the helper's, and no request can see another's state.

Who may ask: the socket is mode 0660, owned by root and the vdsm user's
group, and each connection's peer credentials (SO_PEERCRED) must be root
or the vdsm user, the same caller the sudoers rule allows.

Protocol: the client sends one JSON object {"argv": [...]} and shuts its
side down; the service answers one JSON object {"rc": N, "out": "...",
"err": "..."}: the helper's exit code, stdout and stderr.

Bounds: Vdsm waits for a hook with no timeout (lib/vdsm/common/hooks.py
_runHooksDir), so nothing here may make a hook wait without end.  A request
must arrive whole within REQUEST_TIMEOUT seconds (one deadline, not one per
recv: a client trickling a byte a second is cut off too), and when
MAX_CHILDREN requests already run, one more is refused at once with a
message that says so, rather than left in the listen queue until a child
ends (a pull may take pull_timeout seconds).

The service is optional: when its socket is missing or refuses the
connection, the hooks run the helper through sudo as before
(privileged.py).  Stopping it (SIGTERM) removes the socket at once and
lets requests in progress finish: a start is never cut in half (the unit
has KillMode=process).
"""

import errno
import io
import json
import logging
import os
import pwd
import select
import signal
import socket
import struct
import sys
import time

from containerhooks import hookenv
from containerhooks import paths
from containerhooks import state

log = logging.getLogger("containerhooks.helperd")

# The user Vdsm runs as: the one caller besides root (as in the sudoers).
ALLOWED_USER = "vdsm"

MAX_REQUEST = 1024 * 1024
REQUEST_TIMEOUT = 10.0
MAX_CHILDREN = 32

# struct ucred of SO_PEERCRED: pid, uid, gid.  The constant is missing
# from Python 2's socket module; 17 is its value on Linux.
SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)
_UCRED = struct.Struct("3i")


class Refused(Exception):
    """A request this service does not run (the message goes back)."""


def main(argv=None):
    hookenv.setup_logging()
    _preload()
    try:
        user = pwd.getpwnam(ALLOWED_USER)
    except KeyError:
        user = None
        log.warning("no user %s: only root may use the helper service",
                    ALLOWED_USER)
    server = Server(paths.HELPER_SOCKET, user)
    try:
        server.listen()
    except (OSError, IOError, socket.error) as e:
        log.error("cannot listen on %s: %s", paths.HELPER_SOCKET, e)
        sys.stderr.write("containers-helperd: cannot listen on %s: %s\n"
                         % (paths.HELPER_SOCKET, e))
        return 1
    return server.serve()


def _preload():
    """Import what every request needs, once, before any child forks.
    Nothing here may open a connection or start a thread: each child
    makes its own (a forked connection would be shared by two processes,
    a forked thread would not exist)."""
    from containerhooks import helper  # noqa: F401
    from containerhooks import engine  # noqa: F401


class Server(object):

    def __init__(self, path, user):
        self.path = path
        self.uids = set([0])
        self.gid = 0
        if user is not None:
            self.uids.add(user.pw_uid)
            self.gid = user.pw_gid
        self.sock = None
        self.children = set()
        self.stopping = False

    def listen(self):
        if answers(self.path):
            raise OSError(errno.EADDRINUSE, "another helper service answers "
                          "there")
        state.remove_file(self.path)
        # The socket lives in the state directory (paths.py).
        state.ensure_dir()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        # Created 0600; open it to the vdsm user's group only now that it
        # belongs to that group.
        os.chown(self.path, 0, self.gid)
        os.chmod(self.path, 0o660)
        sock.listen(64)
        self.sock = sock
        log.info("helper service listening on %s (pid %d)", self.path,
                 os.getpid())

    def serve(self):
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            while not self.stopping:
                self._reap()
                try:
                    ready, _, _ = select.select([self.sock], [], [], 1.0)
                except (OSError, IOError, select.error) as e:
                    if _errno(e) == errno.EINTR:
                        continue
                    raise
                if ready and not self.stopping:
                    self._accept()
        finally:
            self._close()
        self._reap()
        log.info("helper service stopped; %d request(s) still finishing",
                 len(self.children))
        return 0

    def _stop(self, signo, frame):
        self.stopping = True

    def _close(self):
        # Clients fall back to sudo as soon as the socket is gone.
        state.remove_file(self.path)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
        except (OSError, IOError, socket.error) as e:
            if _errno(e) in (errno.EINTR, errno.EAGAIN):
                return
            raise
        self._reap()
        if len(self.children) >= MAX_CHILDREN:
            # Answered here, in the service itself: it must not block,
            # and _refuse() does not (see there).
            log.warning("busy: %d requests running, refusing one more",
                        len(self.children))
            try:
                _refuse(conn, 1, "containers-helperd: busy: all %d request "
                        "slots are in use (starts waiting for their images?);"
                        " try again later, see journalctl -u "
                        "vdsm-hook-containers-helperd" % MAX_CHILDREN,
                        timeout=0)
            finally:
                conn.close()
            return
        try:
            child = os.fork()
            if child == 0:
                self._child(conn)   # never returns
            self.children.add(child)
        finally:
            conn.close()

    def _child(self, conn):
        rc = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            self.sock.close()
            rc = _serve_one(conn, self.uids)
        except BaseException:
            log.exception("helper service request failed")
        finally:
            os._exit(rc)

    def _reap(self):
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except (OSError, IOError) as e:
                if _errno(e) == errno.EINTR:
                    continue
                if _errno(e) == errno.ECHILD:
                    self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)


def peer(conn):
    """(pid, uid, gid) of the process at the other end of unix socket conn,
    as the kernel saw it connect (SO_PEERCRED)."""
    return _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, SO_PEERCRED,
                                         _UCRED.size))


def _serve_one(conn, uids):
    """Check the peer, read one request from conn, run it as the helper
    would, answer."""
    pid, uid, _ = peer(conn)
    if uid not in uids:
        log.warning("refused a request from uid %d (pid %d)", uid, pid)
        _refuse(conn, 1, "the helper service serves root and %s only"
                % ALLOWED_USER)
        return 1
    try:
        argv = _read_request(conn)
    except Refused as e:
        log.warning("bad request from pid %d: %s", pid, e)
        _refuse(conn, 2, "containers-helperd: %s" % e)
        return 2
    if argv is None:
        return 0    # a probe: connected and closed (is the service up?)
    log.debug("pid %d (uid %d) asks: %s", pid, uid, argv)
    rc, out, err = run_helper(argv)
    # A client that went away (a hook killed) leaves what was done done
    # and recorded in the state file, as with a helper run through sudo.
    _answer(conn, rc, out, err)
    return rc


def _read_request(conn, now=time.time):
    deadline = now() + REQUEST_TIMEOUT
    chunks, size = [], 0
    while True:
        left = deadline - now()
        if left <= 0:
            raise Refused("no complete request within %ds"
                          % REQUEST_TIMEOUT)
        conn.settimeout(left)
        try:
            data = conn.recv(65536)
        except socket.timeout:
            raise Refused("no complete request within %ds"
                          % REQUEST_TIMEOUT)
        if not data:
            break
        size += len(data)
        if size > MAX_REQUEST:
            raise Refused("request larger than %d bytes" % MAX_REQUEST)
        chunks.append(data)
    if not chunks:
        return None
    try:
        request = json.loads(b"".join(chunks).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Refused("the request is not JSON")
    argv = request.get("argv") if isinstance(request, dict) else None
    if not isinstance(argv, list) or not all(
            isinstance(a, type(u"")) for a in argv):
        raise Refused('the request has no "argv" list of strings')
    return [_native(a) for a in argv]


def run_helper(argv):
    """Run the helper's command line argv in this process, as
    containers-helper would: (exit code, stdout, stderr)."""
    from containerhooks import helper
    out, err = _Capture(), _Capture()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        try:
            rc = helper.main(argv)
        except SystemExit as e:   # argparse: usage errors, --help
            rc = e.code if isinstance(e.code, int) else (
                0 if e.code is None else 2)
    finally:
        sys.stdout, sys.stderr = saved
    return rc, out.getvalue(), err.getvalue()


def _Capture():
    # argparse and helper.main write native strings.
    return io.StringIO() if sys.version_info[0] >= 3 else _BytesText()


class _BytesText(io.BytesIO):
    """Python 2: a stdout that takes str and unicode alike."""

    def write(self, s):
        if isinstance(s, type(u"")):
            s = s.encode("utf-8")
        return io.BytesIO.write(self, s)

    def getvalue(self):
        return io.BytesIO.getvalue(self).decode("utf-8", "replace")


def _native(s):
    return s if sys.version_info[0] >= 3 else s.encode("utf-8")


def _answer(conn, rc, out, err):
    """Send the answer of a request read whole (the client has shut its
    side down: nothing is left to read)."""
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        conn.sendall(json.dumps({"rc": rc, "out": out, "err": err})
                     .encode("utf-8"))
        conn.shutdown(socket.SHUT_WR)
    except (OSError, IOError, socket.error) as e:
        log.warning("the client left before its answer: %s", e)


def _refuse(conn, rc, message, timeout=2.0):
    """Answer a request not (wholly) read with message, without waiting on
    the client.

    A unix socket closed with unread data resets the connection, and the
    client would lose the answer: so the reading side is shut down first
    (the client's further sends fail with EPIPE, which privileged.py
    expects), what is already queued is drained (at most a socket buffer),
    then the answer goes out.  A short answer always fits in the socket's
    buffer: with timeout 0 (the service's own loop) nothing here blocks."""
    try:
        conn.shutdown(socket.SHUT_RD)
        conn.setblocking(False)
        while True:
            try:
                if not conn.recv(65536):
                    break
            except (OSError, IOError, socket.error) as e:
                if _errno(e) in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                raise
        conn.settimeout(timeout)
        conn.sendall(json.dumps({"rc": rc, "out": "", "err": message + "\n"})
                     .encode("utf-8"))
        conn.shutdown(socket.SHUT_WR)
    except (OSError, IOError, socket.error) as e:
        log.warning("the client left before its answer: %s", e)


def answers(path):
    """Whether a service listens on path (a probe: connect, close)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except (OSError, IOError, socket.error):
        return False
    finally:
        s.close()


def _errno(e):
    return getattr(e, "errno", None) or (e.args[0] if e.args else None)
