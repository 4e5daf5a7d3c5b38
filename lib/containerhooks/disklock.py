"""The lock that keeps a disk image from being used in two places at once.

A VM's disk on file storage (NFS, GlusterFS, POSIX) is reachable from every
host of the data center.  While the root helper has it mounted for a
container here, nothing elsewhere may write it: not the same VM started
again on another host (Engine thinks it is down: the placeholder was lost,
a host was fenced late), not a plain VM, not qemu-img.  The guard every
one of them already respects is qemu's image locking: open file
description (OFD) byte-range locks on the image, which the kernel's NFS
(v4 LOCK/LOCKT, v3 NLM), GlusterFS and CephFS clients send to the server,
so that a lock taken on one host conflicts with one taken on another.
qemu's block/file-posix.c (raw_apply_lock_bytes, raw_check_lock_bytes)
uses one byte per permission: a shared lock on 100 + bit means "I hold the
permission", on 200 + bit "I do not share it"; before it opens an image
it takes its own bytes, then tests the others' (F_OFD_GETLK, as a write
lock) and refuses with 'Failed to get "write" lock'.

The package takes, on the image, before anything of it is attached:
- a shared lock on 201 (qemu's "I do not share write"): every qemu that
  wants to write the image refuses it -- and only those: the placeholder's
  own qemu opens a mounted disk read-only (the hook makes it <readonly/>),
  wants no write, and starts.  The package does not take 101 ("I hold
  write"): the placeholder does not share write, so it would refuse that;
- an exclusive lock on byte 300 (outside qemu's bytes): the package's own
  mark.  Two starts racing on two hosts cannot both get it.
Then it looks for the others' locks, taken first and checked after as qemu
does, so that of two openers racing at least one sees the other.  Any
lock in qemu's range (a running VM, a placeholder on another host, a
qemu-img) or on the mark refuses the disk, with a message telling which.

Who holds the lock while the disk is mounted: the loop device.  OFD locks
belong to the open file description, and go only when its last reference
goes; the helper opens the image, locks it, and gives that very descriptor
to the kernel's loop driver (LOOP_SET_FD, hostdisk.attach_loop), which keeps
a reference until the loop device is detached -- after the file system on
it is unmounted.  So the lock lives exactly as long as the loop device that
writes the disk: no holder process to spawn, verify or kill, nothing that a
restart of vdsmd, of the helper service or of the watcher (whose cgroups
systemd empties) could drop, and nothing left when a start fails halfway
(the helper's own descriptor closes when it exits).

Block storage is not covered: a lock on a device node is local to the host.
"""

import errno
import fcntl
import os
import struct

from containerhooks import errors

# fcntl commands of OFD locks (Linux 3.15+, <asm-generic/fcntl.h>, the same
# on every architecture); the fcntl module has them from Python 3.9 only.
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
# struct flock of 64-bit Linux: short l_type, short l_whence, off_t l_start,
# off_t l_len, pid_t l_pid (0 for OFD locks), padded to 32 bytes.
_FLOCK = "@hhqqixxxx"

# qemu's lock bytes (block/file-posix.c RAW_LOCK_PERM_BASE and
# RAW_LOCK_SHARED_BASE) and the bit of BLK_PERM_WRITE (include/block/
# block-common.h: CONSISTENT_READ 0x1, WRITE 0x2, ...).
QEMU_PERM_BASE = 100
QEMU_SHARED_BASE = 200
QEMU_WRITE_BIT = 1
QEMU_RANGE = (QEMU_PERM_BASE, 2 * (QEMU_SHARED_BASE - QEMU_PERM_BASE))
NOT_SHARING_WRITE = QEMU_SHARED_BASE + QEMU_WRITE_BIT
# The package's own mark, past qemu's bytes.
MARK = 300

HELD_BY_PACKAGE = "vdsm-hook-containers"
HELD_BY_QEMU = "qemu"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)


