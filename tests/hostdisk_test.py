"""The root helper's side of volumeMap, without container engines.

volumes.attach/detach and hostdisk called in this process (as root), with
real raw images, real loop devices and real mounts, and the state directory
in a temporary place.  What the hooks and the engines add is in
volumes_test.py.
"""

import collections
import json
import logging
import os
import subprocess
import time

import pytest

from containerhooks import config
from containerhooks import errors
from containerhooks import hostdisk
from containerhooks import paths
from containerhooks import spec as specs
from containerhooks import volumes

import hoststorage
import volumes_test
from hoststorage import (DISK_MIB, MIB, fs_type, loops, mounts_under, run,
                         sha256)

VM_ID = "5a8b0e3c-1111-4d2e-9f00-0123456789ab"

Spec = collections.namedtuple("Spec", "vm_id, volumes")


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """A storage root (see hoststorage.Storage), a private STATE_DIR and
    a sysfs view where storage.block() makes LVs; no mount or loop device
    may be left after the test."""
    if os.geteuid() != 0:
        pytest.fail("needs root (loop devices, mount)", pytrace=False)
    state_dir = str(tmp_path / "run")
    monkeypatch.setattr(paths, "STATE_DIR", state_dir)
    sysfs = hoststorage.Sysfs()
    monkeypatch.setattr(paths, "SYS_DEV_BLOCK", sysfs.path)
    s = hoststorage.Storage(sysfs=sysfs)
    s.state_dir = state_dir
    s.conf = config.load(os.devnull)._replace(storage_roots=(s.root,),
                                              path="containers.conf")
    yield s
    left = s.leftovers(state_dir)
    s.clean(state_dir)
    sysfs.remove()
    assert not left, "test left mounts or loop devices behind: %s" % left


def spec_of(*volumes_):
    return Spec(vm_id=VM_ID, volumes=list(volumes_))


def volume(disk, path, kind, source):
    return specs.VolumeSource(disk=disk, path=path, kind=kind, source=source)


def test_attach_formats_blank_disks_and_detach_releases(storage):
    image = storage.image()
    lv, device = storage.block()
    spec = spec_of(volume("vda", "/data", "file", image),
                   volume("sdb", "/logs", "block", lv))

    attached = volumes.attach(spec, storage.conf)

    vm_dir = volumes.vm_dir(VM_ID)
    assert [e["disk"] for e in attached] == ["vda", "sdb"]
    assert all(e["formatted"] and e["fstype"] == "ext4" for e in attached)
    assert attached[1]["device"] == device
    assert sorted(mounts_under(vm_dir)) == [vm_dir + "/sdb", vm_dir + "/vda"]
    assert loops()[attached[0]["loop"]] == image
    assert oct(os.stat(volumes.volumes_dir()).st_mode & 0o777) == "0o700"
    assert volumes.container_options(attached) == {"mounts": [
        {"Type": "bind", "Source": vm_dir + "/vda", "Target": "/data",
         "ReadOnly": False},
        {"Type": "bind", "Source": vm_dir + "/sdb", "Target": "/logs",
         "ReadOnly": False}]}
    # The state file holds what attach returned: it must be JSON.
    json.dumps(attached)

    volumes.detach(VM_ID, attached)

    assert storage.leftovers(storage.state_dir) == []
    assert os.listdir(volumes.volumes_dir()) == []
    assert fs_type(image) == "ext4"


def test_no_volumes_touch_nothing(storage):
    assert volumes.attach(spec_of(), storage.conf) == []
    assert volumes.container_options([]) == {}
    volumes.detach(VM_ID, [])
    assert not os.path.exists(volumes.volumes_dir())


def test_detach_without_state_uses_the_journal(storage):
    # The helper was killed after attaching: the state file never got the
    # volumes, the journal has them.
    spec = spec_of(volume("vda", "/data", "file", storage.image()))
    volumes.attach(spec, storage.conf)

    volumes.detach(VM_ID, [])

    assert storage.leftovers(storage.state_dir) == []


