"""A VM disk on the host, as the root helper handles it for volumeMap.

Checks that a volume's source is a disk Vdsm prepared (under a storage
root, a raw regular file or the LV Vdsm activated for the disk, used by
nobody else), attaches image files to loop devices, tells a file system
from a blank disk from anything else, formats blank disks, mounts and
unmounts.

Nothing here trusts the path it is given: the source is opened once, and
what was opened (its real path from /proc/self/fd, its type, its inode,
for a block device what the kernel says the device is) is what is checked,
and that open file is what a loop device gets.  Every program runs through
commands.run, never a shell; the binaries are the constants below.  Only
the root helper uses this.
"""

import collections
import errno
import fcntl
import io
import json
import logging
import os
import pty
import re
import stat
import subprocess
import termios
import time

from containerhooks import commands
from containerhooks import disklock
from containerhooks import errors
from containerhooks import paths
from containerhooks import spec as specs

log = logging.getLogger("containerhooks.hostdisk")

LOSETUP = "/usr/sbin/losetup"
BLKID = "/usr/sbin/blkid"
WIPEFS = "/usr/sbin/wipefs"
MKFS = "/usr/sbin/mkfs.ext4"
MOUNT = "/usr/bin/mount"
UMOUNT = "/usr/bin/umount"

MOUNTINFO = "/proc/self/mountinfo"
PROC = "/proc"
LOOP_CONTROL = "/dev/loop-control"

# File systems mounted as they are found.  The host kernel parses what the
# VM's owner wrote on the disk: only the two the package creates or
# documents.  ext2 and ext3 are refused although the ext4 driver reads
# them: a file system the admin did not choose is not mounted.
FILESYSTEMS = ("ext4", "xfs")
# What a blank disk gets on first use (mkfs.ext4 defaults, labelled with
# the disk's name, no discard pass).
NEW_FILESYSTEM = "ext4"
# A disk is the VM owner's data: no device nodes, no setuid programs.
# noexec is left out: images run programs from their volumes (an
# interpreter's packages, a database's extensions).
MOUNT_OPTIONS = ("nodev", "nosuid")
# ext4: errors=remount-ro whatever the superblock asks (tune2fs -e panic,
# or errors=panic in its default mount options, which the kernel applies
# before, and overrides with, the options given here): a corrupt inode
# then makes the file system read-only instead of panicking the host.
# XFS has no such option and nothing on the disk can choose: on
# corruption it shuts the file system down (EIO to the container), and
# only the host's fs.xfs.panic_mask sysctl (0 by default) turns that
# into a panic.  Clones of one disk share an XFS UUID, which XFS refuses
# to mount twice: nouuid.
FS_MOUNT_OPTIONS = {"ext4": ("errors=remount-ro",), "xfs": ("nouuid",)}

MIB = 1024 * 1024
# The blank check reads this much at a time (compared with zeros by
# memcmp: several GiB/s), and gives up after blank_check_timeout seconds
# (containers.conf).
CHUNK = 8 * MIB
_ZEROS = b"\0" * CHUNK

# Image formats that are not raw, by their first bytes.  Only raw data can
# be mounted by the host; the hook refuses these by the driver type too.
_FORMATS = (
    (b"QFI\xfb", "qcow2"),
    (b"QED\x00", "QED"),
    (b"KDMV", "VMDK"),
    (b"# Disk DescriptorFile", "VMDK"),
    (b"vhdxfile", "VHDX"),
    (b"conectix", "VHD"),
)
_VDI_MAGIC = (0x40, b"\x7f\x10\xda\xbe")

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_SEEK_DATA = getattr(os, "SEEK_DATA", 3)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", 4)
_monotonic = getattr(time, "monotonic", time.time)
_LOOP_RE = re.compile(r"\A/dev/loop[0-9]+\Z")
# The dm uuid of an LV: "LVM-" + the VG's uuid + the LV's, without dashes
# (LVM's lib/activate/dev_manager.c build_dm_uuid).  LVM's hidden devices
# (a snapshot's "-real" and "-cow", a pool's "-tpool" ...) have a suffix.
_LVM_UUID_RE = re.compile(r"\ALVM-[A-Za-z0-9]{64}\Z")
# <linux/loop.h>
LOOP_SET_FD = 0x4C00
LOOP_CTL_GET_FREE = 0x4C82
_LOOP_ATTEMPTS = 16

