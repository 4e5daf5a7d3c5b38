"""Per-VM state files: what the root helper started for which VM.

One JSON file per VM in paths.STATE_DIR, written atomically by the helper
(root, mode 0644) and read by every hook (vdsm), so the destroy and stats
hooks never need the custom properties, and nothing depends on the memory
of the process that started the container.  A lock file per VM keeps two
starts or stops of the same VM apart.
"""

import errno
import fcntl
import json
import os
import re
import tempfile

import six

from containerhooks import errors
from containerhooks import paths


# A VM id is Vdsm's domain uuid (spec.vm_id accepts the same).  It becomes
# part of file names here and in exits.py: an absolute or "../" id in
# os.path.join would name any file of the host.
_VM_ID_RE = re.compile(
    r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}\Z")


def is_vm_id(value):
    """Whether value is a VM id (a UUID), safe to use in a file name."""
    return isinstance(value, six.string_types) \
        and _VM_ID_RE.match(value) is not None


def check_vm_id(value):
    """value if it is a VM id; else errors.InvalidVmId."""
    if not is_vm_id(value):
        raise errors.InvalidVmId(value=value)
    return value


def _path(vm_id, suffix=".json"):
    return os.path.join(paths.STATE_DIR, check_vm_id(vm_id) + suffix)


def read(vm_id):
    """The state of vm_id as a dict, or None (also for what is not a VM
    id: no state of the helper's has such a name)."""
    if not is_vm_id(vm_id):
        return None
    try:
        # Raw reads: the stats hooks read every container VM's state on
        # each call, and a file object costs more than the read.  (json
        # takes the bytes on Python 3.6+, a str on 2.7.)
        fd = os.open(_path(vm_id), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return json.loads(b"".join(chunks))
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None
        raise errors.StateError(action="read", vm_id=vm_id, reason=str(e))
    except ValueError as e:
        raise errors.StateError(action="read", vm_id=vm_id, reason=str(e))


def exists(vm_id):
    # Questions about what is not a VM id (a label of a container made by
    # hand, Vdsm's vmId of any VM) have the answer "no"; writing, removing
    # and locking refuse it (_path).
    return is_vm_id(vm_id) and os.path.exists(_path(vm_id))


def write(vm_id, state):
    try:
        ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=paths.STATE_DIR, prefix="." + vm_id)
    except (IOError, OSError) as e:
        raise write_error(vm_id, e, paths.STATE_DIR)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.rename(tmp, _path(vm_id))
    except (IOError, OSError) as e:
        _unlink(tmp)
        raise write_error(vm_id, e, paths.STATE_DIR)
    except Exception:
        _unlink(tmp)
        raise


def write_error(vm_id, e, directory):
    """The StateError of a failed write in directory (a full /run...)."""
    return errors.StateError(
        action="write", vm_id=vm_id, reason="%s in %s; free space there"
        % (e.strerror or e, directory))


def remove(vm_id):
    _unlink(_path(vm_id))


def vm_ids():
    """The VM ids that have a state file."""
    try:
        names = os.listdir(paths.STATE_DIR)
    except OSError:
        return []
    return [n[:-5] for n in names if n.endswith(".json")
            and is_vm_id(n[:-5])]


def lock_ids():
    """The VM ids that have a lock file: a start or stop of the VM runs,
    succeeded (the lock stays while the VM runs) or was killed."""
    try:
        names = os.listdir(paths.STATE_DIR)
    except OSError:
        return []
    return [n[:-5] for n in names if n.endswith(".lock")
            and is_vm_id(n[:-5])]


def lock_exists(vm_id):
    return is_vm_id(vm_id) and os.path.exists(_path(vm_id, ".lock"))


def lock_mtime(vm_id):
    """When vm_id's lock file was made (0 if it is gone)."""
    if not is_vm_id(vm_id):
        return 0
    try:
        return os.stat(_path(vm_id, ".lock")).st_mtime
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
            self._fd = os.open(_path(self.vm_id, ".lock"),
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
            _unlink(_path(self.vm_id, ".lock"))
        os.close(self._fd)
        self._fd = None

    def __exit__(self, *exc):
        if self._fd is not None:
            self.release()


def ensure_dir():
    """Create the state directory (tmpfiles.d makes it at boot)."""
    try:
        os.makedirs(paths.STATE_DIR, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def remove_file(path):
    """Remove path; one that is already gone is fine."""
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


_unlink = remove_file
