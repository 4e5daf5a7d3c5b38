"""The VM's own disks, mounted into the container (volumeMap).

The root helper attaches each disk of spec.volumes before it creates the
container: an image file (a raw disk on file storage) is locked against
every other user on any host (disklock.py) and goes to a loop device,
which holds the lock as long as it exists; a block device (a raw disk on
block storage) is used as is; a file system on it is mounted, a blank
disk is formatted first (hostdisk.NEW_FILESYSTEM); anything else is
refused, never formatted.  The mount points are
paths.STATE_DIR/volumes/<vm id>/<disk>, and the container gets them as
bind mounts at the paths volumeMap names.

What is attached is written down as it happens, in a journal per VM
(paths.STATE_DIR/volumes/<vm id>.json), before each step that creates
something: detach() finds everything from the journal and the mount table,
even after a failed start or a helper that was killed halfway, and undoes
it all, trying every step even when one fails.

The interface the helper uses:

- attach(spec, conf) -> list of JSON-able dicts, one per mounted volume
  (recorded in the VM's state file);
- container_options(attached) -> HostConfig options (bind mounts);
- detach(vm_id, attached): unmount and release everything attached for
  vm_id; quiet when nothing is there.
"""

import errno
import json
import logging
import os
import re

from containerhooks import disklock
from containerhooks import errors
from containerhooks import hostdisk
from containerhooks import state

log = logging.getLogger("containerhooks.volumes")

_DISK_RE = re.compile(r"\A[a-z]{2,6}\Z")


def volumes_dir():
    return state.volumes_dir()


def vm_dir(vm_id):
    """Where vm_id's disks are mounted, one directory per disk."""
    return os.path.join(volumes_dir(), state.valid_id(vm_id))


def _journal_path(vm_id):
    return os.path.join(volumes_dir(), state.valid_id(vm_id) + ".json")


def vm_ids():
    """The VM ids that have mounts or a journal here (gc's leftovers)."""
    try:
        names = os.listdir(volumes_dir())
    except OSError:
        return []
    ids = set(n[:-5] if n.endswith(".json") else n for n in names)
    return sorted(i for i in ids if state.is_id(i))


def attach(spec, conf, incoming=False):
    """Mount spec's volumes; undo everything if one fails.  incoming: on
    the destination of a migration (hostdisk.open_source)."""
    if not spec.volumes:
        return []
    if os.path.exists(_journal_path(spec.vm_id)) \
            or os.path.isdir(vm_dir(spec.vm_id)):
        log.info("vm_id=%s releasing volumes left by an earlier run",
                 spec.vm_id)
        detach(spec.vm_id, [])
    _makedirs(vm_dir(spec.vm_id))
    journal = []
    try:
        for volume in spec.volumes:
            _attach_one(spec.vm_id, volume, conf, journal, incoming)
    except BaseException:
        log.error("vm_id=%s attaching volumes failed, releasing them",
                  spec.vm_id)
        try:
            detach(spec.vm_id, journal)
        except Exception:
            log.exception("vm_id=%s releasing volumes failed", spec.vm_id)
        raise
    return journal


def _attach_one(vm_id, volume, conf, journal, incoming=False):
    source, fd = hostdisk.open_source(volume, conf, incoming)
    try:
        entry = {
            "disk": volume.disk, "path": volume.path, "kind": volume.kind,
            "source": source.path, "ino": source.ino, "device": None,
            "loop": None, "mountpoint": os.path.join(vm_dir(vm_id),
                                                     volume.disk),
            "fstype": None, "formatted": False,
        }
        journal.append(entry)
        _save(vm_id, journal)
        if volume.kind == "file":
            # Locked before anything of it is attached; the loop device
            # then holds the lock until it is detached (disklock.py).
            locked = disklock.lock(volume.disk, fd, readers=incoming)
            try:
                entry["loop"] = entry["device"] = hostdisk.attach_loop(
                    source, locked)
            finally:
                os.close(locked)
            _save(vm_id, journal)
            fstype = hostdisk.filesystem(volume.disk, entry["device"],
                                         image_fd=fd,
                                         timeout=conf.blank_check_timeout)
        else:
            entry["device"] = source.path
            fstype = hostdisk.filesystem(volume.disk, entry["device"],
                                         timeout=conf.blank_check_timeout)
        if fstype is None:
            fstype = hostdisk.make_filesystem(volume.disk, entry["device"])
            entry["formatted"] = True
        os.mkdir(entry["mountpoint"], 0o700)
        try:
            hostdisk.mount(entry["device"], entry["mountpoint"], fstype)
        except errors.CommandError as e:
            raise errors.VolumeRefused(
                disk=volume.disk, reason="mounting its %s file system "
                "failed (%s); check it with fsck on the host, or remove %s "
                "from volumeMap" % (fstype, e.err or e.rc, volume.disk))
        entry["fstype"] = fstype
        _save(vm_id, journal)
        log.info("vm_id=%s mounted disk %s (%s %s, %s%s) at %s for %s",
                 vm_id, volume.disk, volume.kind, source.path,
                 entry["device"], ", formatted" if entry["formatted"]
                 else "", entry["mountpoint"], volume.path)
    finally:
        os.close(fd)


