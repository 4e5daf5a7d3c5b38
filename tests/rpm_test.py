"""The RPM: build it for real from this checkout and check what it installs.

The package is built with rpmbuild from a tarball of the checkout's tracked
files (uncommitted changes included, as they are what the other tests run),
then read back with rpm queries: every file with its mode and flags, the
configuration files, the dependencies.  The expected paths come from the
source tree (hooks/*, lib/containerhooks/*.py) and from the defaults in
paths.py, so a new hook or module, or a moved path, is checked without
touching this file.

The scriptlets are run by rpm itself: the package is installed, upgraded
and erased with rpm --root in a private root (see RpmRoot).
"""

import ast
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time

import pytest

from containerhooks import config
from containerhooks import idlekernel

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "vdsm-hook-containers"
SPEC = NAME + ".spec"
HOOKS_DIR = "/usr/libexec/vdsm/hooks"
SUDOERS = "/etc/sudoers.d/50_vdsm_hook_containers"
TMPFILES = "/usr/lib/tmpfiles.d/%s.conf" % NAME
CLI = "/usr/bin/vdsm-containers"
GC_SERVICE = "/usr/lib/systemd/system/vdsm-hook-containers-gc.service"
GC_TIMER = "/usr/lib/systemd/system/vdsm-hook-containers-gc.timer"
UNIT = "/usr/lib/systemd/system/vdsm-hook-containers-watcher.service"
HELPERD_UNIT = "/usr/lib/systemd/system/vdsm-hook-containers-helperd.service"
PRESET = "/usr/lib/systemd/system-preset/85-vdsm-hook-containers.preset"
LICENSE = "/usr/share/licenses/%s/LICENSE" % NAME
URL = "https://github.com/oVirt/vdsm-hook-containers"

# The dependencies the spec states; those rpmbuild adds by itself (rpmlib
# features, the shell of %post, the interpreter of the scripts, python(abi)
# of the site-packages directory, config()) are matched by AUTO_REQUIRES.
REQUIRES = {
    "vdsm",
    "sudo",
    "python3-docker",
    "python3-lxml",
    "python3-six",
    "util-linux",
    "e2fsprogs",
    "iproute",
    "(docker-ce or moby-engine or docker or podman-docker or podman)",
    # The %preun check of running container VMs.
    "coreutils",
    "sed",
}
AUTO_REQUIRES = re.compile(
    r"^(rpmlib\(.*|/bin/sh|/usr/bin/python3|python\(abi\) = 3\.\d+"
    r"|config\(%s\) = .*)$" % re.escape(NAME))

SITELIB = re.compile(r"^/usr/lib/python3\.\d+/site-packages$")

# rpm --qf format: one line per file.
FILE_FORMAT = ("[%{FILENAMES}\t%{FILEMODES:octal}\t%{FILEUSERNAME}\t"
               "%{FILEGROUPNAME}\t%{FILEFLAGS:fflags}\t%{FILEDIGESTS}\n]")

def _require(*tools):
    """Fail, never skip, when a tool is missing: a skipped RPM check would
    pass CI without checking the package."""
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.fail("missing %s (dev/setup installs them)"
                    % ", ".join(missing), pytrace=False)


def needs_rpmbuild(func):
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _require("rpmbuild", "git")
        return func(*args, **kwargs)
    return wrapper


