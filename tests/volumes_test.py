"""VM disks mounted into the container (volumeMap), on the real host.

Through the installed hooks as the vdsm user (tests/vdsm.py), with real raw
image files attached to real loop devices, and real block devices (loop
devices the test makes itself, reached through a symlink as Vdsm's LVs
are).  A storage root in /var/tmp stands for /rhev/data-center
(storage_roots points there).  No test may leave a mount or a loop device
behind: the storage fixture checks, and cleans up if one did.
"""

import copy
import os
import struct
import subprocess
import tempfile
import time
import uuid

import pytest
from lxml import etree

import domains
import images
import libvirt
from hoststorage import (DISK_MIB, MIB, VDSM_UID, OtherHost, fs_type,
                         kvm_gid, lock_holder, qemu_io, run, sha256,
                         write_at)
from vdsm import HookError
from vmrun import power_off, start_hook as start


def container_vm(engine, volume_map, *disks):
    vm = domains.VM({"containerType": engine,
                     "containerImage": images.IMAGE,
                     "volumeMap": volume_map})
    return domains.add_disks(vm, *disks)


def container(client, vm):
    return client.containers.get("ovirt-vm-" + vm.id)


def sh(client, vm, script):
    rc, out = container(client, vm).exec_run(["sh", "-c", script])
    out = out.decode("utf-8", "replace")
    assert rc == 0, "%r failed (%d): %s" % (script, rc, out)
    return out


def assert_released(installation, storage, client, vm):
    """Nothing of vm left: container, state, mounts, loop devices."""
    import docker
    with pytest.raises(docker.errors.NotFound):
        container(client, vm)
    assert [n for n in installation.state_files()
            if n.startswith(vm.id)] == []
    volumes = os.path.join(installation.state_dir, "volumes")
    assert not os.path.exists(os.path.join(volumes, vm.id))
    assert not os.path.exists(os.path.join(volumes, vm.id + ".json"))
    # (No image lock either: another host may mount the disks now.)
    assert storage.leftovers(installation.state_dir) == []


# Through the hooks

def test_data_survives_restart(vdsm, installation, engine, storage):
    name, client = engine
    image = storage.image()
    lv, device = storage.block()
    vm = container_vm(name, "vda:/data,sdb:/var/log/app",
                      domains.disk("vda", image),
                      domains.disk("sdb", lv, kind="block"))

    result = start(vdsm, vm)

    # Blank disks got a file system, mounted where volumeMap says.
    assert fs_type(image) == "ext4"
    assert fs_type(device) == "ext4"
    mounts = sh(client, vm, "cat /proc/mounts")
    assert " /data ext4 " in mounts and " /var/log/app ext4 " in mounts
    sh(client, vm, "echo kept > /data/file && echo logged > "
       "/var/log/app/file && sync")
    attrs = container(client, vm).attrs
    targets = sorted(m["Destination"] for m in attrs["Mounts"])
    assert targets == ["/data", "/var/log/app"]

    power_off(vdsm, vm, result.data)
    assert_released(installation, storage, client, vm)

    result = start(vdsm, vm)
    assert sh(client, vm, "cat /data/file /var/log/app/file") == \
        "kept\nlogged\n"
    power_off(vdsm, vm, result.data)
    assert_released(installation, storage, client, vm)


CYCLES = 20


