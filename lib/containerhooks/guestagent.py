"""The oVirt guest agent of a container VM: Engine's Shutdown and Reboot.

Vdsm's Shutdown and Reboot try the guest agents first
(lib/vdsm/virt/vmpowerdown.py VmPowerDown): the QEMU guest agent, then the
oVirt guest agent when it is responsive (it sent anything in the last 120
s, guestagent.py isResponsive), then ACPI.  The oVirt guest agent speaks
JSON lines over the unix socket of the VM's "ovirt-guest-agent.0" channel,
which Engine puts in the domain XML for most OS types
(LibvirtVmXmlBuilder.writeGuestAgentChannels, osinfo
devices.ovirtGuestAgentChannel) at
/var/lib/libvirt/qemu/channels/<vm id>.ovirt-guest-agent.0.  qemu binds
that socket, and Vdsm connects to it as a client: the path is taken from
the XML Engine sent (vm.py Vm.__init__, _makeChannelPath), supervdsm makes
it group-writable (supervdsm_api/virt.py prepareVmChannel: os.stat, so
the socket must exist when the domain has started), and vmchannels.py
Listener connects, retrying every second five times, then every
guest_agent_timeout (30 s).

For a container VM the placeholder has no agent, so the package is one:
the start hook moves the placeholder's channel to placeholder_path()
(qemu binds that one, and nothing answers there), and the exit watcher
(root) serves socket_path() -- the path Vdsm connects to, computed from
the VM id, never read from anything vdsm can write -- for every VM whose
state record says guest_agent.  What it says, as Vdsm's guestagent.py
GuestAgent._handleMessage parses it (API version 0: no apiVersion in the
heartbeat, so Vdsm sends no lifecycle events that would want a reply):

    heartbeat           {"free-ram": MiB}, every HEARTBEAT seconds: keeps
                        the agent "responsive" and the VM's status Up
                        (vm.py _getVmStatus takes the agent's status)
    host-name, fqdn     the container's hostname, the Initial Run's FQDN
    network-interfaces  the container's vNICs: name, MAC, addresses
    applications        the image and the digest of what runs

on Vdsm's "refresh" (sent at each connect) and whenever they change.  What
Vdsm sends: "shutdown" {timeout, message, reboot: "True"/"False"}
(guestagent.py desktopShutdown); the rest (api-version, lock-screen,
login with a password, log-off, ...) is ignored, and never logged with its
arguments.

Shutdown stops the container as Engine's Power Off does -- its image's
STOPSIGNAL (SIGTERM unless the image says otherwise), then SIGKILL after
the host's stop_timeout -- at once (Vdsm's timeout is the delay the guest
gives its logged-in users: a container has none), and not sooner: the
graceful path is at least as graceful as Power Off.  Then the exit
watcher's usual path takes the placeholder down (watcher.container_ended),
and Vdsm reports the VM Down normally: its Shutdown set the exit reason
before trying any agent (vm.py qemuGuestAgentShutdown sets
_shutdownReason = ADMIN_SHUTDOWN first; since Vdsm 4.20), so the end of
the domain, however libvirt words it, becomes exitCode 0 "Admin shut down
from the engine" (_handle_libvirt_domain_stopped, _getShutdownReason).

Reboot restarts the container through the health monitor's restart
(health.Monitor.restart: the vNICs' MACs again), and the VM stays Up: the
agent's heartbeats keep Vdsm's status Up.  Vdsm itself waits for the
domain to reboot, which the placeholder never does; after the message's
timeout plus sys_shutdown_timeout (150 s by default) it logs "Rebooting
with oVirt agent timed out" and tries ACPI, which the idle kernel ignores.

Trust: the socket lives in Vdsm's channels directory (vdsm:qemu 0775), so
everything there is vdsm's to replace.  The socket is made by bind() (it
creates a new file, or fails), its owner and mode set through an O_PATH
descriptor of what is at the path checked to be a root-owned socket
(never by following a name vdsm could have swapped for a link); a file
already there is replaced only when it is a root-owned socket nobody
answers on (one of an earlier run of the watcher); the socket is removed
only while it is still the one made.  A connection is served only when
its peer is root or vdsm (SO_PEERCRED): the qemu processes share the
socket's group on a host.  Whatever a connection sends is bounded
(MAX_LINE) and parsed defensively; a bad line is dropped, a line too long
closes that connection, nothing closes the server.
"""