def _run(cmd, **kwargs):
    """Run cmd; on failure, fail the test with its whole output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, **kwargs)
    if p.returncode != 0:
        pytest.fail("%s failed with exit code %d:\n%s"
                    % (" ".join(cmd), p.returncode, p.stdout), pytrace=False)
    return p.stdout


def _spec_version():
    with open(os.path.join(TOP, SPEC)) as f:
        for line in f:
            m = re.match(r"Version:\s*(\S+)", line)
            if m:
                return m.group(1)
    raise AssertionError("no Version: in " + SPEC)


def _path_defaults(tree):
    """The string constants of paths.py as written, ignoring any _site."""
    with open(os.path.join(tree, "lib", "containerhooks", "paths.py")) as f:
        module = ast.parse(f.read())
    values = {}
    for node in module.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory):
    """A copy of the checkout's tracked files, as the tarball holds them.

    Files tracked by git but deleted in the working tree are left out, like
    untracked ones: the copy is what rpmbuild gets, and the expected file
    list is computed from it.
    """
    tree = tmp_path_factory.mktemp("src") / ("%s-%s" % (NAME, _spec_version()))
    names = _run(["git", "ls-files", "-z"], cwd=TOP).split("\0")
    for name in filter(None, names):
        src = os.path.join(TOP, name)
        if not os.path.isfile(src):
            continue
        dst = os.path.join(str(tree), name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    return str(tree)


def _build(topdir, source_tree, *defines):
    """Build the binary RPM from a tarball of source_tree; its path.

    --nodeps: BuildRequires are RPM package names that this machine's rpm
    database (empty on Debian) cannot satisfy.
    """
    sources = topdir / "SOURCES"
    sources.mkdir()
    prefix = os.path.basename(source_tree)
    with tarfile.open(str(sources / (prefix + ".tar.gz")), "w:gz") as tar:
        tar.add(source_tree, arcname=prefix)
    cmd = ["rpmbuild", "-bb", "--nodeps", "--define", "_topdir %s" % topdir]
    for define in defines:
        cmd += ["--define", define]
    _run(cmd + [os.path.join(source_tree, SPEC)])
    built = list((topdir / "RPMS" / "noarch").glob("*.noarch.rpm"))
    assert len(built) == 1, built
    return str(built[0])


@pytest.fixture(scope="module")
def rpm_package(tmp_path_factory, source_tree):
    """The binary RPM built by rpmbuild -bb from a tarball of source_tree."""
    return _build(tmp_path_factory.mktemp("rpmbuild"), source_tree)


@pytest.fixture(scope="module")
def rpm_upgrade(tmp_path_factory, source_tree):
    """The same package with a higher release (1.1 against 1): what rpm -U
    takes as a newer build of it."""
    return _build(tmp_path_factory.mktemp("rpmbuild-upgrade"), source_tree,
                  "dist .1")


@pytest.fixture(scope="module")
def rpm_files(rpm_package):
    """{path: (mode, user, group, flags, sha256)} of every file in the RPM."""
    files = {}
    out = _run(["rpm", "-qp", "--qf", FILE_FORMAT, rpm_package])
    for line in out.splitlines():
        path, mode, user, group, flags, digest = line.split("\t")
        files[path] = (int(mode, 8), user, group, flags, digest)
    return files


@pytest.fixture(scope="module")
def rpm_tree(tmp_path_factory, rpm_package):
    """The RPM's payload unpacked into a directory (rpm2archive)."""
    root = tmp_path_factory.mktemp("payload")
    archive = _run_bytes(["rpm2archive", "-"], stdin_path=rpm_package)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(str(root))
    return str(root)