def test_detach_after_a_kill_between_losetup_and_the_journal(storage):
    # The journal names the image but no loop device yet.
    image = storage.image()
    source, fd = hostdisk.open_source(volume("vda", "/data", "file", image),
                                      storage.conf)
    try:
        device = hostdisk.attach_loop(source, fd)
    finally:
        os.close(fd)
    os.makedirs(volumes.vm_dir(VM_ID))
    entry = {"disk": "vda", "path": "/data", "kind": "file",
             "source": source.path, "ino": source.ino, "device": None,
             "loop": None, "fstype": None, "formatted": False,
             "mountpoint": os.path.join(volumes.vm_dir(VM_ID), "vda")}
    with open(os.path.join(volumes.volumes_dir(), VM_ID + ".json"),
              "w") as f:
        json.dump([entry], f)
    assert device in loops()

    volumes.detach(VM_ID, [])

    assert device not in loops()
    assert storage.leftovers(storage.state_dir) == []


def test_leftovers_of_an_earlier_run_released_at_start(storage):
    spec = spec_of(volume("vda", "/data", "file", storage.image()))
    first = volumes.attach(spec, storage.conf)

    second = volumes.attach(spec, storage.conf)    # no stop in between

    assert second[0]["loop"] in loops()
    assert not second[0]["formatted"]
    assert len([d for d, b in loops().items()
                if b == first[0]["source"]]) == 1
    volumes.detach(VM_ID, second)