# A volume's source once checked: path is the real path of what was
# opened (an image file, or a device node in /dev), ino its inode.
Source = collections.namedtuple("Source", "disk, kind, path, ino, size")

# One configured loop device and the file behind it.
Loop = collections.namedtuple("Loop", "device, backing_file, inode")


# Checking a source

def open_source(volume, conf, incoming=False):
    """Open and check volume's source; return (Source, fd).

    The caller closes fd.  Refused (UnsafeVolumeSource) when the source is
    not where Vdsm prepares disks or not of its kind; refused
    (VolumeRefused) when it is not raw or is in use.  incoming: the
    destination of a migration, whose own placeholder has the image open
    read-only already; a qemu that only reads it is no user then.
    """
    fd, source = _open_prepared(volume, conf)
    try:
        _check_raw(volume.disk, fd)
        _check_unused(volume.disk, fd, volume.kind, source.path,
                      os.fstat(fd), incoming)
        return source, fd
    except BaseException:
        os.close(fd)
        raise


def check_source(volume, conf, keep_open=False):
    """Check volume's source as open_source does (a raw disk Vdsm
    prepared), but not who uses it: the destination of a migration checks
    the disks while the source host still has them mounted.  Returns the
    open (read-only) descriptor with keep_open, for the caller to close;
    else None."""
    fd, _ = _open_prepared(volume, conf)
    try:
        _check_raw(volume.disk, fd)
    except BaseException:
        os.close(fd)
        raise
    if keep_open:
        return fd
    os.close(fd)
    return None


def _check_raw(disk, fd):
    fmt = image_format(fd)
    if fmt:
        raise errors.VolumeRefused(
            disk=disk, reason="it is a %s image; only raw disks can be "
            "mounted (a preallocated disk, or a thin one on file storage, "
            "without snapshots), or remove %s from volumeMap" % (fmt, disk))


def _open_prepared(volume, conf):
    """Open volume's source read-only, checked to be a disk Vdsm prepared
    (see open_source); return (fd, Source)."""
    source = volume.source

    def refuse(reason):
        return errors.UnsafeVolumeSource(
            disk=volume.disk, source=source, reason=reason,
            roots=", ".join(conf.storage_roots) or "none", conf=conf.path)

    if not source.startswith("/") or source.startswith("//") \
            or os.path.normpath(source) != source:
        raise refuse("not a normalized absolute path")
    if not under(source, conf.storage_roots):
        raise refuse("not under a storage root")
    if volume.kind == "block":
        ids = specs.block_volume_ids(source, conf.storage_roots)
        if ids is None:
            raise errors.UnpreparedBlockVolume(
                disk=volume.disk, source=source, reason="not a path where "
                "Vdsm prepares a block volume (%s)" % " or ".join(
                    root + specs.BLOCK_VOLUME_PATH
                    for root in conf.storage_roots))
    try:
        # O_NONBLOCK: a FIFO planted there must not hang the helper.
        fd = os.open(source, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK
                     | _O_CLOEXEC)
    except OSError as e:
        raise refuse("cannot open it (%s); is the disk prepared?"
                     % os.strerror(e.errno))
    try:
        st = os.fstat(fd)
        real = os.readlink("/proc/self/fd/%d" % fd)
        if volume.kind == "file":
            if not stat.S_ISREG(st.st_mode):
                raise refuse("not a regular file")
            if not under(real, conf.storage_roots):
                raise refuse("it leads to %s, outside the storage roots"
                             % real)
            size = st.st_size
        else:
            if not stat.S_ISBLK(st.st_mode):
                raise refuse("not a block device")
            if not real.startswith("/dev/"):
                raise refuse("it leads to %s, not to a device in /dev"
                             % real)
            check_block_volume(volume, ids, real, st.st_rdev)
            size = os.lseek(fd, 0, os.SEEK_END)
        return fd, Source(disk=volume.disk, kind=volume.kind, path=real,
                          ino=st.st_ino, size=size)
    except BaseException:
        os.close(fd)
        raise


