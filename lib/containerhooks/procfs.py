"""What /proc tells about processes: network counters, qemu processes.

- net_dev(pid): the interface counters of the network namespace a process
  lives in (/proc/<pid>/net/dev, readable by any user), so the stats hooks
  read a container's traffic without entering its namespace.
- find_qemu(vm_id): the qemu process libvirt runs for a domain, found by
  the "-uuid <vm id>" libvirt always passes; the exit watcher kills it
  when the VM's container ends (see watcher.py for why not through
  libvirt).
"""

import collections
import errno
import os

# Tests point this elsewhere.
PROC = "/proc"

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


def find_qemu(vm_id):
    """The pid of the qemu process running domain vm_id, or None."""
    wanted = vm_id.lower().encode("ascii")
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(PROC, name, "cmdline"), "rb") as f:
                args = f.read().split(b"\0")
        except (IOError, OSError) as e:
            if e.errno in (errno.ENOENT, errno.ESRCH, errno.EACCES):
                continue
            raise
        if b"qemu" not in os.path.basename(args[0]):
            continue
        for i, arg in enumerate(args[:-1]):
            if arg == b"-uuid" and args[i + 1].lower() == wanted:
                return int(name)
    return None
