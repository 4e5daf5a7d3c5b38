"""A second libvirtd on this machine: the destination "host" of a migration.

The machine's libvirtd (qemu:///system, dev/services) plays the source
host.  A Destination runs another libvirtd (the same binary, as root) in a
mount namespace of its own, where /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt, /var/log/libvirt and /etc/libvirt are directories of
its own; so it keeps its own domains, pid files and qemu state.  Its
sockets are in a directory the machine's namespace sees, so virsh (and the
source libvirtd, for a peer-to-peer migration) reach it at uri:

    qemu+unix:///system?socket=<dir>/sock/libvirt-sock

Its libvirtd.conf gives it a host UUID of its own (libvirt refuses to
migrate a domain to the host it runs on: virDomainMigrateCheckNotLocal
compares them) and no authentication on its socket; its qemu.conf writes
qemu's output to files (stdio_handler = "file": no virtlogd in its
namespace).  Everything else (the network, /var/tmp with the disks and
sockets, /dev, the container engines) is the machine's, as hosts share
their storage and LAN.  Its qemu pid files are under run_dir/qemu, which
the destination's installation takes as its paths.QEMU_RUN.

hide(path) hides a directory from it alone (a tmpfs over it in its
namespace): a host where the package is not installed.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import libvirt
import vmrun


class Destination(object):

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="vhc-dsthost-", dir="/var/tmp")
        os.chmod(self.root, 0o755)
        self.run_dir = os.path.join(self.root, "run")
        self.qemu_run = os.path.join(self.run_dir, "qemu")
        self.sock_dir = os.path.join(self.root, "sock")
        self.pid_file = os.path.join(self.root, "libvirtd.pid")
        self.uri = "qemu+unix:///system?socket=%s/libvirt-sock" \
            % self.sock_dir
        self.pid = None

    def start(self, timeout=30):
        dirs = {"run": "/run/libvirt", "lib": "/var/lib/libvirt",
                "cache": "/var/cache/libvirt", "log": "/var/log/libvirt",
                "etc": "/etc/libvirt"}
        for d in list(dirs) + ["sock"]:
            os.mkdir(os.path.join(self.root, d))
        etc = os.path.join(self.root, "etc")
        subprocess.check_call(["cp", "-a", "/etc/libvirt/.", etc])
        for d in ("lib/qemu", "cache/qemu", "log/qemu"):
            os.makedirs(os.path.join(self.root, d))
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write('unix_sock_dir = "%s"\nhost_uuid = "%s"\n'
                    'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    % (self.sock_dir, uuid.uuid4()))
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write('stdio_handler = "file"\n')
        script = "".join("mount --bind %s %s\n" % (os.path.join(
            self.root, d), target) for d, target in sorted(dirs.items()))
        script += "exec libvirtd --pid-file %s\n" % self.pid_file
        out = open(os.path.join(self.root, "libvirtd.out"), "ab")
        try:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh",
                 "-ec", script], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("the destination's libvirtd exited: %s"
                                     % self.log())
            if self.virsh("version", check=False)[0] == 0:
                self.pid = self.proc.pid
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError("the destination's libvirtd did not answer: %s"
                             % self.log())

    def log(self):
        with open(os.path.join(self.root, "libvirtd.out")) as f:
            return f.read()[-2000:]

    def virsh(self, *args, **kwargs):
        return libvirt.run(["virsh", "-q", "-c", self.uri] + list(args),
                           **kwargs)

    def exists(self, uuid_):
        return self.virsh("domstate", uuid_, check=False)[0] == 0

    def dumpxml(self, uuid_):
        return self.virsh("dumpxml", uuid_)[1]

    def wait_gone(self, uuid_, timeout):
        """The time the domain was first seen gone, or None."""
        return vmrun.poll(lambda: not self.exists(uuid_) and time.time(),
                          timeout)

    def migrate(self, uuid_):
        """Migrate domain uuid_ from the machine's libvirtd to this one, as
        Vdsm asks libvirt (virDomainMigrateToURI3 with VIR_MIGRATE_LIVE |
        VIR_MIGRATE_PEER2PEER: the source libvirtd connects to the
        destination itself; the data over TCP on 127.0.0.1).  Returns
        (exit code, stderr).

        With --unsafe (VIR_MIGRATE_UNSAFE), which Vdsm does not pass: the
        tests' disks that are not mounted in the container live in
        /var/tmp, a local file system, where a host has them on shared
        storage, and libvirt refuses to migrate a writable disk on local
        storage ("Migration without shared storage is unsafe",
        qemuMigrationSrcIsSafe); the flag skips that check only."""
        rc, _, err = libvirt.virsh("migrate", "--live", "--p2p", "--unsafe",
                                   uuid_, self.uri, "--migrateuri",
                                   "tcp://127.0.0.1", check=False)
        return rc, err.strip()

    def job_info(self, uuid_):
        """What the destination libvirtd says of the completed incoming
        migration (virsh domjobinfo --completed): {key: value}."""
        _, out, _ = self.virsh("domjobinfo", "--completed", uuid_)
        info = {}
        for line in out.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return info

    @contextlib.contextmanager
    def hide(self, path):
        """path (a directory) looks empty to this libvirtd and its qemu
        processes (a tmpfs over it in its namespace), until the block
        ends."""
        self._nsenter("mount", "-t", "tmpfs", "-o", "size=1m", "none", path)
        try:
            yield
        finally:
            self._nsenter("umount", path)

    def _nsenter(self, *cmd):
        libvirt.run(["nsenter", "-t", str(self.pid), "-m", "--"]
                    + list(cmd))

    def stop(self):
        """Destroy its domains, stop it (by its pid), remove its files."""
        if self.pid is not None:
            _, out, _ = self.virsh("list", "--uuid", check=False)
            for uuid_ in out.split():
                self.virsh("destroy", uuid_, check=False)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