def open_image_source(image, conf):
    """Open the disk of containerImage=disk:<target> (image, an
    imageref.DiskImage with its kind and source) for reading its image
    archive; return (Source, fd).  The caller closes fd.

    The same checks as a volume's source (a raw image file under a
    storage root, or the LV Vdsm activated for the disk), opened
    read-only and never written.  It may be shared with other VMs and
    attached read-only, but nothing may be writing it meanwhile: a file
    image whose write permission a qemu holds is refused, and while fd
    is open no qemu can take it (the lock qemu takes for "I do not share
    write", disklock.share_no_writer); a block device that is mounted
    (another container's volume) is refused.
    """
    volume = specs.VolumeSource(disk=image.disk, path=None, kind=image.kind,
                                source=image.source)
    try:
        fd, source = _open_prepared(volume, conf)
    except (errors.UnsafeVolumeSource, errors.UnpreparedBlockVolume) as e:
        raise errors.ImageDiskRefused(disk=image.disk, reason="%s: %s; only "
                                      "a disk Vdsm prepared is read (under "
                                      "storage_roots: %s)" % (
                                          image.source, e.reason,
                                          ", ".join(conf.storage_roots)
                                          or "none"))
    try:
        fmt = image_format(fd)
        if fmt:
            raise errors.ImageDiskRefused(
                disk=image.disk, reason="it is a %s image; upload the "
                "archive as a raw disk" % fmt)
        busy = None
        if image.kind == "file":
            if not disklock.share_no_writer(fd):
                busy = "a qemu process has its image open for writing"
        else:
            try:
                os.close(os.open(source.path, os.O_RDONLY | os.O_EXCL
                                 | os.O_NONBLOCK | _O_CLOEXEC))
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                busy = "%s is mounted or part of another device" % (
                    source.path)
        if busy:
            raise errors.ImageDiskRefused(
                disk=image.disk, reason="it is in use (%s); an image disk "
                "must not be written while it is read: attach it read-only "
                "to the VMs that use it" % busy)
        return source, fd
    except BaseException:
        os.close(fd)
        raise


def under(path, roots):
    return any(path.startswith(root + "/") for root in roots)


def image_format(fd):
    """The name of a non-raw image format found at fd's start, or None."""
    os.lseek(fd, 0, os.SEEK_SET)
    head = os.read(fd, 512)
    for magic, name in _FORMATS:
        if head.startswith(magic):
            return name
    offset, magic = _VDI_MAGIC
    if head[offset:offset + len(magic)] == magic:
        return "VDI"
    return None


def check_block_volume(volume, ids, real, rdev):
    """Refuse unless device rdev is LV ids.volume of VG ids.domain.

    The vdsm user owns the storage tree, so the path may lead to any
    device of the host; the ids come from the path (spec.BlockVolumeIds),
    the device's identity from the kernel: an active LV is a device-mapper
    device whose name is "<vg>-<lv>", each '-' of either doubled
    (libdevmapper's dm_build_dm_name), and whose uuid is an LV's
    (_LVM_UUID_RE), on multipath devices.  Only root creates
    device-mapper devices and names them; sysfs is the kernel's.  The
    image id is no part of an LV's device (Vdsm keeps it in an LV tag,
    which lvm sees only with Vdsm's device filter); the hook checks it
    against Vdsm's metadata.
    """
    sysdir = os.path.join(paths.SYS_DEV_BLOCK, "%d:%d" % (os.major(rdev),
                                                          os.minor(rdev)))
    name = _read_sys(sysdir, "dm/name")
    uuid = _read_sys(sysdir, "dm/uuid")
    if name != dm_name(ids.domain, ids.volume) or uuid is None \
            or not _LVM_UUID_RE.match(uuid):
        raise errors.UnpreparedBlockVolume(
            disk=volume.disk, source=volume.source, reason="it leads to %s, "
            "%s, not to the logical volume %s of volume group %s" % (
                real, _device_kind(sysdir, name, uuid), ids.volume,
                ids.domain))
    # Vdsm's LVM sees multipath devices only (lvm.py LVMCache reads its
    # devices from multipath.py getMPDevsIter: dm uuids "mpath-..."): an
    # LV of a storage domain lies on nothing else.
    slaves = os.path.join(sysdir, "slaves")
    below = sorted(os.listdir(slaves)) if os.path.isdir(slaves) else []
    others = [b for b in below if not (_read_sys(
        os.path.join(slaves, b), "dm/uuid") or "").startswith("mpath-")]
    if others or not below:
        raise errors.UnpreparedBlockVolume(
            disk=volume.disk, source=volume.source, reason="it leads to %s, "
            "the logical volume %s, which lies on %s, not on multipath "
            "devices as a storage domain's volumes do" % (
                real, name, ", ".join(others) or "no device"))