def test_busy_mount_released_lazily(storage):
    spec = spec_of(volume("vda", "/data", "file", storage.image()))
    attached = volumes.attach(spec, storage.conf)
    mountpoint = attached[0]["mountpoint"]
    # A process with its working directory in the volume keeps it busy.
    busy = subprocess.Popen(["sleep", "60"], cwd=mountpoint)
    try:
        volumes.detach(VM_ID, attached)
        assert mounts_under(volumes.vm_dir(VM_ID)) == []
    finally:
        busy.kill()
        busy.wait()
    # The loop device was set to go with its last user (the kernel may
    # finish that a moment later).
    deadline = time.time() + 5
    while storage.leftovers(storage.state_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert storage.leftovers(storage.state_dir) == []


def test_failure_undoes_the_disks_attached_before(storage):
    good = storage.image()
    bad = storage.image()
    hoststorage.write_at(bad, 0, os.urandom(MIB))
    checksum = sha256(bad)
    spec = spec_of(volume("vda", "/data", "file", good),
                   volume("vdb", "/more", "file", bad))

    with pytest.raises(errors.VolumeRefused) as e:
        volumes.attach(spec, storage.conf)

    assert e.value.disk == "vdb"
    assert sha256(bad) == checksum
    assert storage.leftovers(storage.state_dir) == []
    assert os.listdir(volumes.volumes_dir()) == []


def test_data_in_the_middle_of_a_sparse_image_is_not_blank(storage):
    image = storage.image()
    hoststorage.write_at(image, 40 * MIB, b"x")
    with pytest.raises(errors.VolumeRefused) as e:
        volumes.attach(spec_of(volume("vda", "/d", "file", image)),
                       storage.conf)
    assert "non-zero byte at offset %d" % (40 * MIB) in str(e.value)


def test_preallocated_zeros_are_blank(storage):
    # Allocated zeros, as a preallocated disk on NFS v3: read, and blank.
    image = storage.image(size_mib=8)
    hoststorage.write_at(image, 0, b"\0" * (8 * MIB))
    attached = volumes.attach(spec_of(volume("vda", "/d", "file", image)),
                              storage.conf)
    assert attached[0]["formatted"]
    volumes.detach(VM_ID, attached)


def test_open_source_refusals(storage):
    outside = storage.image(directory=storage.outside)
    lv, device = storage.block()
    for source, kind, message in [
            (outside, "file", "not under a storage root"),
            (storage.link(outside), "file", "it leads to %s, outside the "
             "storage roots" % outside),
            (storage.root + "/x/../" + os.path.basename(outside), "file",
             "not a normalized absolute path"),
            (lv, "file", "not a regular file"),
            (storage.block_link(storage.image()), "block",
             "not a block device"),
            (storage.block_link("/etc/passwd"), "block",
             "not a block device"),
            (storage.link(storage.root), "file", "not a regular file"),
    ]:
        with pytest.raises(errors.UnsafeVolumeSource) as e:
            hostdisk.open_source(volume("vda", "/d", kind, source),
                                 storage.conf)
        assert message in str(e.value), source
        assert "storage_roots (%s)" % storage.root in str(e.value)


def test_image_formats_other_than_raw_refused(storage):
    for fmt, name in [("qcow2", "qcow2"), ("vmdk", "VMDK"),
                      ("vhdx", "VHDX"), ("vdi", "VDI"), ("qed", "QED")]:
        image = storage.image(fmt=fmt)
        with pytest.raises(errors.VolumeRefused) as e:
            hostdisk.open_source(volume("vda", "/d", "file", image),
                                 storage.conf)
        assert "it is a %s image; only raw disks" % name in str(e.value)


def test_disk_locked_by_qemu_refused(storage):
    image = storage.image()
    with hoststorage.qemu_holding(image):
        with pytest.raises(errors.VolumeRefused) as e:
            hostdisk.open_source(volume("vda", "/d", "file", image),
                                 storage.conf)
        assert "a qemu process has it open" in str(e.value)


def test_mountinfo_paths_unescaped(tmp_path, storage):
    spaced = tmp_path / "with space"
    spaced.mkdir()
    subprocess.check_call(["mount", "-t", "tmpfs", "none", str(spaced)])
    try:
        assert hostdisk.mounts_under(str(tmp_path)) == [str(spaced)]
    finally:
        subprocess.check_call(["umount", str(spaced)])


# Blank means every byte is zero

DEEP = 100 * MIB


def blank_disk(storage, kind, size_mib):
    """A blank disk: (its volume, the path its data is written at). kind:
    block (a block device), or an image with qemu-img's preallocation
    (off: sparse, falloc: allocated unwritten extents, full: zeros
    written, as a preallocated disk on NFS v3)."""
    if kind == "block":
        lv, device = storage.block(size_mib=size_mib)
        return volume("vda", "/d", "block", lv), device
    image = storage.image(size_mib=size_mib, preallocation=kind)
    return volume("vda", "/d", "file", image), image


def assert_never_formatted(storage, vol, path, checksum):
    with pytest.raises(errors.VolumeRefused) as e:
        volumes.attach(spec_of(vol), storage.conf)
    assert "never formatted" in str(e.value)
    assert sha256(path) == checksum
    assert storage.leftovers(storage.state_dir) == []
    return str(e.value)


@pytest.mark.parametrize("kind", ["falloc", "full", "block", "off"])
def test_data_deep_inside_a_zeroed_disk_is_not_blank(storage, kind):
    # Zeros everywhere, a few KiB of data at 100 MiB: far from the first
    # and last MiB, in an image with more than 64 MiB allocated.
    vol, path = blank_disk(storage, kind, 128)
    hoststorage.write_at(path, DEEP, b"data" + os.urandom(4092))

    err = assert_never_formatted(storage, vol, path, sha256(path))

    assert "non-zero byte at offset %d" % DEEP in err


@pytest.mark.parametrize("kind", ["off", "full", "block"])
def test_one_byte_found_anywhere(storage, kind):
    # At the edges of the reads, and at the end of a disk that is not a
    # whole number of them.
    size = 21 * MIB
    vol, path = blank_disk(storage, kind, size // MIB)
    for offset in (0, hostdisk.CHUNK - 1, hostdisk.CHUNK, size - 1):
        hoststorage.write_at(path, offset, b"\1")
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(errors.VolumeRefused) as e:
                hostdisk.check_blank("vda", path,
                                     fd if kind != "block" else None)
        finally:
            os.close(fd)
        assert "non-zero byte at offset %d)" % offset in str(e.value)
        hoststorage.write_at(path, offset, b"\0")


def test_unwritten_extents_of_a_preallocated_image_not_read(storage,
                                                            caplog):
    # fallocate's extents read as zeros: skipped, although blkid and
    # wipefs read some of them through the loop device just before.
    vol, path = blank_disk(storage, "falloc", 512)
    caplog.set_level(logging.INFO, logger="containerhooks.hostdisk")

    attached = volumes.attach(spec_of(vol), storage.conf)
    volumes.detach(VM_ID, attached)

    assert attached[0]["formatted"]
    assert "disk=vda blank check read 0 MiB in" in caplog.text


@pytest.mark.parametrize("kind", ["falloc", "block"])
def test_file_system_behind_a_wiped_partition_table_is_not_blank(storage,
                                                                 kind):
    # An ext4 partition starting at 1 MiB, its partition table wiped: no
    # signature at the disk's start, the first MiB all zeros.
    vol, path = blank_disk(storage, kind, DISK_MIB)
    run(["mkfs.ext4", "-q", "-E", "offset=%d" % MIB, path,
         "%dM" % (DISK_MIB - 1)])
    assert fs_type(path) == ""

    err = assert_never_formatted(storage, vol, path, sha256(path))

    assert "data without any signature (a non-zero byte at offset" in err


def test_blank_check_bounded_in_time(storage):
    vol, path = blank_disk(storage, "block", DISK_MIB)
    storage.conf = storage.conf._replace(blank_check_timeout=0)

    err = assert_never_formatted(storage, vol, path, sha256(path))

    assert "could not be proven blank within 0 seconds " \
        "(blank_check_timeout in containers.conf;" in err
    assert "format it yourself" in err
    assert fs_type(path) == ""


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "swap"])
def test_mkfs_refuses_what_it_recognises(storage, fstype):
    # make_filesystem runs after the blank check; should a signature get
    # there in between, mkfs.ext4 itself refuses.
    lv, device = storage.block(size_mib=320)
    run(["mkswap" if fstype == "swap" else "mkfs." + fstype, device])
    checksum = sha256(device)

    with pytest.raises(errors.VolumeRefused) as e:
        hostdisk.make_filesystem("vda", device)

    assert "contains a %s file system" % fstype in str(e.value)
    assert "never formatted" in str(e.value)
    assert sha256(device) == checksum


