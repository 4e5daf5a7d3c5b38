"""VM disks on a stand-in for /rhev/data-center, for the volumeMap tests.

A Storage is a storage root with a file domain (sparse raw images owned by
vdsm:kvm, as Vdsm makes them) and a block domain (loop devices over files
in a separate "SAN" directory, reached through a symlink as Vdsm's LVs
are).  The functions look at what the host has: mounts, loop devices, file
systems, checksums.  Plain code, no pytest: the storage fixture is in
conftest.py.
"""

import grp
import hashlib
import json
import os
import shutil
import subprocess
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


class Storage(object):
    """A storage root with a file domain and a block domain, like
    /rhev/data-center on a host; block devices are loop devices over files
    in a separate "SAN" directory, outside the root."""

    def __init__(self):
        self.root = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-storage-")
        self.san = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-san-")
        self.outside = tempfile.mkdtemp(dir="/var/tmp",
                                        prefix="vhc-outside-")
        for d in (self.root, self.san, self.outside):
            os.chmod(d, 0o755)
        self.devices = []

    def _volume_path(self, domain):
        sd = str(uuid.uuid4())
        path = os.path.join(self.root, "mnt", domain, sd, "images",
                            str(uuid.uuid4()), str(uuid.uuid4()))
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
        """A new block device on the block domain: (Vdsm's path, device)."""
        backing = os.path.join(self.san, str(uuid.uuid4()))
        with open(backing, "wb") as f:
            f.truncate(size_mib * MIB)
        device = run(["losetup", "--find", "--show", backing]).strip()
        self.devices.append(device)
        # As Vdsm's udev rules set its LVs (qemu may open them).
        os.chown(device, VDSM_UID, kvm_gid())
        os.chmod(device, 0o660)
        path = self._volume_path("blockSD")
        os.symlink(device, path)
        return path, device

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
