"""One disk is never written from two places: the image lock (disklock.py).

volumes.attach/detach called in this process as root, as in
hostdisk_test.py, with real images, loop devices, mounts and qemu-io.
Another host is a process in its own mount namespace holding the lock the
way the package does (hoststorage.OtherHost); this kernel has no NFS
client, so the locks' travel between hosts is argued in the README.
"""

import os
import time

import pytest

from containerhooks import disklock
from containerhooks import errors
from containerhooks import volumes

from hostdisk_test import VM_ID, spec_of, volume
from hostdisk_test import storage  # noqa: F401  (the root-side fixture)
from hoststorage import (OtherHost, lock_holder, loops, mounts_under,
                         qemu_holding, qemu_io, sha256, write_at)

PACKAGE = disklock.HELD_BY_PACKAGE


def test_disk_locked_by_another_host_refused_until_released(storage):
    image = storage.image()
    spec = spec_of(volume("vda", "/data", "file", image))
    before = sha256(image)

    with OtherHost(image):
        with pytest.raises(errors.VolumeRefused) as e:
            volumes.attach(spec, storage.conf)
        assert str(e.value) == (
            "VM disk vda cannot be mounted in the container: it is in use: "
            "it is mounted for a container on another host, or being "
            "mounted there (the image's vdsm-hook-containers lock is held); "
            "power that VM off first, or remove vda from volumeMap")
    assert storage.leftovers(storage.state_dir) == []
    assert sha256(image) == before              # not even formatted

    attached = volumes.attach(spec, storage.conf)
    try:
        # The helper's descriptors are closed: the loop device holds it.
        assert lock_holder(image) == PACKAGE
        # ...so the other host, trying now, is refused in turn.
        with pytest.raises(AssertionError):
            OtherHost(image)
    finally:
        volumes.detach(VM_ID, attached)
    assert lock_holder(image) is None


def test_writer_refused_reader_allowed_while_mounted(storage):
    image = storage.image()
    attached = volumes.attach(spec_of(volume("vda", "/data", "file", image)),
                              storage.conf)
    try:
        rc, out = qemu_io(image)
        assert rc != 0 and 'Failed to get "write" lock' in out, out
        # A read-only opener (the placeholder's own qemu) is not refused.
        rc, out = qemu_io(image, readonly=True)
        assert rc == 0, out
    finally:
        volumes.detach(VM_ID, attached)
    rc, out = qemu_io(image)
    assert rc == 0, out


def test_the_locks_are_qemus_bytes_and_the_mark(storage):
    # What the kernel records: checks the hand-packed struct flock.
    image = storage.image()
    attached = volumes.attach(spec_of(volume("vda", "/data", "file", image)),
                              storage.conf)
    try:
        st = os.stat(image)
        inode = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev),
                                  st.st_ino)
        with open("/proc/locks") as f:
            found = sorted(" ".join(line.split()[1:4] + line.split()[6:8])
                           for line in f if line.split()[5] == inode)
        assert found == ["OFDLCK ADVISORY READ 201 201",
                         "OFDLCK ADVISORY WRITE 300 300"]
    finally:
        volumes.detach(VM_ID, attached)


def test_disk_a_qemu_writes_refused(storage):
    image = storage.image()
    with qemu_holding(image):
        with pytest.raises(errors.VolumeRefused) as e:
            volumes.attach(spec_of(volume("vda", "/data", "file", image)),
                           storage.conf)
        assert "a qemu process has it" in str(e.value)
    assert storage.leftovers(storage.state_dir) == []


def test_failed_attach_leaves_no_lock(storage):
    # vda is locked and mounted, then vdb (data, not blank) fails the start.
    good = storage.image()
    bad = storage.image()
    write_at(bad, 32 * 1024 * 1024, b"data")
    spec = spec_of(volume("vda", "/data", "file", good),
                   volume("vdb", "/logs", "file", bad))

    with pytest.raises(errors.VolumeRefused):
        volumes.attach(spec, storage.conf)

    assert lock_holder(good) is None and lock_holder(bad) is None
    assert storage.leftovers(storage.state_dir) == []
    assert qemu_io(good)[0] == 0


def test_lock_outlives_a_lazy_unmount_until_the_disk_is_free(storage):
    # A process still using the file system: the unmount is lazy, the loop
    # device stays until the file system is really released -- and the
    # lock with it, since the disk can still be written.
    image = storage.image()
    attached = volumes.attach(spec_of(volume("vda", "/data", "file", image)),
                              storage.conf)
    mountpoint = attached[0]["mountpoint"]
    user = open(os.path.join(mountpoint, "busy"), "w")
    try:
        volumes.detach(VM_ID, attached)
        assert mounts_under(mountpoint) == []
        assert lock_holder(image) == PACKAGE
        user.write("still writing")
    finally:
        user.close()
    loop = attached[0]["loop"]
    # The last user gone, the kernel clears the loop device (autoclear).
    deadline = time.time() + 10
    while loop in loops() and time.time() < deadline:
        time.sleep(0.05)
    assert lock_holder(image) is None
