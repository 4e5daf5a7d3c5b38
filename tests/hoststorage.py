"""VM disks on a stand-in for /rhev/data-center, for the volumeMap tests.

A Storage is a storage root with a file domain (sparse raw images owned by
vdsm:kvm, as Vdsm makes them) and a block domain: "LVs" that are loop
devices over files in a separate "SAN" directory, reached through
<root>/mnt/blockSD/<domain id>/images/<image id>/<volume id> as Vdsm's LVs
are.  The functions look at what the host has: mounts, loop devices, file
systems, checksums.  Plain code, no pytest: the storage fixture is in
conftest.py.

Why the LVs are loop devices: the machine the tests run on has a kernel
without device-mapper (no /dev/mapper/control), so no LV can be activated.
The helper knows an LV by what the kernel says of its device in
/sys/dev/block/<major>:<minor>/dm/ (hostdisk.check_block_volume); a
Sysfs is a copy of /sys/dev/block in which an "LV"'s loop device gets the
dm/name and dm/uuid LVM gives an LV's device, everything else is the real
entry.  Only that one kernel fact is made up; the device, the data, mkfs
and mount are real.
"""

import contextlib
import grp
import hashlib
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import uuid

MIB = 1024 * 1024
DISK_MIB = 64
VDSM_UID = 36


def run(cmd):
    return subprocess.check_output(cmd).decode("utf-8")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def mounts_under(directory):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == directory
            or p.startswith(directory + "/")]


def loops():
    """{loop device: backing file} of every configured loop device."""
    out = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"])
    if not out.strip():
        return {}
    return dict((d["name"], d["back-file"])
                for d in json.loads(out)["loopdevices"])


class Sysfs(object):
    """A stand-in for /sys/dev/block (paths.SYS_DEV_BLOCK): every entry is
    a symlink to the real one, except the devices made into LVs by
    as_lv()."""

    def __init__(self, path=None):
        """path: where (made if missing), or a new temporary directory."""
        if path is None:
            path = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-sysfs-")
        elif not os.path.isdir(path):
            os.makedirs(path)
        os.chmod(path, 0o755)
        self.path = path
        self.refresh()

    def refresh(self):
        """Link the real entries of devices that appeared since."""
        for name in os.listdir(REAL_SYS_DEV_BLOCK):
            entry = os.path.join(self.path, name)
            if not os.path.lexists(entry):
                os.symlink(os.path.join(REAL_SYS_DEV_BLOCK, name), entry)

    def as_lv(self, device, vg, lv, on=None):
        """Make device look like LV lv of VG vg, as LVM activates it: a
        dm device named "<vg>-<lv>" (each '-' of a name doubled, as
        libdevmapper's dm_build_dm_name does) whose uuid is "LVM-" + the
        VG's and the LV's uuids, on a multipath device (as Vdsm's PVs
        are), or on the real device on."""
        entry = self.as_dm(device, dm_name(vg, lv),
                           "LVM-" + lvm_uuid() + lvm_uuid())
        if on is None:
            pv = os.path.join(self.path, "mpath-" + lvm_uuid())
            wwid = "36001405" + uuid.uuid4().hex[:25]
            self._write_dm(pv, wwid, "mpath-" + wwid)
            os.symlink(pv, os.path.join(entry, "slaves", "dm-0"))
        else:
            rdev = os.stat(on).st_rdev
            os.symlink(os.path.join(REAL_SYS_DEV_BLOCK, "%d:%d" % (
                os.major(rdev), os.minor(rdev))),
                os.path.join(entry, "slaves", os.path.basename(on)))

    def as_dm(self, device, name, uuid_):
        """Make device look like a dm device of that name and uuid (and
        nothing below it); its entry."""
        entry = self._entry(device)
        self.restore(device)
        os.unlink(entry)
        self._write_dm(entry, name, uuid_)
        return entry

    def _write_dm(self, entry, name, uuid_):
        os.makedirs(os.path.join(entry, "dm"))
        os.mkdir(os.path.join(entry, "slaves"))
        for key, value in (("name", name), ("uuid", uuid_),
                           ("suspended", "0")):
            with open(os.path.join(entry, "dm", key), "w") as f:
                f.write(value + "\n")
        for dirpath, _, _ in os.walk(entry):
            os.chmod(dirpath, 0o755)

    def restore(self, device):
        """The real entry for device again."""
        entry = self._entry(device)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        if os.path.lexists(entry):
            os.unlink(entry)
        os.symlink(os.path.join(REAL_SYS_DEV_BLOCK,
                                os.path.basename(entry)), entry)

    def _entry(self, device):
        rdev = os.stat(device).st_rdev
        return os.path.join(self.path, "%d:%d" % (os.major(rdev),
                                                  os.minor(rdev)))

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