import collections
import errno
import json
import logging
import os
import pwd
import select
import socket
import stat
import threading
import time

import six

from containerhooks import errors
from containerhooks import exits
from containerhooks import helperd
from containerhooks import paths
from containerhooks import state

log = logging.getLogger("containerhooks.guestagent")

# The channel's target name, and the Engine's socket name for it
# (LibvirtVmXmlBuilder.writeGuestAgentChannels).
CHANNEL = "ovirt-guest-agent.0"
PLACEHOLDER_SUFFIX = ".placeholder"

HEARTBEAT = 5.0         # the oVirt guest agent's heart_beat_rate
SYNC_INTERVAL = 0.2     # how often the state directory is looked at
MAX_LINE = 64 * 1024    # Vdsm's messages are a few hundred bytes
MAX_OUTPUT = 1024 * 1024
MAX_CONNECTIONS = 4     # per VM; Vdsm holds one
RETRY_INTERVAL = 5.0    # a socket that cannot be made, tried again
SOCKET_MODE = 0o660
# How long the start hook waits for the watcher to serve a new VM's socket
# (Vdsm stats it right after the domain started: prepareVmChannel).
SERVE_WAIT = 3.0

SHUTDOWN_MESSAGE = "container stopped by Engine's Shutdown"
# A container in these states has not ended (watcher.RUNNING).
RUNNING = ("created", "running", "paused", "restarting")

# Python 3.4+ names it; the generic Linux value otherwise.
_O_PATH = getattr(os, "O_PATH", 0o10000000)


def socket_path(vm_id):
    """Where Vdsm connects to vm_id's oVirt guest agent."""
    return os.path.join(paths.VM_CHANNELS_DIR,
                        "%s.%s" % (state.valid_id(vm_id), CHANNEL))


def placeholder_path(vm_id):
    """Where the placeholder's own channel goes (qemu binds it)."""
    return socket_path(vm_id) + PLACEHOLDER_SUFFIX


def served(vm_id):
    """Whether a socket is at vm_id's agent path (the hook's check)."""
    try:
        return stat.S_ISSOCK(os.lstat(socket_path(vm_id)).st_mode)
    except OSError:
        return False


def wait_served(vm_id, timeout=SERVE_WAIT, now=time.time):
    """Wait until the watcher serves vm_id's socket; whether it does."""
    deadline = now() + timeout
    while not served(vm_id):
        if now() >= deadline:
            return False
        time.sleep(0.02)
    return True


# The protocol

def encode(name, args=None):
    """One message as the agent writes it: a JSON object with __name__,
    one line (guestagent.py _forward and _parseLine)."""
    message = dict(args or {})
    message["__name__"] = name
    return (json.dumps(message, sort_keys=True) + "\n").encode("utf-8")


def decode(line):
    """(name, args) of one line; ValueError if it is no message.  Bad
    UTF-8 is replaced, as Vdsm does with the guest's lines."""
    try:
        data = json.loads(line.decode("utf-8", "replace"))
    except RuntimeError:
        # Nested deeper than the parser recurses (RecursionError).
        raise ValueError("nested too deep")
    if not isinstance(data, dict) or not isinstance(
            data.get("__name__"), six.string_types):
        raise ValueError("not a message object")
    name = data.pop("__name__")
    return name, data


def is_reboot(args):
    """Vdsm sends str(reboot), "True" or "False"; the agent compares its
    lowered text with "true" (ovirt-guest-agent OVirtAgentLogic)."""
    return str(args.get("reboot", "")).lower() == "true"