def dm_name(vg, lv):
    """The device-mapper name of LV lv of VG vg."""
    return "%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))


def _device_kind(sysdir, name, uuid):
    """What the block device of sysdir is, in a few words."""
    if uuid is not None:
        if _LVM_UUID_RE.match(uuid):
            return "the logical volume %s" % name
        return "the device-mapper device %s (uuid %s)" % (name, uuid[:80])
    if os.path.exists(os.path.join(sysdir, "partition")):
        return "a partition of a host disk"
    kernel_name = os.path.basename(os.path.realpath(sysdir))
    for prefix, kind in (("loop", "a loop device"), ("zram", "a zram device"),
                         ("nbd", "a network block device"),
                         ("md", "a RAID device")):
        if kernel_name.startswith(prefix):
            return kind
    return "a whole disk of the host"


def _read_sys(sysdir, name):
    try:
        with open(os.path.join(sysdir, name)) as f:
            return f.read().strip()
    except IOError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def _check_unused(disk, fd, kind, real, st, incoming=False):
    in_use = None
    if kind == "block":
        try:
            os.close(os.open(real, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK
                             | _O_CLOEXEC))
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            in_use = "%s is mounted or part of another device" % real
        if in_use is None:
            in_use = _opened_by(real, st.st_rdev)
    else:
        for loop in loops():
            if loop.inode == st.st_ino and loop.backing_file == real:
                in_use = "loop device %s is attached to it" % loop.device
    if in_use is None and not incoming and _qemu_lock_held(fd):
        in_use = "a qemu process has it open"
    if in_use:
        raise errors.VolumeRefused(
            disk=disk, reason="it is in use on this host (%s); a mounted "
            "disk must be used by this VM's container alone" % in_use)


