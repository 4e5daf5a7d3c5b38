"""The serial console of a container VM, served by the watcher.

Engine's serial console (Edit VM > Console > "Enable VirtIO serial
console") reaches a VM through ovirt-vmconsole: the admin's ssh session
ends in ovirt-vmconsole-host-shell on the host, running as user
ovirt-vmconsole, which connects to /var/run/ovirt-vmconsole-console/<vm
id>.sock as a plain AF_UNIX stream client and copies bytes both ways, its
side of the terminal in raw mode (ovirt-vmconsole
ovirt_vmconsole_host_shell/socketproxy.py; it first checks that it may
read and write the socket).  For a normal VM qemu binds that socket for
the <console type="unix"> Engine writes, and supervdsm makes it group
ovirt-vmconsole and adds group write (Vdsm supervdsm_api/virt.py
prepareVmChannel, called from virt/vmdevices/core.py prepare_console; it
is removed with the VM, cleanup_console).  For a container VM the
placeholder's console is a pty (placeholder.py) and this module serves
the socket instead, from the watcher (root), for every VM whose state
record says it has the console (helper.py), from when its container
runs until its VM ends:

- The socket is root's, group ovirt-vmconsole, mode 0660: what
  ovirt-vmconsole-host-shell needs, and no one else but root.  On a host
  without that group (no ovirt-vmconsole-host) nothing is served, and the
  log says why once.
- Its path is made from the VM id of root's own state record (a UUID),
  never taken from the domain XML.  The directory is vdsm's (vdsmd makes
  it vdsm:qemu 0775), so nothing root does there may follow a name vdsm
  can change: the socket is bound, given its owner and mode in a
  root-only directory (state.consoles_dir), and then hard-linked to the
  public name with link(2), which never replaces anything.  A file at the
  public name that is not that same socket (compared by inode with the
  root-only name) is never replaced or removed: the console is not served
  and the log says what is there.
- One connection at a time, as qemu's own socket serves one: another
  one is told the console is in use and closed.
- A connection first gets the last console_replay_lines lines of the
  container's output (containers.conf; at most REPLAY_MAX_BYTES), then the
  live stream: the engine's attach stream of the container (its stdout
  and stderr), with its stdin when the container has a terminal and an
  open stdin (helper.py creates it so when the VM has the console, unless
  console_exec_shell), or, with console_exec_shell, a new /bin/sh in the
  container with a terminal of its own, hung up when the connection ends.
  Without a terminal, what is typed is ignored (the admin is told once),
  and the output's line feeds become CR LF, as the raw terminal at the
  other end needs them.
- A client that reads too slowly loses output (marked in the stream)
  rather than hold up the engine, whose attach would hold up the
  container's writes.

Podman 4.3's compatible API re-initialises an exited or stopped container
when asked to attach to it (pkg/api/handlers/compat/containers_attach.go
AttachContainer calls ctr.Init, which makes it "created" with exit code
0; libpod/container_internal.go init).  So the console attaches only to a
container it has just seen running, looks again after attaching, and
when the container ended meanwhile and was re-initialised tells the
watcher (on_reinit), which takes the VM down as for any end
(watcher.py _reinitialised).
"""

import collections
import errno
import grp
import logging
import os
import select
import signal
import socket
import stat
import struct
import threading
import time

from containerhooks import errors
from containerhooks import paths
from containerhooks import procfs
from containerhooks import state

log = logging.getLogger("containerhooks.console")

SOCKET_MODE = 0o660
SUFFIX = ".sock"
BACKLOG = 4
# How often the served consoles are compared with the state records, and
# how long a loop waits before it looks at its stop flag.
SYNC_INTERVAL = 0.5
POLL_INTERVAL = 0.5
# The terminal size set on connection (the engines leave it 0x0, and
# ovirt-vmconsole passes no size on).
ROWS = 24
COLUMNS = 80
# console_exec_shell's shell, and its terminal type.
SHELL = ["/bin/sh"]
SHELL_ENV = ["TERM=xterm"]
# The most output replayed on connection, the most waiting for a slow
# client, and how long a finished stream is given to reach the client.
REPLAY_MAX_BYTES = 64 * 1024
MAX_PENDING = 256 * 1024
FLUSH_TIMEOUT = 5.0
CHUNK = 16384
# How long a shell (console_exec_shell) has after its SIGHUP.
HANGUP_GRACE = 2.0

