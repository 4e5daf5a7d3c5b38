"""What /proc tells about processes: network counters, qemu processes.

- net_dev(pid): the interface counters of the network namespace a process
  lives in (/proc/<pid>/net/dev, readable by any user), so the stats hooks
  read a container's traffic without entering its namespace.
- find_qemu(vm_id): the qemu process libvirt runs for a domain; the exit
  watcher kills it when the VM's container ends (see watcher.py for why
  not through libvirt), with kill() that re-checks it is still the same
  process.
- container_init(pid, container_id): the recorded first process of a
  container, if it still is one of that container (the watcher kills it
  when the engine cannot stop the container).

A command line is whatever a process says it is: a container's process
can call itself "qemu-system-x86_64 -uuid <another VM>".  So a qemu is
found from libvirt's own record, the pid file its qemu driver writes for
each running domain (/run/libvirt/qemu/<domain name>.pid, root's, made by
the qemu process itself right after libvirt forked it: virExec writes
cmd->pidfile in the daemonized child), and the command line only confirms
that this process is the domain of that uuid.  A pid file outlives its
process when libvirtd dies with it; the pid may then be reused, by a
process started after the file was written, which the start time tells.
"""

import collections
import errno
import os
import signal
from stat import S_ISREG

from containerhooks import paths

# Tests point these elsewhere.
PROC = "/proc"
# The libvirt qemu driver's state directory (paths.QEMU_RUN).
QEMU_RUN = paths.QEMU_RUN

# How much later than its pid file a qemu process may seem to start: the
# boot time in /proc/stat is whole seconds.
START_SLACK = 2.0

# A process, named so that it cannot be mistaken for a later one with the
# same pid: start is field 22 of /proc/<pid>/stat, clock ticks since boot.
Process = collections.namedtuple("Process", "pid, start")

# One interface's cumulative counters, as the kernel counts them.
NetDev = collections.namedtuple(
    "NetDev", "rx_bytes, rx_errors, rx_dropped, tx_bytes, tx_errors, "
    "tx_dropped")


def net_dev(pid):
    """{interface name: NetDev} of pid's network namespace."""
    result = {}
    with open(os.path.join(PROC, str(pid), "net", "dev")) as f:
        lines = f.read().splitlines()
    # Two header lines, then "name: rx bytes packets errs drop fifo frame
    # compressed multicast tx bytes packets errs drop fifo colls carrier
    # compressed" (net/core/net-procfs.c).
    for line in lines[2:]:
        name, _, counters = line.partition(":")
        values = counters.split()
        if len(values) < 12:
            continue
        result[name.strip()] = NetDev(
            rx_bytes=int(values[0]), rx_errors=int(values[2]),
            rx_dropped=int(values[3]), tx_bytes=int(values[8]),
            tx_errors=int(values[10]), tx_dropped=int(values[11]))
    return result


def alive(pid):
    """Whether pid is a process that has not exited (zombies count as
    exited)."""
    try:
        with open(os.path.join(PROC, str(pid), "stat")) as f:
            stat = f.read()
    except (IOError, OSError):
        return False
    # The state follows the command name, which may hold spaces and ")".
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X", "")


def start_time(pid):
    """When pid started (clock ticks since boot), or None if it is gone
    or a zombie."""
    try:
        with open(os.path.join(PROC, str(pid), "stat")) as f:
            stat = f.read()
    except (IOError, OSError):
        return None
    # After the command name, which may hold spaces and ")": field 3
    # (state) first, so field 22 (starttime) is the 20th.
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _boot_time():
    with open(os.path.join(PROC, "stat")) as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise ValueError("no btime in %s/stat" % PROC)


def _cmdline(pid):
    try:
        with open(os.path.join(PROC, str(pid), "cmdline"), "rb") as f:
            return f.read().split(b"\0")
    except (IOError, OSError) as e:
        if e.errno in (errno.ENOENT, errno.ESRCH, errno.EACCES):
            return []
        raise


def _domain_uuid(args):
    """The "-uuid" of a qemu command line (lower case), or None."""
    if not args or b"qemu" not in os.path.basename(args[0]):
        return None
    for i, arg in enumerate(args[:-1]):
        if arg == b"-uuid":
            return args[i + 1].decode("ascii", "replace").lower()
    return None


def _pid_files():
    """(pid, mtime) of each pid file of libvirt's qemu driver: regular
    files of root's, not links."""
    try:
        names = os.listdir(QEMU_RUN)
    except OSError:
        return
    for name in names:
        if not name.endswith(".pid") or name == "driver.pid":
            continue
        path = os.path.join(QEMU_RUN, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                st = os.fstat(fd)
                data = os.read(fd, 32)
            finally:
                os.close(fd)
        except OSError:
            continue            # the domain ended meanwhile
        if st.st_uid != 0 or not S_ISREG(st.st_mode):
            continue
        try:
            yield int(data.strip()), st.st_mtime
        except ValueError:
            continue            # being written


def qemu_processes():
    """{vm id: Process} of the qemu processes libvirt runs."""
    found = {}
    boot = None
    for pid, written in _pid_files():
        uuid = _domain_uuid(_cmdline(pid))
        if uuid is None:
            continue
        start = start_time(pid)
        if start is None:
            continue
        if boot is None:
            boot = _boot_time()
        if boot + float(start) / os.sysconf("SC_CLK_TCK") \
                > written + START_SLACK:
            continue            # a later process that got a stale pid
        found[uuid] = Process(pid, start)
    return found


def find_qemu_process(vm_id):
    """The Process of the qemu libvirt runs for domain vm_id, or None."""
    return qemu_processes().get(vm_id.lower())


def find_qemu(vm_id):
    """The pid of the qemu process running domain vm_id, or None."""
    found = find_qemu_process(vm_id)
    return None if found is None else found.pid


def container_init(pid, container_id):
    """The Process of pid if it is a live process of the container whose
    (64 hex digits) id is container_id, as the kernel's cgroup record of
    the process says; else None.  pid is what root recorded when it
    started the container (the engine's State.Pid)."""
    if not pid or not container_id or len(container_id) != 64:
        return None
    start = start_time(pid)
    if start is None:
        return None
    try:
        with open(os.path.join(PROC, str(pid), "cgroup")) as f:
            cgroups = f.read()
    except (IOError, OSError):
        return None
    if container_id not in cgroups:
        return None
    return Process(int(pid), start)


def kill(process, signo=signal.SIGKILL):
    """Send signo to process if its pid is still that process (the same
    start time, read right before); return whether it was sent."""
    return _signal(process, lambda pid: os.kill(pid, signo))


def kill_group(process, signo=signal.SIGKILL):
    """Send signo to the process group process leads, or to process alone
    when it leads none, if its pid is still that process; return whether
    it was sent."""
    def send(pid):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signo)
        else:
            os.kill(pid, signo)
    return _signal(process, send)


def _signal(process, send):
    """send(pid) if process's pid is still that process: the same start
    time, read right before (a later process that got the pid is never
    signalled); return whether it was sent (not when the process is gone,
    or went meanwhile: ESRCH)."""
    if start_time(process.pid) != process.start:
        return False
    try:
        send(process.pid)
    except OSError as e:
        if e.errno == errno.ESRCH:
            return False
        raise
    return True