REAL_SYS_DEV_BLOCK = "/sys/dev/block"


def dm_name(vg, lv):
    return "%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))


def lvm_uuid():
    """An LVM uuid as dm shows it: 32 letters and digits, no dashes."""
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choice(alphabet) for _ in range(32))


class Storage(object):
    """A storage root with a file domain and a block domain, like
    /rhev/data-center on a host; block devices are loop devices over files
    in a separate "SAN" directory, outside the root, made to look like
    LVs in sysfs (a Sysfs; block() needs one)."""

    def __init__(self, sysfs=None):
        self.sysfs = sysfs
        self.root = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-storage-")
        self.san = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-san-")
        self.outside = tempfile.mkdtemp(dir="/var/tmp",
                                        prefix="vhc-outside-")
        for d in (self.root, self.san, self.outside):
            os.chmod(d, 0o755)
        self.devices = []

    def _volume_path(self, domain, sd=None, vol=None):
        path = os.path.join(self.root, "mnt", domain,
                            sd or str(uuid.uuid4()), "images",
                            str(uuid.uuid4()), vol or str(uuid.uuid4()))
        os.makedirs(os.path.dirname(path))
        for dirpath, _, _ in os.walk(self.root):
            os.chmod(dirpath, 0o755)
        return path

    def image(self, size_mib=DISK_MIB, fmt="raw", directory=None,
              preallocation="off"):
        """A new image on the file domain (sparse raw by default), owned
        by vdsm:kvm as Vdsm makes them; preallocation: qemu-img's (falloc:
        allocated unwritten extents, full: zeros written)."""
        if directory is None:
            path = self._volume_path("nfs.example.com:_data")
        else:
            path = os.path.join(directory, str(uuid.uuid4()))
        options = [] if preallocation == "off" \
            else ["-o", "preallocation=" + preallocation]
        subprocess.check_call(["qemu-img", "create", "-q", "-f", fmt]
                              + options + [path, "%dM" % size_mib])
        os.chown(path, VDSM_UID, kvm_gid())
        os.chmod(path, 0o660)
        return path

    def block(self, size_mib=DISK_MIB):
        """A new LV on the block domain: (Vdsm's path, device).

        The path is <root>/mnt/blockSD/<sd>/images/<img>/<vol>, a symlink
        to the device, as Vdsm links /dev/<sd>/<vol> (blockVolume.py)."""
        device = self.device(size_mib)
        sd, vol = str(uuid.uuid4()), str(uuid.uuid4())
        self.sysfs.as_lv(device, sd, vol)
        return self.block_link(device, sd, vol), device

    def device(self, size_mib=DISK_MIB):
        """A new loop device over a file in the SAN directory."""
        backing = os.path.join(self.san, str(uuid.uuid4()))
        with open(backing, "wb") as f:
            f.truncate(size_mib * MIB)
        device = run(["losetup", "--find", "--show", backing]).strip()
        self.devices.append(device)
        # As Vdsm's udev rules set its LVs (qemu may open them).
        os.chown(device, VDSM_UID, kvm_gid())
        os.chmod(device, 0o660)
        if self.sysfs:
            self.sysfs.refresh()
        return device

    def block_link(self, target, sd=None, vol=None):
        """A volume path on the block domain that is a symlink to target
        (with the given domain and volume ids, or new ones)."""
        path = self._volume_path("blockSD", sd, vol)
        os.symlink(target, path)
        if self.sysfs:
            self.sysfs.refresh()
        return path

    def link(self, target):
        """A volume path in the root that is a symlink to target."""
        path = self._volume_path("nfs.example.com:_data")
        os.symlink(target, path)
        return path

    def leftovers(self, state_dir):
        """Mounts and loop devices of the package still there."""
        found = mounts_under(os.path.join(state_dir, "volumes"))
        ours = (self.root + "/", self.outside + "/")
        for device, backing in loops().items():
            if backing and backing.startswith(ours):
                found.append("%s (%s)" % (device, backing))
        # The package's lock on an image (disklock.py) would refuse its
        # next start.  (A qemu's locks are its domain's.)
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path) \
                        and lock_holder(path) == "vdsm-hook-containers":
                    found.append("image lock on %s" % path)
        return found

    def clean(self, state_dir):
        for point in sorted(mounts_under(os.path.join(state_dir,
                                                      "volumes")),
                            key=len, reverse=True):
            subprocess.call(["umount", "--lazy", point])
        for device, backing in loops().items():
            if backing and backing.startswith((self.root + "/",
                                               self.outside + "/",
                                               self.san + "/")):
                subprocess.call(["losetup", "--detach", device])
        if self.sysfs:
            for device in self.devices:
                if os.path.exists(device):
                    self.sysfs.restore(device)
        for d in (self.root, self.san, self.outside):
            shutil.rmtree(d, ignore_errors=True)