# What the admin reads at the console, besides the container's output.
BUSY = ("[the serial console of VM %s is in use by another connection; "
        "try again once it is closed]\r\n")
NOT_RUNNING = "[the container of VM %s is %s: no console]\r\n"
REPLAY = "[the last lines of the container's output]\r\n"
LIVE = {
    "terminal": "[console of VM %s: the application's terminal; what you "
                "type goes to it, Ctrl-C interrupts it]\r\n",
    "output": "[console of VM %s: the application's output; it has no "
              "terminal, input is ignored]\r\n",
    "shell": "[console of VM %s: a shell in the container; 'exit' closes "
             "it]\r\n",
}
NO_INPUT = ("\r\n[input is ignored: the container of VM %s has no "
            "terminal]\r\n")
DROPPED = "\r\n[output dropped: the console reads too slowly]\r\n"
ENDED = "\r\n[the container's output ended]\r\n"
CLOSED = "\r\n[the console of VM %s is closed]\r\n"


def socket_path(vm_id):
    """Where ovirt-vmconsole connects to vm_id's serial console."""
    return os.path.join(paths.VMCONSOLE_DIR,
                        state.valid_id(vm_id).lower() + SUFFIX)


def _private_path(vm_id):
    return os.path.join(state.consoles_dir(),
                        state.valid_id(vm_id).lower() + SUFFIX)


class Refused(Exception):
    """A console that cannot be served now; str() says why."""


def make_socket(vm_id, gid):
    """Bind vm_id's console socket, owned by root and gid, mode 0660, and
    link it where ovirt-vmconsole connects; the listening socket.  A
    socket of an earlier watcher at that name is replaced; anything else
    there is left alone (Refused)."""
    public = socket_path(vm_id)
    private = _private_path(vm_id)
    _ensure_private_dir()
    found = _lstat(public)
    if found is not None:
        if not _is_ours(found, private):
            raise Refused(
                "%s exists and is not a socket vdsm-hook-containers made "
                "(%s, owner uid %d, group gid %d): it is left as it is; "
                "remove it if nothing uses it" % (
                    public, _kind(found.st_mode), found.st_uid,
                    found.st_gid))
        # Left by an earlier watcher: nobody listens on it any more.
        _unlink(public)
    _unlink(private)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(private)
        # In root's own directory: nothing here follows a name anyone
        # else can change.
        os.chown(private, 0, gid)
        os.chmod(private, SOCKET_MODE)
        sock.listen(BACKLOG)
        try:
            # link(2) never replaces a name; the directory is vdsm's.
            os.link(private, public)
        except OSError as e:
            if e.errno == errno.EEXIST:
                raise Refused("%s appeared while the console was being "
                              "made; it is left as it is" % public)
            raise Refused("cannot link %s to %s: %s" % (private, public,
                                                        os.strerror(e.errno)))
    except BaseException:
        sock.close()
        _unlink(private)
        raise
    return sock


def remove_socket(vm_id):
    """Remove vm_id's console socket, if it is the one the package made;
    quiet when there is none."""
    public = socket_path(vm_id)
    private = _private_path(vm_id)
    found = _lstat(public)
    if found is not None:
        if _is_ours(found, private):
            _unlink(public)
        else:
            log.info("vm_id=%s leaving %s: not a socket of "
                     "vdsm-hook-containers", vm_id, public)
    _unlink(private)


def leftover_ids():
    """The VM ids whose console socket the package made (its root-only
    names)."""
    try:
        names = os.listdir(state.consoles_dir())
    except OSError:
        return []
    return sorted(n[:-len(SUFFIX)] for n in names if n.endswith(SUFFIX)
                  and state.is_id(n[:-len(SUFFIX)]))


