"""A block volume is mounted only if it is the LV Vdsm prepared for the disk.

The vdsm user owns the storage tree, so the path a block disk's source names
(<root>/mnt/blockSD/<domain id>/images/<image id>/<volume id>) can be a
symlink to any block device of the host.  The helper resolves it and asks
the kernel what the device is: the LV "<volume id>" of the volume group
"<domain id>" (Vdsm's blockVolume.py links /dev/<sd>/<vol> there), or it
is refused before anything reads, formats or mounts it.

volumes.attach in this process (as root), with real devices (loop devices,
a zram device, a partition, the host's disk), real mkfs and mount; the LV
identity of a loop device is the one made-up fact (see hoststorage.Sysfs:
this kernel has no device-mapper).
"""

import errno
import os
import subprocess
import uuid

import pytest

from containerhooks import errors
from containerhooks import volumes

import hoststorage
import volumes_test
from hostdisk_test import VM_ID, spec_of, storage, volume  # noqa: F401
from hoststorage import DISK_MIB, MIB, fs_type, mounts_under, sha256

ZRAM_CONTROL = "/sys/class/zram-control"
HOST_DISK = "/dev/vda"


@pytest.fixture
def zram():
    """A zram device of our own (hot-added, removed afterwards; ask for
    it before storage, which unmounts what a failed test mounted)."""
    with open(os.path.join(ZRAM_CONTROL, "hot_add")) as f:
        number = int(f.read())
    name = "zram%d" % number
    try:
        with open("/sys/block/%s/disksize" % name, "w") as f:
            f.write(str(DISK_MIB * MIB))
        yield "/dev/" + name
    finally:
        with open("/sys/block/%s/reset" % name, "w") as f:
            f.write("1")
        with open(os.path.join(ZRAM_CONTROL, "hot_remove"), "w") as f:
            f.write(str(number))


def new_id():
    return str(uuid.uuid4())


# Each case: storage, zram, cleanups -> (source, the device behind it, what the
# refusal says besides the disk's name).

def zram_device(storage, zram, cleanups):
    return storage.block_link(zram), zram, "a zram device"


def loop_device(storage, zram, cleanups):
    device = storage.device()
    return storage.block_link(device), device, "a loop device"