def kvm_gid():
    return grp.getgrnam("kvm").gr_gid


def fs_type(path):
    """The file system blkid finds on path, "" for none."""
    p = subprocess.Popen(["blkid", "--probe", "--output", "value",
                          "--match-tag", "TYPE", path],
                         stdout=subprocess.PIPE)
    out, _ = p.communicate()
    assert p.returncode in (0, 2), "blkid failed on %s" % path
    return out.decode("utf-8").strip()


def write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# Another host on the same storage

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the package on another host does to a disk it mounts (disklock.lock,
# then the loop device keeps the descriptor: the same open file
# description lock), in a process of its own mount namespace.
_OTHER_HOST = """
import os, sys
from containerhooks import disklock
fd = os.open(sys.argv[1], os.O_RDONLY)
held = disklock.lock("vda", fd, readers=sys.argv[2:] == ["readers"])
sys.stdout.write(os.readlink("/proc/self/ns/mnt") + "\\n")
sys.stdout.flush()
sys.stdin.read()
"""


class OtherHost(object):
    """A second "host" holding the package's lock on an image, as a
    process in its own mount namespace (unshare -m), until release().
    (Cross-host propagation needs an NFS client: argued in the README.)"""

    def __init__(self, image, readers=False):
        """readers: lock as the destination of a migration does, beside
        qemu processes that only read the image."""
        env = dict(os.environ, PYTHONPATH=os.path.join(TOP, "lib"))
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             sys.executable, "-c", _OTHER_HOST, image]
            + (["readers"] if readers else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.mount_ns = self.proc.stdout.readline().decode().strip()
        if not self.mount_ns:
            self.release()
            raise AssertionError("the other host could not lock %s" % image)
        assert self.mount_ns != os.readlink("/proc/self/ns/mnt")

    def release(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def lock_holder(image):
    """Who holds a lock on image, as the package sees it (disklock.holder):
    "vdsm-hook-containers", "qemu" or None."""
    from containerhooks import disklock
    fd = os.open(image, os.O_RDONLY)
    try:
        return disklock.holder(fd)
    finally:
        os.close(fd)


def qemu_io(image, readonly=False):
    """Open image with qemu-io (read-write unless readonly), read a sector;
    (exit code, output)."""
    cmd = ["qemu-io", "-f", "raw"] + (["-r"] if readonly else []) + [
        "-c", "read 0 512", image]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out, _ = p.communicate()
    return p.returncode, out.decode("utf-8", "replace")


@contextlib.contextmanager
def qemu_holding(image):
    """A qemu-io that keeps image open read-write and locked, as a running
    VM's qemu does, until the block ends."""
    qemu = subprocess.Popen(["qemu-io", "-f", "raw", image],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        qemu.stdin.write(b"help\n")
        qemu.stdin.flush()
        qemu.stdout.readline()      # it is up
        yield qemu
    finally:
        qemu.stdin.close()
        qemu.wait()