def _run_bytes(cmd, stdin_path):
    with open(stdin_path, "rb") as f:
        p = subprocess.run(cmd, stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    if p.returncode != 0:
        pytest.fail("%s failed with exit code %d:\n%s"
                    % (" ".join(cmd), p.returncode,
                       p.stderr.decode("utf-8", "replace")), pytrace=False)
    return p.stdout


def _sitelib(files):
    inits = [p for p in files if p.endswith("/containerhooks/__init__.py")]
    assert len(inits) == 1, inits
    sitelib = os.path.dirname(os.path.dirname(inits[0]))
    # noarch: pure-Python site-packages, never lib64.
    assert SITELIB.match(sitelib), sitelib
    return sitelib


def _modules(tree):
    return sorted(name for name in
                  os.listdir(os.path.join(tree, "lib", "containerhooks"))
                  if name.endswith(".py"))


def _hooks(tree):
    return sorted(name for name in os.listdir(os.path.join(tree, "hooks"))
                  if os.path.isfile(os.path.join(tree, "hooks", name,
                                                 "50_containers")))


def _is_bytecode(path, package_dir, modules):
    """A byte-compiled module, as brp-python-bytecompile leaves on EL."""
    cache = package_dir + "/__pycache__"
    if path == cache:
        return True
    m = re.match(re.escape(cache) + r"/(\w+)\.cpython-\d+(\.opt-[12])?\.pyc$",
                 path)
    return bool(m) and m.group(1) + ".py" in modules


@needs_rpmbuild
def test_file_list(source_tree, rpm_files):
    paths = _path_defaults(source_tree)
    modules = _modules(source_tree)
    package_dir = _sitelib(rpm_files) + "/containerhooks"
    expected = {package_dir}
    expected.update(package_dir + "/" + name for name in modules)
    expected.update("%s/%s/50_containers" % (HOOKS_DIR, hook)
                    for hook in _hooks(source_tree))
    for path in (paths["HELPER"], paths["WATCHER"], paths["HELPERD"],
                 paths["PLACEHOLDER_KERNEL"], paths["CONF_FILE"]):
        expected.update((os.path.dirname(path), path))
    expected.update((SUDOERS, TMPFILES, CLI, UNIT, HELPERD_UNIT, GC_SERVICE,
                     GC_TIMER, PRESET, LICENSE, os.path.dirname(LICENSE),
                     paths["SECRETS_DIR"], paths["HEALTH_DUMP_DIR"],
                     os.path.dirname(paths["HEALTH_DUMP_DIR"])))
    packaged = {p for p in rpm_files
                if not _is_bytecode(p, package_dir, modules)}
    assert sorted(packaged) == sorted(expected)


@needs_rpmbuild
def test_every_hook_directory_is_packaged(source_tree, rpm_files):
    # The spec installs hooks with a loop: a hook added under hooks/ must
    # land in Vdsm's directory of the same name.
    hooks = _hooks(source_tree)
    assert "before_vm_start" in hooks
    packaged = sorted(p.split("/")[-2] for p in rpm_files
                      if p.startswith(HOOKS_DIR + "/"))
    assert packaged == hooks


@needs_rpmbuild
def test_modes_and_owners(source_tree, rpm_files):
    paths = _path_defaults(source_tree)
    executables = [paths["HELPER"], paths["WATCHER"], paths["HELPERD"],
                   CLI] + [
        p for p in rpm_files if p.startswith(HOOKS_DIR + "/")]
    for path, (mode, user, group, _, _) in sorted(rpm_files.items()):
        assert (user, group) == ("root", "root"), path
        if path == SUDOERS:
            want = 0o100440
        elif path in (paths["SECRETS_DIR"], paths["HEALTH_DUMP_DIR"],
                      os.path.dirname(paths["HEALTH_DUMP_DIR"])):
            want = 0o040700     # root's alone (secrets.py, health.py)
        elif path in executables:
            want = 0o100755
        elif stat.S_ISDIR(mode):
            want = 0o040755
        else:
            want = 0o100644      # modules, kernel (read by qemu), config
        assert (path, oct(mode)) == (path, oct(want))


@needs_rpmbuild
def test_config_files(source_tree, rpm_package, rpm_files):
    paths = _path_defaults(source_tree)
    out = _run(["rpm", "-qp", "--configfiles", rpm_package])
    assert sorted(out.split()) == sorted([paths["CONF_FILE"], SUDOERS])
    for path in (paths["CONF_FILE"], SUDOERS):
        # c: %config, n: noreplace -- an admin's edits survive upgrades.
        assert sorted(rpm_files[path][3]) == ["c", "n"], path


@needs_rpmbuild
def test_requires(rpm_package):
    out = _run(["rpm", "-qp", "--requires", rpm_package])
    stated = {line.strip() for line in out.splitlines()
              if not AUTO_REQUIRES.match(line.strip())}
    assert stated == REQUIRES


@needs_rpmbuild
def test_noarch(rpm_package):
    out = _run(["rpm", "-qp", "--qf", "%{ARCH} %{LICENSE} %{VERSION}",
                rpm_package])
    assert out.split(" ", 1) == ["noarch", "GPLv2+ " + _spec_version()]


@needs_rpmbuild
def test_license_and_url(source_tree, rpm_package, rpm_files, rpm_tree):
    out = _run(["rpm", "-qp", "--qf", "%{LICENSE}\n%{URL}", rpm_package])
    assert out.splitlines() == ["GPLv2+", URL]
    # %license: the GPL version 2 text, flagged as the license.
    assert rpm_files[LICENSE][3] == "l"
    with open(rpm_tree + LICENSE) as f:
        text = f.read()
    with open(os.path.join(source_tree, "LICENSE")) as f:
        assert text == f.read()
    assert text.split()[:5] == ["GNU", "GENERAL", "PUBLIC", "LICENSE",
                                "Version"]
    assert "Version 2, June 1991" in text


@needs_rpmbuild
def test_kernel_is_the_idle_kernel(source_tree, rpm_tree):
    # Installed byte for byte: no brp step (strip) may touch it.
    path = _path_defaults(source_tree)["PLACEHOLDER_KERNEL"]
    with open(rpm_tree + path, "rb") as f:
        assert f.read() == idlekernel.image()


@needs_rpmbuild
def test_tmpfiles_creates_state_dir(source_tree, rpm_tree):
    paths = _path_defaults(source_tree)
    with open(rpm_tree + TMPFILES) as f:
        entries = [line.split() for line in f
                   if line.strip() and not line.startswith("#")]
    # The state directory (root writes, vdsm reads), and inside it the
    # stats hooks' samples directory (vdsm writes).
    assert os.path.dirname(paths["SAMPLES_DIR"]) == paths["STATE_DIR"]
    assert entries == [
        ["d", paths["STATE_DIR"], "0755", "root", "root", "-"],
        ["d", paths["SAMPLES_DIR"], "0755", "vdsm", "kvm", "-"],
    ]


def _unit(path):
    sections = {}
    current = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
            else:
                key, _, value = line.partition("=")
                current[key] = value
    return sections


@needs_rpmbuild
def test_watcher_unit_runs_the_packaged_watcher(source_tree, rpm_tree):
    sections = _unit(rpm_tree + UNIT)
    assert sections["Service"]["ExecStart"] == \
        _path_defaults(source_tree)["WATCHER"]
    # A watcher that died would let containers end unnoticed.
    assert sections["Service"]["Restart"] == "always"
    assert sections["Install"]["WantedBy"] == "multi-user.target"


@needs_rpmbuild
def test_helperd_unit_runs_the_packaged_service(source_tree, rpm_tree):
    sections = _unit(rpm_tree + HELPERD_UNIT)
    paths = _path_defaults(source_tree)
    assert sections["Service"]["ExecStart"] == paths["HELPERD"]
    # Stopping or restarting it must not kill a start in progress.
    assert sections["Service"]["KillMode"] == "process"
    assert sections["Service"]["Restart"] == "always"
    assert sections["Install"]["WantedBy"] == "multi-user.target"
    # Its socket is where the hooks look, in the tmpfiles.d directory.
    assert os.path.dirname(paths["HELPER_SOCKET"]) == paths["STATE_DIR"]


@needs_rpmbuild
def test_gc_timer_runs_the_packaged_cli(rpm_tree):
    with open(rpm_tree + GC_SERVICE) as f:
        service = f.read()
    with open(rpm_tree + GC_TIMER) as f:
        timer = f.read()
    assert "ExecStart=%s gc --quiet" % CLI in service
    assert "OnUnitActiveSec=5min" in timer
    assert "WantedBy=timers.target" in timer


# The scriptlets, run by rpm itself: the package is installed, upgraded and
# erased with "rpm --root" in a private root, where rpm runs each scriptlet
# chrooted with BusyBox as /bin/sh and its tools (POSIX sh and plain
# tools: what the scriptlets may rely on; EL's bash and coreutils are a
# superset), and where a stand-in systemctl keeps which units are enabled
# and active in files, as systemd does in its unit directories.

UNITS = ("vdsm-hook-containers-watcher.service",
         "vdsm-hook-containers-helperd.service",
         "vdsm-hook-containers-gc.timer")
# The services an upgrade restarts on the new code; the timer needs none.
RESTARTED = UNITS[:2]
VM_ID = "6f1c3a2e-0d4b-4c55-9a1e-2b7d9c0e8f11"
OTHER_VM_ID = "0b9e2c44-7a51-4d8e-b0c3-5f6a7e8d9c21"

# A stand-in for systemctl: the commands the scriptlets and the standard
# systemd macros use, each call logged.  "preset" follows the preset files
# as systemd.preset(5) says (the first line that matches, files in name
# order, "enable" when none matches), over /usr/lib/systemd/system-preset
# only; the root gets EL's 99-default-disable.preset.
FAKE_SYSTEMCTL = r"""#!/bin/sh
state=/var/lib/fake-systemd
mkdir -p $state/enabled $state/active
echo "$*" >> $state/log
cmd= units= now=
for arg; do
    case $arg in
    --now) now=1 ;;
    -*) ;;
    *) if [ -z "$cmd" ]; then cmd=$arg; else units="$units $arg"; fi ;;
    esac
done
preset() {
    for file in /usr/lib/systemd/system-preset/*.preset; do
        [ -f "$file" ] || continue
        while read -r action pattern; do
            case $action in enable|disable) ;; *) continue ;; esac
            case $1 in $pattern) echo $action; return ;; esac
        done < "$file"
    done
    echo enable
}
rc=0
for unit in $units; do
    case $cmd in
    preset)
        if [ "$(preset $unit)" = enable ]; then touch $state/enabled/$unit
        else rm -f $state/enabled/$unit; fi ;;
    enable)
        touch $state/enabled/$unit
        if [ -n "$now" ]; then touch $state/active/$unit; fi ;;
    disable)
        rm -f $state/enabled/$unit
        if [ -n "$now" ]; then rm -f $state/active/$unit; fi ;;
    start|restart) touch $state/active/$unit ;;
    stop) rm -f $state/active/$unit ;;
    try-restart)
        if [ -e $state/active/$unit ]; then
            echo "(restarted $unit)" >> $state/log
        fi ;;
    is-enabled) [ -e $state/enabled/$unit ] || rc=1 ;;
    is-active) [ -e $state/active/$unit ] || rc=3 ;;
    esac
done
exit $rc
"""


class RpmRoot(object):
    """A private root to install the RPM into with rpm --root."""

    def __init__(self, path):
        self.path = path
        # Where the helper keeps its records, as installed.
        self.state_dir = path + _path_defaults(TOP)["STATE_DIR"]
        self._fake = path + "/var/lib/fake-systemd"

    def create(self):
        bindir = self.path + "/bin"
        os.makedirs(bindir)
        shutil.copy2(shutil.which("busybox"), bindir + "/busybox")
        applets = _run([bindir + "/busybox", "--list"]).split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(bindir, applet))
        os.makedirs(self.path + "/dev")
        os.mknod(self.path + "/dev/null", 0o666 | stat.S_IFCHR,
                 os.makedev(1, 3))
        os.chmod(self.path + "/dev/null", 0o666)
        # systemd runs: the test the scriptlets make before systemctl.
        os.makedirs(self.path + "/run/systemd/system")
        os.makedirs(self.path + "/usr/bin")
        with open(self.path + "/usr/bin/systemctl", "w") as f:
            f.write(FAKE_SYSTEMCTL)
        os.chmod(self.path + "/usr/bin/systemctl", 0o755)
        presets = self.path + "/usr/lib/systemd/system-preset"
        os.makedirs(presets)
        with open(presets + "/99-default-disable.preset", "w") as f:
            f.write("disable *\n")
        os.makedirs(self.path + "/tmp")
        self.rpm("--initdb")

    def rpm(self, *args):
        """Run rpm on this root; (exit code, output)."""
        p = subprocess.run(
            ["rpm", "--root", self.path, "--dbpath", "/var/lib/rpm"]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=120)
        return p.returncode, p.stdout

    def install(self, package):
        rc, out = self.rpm("-U", "--nodeps", package)
        assert rc == 0, out
        self.clear_log()

    def installed(self):
        rc, out = self.rpm("-q", "--qf", "%{VERSION}-%{RELEASE}", NAME)
        return out if rc == 0 else None

    def systemctl(self, *args):
        """The admin's systemctl, in the root."""
        subprocess.check_call(["chroot", self.path, "/usr/bin/systemctl"]
                              + list(args))

    def enabled(self):
        return self._units("enabled")

    def active(self):
        return self._units("active")

    def _units(self, kind):
        try:
            return set(os.listdir(os.path.join(self._fake, kind)))
        except OSError:
            return set()

    def log(self):
        try:
            with open(self._fake + "/log") as f:
                return f.read().splitlines()
        except IOError:
            return []

    def clear_log(self):
        if os.path.exists(self._fake + "/log"):
            os.unlink(self._fake + "/log")

    def record(self, vm_id, vm_name):
        """A container VM's state file, as the root helper writes it."""
        from containerhooks import paths
        from containerhooks import state
        old = paths.STATE_DIR
        paths.STATE_DIR = self.state_dir
        try:
            state.write(vm_id, {"vm_id": vm_id, "vm_name": vm_name,
                                "engine": "docker", "image": "redis:7",
                                "container_id": "c0ffee", "volumes": []})
        finally:
            paths.STATE_DIR = old