def container_options(attached):
    """HostConfig options: each mounted disk bound at its container path.

    Plain Mount dicts (HostConfig.Mounts); engine.py passes them on.
    """
    if not attached:
        return {}
    return {"mounts": [
        {"Type": "bind", "Source": e["mountpoint"], "Target": e["path"],
         "ReadOnly": False}
        for e in attached]}


def detach(vm_id, attached):
    """Unmount and release every volume of vm_id, even after failures.

    attached: what the state file recorded; the journal and the mount
    table are read too.  Every step is tried; if one failed, the journal
    keeps what is left (the next stop tries again) and VolumeCleanupError
    says what.
    """
    directory = vm_dir(vm_id)
    entries = _merge(list(attached or []) + _load(vm_id))
    if not entries and not os.path.isdir(directory):
        return
    failed = []
    left = []
    for entry in reversed(entries):
        problem = _release(vm_id, entry)
        if problem:
            failed.append(problem)
            left.insert(0, entry)
    for point in hostdisk.mounts_under(directory):
        # Mounted but not journaled: nothing of ours should be there.
        try:
            hostdisk.unmount(point)
        except errors.Error as e:
            failed.append("unmounting %s: %s" % (point, e))
    if not failed:
        _rmdir(directory)
        _unlink(_journal_path(vm_id))
        return
    _save(vm_id, left)
    raise errors.VolumeCleanupError(vm_id=vm_id, reason="; ".join(failed),
                                    path=directory)


def _release(vm_id, entry):
    """Unmount and detach one journaled volume; a problem, or None."""
    disk = entry.get("disk") or "?"
    mountpoint = entry.get("mountpoint") or ""
    if not _DISK_RE.match(disk) or \
            os.path.dirname(mountpoint) != vm_dir(vm_id):
        return "bad journal entry %r" % (entry,)
    try:
        if mountpoint in hostdisk.mounts_under(mountpoint):
            hostdisk.unmount(mountpoint)
        # Removing the mount point also detaches the copies of the mount
        # that other mount namespaces took (libvirt gives each qemu its
        # own, made while the disk was mounted): Linux (3.18+) unmounts
        # them when their directory is deleted.  Only then is the file
        # system, and with it the loop device, really released.
        _rmdir(mountpoint)
        if entry.get("kind") == "file":
            _release_loops(entry)
    except (errors.Error, EnvironmentError) as e:
        log.error("vm_id=%s releasing disk %s failed: %s", vm_id, disk, e)
        return "disk %s: %s" % (disk, e)
    log.info("vm_id=%s released disk %s", vm_id, disk)
    return None


def _release_loops(entry):
    """Detach the entry's loop device, only if it is still backed by the
    entry's image (a loop number may have been reused since); with no
    loop recorded (the helper died right after losetup), every loop on
    the image: it was free when attach checked it."""
    wanted = entry.get("loop")
    for loop in hostdisk.loops():
        if loop.inode != entry.get("ino") \
                or loop.backing_file != entry.get("source"):
            continue
        if wanted is None or loop.device == wanted:
            hostdisk.detach_loop(loop.device)


def _merge(entries):
    """One entry per disk; a later one (the journal) fills what an earlier
    one (the state file) lacks."""
    by_disk = {}
    order = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        disk = entry.get("disk")
        if disk not in by_disk:
            by_disk[disk] = dict(entry)
            order.append(disk)
            continue
        merged = by_disk[disk]
        for key, value in entry.items():
            if merged.get(key) is None:
                merged[key] = value
    return [by_disk[d] for d in order]


# The journal

def _load(vm_id):
    try:
        with open(_journal_path(vm_id)) as f:
            entries = json.load(f)
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return []
        raise
    except ValueError:
        log.error("vm_id=%s volume journal is not JSON, ignoring it", vm_id)
        return []
    return entries if isinstance(entries, list) else []


def _save(vm_id, entries):
    path = _journal_path(vm_id)
    data = json.dumps(entries, sort_keys=True)
    try:
        _makedirs(volumes_dir())
        # mkstemp's mode (0600): the journal is for root only.
        state.write_file(path, data, mode=None, prefix="." + vm_id)
    except (IOError, OSError) as e:
        raise state.write_error(vm_id, e, volumes_dir())


def _makedirs(path):
    """path (volumes_dir() or below) and its parents; mode 0700 below
    STATE_DIR: the VMs' data is for root and the containers only."""
    state.ensure_dir()
    for d in (volumes_dir(), path):
        try:
            os.mkdir(d, 0o700)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
            continue
        os.chmod(d, 0o700)      # whatever the umask


def _rmdir(path):
    try:
        os.rmdir(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


_unlink = state.remove_file