def partition(storage, zram, cleanups):
    device = storage.device()
    hoststorage.write_at(device, 0,
                         volumes_test.mbr(DISK_MIB * MIB // 512))
    subprocess.check_call(["partx", "--add", device])
    cleanups.append(
        lambda: subprocess.call(["partx", "--delete", device]))
    part = device + "p1"
    return storage.block_link(part), part, "a partition of a host disk"


def host_disk(storage, zram, cleanups):
    what = "a whole disk of the host"
    try:
        os.close(os.open(HOST_DISK, os.O_RDONLY))
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        # In a container whose device cgroup keeps even root off the
        # host's disk, the helper cannot open it either.
        what = "cannot open it (%s)" % os.strerror(e.errno)
    return storage.block_link(HOST_DISK), HOST_DISK, what


def lv_of_another_vg(storage, zram, cleanups):
    device = storage.device()
    other, vol = new_id(), new_id()
    storage.sysfs.as_lv(device, other, vol)
    return storage.block_link(device, new_id(), vol), device, \
        "the logical volume %s" % hoststorage.dm_name(other, vol)


def another_volume(storage, zram, cleanups):
    device = storage.device()
    sd, other = new_id(), new_id()
    storage.sysfs.as_lv(device, sd, other)
    return storage.block_link(device, sd, new_id()), device, \
        "the logical volume %s" % hoststorage.dm_name(sd, other)


def dm_not_lvm(storage, zram, cleanups):
    # A dm-crypt device named as the LV would be.
    device = storage.device()
    sd, vol = new_id(), new_id()
    storage.sysfs.as_dm(device, hoststorage.dm_name(sd, vol),
                        "CRYPT-LUKS2-" + hoststorage.lvm_uuid() + "-x")
    return storage.block_link(device, sd, vol), device, \
        "the device-mapper device %s (uuid CRYPT-LUKS2-" \
        % hoststorage.dm_name(sd, vol)


def lvm_snapshot_part(storage, zram, cleanups):
    # The hidden origin of a snapshot (LVM adds "-real" to its uuid).
    device = storage.device()
    sd, vol = new_id(), new_id()
    storage.sysfs.as_dm(device, hoststorage.dm_name(sd, vol),
                        "LVM-" + hoststorage.lvm_uuid() * 2 + "-real")
    return storage.block_link(device, sd, vol), device, \
        "the device-mapper device %s (uuid LVM-" % hoststorage.dm_name(sd, vol)


def lv_on_a_host_device(storage, zram, cleanups):
    # The right name and uuid, but made (by whoever may run lvm as root)
    # on a device of the host rather than on the SAN's multipath devices.
    device, pv = storage.device(), storage.device()
    sd, vol = new_id(), new_id()
    storage.sysfs.as_lv(device, sd, vol, on=pv)
    return storage.block_link(device, sd, vol), device, \
        "the logical volume %s, which lies on %s, not on multipath " \
        "devices" % (hoststorage.dm_name(sd, vol), os.path.basename(pv))


def shape(tail):
    def case(storage, zram, cleanups):
        device = storage.device()
        sd, vol = new_id(), new_id()
        storage.sysfs.as_lv(device, sd, vol)
        path = os.path.join(storage.root, "mnt", "blockSD",
                            tail.format(sd=sd, vol=vol, img=new_id()))
        os.makedirs(os.path.dirname(path))
        os.symlink(device, path)
        return path, device, "not a path where Vdsm prepares a block " \
            "volume (%s/mnt/blockSD/<domain id>/images/<image id>/" \
            "<volume id>)" % storage.root
    return case


HOSTILE = [
    pytest.param(zram_device, id="zram"),
    pytest.param(loop_device, id="loop"),
    pytest.param(partition, id="partition"),
    pytest.param(host_disk, id="host-disk"),
    pytest.param(lv_of_another_vg, id="lv-of-another-vg"),
    pytest.param(another_volume, id="another-volume-id"),
    pytest.param(dm_not_lvm, id="dm-crypt-named-as-the-lv"),
    pytest.param(lvm_snapshot_part, id="lvm-snapshot-origin"),
    pytest.param(lv_on_a_host_device, id="lv-on-a-loop-device"),
    pytest.param(shape("{sd}/images/{img}/{vol}/x"), id="shape-too-deep"),
    pytest.param(shape("{sd}/{vol}"), id="shape-no-image"),
    pytest.param(shape("{sd}/images/{img}/disk"), id="shape-not-a-uuid"),
    pytest.param(shape("{sd}/leases/{img}/{vol}"), id="shape-not-images"),
]


@pytest.mark.parametrize("make", HOSTILE)
def test_block_source_that_is_not_the_lv_refused(make, zram, storage):
    cleanups = []
    try:
        source, device, what = make(storage, zram, cleanups)
        checksum = sha256(device) if device != HOST_DISK else None

        with pytest.raises(errors.Error) as e:
            volumes.attach(spec_of(volume("vdb", "/data", "block", source)),
                           storage.conf)

        message = str(e.value)
        assert message.startswith("Refusing to mount VM disk vdb from %s: "
                                  % source), message
        assert what in message
        assert mounts_under(volumes.vm_dir(VM_ID)) == []
        if checksum:
            assert sha256(device) == checksum, "%s was written" % device
    finally:
        for cleanup in cleanups:
            cleanup()


def test_the_lv_vdsm_prepared_is_formatted_when_blank(storage):
    lv, device = storage.block()

    attached = volumes.attach(spec_of(volume("vdb", "/data", "block", lv)),
                              storage.conf)

    assert attached[0]["formatted"] and attached[0]["device"] == device
    assert mounts_under(volumes.vm_dir(VM_ID)) == [attached[0]["mountpoint"]]
    volumes.detach(VM_ID, attached)
    assert fs_type(device) == "ext4"


def test_the_lv_vdsm_prepared_is_mounted_with_its_data(storage):
    lv, device = storage.block()
    subprocess.check_call(["mkfs.ext4", "-q", "-d", os.path.dirname(
        os.path.abspath(__file__)) + "/data", device])

    attached = volumes.attach(spec_of(volume("vdb", "/data", "block", lv)),
                              storage.conf)

    try:
        assert not attached[0]["formatted"]
        assert os.path.exists(os.path.join(attached[0]["mountpoint"],
                                           "q35-numa-in.xml"))
    finally:
        volumes.detach(VM_ID, attached)
    assert fs_type(device) == "ext4"


def test_the_lv_held_open_by_a_process_refused(storage):
    lv, device = storage.block()
    with open(device, "rb") as f:
        holder = subprocess.Popen(["sleep", "60"], stdin=f)
    try:
        with pytest.raises(errors.VolumeRefused) as e:
            volumes.attach(spec_of(volume("vdb", "/data", "block", lv)),
                           storage.conf)
        assert "VM disk vdb cannot be mounted in the container: it is in " \
            "use on this host (process %d (sleep) has %s open)" \
            % (holder.pid, device) in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    assert fs_type(device) == ""