def _opened_by(real, rdev):
    """Which other process has the block device rdev open, or None.

    Only descriptors of files in a /dev are looked at: stat on anything
    else (an image on an NFS server that stopped answering) could hang.
    """
    me = str(os.getpid())
    for pid in os.listdir(PROC):
        if not pid.isdigit() or pid == me:
            continue
        fd_dir = os.path.join(PROC, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue            # gone, or not ours to read
        for fd in fds:
            link = os.path.join(fd_dir, fd)
            try:
                if not os.readlink(link).startswith("/dev/"):
                    continue
                st = os.stat(link)
            except OSError:
                continue        # closed meanwhile
            if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                return "process %s (%s) has %s open" % (pid, _comm(pid),
                                                         real)
    return None


def _comm(pid):
    try:
        with open(os.path.join(PROC, pid, "comm")) as f:
            return f.read().strip()
    except IOError:
        return "?"


def _qemu_lock_held(fd):
    """Whether a qemu process (of any host sharing the storage) holds its
    image locks on the file of fd.  The package's own lock, held by
    another host, is disklock.lock's to report."""
    return disklock.holder(fd) == disklock.HELD_BY_QEMU


# Loop devices

def loops():
    """Every configured loop device, as Loop tuples."""
    out = commands.run([LOSETUP, "--list", "--json", "--output",
                        "NAME,BACK-FILE,BACK-INO"])
    if not out.strip():
        return []
    result = []
    for dev in json.loads(out).get("loopdevices", []):
        try:
            inode = int(dev.get("back-ino"))
        except (TypeError, ValueError):
            inode = None
        result.append(Loop(device=dev.get("name"),
                           backing_file=dev.get("back-file"), inode=inode))
    return result


def attach_loop(source, fd):
    """Attach the open image fd (source, checked) to a free loop device.

    The loop device gets fd's very open file description (LOOP_SET_FD),
    not a new open of source's path: what was checked and locked
    (disklock.lock) is what the loop device writes, and the loop device
    keeps the description -- with its locks -- until it is detached.
    """
    for _ in range(_LOOP_ATTEMPTS):
        try:
            number = _loop_control(LOOP_CTL_GET_FREE)
            device = "/dev/loop%d" % number
            loop = os.open(device, os.O_RDWR | _O_CLOEXEC)
        except (IOError, OSError) as e:
            # No free loop device and none can be made (max_loop, a
            # container without /dev/loop-control).
            raise errors.VolumeRefused(
                disk=source.disk, reason="no loop device could be attached "
                "to its image (%s); check the host's loop devices (losetup "
                "--list), or remove %s from volumeMap"
                % (os.strerror(e.errno), source.disk))
        try:
            fcntl.ioctl(loop, LOOP_SET_FD, fd)
            return device
        except (IOError, OSError) as e:
            if e.errno != errno.EBUSY:
                raise errors.VolumeRefused(
                    disk=source.disk, reason="the kernel refused to attach "
                    "its image to %s (%s)" % (device, os.strerror(e.errno)))
            # Taken by another attacher since it was free: the next one.
        finally:
            os.close(loop)
    raise errors.VolumeRefused(
        disk=source.disk, reason="no free loop device after %d attempts; "
        "try again" % _LOOP_ATTEMPTS)


def _loop_control(request):
    ctl = os.open(LOOP_CONTROL, os.O_RDWR | _O_CLOEXEC)
    try:
        return fcntl.ioctl(ctl, request)
    finally:
        os.close(ctl)


def detach_loop(device):
    if not _LOOP_RE.match(device or ""):
        raise ValueError("not a loop device: %r" % (device,))
    commands.run([LOSETUP, "--detach", device])


# What is on a disk

def filesystem(disk, device, image_fd=None, timeout=120, clock=_monotonic):
    """The file system on device to mount as is, or None if it is blank.

    Anything else (a partition table, LVM, swap, encrypted data, ext2,
    ext3 or another file system not in FILESYSTEMS, data without any
    signature) is refused and never formatted.  image_fd: the image file
    behind a loop device, whose data the blank check reads instead of the
    device.  timeout, clock: see check_blank.
    """
    try:
        out = commands.run([BLKID, "--probe", "--output", "export", device])
    except errors.CommandError as e:
        if e.rc == 2:       # no signature at all
            check_blank(disk, device, image_fd, timeout, clock)
            return None
        if e.rc == 8:
            raise _not_filesystem(disk, "several conflicting signatures")
        raise errors.VolumeRefused(disk=disk, reason="cannot probe it: %s"
                                   % e)
    tags = dict(line.split("=", 1) for line in out.splitlines()
                if "=" in line)
    if "PTTYPE" in tags:
        raise _not_filesystem(disk, "a %s partition table (volumeMap mounts "
                              "whole-disk file systems only)"
                              % tags["PTTYPE"])
    fstype = tags.get("TYPE")
    if tags.get("USAGE") == "filesystem":
        if fstype in FILESYSTEMS:
            return fstype
        raise _not_filesystem(disk, "a file system of type %s" % fstype)
    raise _not_filesystem(disk, "%s (%s)" % (
        fstype or "unknown data", tags.get("USAGE") or "no usage"))


def check_blank(disk, device, image_fd=None, timeout=120,
                clock=_monotonic):
    """Refuse unless every byte of the disk is zero.

    No signature (wipefs), then every byte read: of an image file
    (image_fd, the file behind the loop device), only its data extents
    (SEEK_DATA/SEEK_HOLE skip the holes, which read as zeros; without
    them, all of it); of a block device, all of it.  Refused when that
    takes more than timeout seconds of clock.
    """
    found = commands.run([WIPEFS, "--no-act", "--noheadings", "--output",
                          "TYPE,OFFSET", device]).split()
    if found:
        raise _not_filesystem(disk, "signatures %s" % " ".join(found))
    began = clock()
    if image_fd is not None:
        fd = image_fd
    else:
        fd = os.open(device, os.O_RDONLY | _O_CLOEXEC)
    try:
        if image_fd is not None:
            # SEEK_DATA counts an unwritten extent (fallocate) as data
            # where its pages are cached: blkid's and wipefs's reads, and
            # the readahead of the check's own reads, which would then
            # read on through all of them.  Clean pages go, dirty ones
            # stay (and are data), and no readahead.
            _advise(fd, "DONTNEED")
            _advise(fd, "RANDOM")
            ranges = _allocated(fd)
        else:
            ranges = [(0, os.lseek(fd, 0, os.SEEK_END))]
        offset, read = _first_nonzero(fd, ranges, began + timeout, clock)
    except _Timeout as e:
        raise errors.VolumeRefused(
            disk=disk, reason="it has no file system and could not be "
            "proven blank within %d seconds (blank_check_timeout in "
            "containers.conf; %d MiB read, up to offset %d), so it is never "
            "formatted: only a disk whose every byte is zero is; format it "
            "yourself (mkfs.ext4 -L %s on the whole disk, in a VM or on the "
            "host) if its data is not needed, or raise blank_check_timeout"
            % (timeout, e.read // MIB, e.offset, disk))
    finally:
        if image_fd is None:
            os.close(fd)
    log.info("disk=%s blank check read %d MiB in %.1f s", disk,
             read // MIB, clock() - began)
    if offset is not None:
        raise _not_filesystem(disk, "data without any signature (a "
                              "non-zero byte at offset %d)" % offset)


def _allocated(fd):
    """The data extents of the file of fd, in order: (start, end) pairs.
    Holes are left out; where SEEK_DATA fails, the rest is data."""
    end = os.fstat(fd).st_size
    offset = 0
    while offset < end:
        try:
            start = os.lseek(fd, offset, _SEEK_DATA)
            stop = min(os.lseek(fd, start, _SEEK_HOLE), end)
        except OSError as e:
            if e.errno == errno.ENXIO:      # a hole up to the end
                return
            start, stop = offset, end       # no SEEK_DATA: read it all
        if stop <= start:
            start, stop = offset, end       # nonsense: read it all
        yield start, stop
        offset = stop


class _Timeout(Exception):
    def __init__(self, offset, read):
        Exception.__init__(self, offset, read)
        self.offset = offset
        self.read = read


def _first_nonzero(fd, ranges, deadline, clock):
    """(offset of the first non-zero byte in ranges of fd or None, bytes
    read); _Timeout once clock passes deadline with bytes left to read."""
    f = io.FileIO(fd, "r", closefd=False)
    buf = bytearray(CHUNK)
    read = 0
    for start, end in ranges:
        pos = start
        while pos < end:
            if clock() > deadline:
                raise _Timeout(pos, read)
            f.seek(pos)
            data = buf if end - pos >= CHUNK else bytearray(end - pos)
            n = f.readinto(data)
            if not n:
                break       # the file shrank: nothing more to read
            if n == CHUNK:
                zeros = _ZEROS
            else:
                data, zeros = data[:n], _ZEROS[:n]
            # A bytearray and bytes compare with memcmp.
            if data != zeros:
                stripped = bytes(data).lstrip(b"\0")
                return pos + n - len(stripped), read + n
            # Read once: keep it from pushing the host's useful pages
            # out of the page cache.
            _advise(fd, "DONTNEED", pos, n)
            pos += n
            read += n
    return None, read


def _advise(fd, advice, offset=0, length=0):
    # Python 3.3+; on 2.7 the check reads more and keeps more cached, and
    # is still exact.
    fadvise = getattr(os, "posix_fadvise", None)
    if fadvise is not None:
        fadvise(fd, offset, length, getattr(os, "POSIX_FADV_" + advice))


def _not_filesystem(disk, what):
    return errors.VolumeRefused(
        disk=disk, reason="it holds %s, not a file system this host mounts "
        "(%s), and it is not blank, so it is never formatted; put a file "
        "system on it (in a VM, or mkfs.ext4 on the host), wipe it "
        "(wipefs -a) if its data is not needed, or remove %s from volumeMap"
        % (what, ", ".join(FILESYSTEMS), disk))


def make_filesystem(disk, device):
    """Format device, found blank by filesystem(), with NEW_FILESYSTEM.

    mke2fs looks for a file system or other signature it recognises
    (libblkid, then libmagic or a partition table) only when its stdin
    and stdout are a terminal ("so we don't break existing scripts",
    misc/mke2fs.c PRS()), and then asks "Proceed anyway? (y,N)"; with
    stdin on /dev/null or a pipe it overwrites whatever is there, and no
    option turns the check on (-F only turns it off).  So it runs on a
    pseudo-terminal where "n" is already typed: if it finds something it
    reads that answer and exits 1 having written nothing (refused here),
    and on a blank disk the typed line is never read.  It also refuses a
    mounted or otherwise busy device (it opens it O_EXCL).  What it does
    not see (data without a signature, a file system behind a wiped
    partition table) is what check_blank refuses before.
    """
    log.info("disk=%s formatting blank %s with %s", disk, device,
             NEW_FILESYSTEM)
    cmd = [MKFS, "-q", "-L", disk, "-E", "nodiscard", device]
    rc, out = _run_on_terminal(cmd, b"n\n")
    if rc != 0:
        raise errors.VolumeRefused(
            disk=disk, reason="mkfs.ext4 refused to format it (%s), so it "
            "is never formatted; check what is on it (blkid -p, wipefs), "
            "wipe it (wipefs -a) if its data is not needed, or remove %s "
            "from volumeMap" % (_one_line(out) or "exit code %d" % rc,
                                disk))
    return NEW_FILESYSTEM


def _run_on_terminal(cmd, typed):
    """Run cmd with stdin, stdout and stderr on a new pseudo-terminal,
    typed already waiting there as input; (exit code, what it wrote)."""
    log.debug("Running %s on a terminal", cmd)
    master, slave = pty.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO       # the output is only what it wrote
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.write(master, typed)
        # BLKID_FILE: libblkid's cache file (/run/blkid/blkid.tab) may
        # still describe what an earlier disk on the same device name
        # (a reused loop number) held, for 2 s after it was probed
        # (libblkid's BLKID_PROBE_MIN): /dev/null makes it probe the
        # device as it is now.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
               "BLKID_FILE": "/dev/null"}
        p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                             env=env, close_fds=True)
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:    # EIO: every writer is gone
                    raise
                break
            if not data:
                break
            chunks.append(data)
        return p.wait(), b"".join(chunks).decode("utf-8", "replace")
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def _one_line(text):
    return " ".join(text.replace("\r", " ").split())[:400]


# Mounting

def mount(device, mountpoint, fstype):
    """Mount device (fstype, one of FILESYSTEMS) with the options that
    override what its superblock asks for (MOUNT_OPTIONS and
    FS_MOUNT_OPTIONS)."""
    if fstype not in FILESYSTEMS:
        raise ValueError("not a file system this host mounts: %r"
                         % (fstype,))
    options = MOUNT_OPTIONS + FS_MOUNT_OPTIONS[fstype]
    commands.run([MOUNT, "-t", fstype, "-o", ",".join(options), device,
                  mountpoint])


def unmount(mountpoint):
    """Unmount; if it is busy, detach it lazily (it goes once unused)."""
    try:
        commands.run([UMOUNT, mountpoint])
    except errors.CommandError as e:
        log.warning("%s is busy (%s), unmounting lazily", mountpoint, e.err)
        commands.run([UMOUNT, "--lazy", mountpoint])


def mounts_under(directory):
    """Mount points at or below directory, deepest first."""
    found = []
    with open(MOUNTINFO) as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == directory or point.startswith(directory + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
