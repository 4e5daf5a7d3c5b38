"""The RPM: build it for real from this checkout and check what it installs.

The package is built with rpmbuild from a tarball of the checkout's tracked
files (uncommitted changes included, as they are what the other tests run),
then read back with rpm queries: every file with its mode and flags, the
configuration files, the dependencies.  The expected paths come from the
source tree (hooks/*, lib/containerhooks/*.py) and from the defaults in
paths.py, so a new hook or module, or a moved path, is checked without
touching this file.
"""

import ast
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile

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


@pytest.fixture(scope="module")
def rpm_package(tmp_path_factory, source_tree):
    """The binary RPM built by rpmbuild -bb from a tarball of source_tree.

    --nodeps: BuildRequires are RPM package names that this machine's rpm
    database (empty on Debian) cannot satisfy.
    """
    topdir = tmp_path_factory.mktemp("rpmbuild")
    sources = topdir / "SOURCES"
    sources.mkdir()
    prefix = os.path.basename(source_tree)
    with tarfile.open(str(sources / (prefix + ".tar.gz")), "w:gz") as tar:
        tar.add(source_tree, arcname=prefix)
    _run(["rpmbuild", "-bb", "--nodeps",
          "--define", "_topdir %s" % topdir,
          os.path.join(source_tree, SPEC)])
    built = list((topdir / "RPMS" / "noarch").glob("*.noarch.rpm"))
    assert len(built) == 1, built
    return str(built[0])


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
                     GC_TIMER))
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


@needs_rpmbuild
def test_scriptlets_enable_and_stop_the_watcher(rpm_package):
    out = _run(["rpm", "-qp", "--scripts", rpm_package])
    post = out[out.index("postinstall scriptlet"):]
    assert "systemctl enable --now vdsm-hook-containers-watcher" in post
    assert "systemctl disable --now vdsm-hook-containers-watcher" in out
    assert "try-restart vdsm-hook-containers-watcher" in out
    # The helper service goes with the watcher in each scriptlet.
    for section, command in (("postinstall", "enable --now"),
                             ("preuninstall", "disable --now"),
                             ("postuninstall", "try-restart")):
        text = out[out.index(section + " scriptlet"):]
        text = text[:text.index("scriptlet", len(section) + 10)] \
            if "scriptlet" in text[len(section) + 10:] else text
        call = text[text.index(command):]
        call = call[:call.index("|| :")]
        assert "vdsm-hook-containers-helperd.service" in call, section


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