@pytest.fixture
def rpm_root(tmp_path):
    """An empty private root with an rpm database, BusyBox and a stand-in
    systemctl; removed afterwards."""
    _require("rpm", "busybox", "chroot")
    root = RpmRoot(str(tmp_path / "root"))
    try:
        root.create()
        yield root
    finally:
        shutil.rmtree(root.path)


@needs_rpmbuild
def test_install_enables_and_starts_the_services(rpm_package, rpm_root):
    rc, out = rpm_root.rpm("-i", "--nodeps", rpm_package)
    assert rc == 0, out
    # The package's preset file wins over EL's "disable *": the watcher
    # must run from the installation on.
    assert rpm_root.enabled() == set(UNITS)
    assert rpm_root.active() == set(UNITS)


@needs_rpmbuild
def test_install_respects_the_admins_preset(rpm_package, rpm_root):
    # An admin who wants the units off on new hosts says so in a preset
    # file of a lower number; the package's %post then starts nothing.
    with open(rpm_root.path + "/usr/lib/systemd/system-preset/"
              "10-admin.preset", "w") as f:
        f.write("disable vdsm-hook-containers-*\n")
    rc, out = rpm_root.rpm("-i", "--nodeps", rpm_package)
    assert rc == 0, out
    assert rpm_root.enabled() == set()
    assert rpm_root.active() == set()


