"""A container's CPU and memory figures, read from its cgroup in the kernel.

The stats hooks run every few seconds for every VM of the host; asking the
engine (its stats API takes about a second per container, "docker stats
--no-stream" about two) is far too slow, and the engine's socket needs root.
The kernel keeps the same figures in the container's cgroup, readable by
any user:

- find(pid, container_id) locates the cgroup of the container's first
  process (the pid the helper recorded) from /proc/<pid>/cgroup and the
  cgroup mounts in /proc/self/mountinfo, and checks that the path names
  the container's full id: a pid the kernel gave to another process after
  the container ended is never read as the container.  The engine's cgroup
  driver does not matter: cgroupfs paths (/docker/<id>,
  /libpod_parent/libpod-<id>) and systemd scopes
  (/system.slice/docker-<id>.scope, /machine.slice/libpod-<id>.scope) all
  carry the id.
- cgroup v1 (a hierarchy per controller, cpuacct and memory, mounted
  separately or together) and v2 (one unified hierarchy) are both read;
  on a hybrid host (v1 controllers plus an empty v2 hierarchy, as this
  project's CI machine) the v1 controllers are the ones that count.

Files read, as the kernel documents them
(Documentation/admin-guide/cgroup-v1/cpuacct.rst, memory.rst;
Documentation/admin-guide/cgroup-v2.rst):

    v1  cpuacct.stat            user, system (USER_HZ ticks)
        memory.stat             total_rss + total_cache: the memory in use
                                (memory.rst 5.5: usage_in_bytes is a fuzzy
                                value, RSS+CACHE the exact one), and
                                total_inactive_file (reclaimable cache)
    v2  cpu.stat                usage_usec, user_usec, system_usec
        memory.current          memory charged to the cgroup
        memory.stat             inactive_file

"Used" memory is the charge minus the inactive file cache, as "docker
stats" and the kubelet count it: cache the kernel drops first is not
what a container needs.
"""

import collections
import os

from containerhooks import errors

# Tests point these at a tree laid out as the kernel lays it out.
PROC = "/proc"

_USER_HZ = os.sysconf("SC_CLK_TCK")

Cpu = collections.namedtuple("Cpu", "user_ns, system_ns")
Memory = collections.namedtuple("Memory", "usage, inactive_file")

# A cgroup mount: its root inside the hierarchy, where it is mounted, and
# the v1 controllers it carries (None for the v2 hierarchy).
Mount = collections.namedtuple("Mount", "root, point, controllers")


class CGroup(object):
    """The cgroup directories of one container, per controller."""

    def __init__(self, version, cpu_dir, memory_dir):
        self.version = version
        self.cpu_dir = cpu_dir
        self.memory_dir = memory_dir

    def cpu(self):
        """Cumulative CPU time of the container, user and system."""
        if self.version == 1:
            values = _keyed(os.path.join(self.cpu_dir, "cpuacct.stat"))
            tick = 10 ** 9 // _USER_HZ
            return Cpu(user_ns=values["user"] * tick,
                       system_ns=values["system"] * tick)
        values = _keyed(os.path.join(self.cpu_dir, "cpu.stat"))
        return Cpu(user_ns=values["user_usec"] * 1000,
                   system_ns=values["system_usec"] * 1000)

    def memory(self):
        stat = _read(os.path.join(self.memory_dir, "memory.stat"))
        if self.version == 1:
            return Memory(usage=_key(stat, "total_rss")
                          + _key(stat, "total_cache"),
                          inactive_file=_key(stat, "total_inactive_file"))
        usage = int(_read(os.path.join(self.memory_dir, "memory.current")))
        return Memory(usage=usage, inactive_file=_key(stat, "inactive_file"))

    def __repr__(self):
        return "<CGroup v%d cpu=%s memory=%s>" % (
            self.version, self.cpu_dir, self.memory_dir)


def find(pid, container_id, mounts=None):
    """The CGroup of container_id, whose first process is pid.

    mounts: the result of cgroup_mounts(), read once per hook run when
    many containers are looked up.  Raises errors.CGroupError.
    """
    if not pid or not container_id:
        raise errors.CGroupError(pid=pid, container=container_id,
                                 reason="no process or container id recorded")
    if mounts is None:
        mounts = cgroup_mounts()
    try:
        with open(os.path.join(PROC, str(pid), "cgroup")) as f:
            lines = f.read().splitlines()
    except (IOError, OSError) as e:
        raise errors.CGroupError(pid=pid, container=container_id,
                                 reason="the process is gone (%s)"
                                 % e.strerror)
    v1 = {}
    unified = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            unified = path
        else:
            for name in controllers.split(","):
                v1[name] = path
    if "cpuacct" in v1 and "memory" in v1:
        cgroup = CGroup(1, _directory(mounts, "cpuacct", v1["cpuacct"]),
                        _directory(mounts, "memory", v1["memory"]))
    elif unified is not None:
        path = _directory(mounts, None, unified)
        cgroup = CGroup(2, path, path)
    else:
        raise errors.CGroupError(pid=pid, container=container_id,
                                 reason="no cpuacct and memory controllers "
                                 "and no cgroup v2 hierarchy")
    for d in (cgroup.cpu_dir, cgroup.memory_dir):
        if d is None:
            raise errors.CGroupError(pid=pid, container=container_id,
                                     reason="its cgroup hierarchy is not "
                                     "mounted")
        if container_id not in d:
            raise errors.CGroupError(pid=pid, container=container_id,
                                     reason="the process is in cgroup %s, "
                                     "not the container's" % d)
    return cgroup


def cgroup_mounts():
    """The cgroup mounts of this mount namespace: {controller: Mount}, with
    the v2 hierarchy under the key None."""
    mounts = {}
    with open(os.path.join(PROC, "self", "mountinfo")) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            fstype = fields[sep + 1]
            if fstype == "cgroup2":
                mounts.setdefault(None, Mount(_unescape(fields[3]),
                                              _unescape(fields[4]), None))
            elif fstype == "cgroup":
                options = fields[sep + 3].split(",")
                mount = Mount(_unescape(fields[3]), _unescape(fields[4]),
                              options)
                for name in options:
                    mounts.setdefault(name, mount)
    return mounts


def _directory(mounts, controller, path):
    mount = mounts.get(controller)
    if mount is None:
        return None
    # A mount may show a subtree only (its root is not "/"), as inside a
    # container; the process's path is relative to the hierarchy's root.
    root = mount.root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return mount.point.rstrip("/") + "/" + path.lstrip("/")


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _read(path):
    # Plain os.read: a stats call reads three files per container VM, and
    # a file object's buffering and decoding cost more than the read.
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _key(text, key):
    """One value of a flat keyed file's text (bytes), 0 if the kernel has
    no such key."""
    text = b"\n" + text
    token = b"\n" + key.encode("ascii") + b" "
    start = text.find(token)
    if start < 0:
        return 0
    start += len(token)
    end = text.find(b"\n", start)
    return int(text[start:end if end >= 0 else None])


def _keyed(path):
    """A flat keyed file ("key value" lines) as {key: int}."""
    values = {}
    for line in _read(path).decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            pass
    return values
