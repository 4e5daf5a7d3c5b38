"""Install the package into a private tree, the way the RPM lays it out.

The tests run the real hook scripts and the real root helper, as separate
processes under /usr/bin/python3 with the distribution's python3-docker,
python3-lxml and python3-six, as on a host.  Instead of writing to
/usr/libexec and /etc, an Installation copies the files into a private
root (readable by the vdsm user), and:

- writes containerhooks/_site.py there, pointing paths.* at the private
  config, secrets, helper, exit watcher, state, samples and serial console
  directories, idle kernel, log file, a stand-in for /sys/dev/block (the
  samples directory owned by vdsm, as the RPM's tmpfiles.d entry makes it,
  the console directory vdsm's, as vdsmd makes it) and one for Vdsm's
  channels directory (vdsm's, 0775, as Vdsm's RPM makes
  /var/lib/libvirt/qemu/channels; domains.with_channels_dir puts a test
  VM's channel sockets there, as Engine writes them);
- puts the private lib directory first on the path of every installed
  entry script (hooks, helper, watcher, admin command) with one line after
  the shebang: the RPM installs into site-packages, and the helper runs
  with -Es, so PYTHONPATH would not reach it.  Not a .pth file in the
  system's site directory: several test runs on one machine would each
  point every python3 at their own copy, and the first to finish would
  pull the library from under the others;
- installs the RPM's sudoers rule with the helper path replaced, in a
  sudoers file of its own (again: runs side by side).

start_watcher() runs the exit watcher as its systemd service would, as a
plain root process, and stop_watcher() stops it by its pid.  Everything
is removed again by remove().
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUDOERS_PREFIX = "/etc/sudoers.d/50_vdsm_hook_containers_tests_"
RPM_HELPER = "/usr/libexec/vdsm-hook-containers/containers-helper"

sys.path.insert(0, os.path.join(TOP, "lib"))
from containerhooks import helperd  # noqa: E402
from containerhooks import idlekernel  # noqa: E402


class Installation(object):

    def __init__(self, qemu_run=None):
        """qemu_run: the qemu pid file directory of the libvirtd this
        "host" uses (paths.QEMU_RUN), when not the machine's own
        (tests/desthost.py)."""
        self.qemu_run = qemu_run
        self.root = tempfile.mkdtemp(prefix="vhc-install-", dir="/var/tmp")
        os.chmod(self.root, 0o755)
        self.hooks_dir = os.path.join(self.root, "hooks")
        self.lib_dir = os.path.join(self.root, "lib")
        self.helper = os.path.join(self.root, "libexec", "containers-helper")
        self.watcher = os.path.join(self.root, "libexec",
                                    "containers-watcher")
        self.helperd = os.path.join(self.root, "libexec",
                                    "containers-helperd")
        self.cli = os.path.join(self.root, "bin", "vdsm-containers")
        self.conf = os.path.join(self.root, "etc", "containers.conf")
        self.state_dir = os.path.join(self.root, "run")
        self.samples_dir = os.path.join(self.root, "samples")
        # /var/run/ovirt-vmconsole-console, where the watcher serves the
        # VMs' serial consoles (console.py).
        self.vmconsole_dir = os.path.join(self.root, "vmconsole")
        self.helper_socket = os.path.join(self.state_dir, "helper.sock")
        self.kernel = os.path.join(self.root, "share", "placeholder.elf")
        self.log = os.path.join(self.root, "log", "containers.log")
        self.networks_dir = os.path.join(self.root, "etc", "networks.d")
        self.secrets_dir = os.path.join(self.root, "etc", "secrets")
        # The helper's /sys/dev/block: tests make LVs there (see
        # hoststorage.Sysfs; this machine's kernel has no device-mapper).
        self.sys_dev_block = os.path.join(self.root, "sys", "dev", "block")
        self.channels_dir = os.path.join(self.root, "channels")
        # sudo reads every file of sudoers.d whose name has no dot.
        self.sudoers = SUDOERS_PREFIX + os.path.basename(self.root).replace(
            "-", "_")
        self._installed_system_files = []

    def install(self, sudo=True):
        shutil.copytree(os.path.join(TOP, "hooks"), self.hooks_dir)
        shutil.copytree(os.path.join(TOP, "lib", "containerhooks"),
                        os.path.join(self.lib_dir, "containerhooks"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for d in ("libexec", "etc", "share", "log", "bin"):
            os.mkdir(os.path.join(self.root, d))
        shutil.copy2(os.path.join(TOP, "helper", "containers-helper"),
                     self.helper)
        shutil.copy2(os.path.join(TOP, "helper", "containers-watcher"),
                     self.watcher)
        shutil.copy2(os.path.join(TOP, "helper", "containers-helperd"),
                     self.helperd)
        shutil.copy2(os.path.join(TOP, "bin", "vdsm-containers"), self.cli)
        idlekernel.write(self.kernel)
        os.chmod(self.kernel, 0o644)
        # Hooks (vdsm) and the helper (root) log to one file.
        open(self.log, "a").close()
        os.chmod(self.log, 0o666)
        with open(os.path.join(self.lib_dir, "containerhooks", "_site.py"),
                  "w") as f:
            f.write("# Written by tests/install.py: a private install.\n")
            for name, value in (("CONF_FILE", self.conf),
                                ("HELPER", self.helper),
                                ("WATCHER", self.watcher),
                                ("HELPERD", self.helperd),
                                ("HELPER_SOCKET", self.helper_socket),
                                ("SAMPLES_DIR", self.samples_dir),
                                ("VMCONSOLE_DIR", self.vmconsole_dir),
                                ("STATE_DIR", self.state_dir),
                                ("HEALTH_DUMP_DIR",
                                 os.path.join(self.state_dir, "dumps")),
                                ("PLACEHOLDER_KERNEL", self.kernel),
                                ("LOG_FILE", self.log),
                                ("NETWORKS_DIR", self.networks_dir),
                                ("SECRETS_DIR", self.secrets_dir),
                                ("SUDOERS", self.sudoers),
                                ("VDSM_HOOKS_DIR", self.hooks_dir),
                                ("SYS_DEV_BLOCK", self.sys_dev_block),
                                ("VM_CHANNELS_DIR", self.channels_dir)):
                f.write("%s = %r\n" % (name, value))
            if self.qemu_run is not None:
                f.write("QEMU_RUN = %r\n" % self.qemu_run)
        # Byte-compiled, as the RPM's brp-python-bytecompile leaves the
        # library on EL: vdsm cannot write __pycache__ there, and a hook
        # would otherwise compile every module it imports, every time.
        subprocess.check_call(["/usr/bin/python3", "-m", "compileall", "-q",
                               os.path.join(self.lib_dir, "containerhooks")])
        for dirpath, dirnames, filenames in os.walk(self.root):
            os.chmod(dirpath, 0o755)
        # The stats hooks' samples directory belongs to vdsm, as the RPM's
        # tmpfiles.d entry makes it.
        os.mkdir(self.samples_dir, 0o755)
        # The console directory as vdsmd's init makes it: vdsm's, 0775
        # (vdsm:qemu on a host; this machine has no qemu group).
        os.mkdir(self.vmconsole_dir)
        os.chmod(self.vmconsole_dir, 0o775)
        os.mkdir(self.channels_dir)
        os.chmod(self.channels_dir, 0o775)
        if vdsm_user_exists():
            vdsm = pwd.getpwnam("vdsm")
            os.chown(self.samples_dir, vdsm.pw_uid, vdsm.pw_gid)
            os.chown(self.vmconsole_dir, vdsm.pw_uid, vdsm.pw_gid)
            os.chown(self.channels_dir, vdsm.pw_uid, vdsm.pw_gid)
        self.configure()
        for script in self.entry_scripts():
            self._use_private_lib(script)
        if sudo:
            self.install_sudoers()
        return self

    def configure(self, **options):
        """Write the private containers.conf with these options (and the
        engine sockets of VHC_DOCKER_SOCKET, VHC_PODMAN_SOCKET when set:
        conftest.ENGINE_SOCKETS)."""
        for key, variable in (("docker_socket", "VHC_DOCKER_SOCKET"),
                              ("podman_socket", "VHC_PODMAN_SOCKET")):
            if os.environ.get(variable):
                options.setdefault(key, os.environ[variable])
        with open(self.conf, "w") as f:
            f.write("[containers]\n")
            for key, value in sorted(options.items()):
                f.write("%s = %s\n" % (key, value))

    def install_sudoers(self):
        with open(os.path.join(TOP, "packaging", "sudoers")) as f:
            rule = f.read()
        if RPM_HELPER not in rule:
            raise AssertionError("packaging/sudoers does not name "
                                 + RPM_HELPER)
        path = self.sudoers
        self._write_system_file(path, rule.replace(RPM_HELPER, self.helper),
                                0o440)
        subprocess.check_call(["visudo", "-cqf", path])

    def entry_scripts(self):
        """The installed programs: hook scripts, helper, watcher, CLI."""
        hooks = [os.path.join(self.hooks_dir, d, n)
                 for d in sorted(os.listdir(self.hooks_dir))
                 for n in sorted(os.listdir(os.path.join(self.hooks_dir, d)))]
        return hooks + [self.helper, self.helperd, self.watcher, self.cli]

    def _use_private_lib(self, script):
        with open(script) as f:
            lines = f.read().splitlines(True)
        if not lines[0].startswith("#!"):
            raise AssertionError("%s has no shebang" % script)
        lines.insert(1, "import sys; sys.path.insert(0, %r)  # tests/"
                     "install.py\n" % self.lib_dir)
        with open(script, "w") as f:
            f.write("".join(lines))

    def start_watcher(self, timeout=30):
        """Run the installed exit watcher as root, as its systemd service
        does, until stop_watcher(); return once it has reported on every
        engine of the configuration (reachable or not)."""
        status = os.path.join(self.state_dir, "watcher.status")

        def reported():
            try:
                with open(status) as f:
                    engines = json.load(f)["engines"]
            except (IOError, ValueError, KeyError):
                return False
            return bool(engines) and all(e.get("reachable") is not None
                                         for e in engines.values())
        return self._run_daemon(self.watcher, "the watcher", reported,
                                "report on the engines", timeout)

    def start_helperd(self, timeout=30):
        """Run the installed helper service as root, as its systemd
        service does, until stop_helperd(); return once it listens."""
        return self._run_daemon(
            self.helperd, "the helper service",
            lambda: helperd.answers(self.helper_socket), "listen", timeout)

    def _run_daemon(self, program, what, ready, doing, timeout):
        """Start program (output to log/<name>.out); return its Popen once
        ready() says so; fail if it exits or is not ready in time."""
        name = os.path.basename(program).replace("containers-", "")
        out = open(os.path.join(self.root, "log", name + ".out"), "ab")
        try:
            # cwd: systemd runs services in / (WorkingDirectory=).
            proc = subprocess.Popen([program], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    cwd="/")
        finally:
            out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError("%s exited with %s:\n%s"
                                     % (what, proc.returncode,
                                        self.read_log()))
            if ready():
                return proc
            time.sleep(0.02)
        self.stop_daemon(proc)
        raise AssertionError("%s did not %s within %ds" % (what, doing,
                                                           timeout))

    def stop_daemon(self, proc):
        """Stop a daemon of start_watcher() or start_helperd() by its pid,
        as systemd does: SIGTERM, then SIGKILL.  (The helper service's
        unit has KillMode=process: requests in progress are spared.)"""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    stop_watcher = stop_helperd = stop_daemon

    def run_cli(self, *args, **kwargs):
        """Run the installed vdsm-containers (as root, as an admin does);
        return its exit code, stdout and stderr.  input: bytes for its
        standard input (else none: a command that reads it never waits)."""
        argv = [self.cli] + list(args)
        if kwargs.get("user"):      # an admin who forgot to be root
            argv = ["runuser", "-u", kwargs["user"], "--"] + argv
        data = kwargs.get("input")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL if data is None
                             else subprocess.PIPE)
        out, err = p.communicate(input=data,
                                 timeout=kwargs.get("timeout", 120))
        return p.returncode, out.decode(), err.decode()

    def hook(self, name):
        return os.path.join(self.hooks_dir, name, "50_containers")

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def record(self, vm_id):
        """The VM's state record, as the helper wrote it (a dict)."""
        import json
        with open(os.path.join(self.state_dir, vm_id + ".json")) as f:
            return json.load(f)

    def files_outside_secrets(self):
        """Every file of the installation but the secrets directory: what
        the vdsm user, logs and Engine may see of it."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == self.secrets_dir:
                dirnames[:] = []
                continue
            for name in filenames:
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    yield path

    def state_files(self):
        if not os.path.isdir(self.state_dir):
            return []
        return sorted(os.listdir(self.state_dir))

    def remove(self):
        for path in self._installed_system_files:
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_system_file(self, path, content, mode):
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        self._installed_system_files.append(path)


def vdsm_user_exists():
    try:
        pwd.getpwnam("vdsm")
        return True
    except KeyError:
        return False