@needs_rpmbuild
def test_upgrade_keeps_a_disabled_service_disabled(rpm_package, rpm_upgrade,
                                                   rpm_root):
    rpm_root.install(rpm_package)
    rpm_root.systemctl("disable", "--now", UNITS[1])
    rc, out = rpm_root.rpm("-U", "--nodeps", rpm_upgrade)
    assert rc == 0, out
    assert rpm_root.installed().endswith("-1.1")
    assert rpm_root.enabled() == {UNITS[0], UNITS[2]}
    assert rpm_root.active() == {UNITS[0], UNITS[2]}
    # The running services restart on the new code; the stopped one
    # stays stopped.
    log = rpm_root.log()
    assert "(restarted %s)" % UNITS[0] in log
    assert "(restarted %s)" % UNITS[1] not in log
    assert not [line for line in log
                if line.split()[:1] in (["enable"], ["preset"])], log


@needs_rpmbuild
def test_upgrade_with_container_vms_running(rpm_package, rpm_upgrade,
                                            rpm_root):
    # An upgrade is no erase: the old package's %preun runs with $1 = 1.
    rpm_root.install(rpm_package)
    rpm_root.record(VM_ID, "web-1")
    rc, out = rpm_root.rpm("-U", "--nodeps", rpm_upgrade)
    assert rc == 0, out
    assert rpm_root.installed().endswith("-1.1")
    assert rpm_root.enabled() == set(UNITS)
    assert rpm_root.active() == set(UNITS)
    for unit in RESTARTED:
        assert "(restarted %s)" % unit in rpm_root.log()


