"""Shared fixtures.  The package is imported from lib/ of this checkout."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

# Nothing a run writes may steer the next one, or land in the checkout:
# no example database (a replayed example is a leftover of an earlier run),
# Hypothesis's other files in a directory of this run, no bytecode in the
# checkout (the Makefile runs pytest without its cache, too).
HYPOTHESIS_DIR = tempfile.mkdtemp(prefix="vhc-hypothesis-")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = HYPOTHESIS_DIR
from hypothesis import settings  # noqa: E402
settings.register_profile("vhc", database=None)
settings.load_profile("vhc")
sys.dont_write_bytecode = True
# ... and none from the programs the tests run from the checkout (an
# installation is byte-compiled on purpose: tests/install.py).
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hoststorage  # noqa: E402
import images  # noqa: E402
import install  # noqa: E402
import lan as lanmod  # noqa: E402
import libvirt  # noqa: E402  (tests/libvirt.py, not the binding)
import vdsm as vdsm_module  # noqa: E402
import vmrun  # noqa: E402

# dev/services' daemons; VHC_DOCKER_SOCKET and VHC_PODMAN_SOCKET point the
# tests (and the installation's containers.conf) at others.
ENGINE_SOCKETS = {
    "docker": os.environ.get("VHC_DOCKER_SOCKET") or "/var/run/docker.sock",
    "podman": os.environ.get("VHC_PODMAN_SOCKET")
    or "/run/podman/podman.sock",
}

# The podman services of the OCI runtimes other than runc (dev/services;
# Podman's compatible API ignores the runtime a container asks for),
# likewise VHC_PODMAN_CRUN_SOCKET, VHC_PODMAN_RUNSC_SOCKET.
PODMAN_RUNTIME_SOCKETS = {
    "crun": os.environ.get("VHC_PODMAN_CRUN_SOCKET")
    or "/run/podman/podman-crun.sock",
    "runsc": os.environ.get("VHC_PODMAN_RUNSC_SOCKET")
    or "/run/podman/podman-runsc.sock",
}


def _client(engine):
    import docker
    return docker.DockerClient(base_url="unix://" + ENGINE_SOCKETS[engine],
                               version="auto", timeout=120)


def pytest_unconfigure(config):
    shutil.rmtree(HYPOTHESIS_DIR, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "daemons: stops, restarts or pauses a daemon that "
        "dev/services runs (tests/daemons.py); other runs sharing the "
        "machine's daemons notice, so -m 'not daemons' leaves them out")


@pytest.fixture(scope="session")
def services():
    """The daemons the integration tests need, answering; else a failure.

    They are started by dev/services (called by 'make test'); a missing one
    fails the tests that need it rather than skipping them.  Tests pointed
    at engines of their own (VHC_DOCKER_SOCKET...) need those to answer.
    """
    if os.environ.get("VHC_DOCKER_SOCKET"):
        import socket as sockets
        for path in list(ENGINE_SOCKETS.values()) + list(
                PODMAN_RUNTIME_SOCKETS.values()):
            s = sockets.socket(sockets.AF_UNIX)
            try:
                s.connect(path)
            except OSError as e:
                pytest.fail("%s does not answer: %s" % (path, e),
                            pytrace=False)
            finally:
                s.close()
        return
    rc = subprocess.call([os.path.join(TOP, "dev", "services"), "status"],
                         stdout=subprocess.PIPE)
    if rc != 0:
        pytest.fail("some daemons are down; run 'dev/services start' "
                    "(or 'make test')", pytrace=False)


@pytest.fixture(scope="session")
def installation(services):
    """The package installed into a private root (see tests/install.py)."""
    inst = install.Installation().install()
    yield inst
    inst.remove()


@pytest.fixture
def fresh_conf(installation):
    """Reset the private containers.conf after a test that changes it."""
    yield installation
    installation.configure()


@pytest.fixture
def runtimes_conf(fresh_conf):
    """containers.conf offering every OCI runtime on both engines (runc,
    crun, runsc; Podman's through the services of PODMAN_RUNTIME_SOCKETS),
    the engines' defaults for VMs that name none; reset afterwards."""
    fresh_conf.configure(**RUNTIME_OPTIONS)
    return fresh_conf


# containers.conf offering every OCI runtime (runtimes_conf).
RUNTIME_OPTIONS = {
    "docker_runtimes": "runc, crun, runsc",
    "podman_runtimes": "runc, crun, runsc",
    "podman_runtime_sockets": ", ".join(
        "%s:%s" % item for item in sorted(PODMAN_RUNTIME_SOCKETS.items())),
}


@pytest.fixture
def vdsm(installation):
    """Vdsm running the installed hooks as the vdsm user, through sudo."""
    if not install.vdsm_user_exists():
        pytest.fail("no vdsm user: run dev/setup", pytrace=False)
    return vdsm_module.Vdsm(installation.hooks_dir, user="vdsm")


@pytest.fixture
def vdsm_root(installation):
    """Vdsm running the installed hooks as root (the helper runs directly)."""
    return vdsm_module.Vdsm(installation.hooks_dir, user="root")


@pytest.fixture(scope="session")
def docker_client(services):
    """A Docker SDK client of the Docker Engine."""
    return _client("docker")


@pytest.fixture(scope="session")
def podman_client(services):
    """A Docker SDK client of Podman's Docker-compatible API."""
    return _client("podman")


@pytest.fixture(scope="session")
def registry_image(docker_client):
    """The test image, pushed to the local registry on 127.0.0.1:5000."""
    return images.build_and_push(docker_client)


@pytest.fixture(params=["docker", "podman"])
def engine(request, registry_image, installation):
    """Each engine in turn, as (name, SDK client); no container of ours
    is left behind after the test.

    "Ours": the containers of the VMs this test run started (the hooks log
    every VM they start in the installation's log).  Other test runs, a
    benchmark or a demo may share the machine's engines at the same time;
    their containers are theirs to remove.
    """
    client = _client(request.param)
    yield request.param, client
    ours = set(re.findall(r"vm_id=([0-9a-f-]{36})", installation.read_log()))
    leftovers = vmrun.remove_managed(client, ours)
    assert not leftovers, "test left containers behind: %s" % leftovers


@pytest.fixture(scope="session")
def libvirt_host():
    """What this host's libvirt and qemu can do (tests/libvirt.py Host).

    Needs root and libvirtd answering at qemu:///system: without them the
    tests that run domains fail, they are not skipped.
    """
    try:
        return libvirt.detect_host()
    except libvirt.HostError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def qemu_workdir(libvirt_host):
    """A directory for disk images, sockets and the kernel of one domain,
    readable by qemu's user; removed after the test."""
    with libvirt.workdir() as path:
        yield path


@pytest.fixture(scope="module")
def nwfilter(libvirt_host):
    """Vdsm's vdsm-no-mac-spoofing filter, defined as Vdsm defines it
    (tests/libvirt.py nwfilter), which a test VM's vNIC names."""
    with libvirt.nwfilter() as name:
        yield name


@pytest.fixture(scope="module")
def lan(installation):
    """Two bridges (tests/lan.py), a LAN peer on the first, their
    container networks configured on the host; the engines' networks
    removed afterwards."""
    first = lanmod.Lan(lanmod.BRIDGE, "vhc-lan0", "10.231.0.0/24", "10.231.0.1",
                       "10.231.0.128/26", "10.231.0.2").create()
    second = lanmod.Lan(lanmod.BRIDGE2, "vhc-lan1", "10.232.0.0/24", "10.232.0.1",
                        "10.232.0.64/28", "10.232.0.2").create()
    os.makedirs(installation.networks_dir, exist_ok=True)
    for net in (first, second):
        with open(os.path.join(installation.networks_dir,
                               net.bridge + ".conf"), "w") as f:
            f.write("[network]\nsubnet = %s\ngateway = %s\nip_range = %s\n"
                    % (net.subnet, net.gateway, net.ip_range))
    yield first, second
    for engine in ("docker", "podman"):
        client = _client(engine)
        for net in (first, second):
            for n in client.networks.list(names=["ovirt-" + net.bridge]):
                n.remove()
    for net in (first, second):
        os.unlink(os.path.join(installation.networks_dir,
                               net.bridge + ".conf"))
        net.remove()


@pytest.fixture(scope="session")
def app_image(docker_client):
    """The configurable application image (tests/images.py APP_SCRIPT),
    pushed to the local registry."""
    return images.build_and_push_app(docker_client)


@pytest.fixture(scope="session")
def console_image(docker_client):
    """The serial console's application image (tests/images.py
    CONSOLE_SCRIPT: it answers what it reads on stdin), pushed to the
    local registry."""
    return images.build_and_push_console(docker_client)


@pytest.fixture(scope="session")
def exiting_images(docker_client):
    """{kind: image} of the images whose container ends when told to
    (tests/images.py EXITING), pushed to the local registry."""
    return images.build_and_push_exiting(docker_client)


@pytest.fixture
def watcher(installation):
    """The installation's exit watcher, running as root as its systemd
    service does (without systemd); stopped by its pid afterwards."""
    proc = installation.start_watcher()
    yield proc
    installation.stop_watcher(proc)


@pytest.fixture
def storage(fresh_conf):
    """A storage root that storage_roots names (tests/hoststorage.py), its
    LVs in the installation's /sys/dev/block; after the test, no mount and
    no loop device of the package may be left (they are removed, and the
    test fails)."""
    s = hoststorage.Storage(
        sysfs=hoststorage.Sysfs(fresh_conf.sys_dev_block))
    fresh_conf.configure(storage_roots=s.root)
    yield s
    left = s.leftovers(fresh_conf.state_dir)
    s.clean(fresh_conf.state_dir)
    assert not left, "test left mounts or loop devices behind: %s" % left


# The private registry's users: the password is what tests look for in
# every file of the installation, so it is one no other text contains.
PRIVATE_USER = "vhc-puller"
PRIVATE_PASSWORD = "Pw-9f3c1e7d-never-in-a-log"


@pytest.fixture(scope="session")
def private_registry(registry_image, docker_client, podman_client):
    """A private registry (tests/registries.py Private: TLS with the test's
    own CA, htpasswd) on an address of its own, trusted by both engines
    through their certs.d, with the test image pushed to it as
    vhc-tests/busybox-httpd:1.  Stopped by its pid afterwards; the
    address, the CA files and its directory removed."""
    import registries
    address = registries.Address()
    host = address.create()
    directory = tempfile.mkdtemp(prefix="vhc-registry-", dir="/var/tmp")
    registry = registries.Private(
        directory, {PRIVATE_USER: PRIVATE_PASSWORD}, host=host)
    try:
        registry.start()
        registry.trust()
        registry.credentials = (PRIVATE_USER, PRIVATE_PASSWORD)
        images.push_to(docker_client, registry_image, registry.address,
                       {"username": PRIVATE_USER,
                        "password": PRIVATE_PASSWORD})
        yield registry
    finally:
        registry.stop()
        registry.untrust()
        shutil.rmtree(directory, ignore_errors=True)
        address.remove()
        for client in (docker_client, podman_client):
            images.remove_local(client, registry.image())


@pytest.fixture
def logins(fresh_conf):
    """Credentials files of the test's own, named by containers.conf
    (docker_auth_file, podman_auth_file), written by the engines' real
    login commands (Logins.login); removed afterwards."""
    directory = tempfile.mkdtemp(prefix="vhc-logins-", dir="/var/tmp")
    found = Logins(directory)
    fresh_conf.configure(docker_auth_file=found.docker,
                         podman_auth_file=found.podman)
    yield found
    shutil.rmtree(directory, ignore_errors=True)


class Logins(object):
    """docker_auth_file and podman_auth_file in directory."""

    def __init__(self, directory):
        self.directory = directory
        self.docker = os.path.join(directory, "docker", "config.json")
        self.podman = os.path.join(directory, "podman", "auth.json")

    def login(self, engine, registry, user, password):
        """What the README tells the admin to run, as root: docker login
        (with --config: the test's own directory), podman login
        --authfile."""
        if engine == "docker":
            cmd = ["docker", "--config", os.path.dirname(self.docker),
                   "login", "--username", user, "--password-stdin",
                   registry]
        else:
            cmd = ["podman", "login", "--authfile", self.podman,
                   "--username", user, "--password-stdin", registry]
        p = subprocess.run(cmd, input=password.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode()

    def path(self, engine):
        return self.docker if engine == "docker" else self.podman


def remove_image(client, image_id):
    """Remove an image (by id) from an engine; quiet if it is not there."""
    import docker
    try:
        client.images.remove(image_id, force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture(scope="session")
def saved_image(services):
    """A "docker save" archive of a test image of its own (a unique label:
    an id of its own), tagged with a name no registry has, and removed
    from Docker again: (image id, archive bytes, the tag it carries).
    Afterwards no engine keeps it (for containerImage=disk:...)."""
    import uuid
    client = _client("docker")
    run = str(uuid.uuid4())
    tag = "%s/vhc-tests/disk-only-%s" % (images.REGISTRY, run)
    # A layer of its own too (a file unique to this run): an engine that
    # has a layer already does not read it from an archive again.
    rootfs = images.rootfs_tar(files=[("www/run", run.encode(), 0o644)])
    client.api.import_image_from_data(
        rootfs, repository=tag, tag="1",
        changes=["CMD " + images.COMMAND,
                 "LABEL org.ovirt.test.run=%s" % run])
    image = client.images.get(tag + ":1")
    # By its name, as "docker save app:1" does: the archive's RepoTags
    # name it.
    data = b"".join(client.api.get_image(tag + ":1"))
    remove_image(client, image.id)
    yield image.id, data, tag + ":1"
    for engine in ENGINE_SOCKETS:
        remove_image(_client(engine), image.id)