# What the host kernel mounts

def mountinfo(point):
    """(mount options, super options) of the mount at point."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == point:
                return (fields[5].split(","), fields[-1].split(","))
    raise AssertionError("%s is not mounted" % point)


@pytest.mark.parametrize("tune", [["-e", "panic"],
                                  ["-E", "mount_opts=errors=panic"]],
                         ids=["errors-behaviour", "default-mount-options"])
def test_ext4_asking_for_panic_mounted_errors_remount_ro(storage, tune):
    image = storage.image()
    run(["mkfs.ext4", "-q", image])
    run(["tune2fs"] + tune + [image])

    attached = volumes.attach(spec_of(volume("vda", "/d", "file", image)),
                              storage.conf)
    try:
        options, super_options = mountinfo(attached[0]["mountpoint"])
    finally:
        volumes.detach(VM_ID, attached)

    assert "errors=remount-ro" in super_options
    assert "nodev" in options and "nosuid" in options
    assert "noexec" not in options


@pytest.mark.parametrize("fstype", ["ext2", "ext3"])
def test_ext2_and_ext3_refused_never_formatted(storage, fstype):
    image = storage.image()
    run(["mkfs." + fstype, "-q", image])

    err = assert_never_formatted(storage, volume("vda", "/d", "file", image),
                                 image, sha256(image))

    assert "it holds a file system of type %s, not a file system this " \
        "host mounts (ext4, xfs)" % fstype in err
    assert fs_type(image) == fstype


def test_blank_disk_on_a_reused_loop_number_formatted(tmp_path):
    # A loop number is reused at once (losetup --find takes the lowest
    # free one): libblkid's cache file still says what the previous disk
    # on that device name held for 2 s after it was probed, and mke2fs,
    # asking the cache, refused a blank disk as "contains a swap file
    # system".  It must probe the device as it is now.
    old = str(tmp_path / "old.img")
    new = str(tmp_path / "new.img")
    for path in (old, new):
        run(["truncate", "-s", "%dM" % DISK_MIB, path])
    run(["mkswap", "-q", old])
    device = run(["losetup", "--find", "--show", old]).strip()
    try:
        subprocess.call(["blkid", device], stdout=subprocess.DEVNULL)
        run(["losetup", "--detach", device])
        run(["losetup", device, new])
        assert hostdisk.make_filesystem("vda", device) == "ext4"
        assert fs_type(device) == "ext4"
    finally:
        subprocess.call(["losetup", "--detach", device])