@needs_rpmbuild
def test_erase_refused_while_container_vms_run(rpm_package, rpm_root):
    rpm_root.install(rpm_package)
    rpm_root.record(VM_ID, "web-1")
    rpm_root.record(OTHER_VM_ID, "db.example.com")
    rc, out = rpm_root.rpm("-e", NAME)
    assert rc != 0, out
    # The admin learns which VMs, and what to do.
    assert "%s (web-1)" % VM_ID in out
    assert "%s (db.example.com)" % OTHER_VM_ID in out
    assert "Power them off in oVirt Engine" in out
    # Nothing happened: installed, services enabled and running.
    assert rpm_root.installed() is not None
    assert rpm_root.enabled() == set(UNITS)
    assert rpm_root.active() == set(UNITS)
    # Once the VMs are off, the erase goes through.
    for vm_id in (VM_ID, OTHER_VM_ID):
        os.unlink(os.path.join(rpm_root.state_dir, vm_id + ".json"))
    rc, out = rpm_root.rpm("-e", NAME)
    assert rc == 0, out


@needs_rpmbuild
def test_erase_refusal_cannot_hang(rpm_package, rpm_root):
    # The scriptlet reads each record with a bound: a record it cannot
    # read (here a FIFO, which blocks an open for reading) still names the
    # VM by its id, within seconds.
    rpm_root.install(rpm_package)
    os.makedirs(rpm_root.state_dir)
    os.mkfifo(os.path.join(rpm_root.state_dir, VM_ID + ".json"))
    start = time.monotonic()
    rc, out = rpm_root.rpm("-e", NAME)
    elapsed = time.monotonic() - start
    assert rc != 0, out
    assert VM_ID in out
    assert elapsed < 30, elapsed
    assert rpm_root.installed() is not None


