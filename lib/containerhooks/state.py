"""Per-VM state files: what the root helper started for which VM.

One JSON file per VM in paths.STATE_DIR, written atomically by the helper
(root, mode 0644) and read by every hook (vdsm), so the destroy and stats
hooks never need the custom properties, and nothing depends on the memory
of the process that started the container.  A lock file per VM keeps two
starts or stops of the same VM apart.

The state is also the root side's proof of what the package made: a
container is the package's only if a record here names it (owns()), never
because its labels say so -- labels come from the image too, and a
container anyone runs by hand from a VM's image carries them.  Only root
can write here: the directory is root's, mode 0755 (the RPM's tmpfiles.d
entry, or ensure_dir()), and Lock refuses one anybody else could write.

This module is the directory's one owner: the names of its files (path,
watcher_status_path, volumes_dir), the one look at it (listing), the
record's fields (Record), the one atomic write (write_file, also for the
files kept elsewhere), the host-wide address lock and the addresses the
records reserve.  Other modules ask here; they do not name, list or parse
these files themselves (exits.py builds and reads the exit records).
"""

import binascii
import collections
import errno
import fcntl
import json
import logging
import os
import re
import stat

from containerhooks import errors
from containerhooks import paths

log = logging.getLogger("containerhooks.state")

# The kinds of files in paths.STATE_DIR.  Every name there is made here.
STATE = ".json"          # <vm id>.json: the VM's record (read, write)
LOCK = ".lock"           # <vm id>.lock: its start/stop lock (Lock)
EXIT = ".exit"           # <vm id>.exit: how its container ended (exits.py)
HEALTH = ".health"       # <vm id>.health: its health, watchdog (health.py)
WATCHER_STATUS = "watcher.status"    # what the watcher knows (watcher.py)
STATS_SNAPSHOT = "stats.snapshot"    # every container VM's figures (statsnap.py)
ADDRESS_LOCK = "network.lock"        # host-wide address allocation lock
VOLUMES = "volumes"      # volumes.py's mounts and journals, root only
CONSOLES = "consoles"    # console.py's sockets, root only

UUID_RE = re.compile(
    r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}\Z")


# six.string_types, without importing six (a twentieth of a stats hook's
# imports): str and unicode on Python 2, str on 3.
_STRINGS = (str, type(u""))


def is_id(value):
    """Whether value is a VM id (a UUID)."""
    return isinstance(value, _STRINGS) and bool(UUID_RE.match(value))


def valid_id(vm_id):
    """vm_id, if it is a VM id; else BadVmId.

    Every path the package makes from a VM id goes through here: an id
    from a container label, a file name or a caller could otherwise be
    "../../etc/x" or "/etc/x", which os.path.join follows.
    """
    if not is_id(vm_id):
        raise errors.BadVmId(vm_id=vm_id)
    return vm_id


def path(vm_id, kind=STATE):
    """The file of kind (STATE, LOCK, EXIT) of vm_id; BadVmId if vm_id is
    no VM id."""
    return os.path.join(paths.STATE_DIR, valid_id(vm_id) + kind)


def watcher_status_path():
    """Where the watcher keeps what it knows of the engines."""
    return os.path.join(paths.STATE_DIR, WATCHER_STATUS)


def stats_snapshot_path():
    return os.path.join(paths.STATE_DIR, STATS_SNAPSHOT)


def volumes_dir():
    """Where volumes.py mounts the VMs' disks and keeps its journals."""
    return os.path.join(paths.STATE_DIR, VOLUMES)


def consoles_dir():
    """Where console.py makes the VMs' console sockets (root only) before
    it links them where ovirt-vmconsole looks for them."""
    return os.path.join(paths.STATE_DIR, CONSOLES)


Listing = collections.namedtuple("Listing", "states locks exits healths")


def listing():
    """The VM ids with a state file, a lock file, an exit record, a health
    record (sets):
    one look at the state directory.  Temporary files (".<...>") and
    names that are no VM id are none of these."""
    result = Listing(set(), set(), set(), set())
    try:
        names = os.listdir(paths.STATE_DIR)
    except OSError:
        return result
    kinds = {STATE: result.states, LOCK: result.locks, EXIT: result.exits,
             HEALTH: result.healths}
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        found = kinds.get(dot + suffix)
        if found is not None and is_id(stem):
            found.add(stem)
    return result