def console_gid():
    """The gid of paths.VMCONSOLE_GROUP; Refused when it does not exist."""
    try:
        return grp.getgrnam(paths.VMCONSOLE_GROUP).gr_gid
    except KeyError:
        raise Refused("there is no group %s on this host (ovirt-vmconsole-"
                      "host is not installed): the console is not served"
                      % paths.VMCONSOLE_GROUP)


def _is_ours(found, private):
    mine = _lstat(private)
    return (mine is not None and stat.S_ISSOCK(found.st_mode)
            and (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino))


def _ensure_private_dir():
    directory = state.consoles_dir()
    try:
        os.mkdir(directory, 0o700)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise Refused("cannot make %s: %s" % (directory,
                                                  os.strerror(e.errno)))
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 \
            or stat.S_IMODE(st.st_mode) != 0o700:
        raise Refused("%s is not a directory of root's, mode 0700"
                      % directory)


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


_unlink = state.remove_file


def _kind(mode):
    for test, name in ((stat.S_ISSOCK, "a socket"), (stat.S_ISLNK,
                       "a symbolic link"), (stat.S_ISREG, "a file"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "a special file"


# What a served console stands for: from the VM's state record.
Target = collections.namedtuple("Target",
                                "vm_id, vm_name, engine, container_id")


def target_of(record):
    """The Target of record (a state.Record), or None when its console is
    not to be served now: no console, no running container, a stop under
    way."""
    if not (record.console and record.container_id and record.pid) \
            or record.stopping:
        return None
    return Target(vm_id=record.vm_id, vm_name=record.vm_name or "?",
                  engine=record.engine, container_id=record.container_id)


class Server(object):
    """Every container VM's console, in one thread of the watcher.

    read_state(vm_id) -> state.Record or None (the watcher's checked
    reader); conf() -> the configuration in use; connect(engine name) ->
    engine.Engine; on_reinit(engine, vm_id, container_id): Podman
    re-initialised an ended container when the console attached (see the
    module's docstring)."""

    def __init__(self, read_state, conf, connect, on_reinit):
        self._read_state = read_state
        self.conf = conf
        self.connect = connect
        self.on_reinit = on_reinit
        self._served = {}       # vm_id -> _Console
        self._refused = {}      # vm_id -> why it is not served (logged)
        # vm_id -> (state.version, Target or None) of the last sync: a
        # state file that is the same file, unchanged, is not read again.
        self._known = {}
        self._wake_r, self._wake_w = os.pipe()
        self._done = threading.Event()
        self._stop = threading.Event()

    def poke(self):
        """Look at the state records now (a container started)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self, stopping):
        try:
            self._clean()
            last = 0
            while not (stopping.is_set() or self._stop.is_set()):
                woken = self._wait()
                if woken or time.time() - last >= SYNC_INTERVAL:
                    last = time.time()
                    try:
                        self.sync()
                    except Exception:
                        log.exception("looking at the consoles failed")
        finally:
            for console in list(self._served.values()):
                self._close(console, "the watcher stops")
            self._done.set()

    def shutdown(self, timeout=5.0):
        """Stop serving, remove every socket (from another thread)."""
        self._stop.set()
        self.poke()
        self._done.wait(timeout)

    def _wait(self):
        """Accept what comes within POLL_INTERVAL; whether poked."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd = {}
        for console in self._served.values():
            fd = console.listener.fileno()
            by_fd[fd] = console
            poller.register(fd, select.POLLIN)
        try:
            ready = poller.poll(POLL_INTERVAL * 1000)
        except (select.error, OSError, IOError):
            return False
        woken = False
        for fd, _ in ready:
            if fd == self._wake_r:
                os.read(self._wake_r, 4096)
                woken = True
            elif fd in by_fd:
                self._accept(by_fd[fd])
        return woken

    def _clean(self):
        """Sockets an earlier watcher left (it died, or the VM ended while
        none ran)."""
        for vm_id in leftover_ids():
            record = self._read_state(vm_id)
            if record is None or target_of(record) is None:
                log.info("vm_id=%s removing a console socket left behind",
                         vm_id)
                remove_socket(vm_id)

    def sync(self):
        """Serve the consoles the records ask for, and only those.

        Every SYNC_INTERVAL, for every VM of the host: a record is read
        (opened and parsed) only when its file changed since the last
        sync (state.version, one stat); the version is taken before the
        read, so a write in between is read again at the next."""
        wanted, known = {}, {}
        for vm_id in state.vm_ids():
            version = state.version(vm_id)
            last = self._known.get(vm_id)
            if version is not None and last is not None \
                    and last[0] == version:
                target = last[1]
            else:
                record = self._read_state(vm_id)
                target = target_of(record) if record is not None else None
            known[vm_id] = (version, target)
            if target is not None:
                wanted[vm_id] = target
        self._known = known
        for vm_id, console in list(self._served.items()):
            if wanted.get(vm_id) != console.target:
                self._close(console, "its VM ended")
        for vm_id in set(self._refused) - set(wanted):
            del self._refused[vm_id]
        for vm_id, target in sorted(wanted.items()):
            if vm_id not in self._served:
                self._open(target)

    def _open(self, target):
        vm_id = target.vm_id
        try:
            if not os.path.isdir(paths.VMCONSOLE_DIR):
                raise Refused("%s does not exist (vdsmd makes it when it "
                              "starts)" % paths.VMCONSOLE_DIR)
            listener = make_socket(vm_id, console_gid())
        except (Refused, OSError) as e:
            reason = str(e)
            if self._refused.get(vm_id) != reason:
                self._refused[vm_id] = reason
                log.warning("vm_id=%s the serial console is not served: "
                            "%s", vm_id, reason)
            return
        self._refused.pop(vm_id, None)
        self._served[vm_id] = _Console(target, listener)
        log.info("vm_id=%s serving the serial console at %s", vm_id,
                 socket_path(vm_id))

    def _close(self, console, why):
        vm_id = console.target.vm_id
        del self._served[vm_id]
        console.listener.close()
        if console.session is not None:
            console.session.stop()
        try:
            remove_socket(vm_id)
        except OSError as e:
            log.warning("vm_id=%s cannot remove the console socket: %s",
                        vm_id, e)
        log.info("vm_id=%s the serial console is closed (%s)", vm_id, why)

    def _accept(self, console):
        try:
            client, _ = console.listener.accept()
        except socket.error as e:
            log.warning("vm_id=%s accepting a console connection failed: "
                        "%s", console.target.vm_id, e)
            return
        if console.session is not None and console.session.is_alive():
            log.info("vm_id=%s refusing a second console connection",
                     console.target.vm_id)
            _send_quietly(client, BUSY % console.target.vm_name)
            client.close()
            return
        console.session = _Session(self, console.target, client)
        console.session.start()


class _Console(object):

    def __init__(self, target, listener):
        self.target = target
        self.listener = listener
        self.session = None


class _Session(threading.Thread):
    """One connection, bridged to the container until either side ends or
    the console closes."""

    def __init__(self, server, target, client):
        super(_Session, self).__init__(name="console-" + target.vm_id[:8])
        self.daemon = True
        self.server = server
        self.target = target
        self.client = client
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()

    def run(self):
        t = self.target
        log.info("vm_id=%s console connection opened", t.vm_id)
        stream = exec_id = eng = None
        why = "?"
        try:
            eng = self.server.connect(t.engine)
            conf = self.server.conf()
            info = eng.inspect(t.container_id)
            if info.status != "running":
                why = "the container is %s" % info.status
                _send_quietly(self.client, NOT_RUNNING % (t.vm_name,
                                                          info.status))
                return
            tty = bool(info.config.get("Tty") and
                       info.config.get("OpenStdin"))
            if conf.console_exec_shell:
                mode = "shell"
                exec_id, stream = eng.exec_shell(t.container_id, SHELL,
                                                 SHELL_ENV)
            else:
                mode = "terminal" if tty else "output"
                stream = eng.attach(t.container_id, stdin=tty)
            if eng.name == "podman" and not self._still_running(eng):
                why = "the container ended as the console attached"
                return
            if mode != "output":
                self._resize(eng, exec_id)
            replay = self._replay(eng, conf, tty or mode == "shell")
            first = ((REPLAY.encode() + replay) if replay else b"") \
                + (LIVE[mode] % t.vm_name).encode("utf-8")
            why = self._bridge(stream, first, raw=tty or mode == "shell",
                               accept_input=mode != "output")
        except errors.Error as e:
            why = str(e)
            _send_quietly(self.client, "[the console of VM %s failed: "
                          "%s]\r\n" % (t.vm_name, e))
        except Exception as e:
            why = "%s: %s" % (type(e).__name__, e)
            log.exception("vm_id=%s console connection failed", t.vm_id)
        finally:
            self.client.close()
            if stream is not None:
                stream.sock.close()
            if exec_id is not None:
                self._hang_up(eng, exec_id)
            log.info("vm_id=%s console connection closed (%s)", t.vm_id,
                     why)

    def _still_running(self, eng):
        """After the attach: whether the container still runs.  A Podman
        container that ended just before the attach is "created" now (see
        the module's docstring): the watcher is told."""
        t = self.target
        info = eng.lookup(t.container_id)
        status = info.status if info is not None else "gone"
        if status == "running":
            return True
        _send_quietly(self.client, NOT_RUNNING % (t.vm_name, status))
        if status == "created":
            log.warning("vm_id=%s container %s ended as the console "
                        "attached, and Podman re-initialised it", t.vm_id,
                        t.container_id[:12])
            self.server.on_reinit(eng, t.vm_id, t.container_id)
        return False

    def _resize(self, eng, exec_id):
        try:
            eng.resize(self.target.container_id, ROWS, COLUMNS, exec_id)
        except errors.Error as e:
            log.info("vm_id=%s cannot set the console's size: %s",
                     self.target.vm_id, e)

    def _replay(self, eng, conf, raw):
        """The last lines of the container's output, bounded; b"" for
        none."""
        lines = conf.console_replay_lines
        if not lines:
            return b""
        data = bytearray()
        try:
            for chunk in eng.logs(self.target.container_id, tail=lines):
                # The SDK decodes a terminal's output to text where the
                # engine names a charset (Podman).
                if not isinstance(chunk, bytes):
                    chunk = chunk.encode("utf-8")
                data += chunk
                if len(data) > 2 * REPLAY_MAX_BYTES:
                    del data[:-REPLAY_MAX_BYTES]
        except errors.Error as e:
            log.info("vm_id=%s no output to replay: %s", self.target.vm_id,
                     e)
            return b""
        data = bytes(data[-REPLAY_MAX_BYTES:])
        if data and not raw:
            data = crlf(data)
        if data and not data.endswith(b"\n"):
            data += b"\r\n"
        return data

    def _bridge(self, stream, first, raw, accept_input):
        """Copy between the client and the engine's stream until one ends
        or the console closes; why it ended."""
        client, engine_sock = self.client, stream.sock
        out = bytearray(first)
        to_engine = bytearray()
        demux = None if raw else Demux()
        dropping = [False]
        told = False
        engine_open = True
        flush_until = None

        def from_engine(data):
            if demux is not None:
                data = crlf(demux.feed(data))
            if len(out) + len(data) > MAX_PENDING:
                if not dropping[0]:
                    out.extend(DROPPED.encode())
                dropping[0] = True
            else:
                dropping[0] = False
                out.extend(data)

        if stream.pending:
            from_engine(stream.pending)
        client.setblocking(False)
        engine_sock.setblocking(False)
        while True:
            if self._stop_event.is_set():
                _send_quietly(client, CLOSED % self.target.vm_name)
                return "the VM ended"
            if not engine_open:
                if not out:
                    return "the container's stream ended"
                if time.time() > flush_until:
                    return "the container's stream ended (output not sent)"
            readers = [client] if len(to_engine) < MAX_PENDING else []
            if engine_open:
                readers.append(engine_sock)
            writers = [client] if out else []
            if to_engine and engine_open:
                writers.append(engine_sock)
            try:
                r, w, _ = select.select(readers, writers, [], POLL_INTERVAL)
            except (select.error, OSError, IOError) as e:
                if _errno(e) == errno.EINTR:
                    continue
                raise
            if engine_sock in r:
                data = _recv(engine_sock)
                if data == b"":
                    engine_open = False
                    flush_until = time.time() + FLUSH_TIMEOUT
                    out.extend(ENDED.encode())
                elif data:
                    from_engine(data)
            if client in r:
                data = _recv(client)
                if data == b"":
                    return "the client closed it"
                if data and accept_input:
                    to_engine.extend(data)
                elif data and not told:
                    told = True
                    out.extend((NO_INPUT % self.target.vm_name).encode())
            if client in w:
                sent = _send(client, out)
                if sent is None:
                    return "the client went away"
                del out[:sent]
            if engine_sock in w:
                sent = _send(engine_sock, to_engine)
                if sent is None:
                    engine_open = False
                    flush_until = time.time() + FLUSH_TIMEOUT
                else:
                    del to_engine[:sent]

    def _hang_up(self, eng, exec_id):
        """End the connection's shell as a terminal hangup would (SIGHUP,
        then SIGKILL after HANGUP_GRACE), if it still runs: the engine
        does not when its stream closes.  Only a process the kernel counts
        in the container's cgroup is signalled."""
        deadline = None
        try:
            while True:
                running, pid = eng.exec_state(exec_id)
                process = procfs.container_init(
                    pid, self.target.container_id) if running else None
                if process is None:
                    return
                if deadline is None:
                    procfs.kill(process, signal.SIGHUP)
                    deadline = time.time() + HANGUP_GRACE
                elif time.time() > deadline:
                    procfs.kill(process, signal.SIGKILL)
                    return
                time.sleep(0.1)
        except (errors.Error, OSError) as e:
            log.warning("vm_id=%s cannot end the console's shell: %s",
                        self.target.vm_id, e)


class Demux(object):
    """The engines' multiplexed stream of a container without a terminal:
    frames of an 8-byte header (stream, 0, 0, 0, length as big-endian
    uint32) and that many bytes (Docker's attach API; Podman's compat API
    the same).  feed() returns the payloads' bytes, in order, as soon as
    they come (a long frame's start before its end)."""

    def __init__(self):
        self._header = bytearray()
        self._left = 0

    def feed(self, data):
        out = bytearray()
        data = bytearray(data)
        i = 0
        while i < len(data):
            if self._left:
                piece = data[i:i + self._left]
                out.extend(piece)
                self._left -= len(piece)
            else:
                piece = data[i:i + 8 - len(self._header)]
                self._header.extend(piece)
                if len(self._header) == 8:
                    self._left = struct.unpack(">I", bytes(
                        self._header[4:]))[0]
                    self._header = bytearray()
            i += len(piece)
        return bytes(out)


def crlf(data):
    """data with each line feed as CR LF: the console's client has its
    terminal in raw mode, and a container without a terminal writes bare
    line feeds."""
    return data.replace(b"\n", b"\r\n")


def _recv(sock):
    """Bytes from sock; b"" at its end (or when it broke); None when there
    is nothing now."""
    try:
        return sock.recv(CHUNK)
    except socket.error as e:
        if _errno(e) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return None
        return b""


def _send(sock, data):
    """How many bytes of data went out; None when the peer is gone."""
    try:
        return sock.send(bytes(data[:CHUNK * 4]))
    except socket.error as e:
        if _errno(e) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return 0
        return None


def _send_quietly(sock, text):
    try:
        sock.setblocking(True)
        sock.settimeout(1)
        sock.sendall(text.encode("utf-8") if not isinstance(text, bytes)
                     else text)
    except (socket.error, UnicodeError):
        pass


def _errno(e):
    return getattr(e, "errno", None) or (e.args[0] if e.args else None)