def info_messages(record):
    """[(name, args)] of the guest info of a VM's state record: what the
    stats hooks report too (vmstats.py), in the agent's messages."""
    from containerhooks import vmstats
    hostname = vmstats.hostname(record) or ""
    interfaces = []
    for nic in record.nics or ():
        if isinstance(nic, dict):
            interfaces.append({
                "name": nic.get("ifname") or "",
                "hw": str(nic.get("mac") or "").lower(),
                "inet": [nic["ip"]] if nic.get("ip") else [],
                "inet6": [],
            })
    return [
        ("host-name", {"name": hostname}),
        ("fqdn", {"fqdn": record.fqdn or hostname}),
        ("network-interfaces", {"interfaces": interfaces}),
        ("applications", {"applications": vmstats.apps_list(record)}),
    ]


def heartbeat(record, figures=None):
    """The heartbeat: free-ram is what Vdsm requires (int(args["free-
    ram"]), MiB: vm.py _getGuestStats makes memUsage of it); 0 means "not
    known" to Vdsm.  From the snapshot's figures, the stats hooks' own."""
    free = 0
    try:
        free = int(figures["mem"]["mem_free"]) // 1024
    except (KeyError, TypeError, ValueError):
        pass
    return "heartbeat", {"free-ram": free}


# The server

class _Listener(object):

    def __init__(self, vm_id, sock, ident):
        self.vm_id = vm_id
        self.sock = sock
        self.ident = ident          # (st_dev, st_ino) of the socket made
        self.conns = set()
        self.action = None          # a Shutdown or Reboot running


class _Conn(object):

    def __init__(self, listener, sock, pid, uid):
        self.listener = listener
        self.sock = sock
        self.pid = pid
        self.uid = uid
        self.inbuf = b""
        self.outbuf = b""
        self.sent = {}              # name -> args last sent


Action = collections.namedtuple("Action", "vm_id, reboot, thread")