@needs_rpmbuild
def test_erase_without_container_vms(rpm_package, rpm_root):
    rpm_root.install(rpm_package)
    # What the state directory holds besides VM records: the helper's
    # socket, the samples directory, an exit record, a lock, the helper's
    # temporary file, a .json file that is no VM's.
    os.makedirs(rpm_root.state_dir + "/samples")
    for name in ("helper.sock", VM_ID + ".exit", VM_ID + ".lock",
                 "." + VM_ID + "x1y2z3", "network.json"):
        open(os.path.join(rpm_root.state_dir, name), "w").close()
    rc, out = rpm_root.rpm("-e", NAME)
    assert rc == 0, out
    assert rpm_root.installed() is None
    assert not os.path.exists(rpm_root.path + CLI)
    # Erase stops and disables everything it enabled.
    assert rpm_root.enabled() == set()
    assert rpm_root.active() == set()


SYSTEMD_MACROS = ("systemd_post", "systemd_preun",
                  "systemd_postun_with_restart")


@needs_rpmbuild
def test_spec_uses_the_distributions_systemd_macros(source_tree):
    # On EL the standard macros (systemd-rpm-macros) are defined and the
    # spec's fallbacks for Debian's rpm must not replace them: define
    # them the way a distribution does, and the scriptlets call them with
    # the package's units.
    cmd = ["rpmspec", "-P"]
    for macro in SYSTEMD_MACROS:
        cmd += ["--define", "%s() DISTRO_%s %%{?*}" % (macro, macro)]
    out = _run(cmd + [os.path.join(source_tree, SPEC)])
    expected = {
        "systemd_post": UNITS,
        "systemd_preun": UNITS,
        "systemd_postun_with_restart": RESTARTED,
    }
    for macro, units in expected.items():
        lines = [line.split()[1:] for line in out.splitlines()
                 if line.startswith("DISTRO_%s " % macro)]
        assert lines == [list(units)], macro


@needs_rpmbuild
def test_systemd_macro_fallbacks(source_tree):
    # Debian's rpm has no systemd macros: the fallbacks expand to what
    # systemd's own macros do (EL8's systemd 239), no bash-only syntax.
    out = _run(["rpmspec", "-P", os.path.join(source_tree, SPEC)])
    scripts = out[out.index("\n%post\n"):out.index("\n%files\n")]
    assert "--no-reload preset %s" % " ".join(UNITS) in scripts
    assert "--no-reload disable --now %s" % " ".join(UNITS) in scripts
    assert "try-restart %s" % " ".join(RESTARTED) in scripts
    assert "&>" not in scripts


@needs_rpmbuild
def test_preset_enables_the_units(rpm_tree):
    with open(rpm_tree + PRESET) as f:
        lines = [line.split() for line in f
                 if line.strip() and not line.startswith("#")]
    assert lines == [["enable", unit] for unit in UNITS]


@needs_rpmbuild
def test_packaged_config_is_the_defaults(source_tree, rpm_tree):
    path = rpm_tree + _path_defaults(source_tree)["CONF_FILE"]
    assert config.load(path)._replace(path=None) == \
        config.load(os.devnull)._replace(path=None)


@needs_rpmbuild
def test_packaged_sudoers_allows_the_helper(source_tree, rpm_tree):
    helper = _path_defaults(source_tree)["HELPER"]
    with open(rpm_tree + SUDOERS) as f:
        rules = [line.split() for line in f
                 if line.strip() and not line.startswith("#")]
    assert ["Defaults:vdsm", "!requiretty"] in rules
    assert ["vdsm", "ALL=(root)", "NOPASSWD:", helper] in rules


def test_sudoers_syntax():
    _require("visudo")
    _run(["visudo", "-cf", os.path.join(TOP, "packaging", "sudoers")])