def test_start_destroy_cycles(vdsm, installation, engine, storage):
    """CYCLES starts, each ending one of the three ways a VM ends: Engine's
    power off, the domain dying on its own, the container dying first."""
    name, client = engine
    image = storage.image()
    lv, _ = storage.block()
    vm = container_vm(name, "vda:/data,sdb:/logs",
                      domains.disk("vda", image),
                      domains.disk("sdb", lv, kind="block"))
    durations = []
    for cycle in range(CYCLES):
        began = time.time()
        result = start(vdsm, vm)
        durations.append(time.time() - began)
        expected = "".join("%d\n" % i for i in range(cycle))
        assert sh(client, vm, "cat /data/log 2>/dev/null; true") == expected
        sh(client, vm, "echo %d >> /data/log && echo %d > /logs/last && "
           "sync" % (cycle, cycle))
        end = cycle % 3
        if end == 0:
            power_off(vdsm, vm, result.data)
        elif end == 1:
            vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                     custom=vm.custom)
        else:
            container(client, vm).kill()
            vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                     custom=vm.custom)
        assert_released(installation, storage, client, vm)
    result = start(vdsm, vm)
    assert sh(client, vm, "cat /data/log") == \
        "".join("%d\n" % i for i in range(CYCLES))
    assert sh(client, vm, "cat /logs/last") == "%d\n" % (CYCLES - 1)
    power_off(vdsm, vm, result.data)
    assert_released(installation, storage, client, vm)
    durations.sort()
    print("\n%s: %d start/destroy cycles with 2 volumes, start median "
          "%.2f s, max %.2f s" % (name, CYCLES, durations[CYCLES // 2],
                                  durations[-1]))


def not_blank(kind, storage):
    """An image (kind) that is neither a file system this host mounts nor
    blank; returns its path and a word of the refusal."""
    image = storage.image()
    if kind == "random":
        write_at(image, 0, os.urandom(DISK_MIB * MIB))
        return image, "data without any signature"
    if kind == "data-in-the-middle":
        # Its first byte is the first non-zero one (random data may start
        # with a zero: 1 run in 256 failed on the offset).
        write_at(image, DISK_MIB * MIB // 2, b"data" + os.urandom(4092))
        return image, "non-zero byte at offset %d" % (DISK_MIB * MIB // 2)
    if kind == "swap":
        subprocess.check_call(["mkswap", image], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        return image, "swap"
    if kind == "partition-table":
        write_at(image, 0, mbr(DISK_MIB * MIB // 512))
        return image, "a dos partition table"
    if kind == "minix":
        run(["mkfs.minix", image])
        return image, "minix"
    if kind == "ext3":
        run(["mkfs.ext3", "-q", image])
        return image, "a file system of type ext3"
    if kind == "preallocated-data-deep":
        image = storage.image(size_mib=128, preallocation="falloc")
        write_at(image, 100 * MIB, b"data")
        return image, "non-zero byte at offset %d" % (100 * MIB)
    raise ValueError(kind)


def mbr(sectors):
    """A DOS partition table with one Linux partition over the disk."""
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048,
                        sectors - 2048)
    return b"\0" * 446 + entry + b"\0" * 48 + b"\x55\xaa"


@pytest.mark.parametrize("kind", ["random", "data-in-the-middle", "swap",
                                  "partition-table", "minix", "ext3",
                                  "preallocated-data-deep"])
def test_disk_with_data_refused_and_unchanged(vdsm, installation, engine,
                                              storage, kind):
    name, client = engine
    image, what = not_blank(kind, storage)
    checksum = sha256(image)
    vm = container_vm(name, "vda:/data", domains.disk("vda", image))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert err.startswith("VM disk vda cannot be mounted in the container: ")
    assert what in err
    assert "never formatted" in err
    assert err.count("\n") == 1
    assert e.value.result.data == vm.xml
    assert sha256(image) == checksum
    assert_released(installation, storage, client, vm)


@pytest.mark.parametrize("fstype, size_mib", [("ext4", DISK_MIB),
                                              ("xfs", 320)])
def test_existing_file_system_mounted_as_found(vdsm, installation, engine,
                                               storage, fstype, size_mib):
    name, client = engine
    image = storage.image(size_mib=size_mib)
    run(["mkfs." + fstype, "-q", image])
    here = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-fill-")
    subprocess.check_call(["mount", "-o", "loop", image, here])
    try:
        with open(os.path.join(here, "old"), "w") as f:
            f.write("from before\n")
    finally:
        subprocess.check_call(["umount", here])
        os.rmdir(here)
    vm = container_vm(name, "vda:data", domains.disk("vda", image))

    result = start(vdsm, vm)

    assert sh(client, vm, "cat /data/old") == "from before\n"
    mount = [line.split() for line in
             sh(client, vm, "cat /proc/mounts").splitlines()
             if line.split()[1] == "/data"]
    assert [m[2] for m in mount] == [fstype]
    options = mount[0][3].split(",")
    assert "nodev" in options and "nosuid" in options
    if fstype == "ext4":
        assert "errors=remount-ro" in options
    power_off(vdsm, vm, result.data)
    assert_released(installation, storage, client, vm)
    assert fs_type(image) == fstype


def test_qcow2_image_refused_by_the_helper(vdsm, installation, engine,
                                          storage):
    # The XML claims raw (the hook refuses qcow2 drivers itself): the helper
    # reads the image and finds qcow2.
    name, client = engine
    image = storage.image(fmt="qcow2")
    checksum = sha256(image)
    vm = container_vm(name, "vda:/data", domains.disk("vda", image))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert "VM disk vda cannot be mounted in the container: it is a qcow2 " \
        "image; only raw disks can be mounted" in err
    assert sha256(image) == checksum
    assert_released(installation, storage, client, vm)


def test_failed_start_releases_the_disks_mounted_before(vdsm, installation,
                                                        engine, storage):
    # vda is formatted and mounted, then vdb is refused.
    name, client = engine
    good = storage.image()
    bad, _ = not_blank("random", storage)
    vm = container_vm(name, "vda:/data,vdb:/more",
                      domains.disk("vda", good), domains.disk("vdb", bad))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    assert "VM disk vdb cannot be mounted" in e.value.err.decode("utf-8")
    assert_released(installation, storage, client, vm)
    assert fs_type(good) == "ext4"      # formatted: it was blank


def test_failed_container_start_releases_the_disks(vdsm, installation,
                                                   engine, storage):
    # The disk mounts, then the engine cannot bind a directory over the
    # image's /bin/busybox file: the container is created but not started.
    name, client = engine
    image = storage.image()
    lv, _ = storage.block()
    vm = container_vm(name, "vda:/data,sdb:/bin/busybox",
                      domains.disk("vda", image),
                      domains.disk("sdb", lv, kind="block"))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert "failed to start container" in err, err
    assert_released(installation, storage, client, vm)


def test_start_refused_while_another_host_has_the_disk(
        vdsm, installation, storage, docker_client, registry_image):
    # One engine is enough: the lock is taken before any engine is used.
    image = storage.image()
    vm = container_vm("docker", "vda:/data", domains.disk("vda", image))

    with OtherHost(image):
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        err = e.value.err.decode("utf-8")
        assert "VM disk vda cannot be mounted in the container: it is in " \
            "use: it is mounted for a container on another host" in err, err
        assert err.count("\n") == 1
    assert_released(installation, storage, docker_client, vm)
    assert fs_type(image) == ""             # never touched

    result = start(vdsm, vm)
    try:
        assert lock_holder(image) == "vdsm-hook-containers"
        with pytest.raises(AssertionError):     # the other host, in turn
            OtherHost(image)
        rc, out = qemu_io(image)
        assert 'Failed to get "write" lock' in out, out
    finally:
        power_off(vdsm, vm, result.data)
    assert_released(installation, storage, docker_client, vm)
    assert qemu_io(image)[0] == 0


def test_disk_in_use_refused(vdsm, installation, engine, storage):
    # An image some other loop device already uses, a block device the
    # host has mounted elsewhere.
    name, client = engine
    image = storage.image()
    other = run(["losetup", "--find", "--show", image]).strip()
    try:
        vm = container_vm(name, "vda:/data", domains.disk("vda", image))
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        assert "VM disk vda cannot be mounted in the container: it is in " \
            "use on this host (loop device %s is attached to it)" % other \
            in e.value.err.decode("utf-8")
    finally:
        subprocess.check_call(["losetup", "--detach", other])

    lv, device = storage.block()
    run(["mkfs.ext4", "-q", device])
    elsewhere = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-elsewhere-")
    subprocess.check_call(["mount", device, elsewhere])
    try:
        vm = container_vm(name, "sdb:/data",
                          domains.disk("sdb", lv, kind="block"))
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        assert "it is in use on this host (%s is mounted" % device \
            in e.value.err.decode("utf-8")
    finally:
        subprocess.check_call(["umount", elsewhere])
        os.rmdir(elsewhere)
    assert_released(installation, storage, client, vm)


def test_vm_disk_refusals_through_the_hook(vdsm, installation, engine,
                                          storage):
    name, client = engine
    image = storage.image()
    for volume_map, disk, message in [
            ("vdb:/data", domains.disk("vda", image),
             "Invalid custom property volumeMap='vdb:/data': the VM has no "
             "disk vdb"),
            ("sdc:/data", domains.disk("sdc", image, device="cdrom",
                                       bus="scsi"),
             "VM disk sdc cannot be mounted in the container: it is a "
             "CD-ROM"),
            ("vda:/data", domains.disk("vda", image, shareable=True),
             "VM disk vda cannot be mounted in the container: it is "
             "shareable")]:
        vm = container_vm(name, volume_map, disk)
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        err = e.value.err.decode("utf-8")
        assert message in err
        assert err.count("\n") == 1
        assert e.value.result.scripts[-1].rc == 2
        assert_released(installation, storage, client, vm)
    assert fs_type(image) == ""        # never touched


# The helper, called directly with crafted arguments

def helper_start(installation, volume, as_vdsm):
    """Run the installed helper's start; (vm id, exit code, stderr)."""
    vm_id = str(uuid.uuid4())
    args = ["start", "--vm-id=" + vm_id, "--vm-name=crafted",
            "--engine=docker", "--image=" + images.IMAGE,
            "--memory-mib=64", "--vcpus=1", "--volume=" + volume]
    if as_vdsm:
        cmd = ["/usr/bin/sudo", "-n", installation.helper] + args
        kw = dict(user=VDSM_UID, group=kvm_gid(), extra_groups=[],
                  cwd="/")
    else:
        cmd = [installation.helper] + args
        kw = {}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, **kw)
    out, err = p.communicate()
    return vm_id, p.returncode, err.decode("utf-8")


def crafted_sources(storage):
    """(volume argument, refusal, the file or device it names)."""
    outside = storage.image(directory=storage.outside)
    lv, device = storage.block()
    return [
        ("vda,/data,file," + outside, "not under a storage root", outside),
        ("vda,/data,file," + storage.link(outside),
         "it leads to %s, outside the storage roots" % outside, outside),
        ("vda,/data,file,%s/../%s/%s" % (
            storage.root, os.path.basename(storage.outside),
            os.path.basename(outside)),
         "not a normalized absolute path", outside),
        ("vda,/data,file," + lv, "not a regular file", device),
        ("vda,/data,block," + storage.block_link(storage.image()),
         "not a block device", None),
        ("vda,/data,block," + storage.block_link("/etc/passwd"),
         "not a block device", "/etc/passwd"),
        ("vda,/data,file," + storage.link("/etc/passwd"),
         "it leads to /etc/passwd, outside the storage roots",
         "/etc/passwd"),
        ("vda,/data,block," + storage.block_link(device + "-missing"),
         "cannot open it", None),
    ]


@pytest.mark.parametrize("as_vdsm", [False, True], ids=["root", "vdsm-sudo"])
def test_helper_refuses_sources_outside_the_roots(installation, storage,
                                                  docker_client, registry_image,
                                                  as_vdsm):
    for volume, refusal, target in crafted_sources(storage):
        before = sha256(target) if target and os.path.isfile(target) \
            else None
        vm_id, rc, err = helper_start(installation, volume, as_vdsm)
        assert rc == 1, (volume, err)
        source = volume.split(",", 3)[3]
        assert err.startswith("Refusing to mount VM disk vda from %s: %s"
                              % (source, refusal)), (volume, err)
        assert "storage_roots (%s)" % storage.root in err
        assert err.count("\n") == 1
        if before is not None:
            assert sha256(target) == before
        assert storage.leftovers(installation.state_dir) == []
        assert [n for n in installation.state_files()
                if n.startswith(vm_id)] == []


# The placeholder in real libvirt and qemu

WRITE_AT = 32 * MIB
WRITE_LENGTH = 64 * 1024


def qemu_fds(pid, path):
    """The open flags of pid's file descriptors on path (file or device)."""
    real = os.path.realpath(path)
    flags = []
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target == real:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                fields = dict(l.split(":", 1) for l in f if ":" in l)
            flags.append(int(fields["flags"].strip(), 8))
    return flags


def image_lock_bytes(path):
    """The first bytes of every lock on path's file (/proc/locks)."""
    st = os.stat(path)
    inode = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev),
                              st.st_ino)
    with open("/proc/locks") as f:
        return sorted(int(line.split()[-2]) for line in f
                      if line.split()[-3] == inode)


def read_at(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.fixture
def placeholder_domain(libvirt_host, qemu_workdir, docker_client):
    """Runs a placeholder XML as a transient domain; destroyed after."""
    started = []

    def create(root, keep_disks):
        kept = dict((d.find("target").get("dev"), copy.deepcopy(d))
                    for d in root.iterfind("devices/disk")
                    if d.find("target").get("dev") in keep_disks)
        libvirt.adjust(root, libvirt_host, qemu_workdir)
        # The mounted disks stay on the test's storage, as Vdsm gave them.
        for disk in list(root.iterfind("devices/disk")):
            name = disk.find("target").get("dev")
            if name in kept:
                disk.getparent().replace(disk, kept[name])
        started.append(libvirt.create(root, qemu_workdir))
        libvirt.wait_running(started[-1])
        return started[-1]

    yield create
    for uuid_ in started:
        libvirt.virsh("destroy", uuid_, check=False)


def guest_write(uuid_, disk, bus):
    """Ask qemu to write WRITE_LENGTH bytes of 0xab at WRITE_AT through
    the guest's device for disk (an alias); qemu's answer."""
    backend = "/machine/peripheral/" + disk
    if bus == "virtio":
        backend += "/virtio-backend"
    _, out, _ = libvirt.virsh(
        "qemu-monitor-command", uuid_, "--hmp", 'qemu-io -d %s "write -P '
        '0xab %d %d"' % (backend, WRITE_AT, WRITE_LENGTH))
    return out.strip()


def test_placeholder_cannot_write_a_mounted_disk(vdsm, installation, storage,
                                                 registry_image,
                                                 docker_client,
                                                 placeholder_domain):
    image = storage.image()
    lv, device = storage.block()
    control = storage.image()       # not in volumeMap: qemu may write it
    block_disk = domains.disk("sdb", lv, kind="block")
    block_disk.find("driver").set("discard", "unmap")   # as Vdsm sets it
    vm = container_vm("docker", "vda:/data,sdb:/logs",
                      domains.disk("vda", image), block_disk,
                      domains.disk("vdc", control))
    result = start(vdsm, vm)
    try:
        root = etree.fromstring(result.data.encode("utf-8"))
        aliases = dict((d.find("target").get("dev"),
                        d.find("alias").get("name"))
                       for d in root.iterfind("devices/disk"))
        uuid_ = placeholder_domain(root, ("vda", "sdb", "vdc"))
        pid = libvirt.qemu_pid(vm.name)

        # The probe works: through a disk that is not mounted, qemu writes.
        assert "Block node is read-only" not in guest_write(
            uuid_, aliases["vdc"], "virtio")
        assert read_at(control, WRITE_AT, WRITE_LENGTH) \
            == b"\xab" * WRITE_LENGTH

        for name, path, bus in (("vda", image, "virtio"),
                                ("sdb", device, "scsi")):
            # qemu opened the disk read-only...
            flags = qemu_fds(pid, path)
            assert flags, "qemu has no descriptor on %s" % path
            assert all(f & os.O_ACCMODE == os.O_RDONLY for f in flags)
            # ...and refuses to write to it through the guest's device.
            assert guest_write(uuid_, aliases[name], bus) \
                == "Block node is read-only"
            assert read_at(path, WRITE_AT, WRITE_LENGTH) \
                != b"\xab" * WRITE_LENGTH

        # The package's lock and the read-only placeholder's own qemu locks
        # live together (qemu's "consistent read" byte 100 is its own), and
        # keep any other qemu from writing the image.
        assert 100 in image_lock_bytes(image)
        assert lock_holder(image) == "vdsm-hook-containers"
        rc, out = qemu_io(image)
        assert 'Failed to get "write" lock' in out, out

        # The container writes meanwhile, and Engine's power off releases
        # the disks while qemu still runs (before_vm_destroy comes first),
        # also from qemu's own mount namespace.
        sh(docker_client, vm, "echo ok > /data/f && echo ok > /logs/f && "
           "sync")
        last_xml = libvirt.dumpxml(uuid_)
        volumes_dir = os.path.join(installation.state_dir, "volumes")
        with open("/proc/%d/mountinfo" % pid) as f:
            # qemu sees the mounts (in libvirt's namespace for qemu, if it
            # makes one, a copy of them)
            assert f.read().count(volumes_dir) == 2
        print("\nqemu mount namespace: %s" % (
            "its own" if os.readlink("/proc/%d/ns/mnt" % pid)
            != os.readlink("/proc/self/ns/mnt") else "the host's"))
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        assert storage.leftovers(installation.state_dir) == []
        with open("/proc/%d/mountinfo" % pid) as f:
            assert volumes_dir not in f.read()
        libvirt.virsh("destroy", uuid_)
        vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                 custom=vm.custom)
    except BaseException:
        vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                 custom=vm.custom)
        raise
    assert_released(installation, storage, docker_client, vm)