class Server(object):
    """Serves the guest agent socket of every container VM of this host.

    watcher: the Watcher (conf, container_ended, health); read_state(vm_id):
    the VM's state record as the watcher checks it, or None; connect(name,
    runtime): an engine.Engine of that name, through the socket of that
    OCI runtime (for the actions: the watcher's own connections carry
    event streams)."""

    def __init__(self, watcher, read_state, connect, now=time.time):
        self._watcher = watcher
        self._read_state = read_state
        self._connect = connect
        self._now = now
        self._poll = select.poll()
        self._listeners = {}        # vm_id -> _Listener
        self._fds = {}              # fd -> _Listener or _Conn
        self._refused = {}          # vm_id -> (why not served, next try)
        self._plain = set()         # VM ids whose record wants no agent
        self._news = set()          # VM ids to tell everything again
        self._uids, self._gid = _peers()
        self._next_sync = 0.0
        self._next_beat = 0.0
        self._snapshot = None

    def run(self, stopping):
        try:
            while not stopping.is_set():
                try:
                    self.step()
                except Exception:
                    log.exception("serving the guest agents failed")
                    stopping.wait(1.0)
        finally:
            self.close()

    def step(self, timeout=SYNC_INTERVAL):
        """One pass: the state directory, the sockets, the heartbeats."""
        now = self._now()
        if now >= self._next_sync:
            self._next_sync = now + SYNC_INTERVAL
            self.sync()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT
            self._beat()
        for fd, event in self._poll.poll(int(timeout * 1000)):
            obj = self._fds.get(fd)
            if isinstance(obj, _Listener):
                self._accept(obj)
            elif isinstance(obj, _Conn):
                self._on_event(obj, event)

    def serving(self):
        """The VM ids served now."""
        return sorted(self._listeners)

    def close(self):
        for vm_id in list(self._listeners):
            self._remove(vm_id)

    # Which VMs

    def sync(self):
        ids = state.listing().states
        for vm_id in set(self._listeners) - ids:
            self._remove(vm_id)
        for vm_id in set(self._refused) - ids:
            del self._refused[vm_id]
        self._plain &= ids
        for vm_id in ids - self._plain:
            listener = self._listeners.get(vm_id)
            if listener is not None and self._still_there(listener):
                continue
            if self._now() < self._refused.get(vm_id, ("", 0))[1]:
                continue
            record = self._read_state(vm_id)
            if record is None:
                continue
            if not record.guest_agent:
                # A record never gains the flag: one read per start.
                self._plain.add(vm_id)
                continue
            if listener is not None:
                if record.stopping:
                    continue        # Vdsm removed it at the end of the VM
                log.info("vm_id=%s the guest agent socket was removed; "
                         "making it again", vm_id)
                self._remove(vm_id)
            self._listen(vm_id, record)

    def _still_there(self, listener):
        try:
            st = os.lstat(socket_path(listener.vm_id))
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == listener.ident

    def _listen(self, vm_id, record):
        path = socket_path(vm_id)
        try:
            sock, ident = make_socket(path, self._gid)
        except (OSError, IOError, socket.error) as e:
            why = getattr(e, "strerror", None) or str(e)
            logged = self._refused.get(vm_id, ("", 0))[0] == why
            self._refused[vm_id] = (why, self._now() + RETRY_INTERVAL)
            if not logged:
                log.warning("vm_id=%s cannot serve the guest agent at %s: "
                            "%s; Engine's Shutdown and Reboot will not reach "
                            "the container", vm_id, path, why)
            return
        self._refused.pop(vm_id, None)
        listener = _Listener(vm_id, sock, ident)
        self._listeners[vm_id] = listener
        self._register(sock, listener, select.POLLIN)
        log.info("vm_id=%s serving the guest agent at %s", vm_id, path)

    def _remove(self, vm_id):
        listener = self._listeners.pop(vm_id, None)
        if listener is None:
            return
        for conn in list(listener.conns):
            self._close(conn)
        self._unregister(listener.sock)
        listener.sock.close()
        path = socket_path(vm_id)
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) == listener.ident:
                os.unlink(path)
        except OSError:
            pass
        log.info("vm_id=%s no longer serving the guest agent", vm_id)

    # Connections

    def _accept(self, listener):
        try:
            sock, _ = listener.sock.accept()
        except socket.error as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK,
                               errno.ECONNABORTED, errno.EINTR):
                log.warning("vm_id=%s accept failed: %s", listener.vm_id, e)
            return
        pid, uid, _ = helperd.peer(sock)
        if uid not in self._uids:
            log.warning("vm_id=%s refused a guest agent connection from "
                        "uid %d (pid %d): only root and %s", listener.vm_id,
                        uid, pid, helperd.ALLOWED_USER)
            sock.close()
            return
        if len(listener.conns) >= MAX_CONNECTIONS:
            log.warning("vm_id=%s refused a guest agent connection from pid "
                        "%d: %d open already", listener.vm_id, pid,
                        len(listener.conns))
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(listener, sock, pid, uid)
        listener.conns.add(conn)
        self._register(sock, conn, select.POLLIN)
        log.info("vm_id=%s guest agent connection from pid %d",
                 listener.vm_id, pid)
        # The real agent starts with its information and a heartbeat
        # (OVirtAgentLogic doWork); Vdsm asks again with "refresh".
        self._send_info(conn, force=True)

    def _on_event(self, conn, event):
        if event & select.POLLOUT:
            self._flush(conn)
        if event & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = conn.sock.recv(65536)
            except socket.error as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return
                data = b""
            if not data:
                self._close(conn)
                return
            conn.inbuf += data
            while conn in conn.listener.conns and b"\n" in conn.inbuf:
                line, conn.inbuf = conn.inbuf.split(b"\n", 1)
                self._on_line(conn, line)
            if len(conn.inbuf) > MAX_LINE:
                log.warning("vm_id=%s closing a guest agent connection: a "
                            "line longer than %d bytes", conn.listener.vm_id,
                            MAX_LINE)
                self._close(conn)

    def _on_line(self, conn, line):
        vm_id = conn.listener.vm_id
        if not line.strip():
            return
        try:
            name, args = decode(line)
        except ValueError:
            log.warning("vm_id=%s ignoring a line that is no guest agent "
                        "message (%d bytes)", vm_id, len(line))
            return
        if name == "refresh":
            self._send_info(conn, force=True)
        elif name == "shutdown":
            self._shutdown(vm_id, is_reboot(args))
        else:
            # api-version, lock-screen, login (a password), log-off,
            # set-number-of-cpus, lifecycle-event...: nothing a container
            # does; the name only, never the arguments.
            log.debug("vm_id=%s ignoring guest agent command %r", vm_id,
                      name[:64])

    def _send(self, conn, name, args):
        conn.outbuf += encode(name, args)
        if len(conn.outbuf) > MAX_OUTPUT:
            log.warning("vm_id=%s closing a guest agent connection that "
                        "does not read", conn.listener.vm_id)
            self._close(conn)
            return
        self._flush(conn)

    def _flush(self, conn):
        try:
            while conn.outbuf:
                n = conn.sock.send(conn.outbuf)
                conn.outbuf = conn.outbuf[n:]
        except socket.error as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                self._close(conn)
                return
        if conn in conn.listener.conns:
            self._poll.modify(conn.sock, select.POLLIN | (
                select.POLLOUT if conn.outbuf else 0))

    def _close(self, conn):
        if conn in conn.listener.conns:
            conn.listener.conns.discard(conn)
            self._unregister(conn.sock)
            conn.sock.close()

    def _register(self, sock, obj, events):
        self._fds[sock.fileno()] = obj
        self._poll.register(sock, events)

    def _unregister(self, sock):
        try:
            fd = sock.fileno()
        except socket.error:
            return
        self._fds.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except (KeyError, ValueError):
            pass

    # What the agent says

    def _beat(self):
        from containerhooks import statsnap
        self._snapshot = statsnap.read() or {}
        news, self._news = self._news, set()
        for listener in list(self._listeners.values()):
            for conn in list(listener.conns):
                self._send_info(conn, force=listener.vm_id in news)

    def _send_info(self, conn, force=False):
        vm_id = conn.listener.vm_id
        record = self._read_state(vm_id)
        if record is None:
            return
        figures = (self._snapshot or {}).get(vm_id)
        if not isinstance(figures, dict) \
                or figures.get("container") != record.container_id:
            figures = None
        for name, args in info_messages(record):
            if force or conn.sent.get(name) != args:
                conn.sent[name] = args
                self._send(conn, name, args)
        name, args = heartbeat(record, figures)
        self._send(conn, name, args)

    def resend(self, vm_id):
        """Tell vm_id's connections everything again, at once (its
        container restarted, as a guest's agent does when it boots)."""
        self._news.add(vm_id)
        self._next_beat = 0.0

    # Shutdown and Reboot

    def _shutdown(self, vm_id, reboot):
        listener = self._listeners[vm_id]
        what = "reboot" if reboot else "shutdown"
        if listener.action is not None and listener.action.thread.is_alive():
            log.info("vm_id=%s Engine's %s: a %s runs already", vm_id, what,
                     "reboot" if listener.action.reboot else "shutdown")
            return
        log.info("vm_id=%s Engine's %s through the guest agent", vm_id, what)
        thread = threading.Thread(target=self._act, args=(vm_id, reboot),
                                  name="guest-agent-" + what)
        thread.daemon = True
        listener.action = Action(vm_id, reboot, thread)
        thread.start()

    def _act(self, vm_id, reboot):
        try:
            if reboot:
                self.reboot(vm_id)
            else:
                self.power_down(vm_id)
        except errors.Error as e:
            log.error("vm_id=%s Engine's %s failed: %s", vm_id,
                      "reboot" if reboot else "shutdown", e)
        except Exception:
            log.exception("vm_id=%s Engine's %s failed", vm_id,
                          "reboot" if reboot else "shutdown")

    def _engine_of(self, record):
        """The engine service of record's container: the socket of its OCI
        runtime (runtimes.socket), as the helper's stop and the health
        checks use; a Podman service restarts a container with its own
        runtime flags (runsc's --network=host: through another service
        its restart fails).  No runtime recorded: the engine's default
        socket, connect's one argument."""
        if record.runtime:
            return self._connect(record.engine, record.runtime)
        return self._connect(record.engine)

    def reboot(self, vm_id):
        """Restart vm_id's container; the VM stays Up."""
        record = self._read_state(vm_id)
        if record is None or record.stopping or not record.container_id:
            return
        eng = self._engine_of(record)
        if self._watcher.health.restart(vm_id, record.container_id, eng):
            log.info("vm_id=%s restarted container %s (Engine's reboot)",
                     vm_id, record.container_name)
            self.resend(vm_id)

    def power_down(self, vm_id):
        """Stop vm_id's container as Power Off does, then take the
        placeholder down the exit watcher's way; the exit record says why
        (shown where Vdsm reports the VM's end as an error, exits.py)."""
        record = self._read_state(vm_id)
        if record is None or record.stopping or not record.container_id:
            return
        eng = self._engine_of(record)
        container_id = record.container_id
        status = eng.exit_status(container_id)
        if status is None or status.status not in RUNNING:
            return      # it ended already: the watcher's usual path
        # Before the stop: the watcher's die handler then finds the
        # container's end explained (watcher.container_ended).
        exits.write(exits.record(vm_id, None, state_record=record,
                                 text=SHUTDOWN_MESSAGE))
        self._watcher.health.forget_restart(vm_id)
        timeout = self._watcher.conf.stop_timeout
        try:
            eng.stop(container_id, timeout)
        except errors.Error:
            status = eng.exit_status(container_id)
            if status is not None and status.status in RUNNING:
                exits.remove(vm_id)     # still runs: no end to explain
            raise
        status = eng.exit_status(container_id)
        code = status.exit_code if status is not None else None
        text = SHUTDOWN_MESSAGE
        if code is not None:
            text += " (exit code %d%s)" % (
                code, ", killed after stop_timeout %d s" % timeout
                if code == 128 + 9 else "")
        exits.write(exits.record(vm_id, code, state_record=record,
                                 text=text))
        log.info("vm_id=%s %s", vm_id, text)
        self._watcher.container_ended(eng, vm_id, container_id)