def write_file(target, data, mode=0o644, prefix=None):
    """Write data (text) to target atomically, as mode.

    create_temp makes a new file (O_EXCL: it follows no symlink) in
    target's directory, and rename replaces a link rather than following
    it: a reader sees the old file or the new one, never half of one.
    IOError or OSError on failure, with nothing left behind."""
    directory, name = os.path.split(target)
    fd, tmp = create_temp(directory, prefix or "." + name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.rename(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def create_temp(directory, prefix):
    """A new file in directory, open for writing: (fd, path).

    As tempfile.mkstemp makes one (a random name, O_EXCL so that it never
    opens an existing file or follows a link, mode 0600), without importing
    tempfile (shutil, random): a tenth of a stats hook's imports.  Also
    hookenv.replace_data's."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(
        os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(directory, prefix + binascii.hexlify(
            os.urandom(8)).decode("ascii"))
        try:
            return os.open(name, flags, 0o600), name
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
    raise OSError(errno.EEXIST, "no unused temporary name", directory)


def _unlink_quietly(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _none():
    return None


class Record(object):
    """A VM's state record: what the helper started for it.

    The fields are declared here, each with its default; record.<field>
    reads one, assigning it sets it.  A file written by another version
    of the package reads as a Record too: a field it lacks reads as its
    default, and a key this version does not know is kept and written
    back (a host upgraded under running VMs keeps their records whole).
    Only the keys given or set are written, as before: a start's record
    gains "pid" when the container runs (tests wait for it).
    """

    # name: the default's factory (lists fresh each time).
    FIELDS = {
        "vm_id": _none,
        "vm_name": _none,
        "engine": _none,
        "image": _none,
        # The container, once made; its name is reserved before that.
        "container_id": _none,
        "container_name": _none,
        "memory_mib": _none,
        "vcpus": _none,
        # spec.hostname's; absent in records older than it (has()).
        "hostname": _none,
        # The Initial Run's FQDN (domxml cloud_init_fqdn), or None: what
        # Engine shows as guestFQDN when set (the hostname may be its
        # first label only, spec.host_names).
        "fqdn": _none,
        "created": _none,
        # The addresses reserved (network.plan), the interfaces made
        # (network.finish: dicts), the volumes mounted (volumes.attach:
        # dicts), the image's VOLUMEs no disk covers.
        "ips": list,
        "nics": list,
        "volumes": list,
        "unmapped_volumes": list,
        # The image the container runs: its id, and the digest of the
        # manifest it was pulled by (engine.repo_digest; None for an image
        # from no registry).  What runs, whatever the tag says now.  For
        # containerImage=disk:..., the id of the image the disk's archive
        # holds (diskimage.py), and no digest.
        "image_id": _none,
        "image_digest": _none,
        # The names (never the values) of the container's variables that
        # came from host secrets (appconfig.secret_keys): the watcher
        # redacts their values from the exit message (lastwords.py).
        "secret_keys": list,
        # The container's first process, once it runs.
        "pid": _none,
        # The action of the VM's watchdog device (health.ACTIONS), None
        # without one: what the watcher does when the container's health
        # check fails (health.py).
        "watchdog": _none,
        # Whether the VM has Engine's serial console (ovirt-vmconsole), and
        # whether its container got a terminal and an open stdin for it:
        # the watcher serves the console's socket (console.py).
        "console": bool,
        "tty": bool,
        # Whether the watcher serves the VM's oVirt guest agent channel
        # (guestagent.py): the start hook moved the placeholder's.
        "guest_agent": bool,
        # The OCI runtime the container runs on (runtimes.KNOWN), as the
        # host shows it (runtimes.identify); chosen before the container
        # exists (None: the engine's default, not yet proven).  Also which
        # engine service handles the container (runtimes.socket).
        "runtime": _none,
        # Set by a stop: the watcher ignores the container's end.
        "stopping": bool,
        # A migration (migration.py): {"outgoing": time} on the source
        # from its first hook on; {"incoming": time} on the destination,
        # a record with addresses reserved and no container yet.
        "migration": _none,
    }

    __slots__ = ("_data",)

    def __init__(self, **fields):
        for name in fields:
            if name not in self.FIELDS:
                raise TypeError("Record has no field %r" % name)
        object.__setattr__(self, "_data", fields)

    @classmethod
    def from_dict(cls, data):
        """A Record of data (a JSON object), unknown keys included."""
        record = cls()
        object.__setattr__(record, "_data", dict(data))
        return record

    def to_dict(self):
        """The record as JSON data: the keys given or set, unknown ones
        included."""
        return dict(self._data)

    def has(self, name):
        """Whether the record holds name (not just its default)."""
        return name in self._data

    def __getattr__(self, name):
        try:
            default = Record.FIELDS[name]
        except KeyError:
            raise AttributeError(name)
        data = object.__getattribute__(self, "_data")
        return data[name] if name in data else default()

    def __setattr__(self, name, value):
        if name not in self.FIELDS:
            raise AttributeError("Record has no field %r" % name)
        self._data[name] = value

    def __eq__(self, other):
        return isinstance(other, Record) and self._data == other._data

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return "Record(%r)" % (self._data,)


def read(vm_id):
    """The state of vm_id (a Record), or None (also for what is not a VM
    id: no state of the helper's has such a name)."""
    return read_with_version(vm_id)[0]


def read_with_version(vm_id):
    """(record, version) of vm_id's state: read() and the version() of
    the very file it was read from, or (None, None)."""
    if not is_id(vm_id):
        return None, None
    try:
        # Raw reads: the stats hooks read container VMs' states on each
        # call, and a file object costs more than the read.  (json takes
        # the bytes on Python 3.6+, a str on 2.7.)
        fd = os.open(path(vm_id), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            found = _version(os.fstat(fd))
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = json.loads(b"".join(chunks))
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None, None
        raise errors.StateError(action="read", vm_id=vm_id, reason=str(e))
    except ValueError as e:
        raise errors.StateError(action="read", vm_id=vm_id, reason=str(e))
    if not isinstance(data, dict):
        raise errors.StateError(action="read", vm_id=vm_id,
                                reason="not a JSON object")
    return Record.from_dict(data), found


def version(vm_id):
    """What tells vm_id's state file as it is now from any other (a JSON
    list), or None when there is none: one stat(), where read() opens,
    reads and parses.

    A record is never changed in place: every write makes a new file and
    renames it over the old one (write_file).  The file's inode number,
    change time (which the kernel sets on any change to an inode: its
    creation, a write, a chmod, the rename) and size are the version: the
    same version is the same file, unchanged -- the same record.  A new
    record could only have the old one's version if it reused the old
    inode number and were renamed into place within the same tick of the
    kernel's clock as the old one (or the clock were set back to that very
    nanosecond): a record of another container is written only after the
    VM was stopped and the engine made the new container, far longer than
    a tick."""
    if not is_id(vm_id):
        return None
    try:
        return _version(os.stat(path(vm_id)))
    except OSError:
        return None


def _version(st):
    # st_ctime_ns from Python 3.3; 2.7's float keeps microseconds, finer
    # than the kernel clock's tick.
    return [st.st_dev, st.st_ino, getattr(st, "st_ctime_ns", st.st_ctime),
            st.st_size]


def exists(vm_id):
    """Whether vm_id has a state file (never, if it is no VM id).

    Questions about what is not a VM id (a label of a container made by
    hand, Vdsm's vmId of any VM) have the answer "no"; writing, removing
    and locking refuse it (path)."""
    return is_id(vm_id) and os.path.exists(path(vm_id))


def owns(record, engine, container):
    """Whether the state record names container (an engine.ContainerInfo)
    on engine: the package made it for the record's VM.

    By its id once the helper recorded it; before that (a start killed
    between creating the container and recording its id), by the name the
    record reserved: the start removed whatever held that name before it
    created its own (helper._clear_leftover).
    """
    if not isinstance(record, Record) or record.engine != engine:
        return False
    if record.container_id:
        return record.container_id == container.id
    return bool(record.container_name) \
        and record.container_name == container.name


def write(vm_id, record):
    """Write record (a Record, or its dict) as vm_id's state."""
    target = path(vm_id)
    if isinstance(record, Record):
        record = record.to_dict()
    data = json.dumps(record, sort_keys=True)
    try:
        ensure_dir()
        write_file(target, data, prefix="." + vm_id)
    except (IOError, OSError) as e:
        raise write_error(vm_id, e, paths.STATE_DIR)


def write_error(vm_id, e, directory):
    """The StateError of a failed write in directory (a full /run...)."""
    return errors.StateError(
        action="write", vm_id=vm_id, reason="%s in %s; free space there"
        % (e.strerror or e, directory))


def remove(vm_id):
    _unlink(path(vm_id))


def vm_ids():
    """The VM ids that have a state file."""
    return sorted(listing().states)


def lock_ids():
    """The VM ids that have a lock file: a start or stop of the VM runs,
    succeeded (the lock stays while the VM runs) or was killed."""
    return sorted(listing().locks)


def lock_exists(vm_id):
    return is_id(vm_id) and os.path.exists(path(vm_id, LOCK))


def lock_mtime(vm_id):
    """When vm_id's lock file was made (0 if it is gone)."""
    if not is_id(vm_id):
        return 0
    try:
        return os.stat(path(vm_id, LOCK)).st_mtime
    except OSError:
        return 0


class Lock(object):
    """An exclusive, non-blocking per-VM lock (flock on a file)."""

    def __init__(self, vm_id):
        self.vm_id = vm_id
        self._fd = None

    def __enter__(self):
        try:
            ensure_dir()
            _check_dir()
            self._fd = os.open(path(self.vm_id, LOCK),
                               os.O_RDWR | os.O_CREAT, 0o600)
        except (IOError, OSError) as e:
            raise errors.StateError(
                action="lock", vm_id=self.vm_id, reason="%s in %s"
                % (e.strerror or e, paths.STATE_DIR))
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as e:
            os.close(self._fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise errors.StateError(
                    action="lock", vm_id=self.vm_id,
                    reason="another start or stop of this VM is running")
            raise
        return self

    def release(self, remove=False):
        """Unlock; with remove, delete the lock file first (while held)."""
        if remove:
            _unlink(path(self.vm_id, LOCK))
        os.close(self._fd)
        self._fd = None

    def __exit__(self, *exc):
        if self._fd is not None:
            self.release()


class AddressLock(object):
    """One lock for all address allocations on this host (flock on
    STATE_DIR/network.lock, blocking): network.py reserves a VM's
    addresses (in its record, write) while holding it."""

    def __enter__(self):
        ensure_dir()
        self._fd = os.open(os.path.join(paths.STATE_DIR, ADDRESS_LOCK),
                           os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self._fd)


def reserved_ips(exclude=None):
    """The addresses the records of all VMs but exclude hold (call it
    under AddressLock)."""
    taken = set()
    for vm_id in vm_ids():
        if vm_id == exclude:
            continue
        try:
            record = read(vm_id)
            taken.update(record.ips if record else ())
        except errors.StateError as e:
            # One VM's broken state file must not stop every other start;
            # its addresses stay unknown (gc or its destroy removes it).
            log.error("vm_id=%s ignoring unreadable state: %s", vm_id, e)
    return taken


def ensure_dir():
    """Create the state directory (tmpfiles.d makes it at boot)."""
    try:
        os.makedirs(paths.STATE_DIR, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def _check_dir():
    """Refuse a state directory that anyone but root could write: what is
    in it decides what root stops, unmounts and deletes."""
    st = os.lstat(paths.STATE_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 \
            or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise errors.StateError(
            action="trust", vm_id="any", reason="%s is not a directory only "
            "root can write (owner uid %d, mode %o); make it root:root, "
            "mode 0755" % (paths.STATE_DIR, st.st_uid,
                            stat.S_IMODE(st.st_mode)))


def read_json_file(path):
    """The JSON object in path (a dict), or None when it is absent,
    unreadable, a symbolic link or not an object: the per-VM files beside
    the record (exit records, health records) are read this way."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_file(path):
    """Remove path; one that is already gone is fine."""
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


_unlink = remove_file