def lock(disk, fd, readers=False):
    """Open fd's image read-write and lock it; return the new descriptor.

    fd: the checked image (any mode).  The lock stays with the returned
    descriptor's open file description: the caller hands it to the loop
    device, then closes it.  Refused (VolumeRefused) when another host's
    package or any qemu holds a lock on the image; with readers, only when
    another host's package or a qemu that writes does (the destination of
    a migration, migration.py: its own placeholder has had the image open
    read-only since before the container starts).
    """
    try:
        # As losetup opens it: read-write and blocking, since the loop
        # device does its I/O through this very descriptor.
        rw = os.open("/proc/self/fd/%d" % fd,
                     os.O_RDWR | os.O_NOCTTY | _O_CLOEXEC)
    except OSError as e:
        raise errors.VolumeRefused(
            disk=disk, reason="its image cannot be opened for writing (%s); "
            "check the storage domain is writable, or remove %s from "
            "volumeMap" % (os.strerror(e.errno), disk))
    try:
        same = os.fstat(rw)
        checked = os.fstat(fd)
        if (same.st_dev, same.st_ino) != (checked.st_dev, checked.st_ino):
            raise errors.VolumeRefused(
                disk=disk, reason="its image changed while it was being "
                "attached; try again")
        if not _take(rw, fcntl.F_WRLCK, MARK):
            raise _refused(disk, HELD_BY_PACKAGE)
        if not _take(rw, fcntl.F_RDLCK, NOT_SHARING_WRITE):
            raise _refused(disk, HELD_BY_QEMU)
        who = holder(rw, readers)
        if who:
            raise _refused(disk, who)
        return rw
    except BaseException:
        os.close(rw)        # drops what was taken
        raise


def holder(fd, readers=False):
    """Who else holds a lock on fd's image: HELD_BY_PACKAGE, HELD_BY_QEMU
    or None.  The locks of fd's own open file description do not count;
    fd may be read-only (testing takes nothing).  With readers, a qemu
    counts only when it holds the write permission."""
    if _conflicts(fd, MARK, 1):
        return HELD_BY_PACKAGE
    if readers:
        if _conflicts(fd, QEMU_PERM_BASE + QEMU_WRITE_BIT, 1):
            return HELD_BY_QEMU
        return None
    if _conflicts(fd, *QEMU_RANGE):
        return HELD_BY_QEMU
    return None


def share_no_writer(fd):
    """For reading fd's image while nobody writes it (an image archive,
    hostdisk.open_image_source): take qemu's "I do not share write" lock
    on it, then check that no qemu holds the write permission and no
    package (another host's container) has it mounted.  False if one
    does.  fd may be read-only (a shared lock needs read access only);
    the lock goes when fd's open file description closes: until then,
    every qemu that would write the image refuses it."""
    if not _take(fd, fcntl.F_RDLCK, NOT_SHARING_WRITE):
        return False
    return not (_conflicts(fd, QEMU_PERM_BASE + QEMU_WRITE_BIT, 1)
                or _conflicts(fd, MARK, 1))


def _refused(disk, who):
    if who == HELD_BY_PACKAGE:
        what = ("it is mounted for a container on another host, or being "
                "mounted there (the image's %s lock is held); power that VM "
                "off first" % HELD_BY_PACKAGE)
    else:
        what = ("a qemu process has its image open for writing, or open and "
                "not shared (on this host or another one using the same "
                "storage); stop that VM or program first")
    return errors.VolumeRefused(
        disk=disk, reason="it is in use: %s, or remove %s from volumeMap"
        % (what, disk))


def _take(fd, kind, start):
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, _flock(kind, start, 1))
        return True
    except (IOError, OSError) as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _conflicts(fd, start, length):
    answer = fcntl.fcntl(fd, F_OFD_GETLK, _flock(fcntl.F_WRLCK, start,
                                                 length))
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def _flock(kind, start, length):
    return struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0)