def _peers():
    """The uids a connection may come from (root, vdsm) and the socket's
    group (vdsm's, as the helper service's socket)."""
    try:
        user = pwd.getpwnam(helperd.ALLOWED_USER)
    except KeyError:
        log.warning("no user %s: the guest agent sockets serve root only",
                    helperd.ALLOWED_USER)
        return set([0]), 0
    return set([0, user.pw_uid]), user.pw_gid


def make_socket(path, gid, mode=SOCKET_MODE):
    """A listening unix socket at path, root:gid, mode; (socket, (st_dev,
    st_ino)).  OSError when something else is there (see the module doc)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    else:
        if not _stale_own(path, st):
            raise OSError(errno.EEXIST, "something the package did not make "
                          "is there (owner uid %d, mode %o); remove it if "
                          "nothing needs it" % (st.st_uid, st.st_mode))
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        fd = os.open(path, _O_PATH | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != 0:
                raise OSError(errno.EEXIST, "the socket made was replaced")
            # Through the descriptor: whatever vdsm renames meanwhile, this
            # changes the socket just made, never what a link points to.
            here = "/proc/self/fd/%d" % fd
            os.chown(here, 0, gid)
            os.chmod(here, mode)
        finally:
            os.close(fd)
        sock.listen(MAX_CONNECTIONS)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, (st.st_dev, st.st_ino)


def _stale_own(path, st):
    """Whether st (of path) is a socket an earlier watcher left: root's,
    and nobody listens on it."""
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != 0:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except socket.error as e:
        return e.errno == errno.ECONNREFUSED
    finally:
        probe.close()
    return False
