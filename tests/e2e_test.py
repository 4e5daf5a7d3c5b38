"""A container VM end to end, as Vdsm and libvirt run it, on both engines.

Engine starts a VM whose custom properties ask for a container: Vdsm runs
before_vm_start (the installed hooks, as the vdsm user, tests/vdsm.py) and
gives the placeholder XML it gets back to libvirt as a transient domain.
The domain must run with its vCPU asleep in the idle kernel while the
container does the VM's work.  Then Engine powers the VM off: Vdsm runs
before_vm_destroy, destroys the domain and runs after_vm_destroy with the
domain's last XML; nothing may be left.

The VM is a realistic Vdsm domain XML without vNICs (tests/data/no-nic-in.xml):
a vNIC needs a container network configured for its bridge, which
network_test.py covers.  Needs root, libvirtd and both engines (dev/services).
"""

import os
import time

import docker
import pytest

import domains
import images
import libvirt
from vmrun import containers_of, start

BASE = "no-nic-in.xml"
CONTAINERS_NS = "http://ovirt.org/vdsm-hook-containers/1.0"
MIB = 1024 * 1024
GREETING = "hello from vdsm-hook-containers\n"   # the image's index.html
HTTPD_TIMEOUT = 10


def http_get(container, timeout=HTTPD_TIMEOUT):
    """(exit code, output) of wget from inside the container to its httpd,
    retried until httpd answers or timeout seconds have passed."""
    deadline = time.time() + timeout
    while True:
        rc, out = container.exec_run(
            ["wget", "-qO-", "http://127.0.0.1:8080/"])
        if rc == 0 or time.time() > deadline:
            return rc, out.decode("utf-8", "replace")
        time.sleep(0.2)


def state_files(installation, vm):
    return [n for n in installation.state_files() if n.startswith(vm.id)]


@pytest.fixture
def container_vm(engine, installation, libvirt_host, qemu_workdir):
    """A container VM for engine, made from a golden input.  Whatever a
    failed test leaves (domain, container, state) is removed afterwards."""
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, base=BASE)
    yield vm
    libvirt.virsh("destroy", vm.id, check=False)
    for c in containers_of(client, vm):
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass    # removed meanwhile (a hook still running)
    for n in state_files(installation, vm):
        os.unlink(os.path.join(installation.state_dir, n))


def test_start_and_power_off(vdsm, installation, engine, libvirt_host,
                             qemu_workdir, container_vm):
    name, client = engine
    vm = container_vm

    start(vdsm, vm, libvirt_host, qemu_workdir)

    libvirt.wait_idle_kernel(vm.id)
    found = containers_of(client, vm)
    assert len(found) == 1, found
    c = found[0]
    assert c.name == "ovirt-vm-" + vm.id
    assert c.status == "running"
    assert c.attrs["HostConfig"]["Memory"] == vm.memory_mib * MIB
    assert http_get(c) == (0, GREETING)

    # Engine's Power Off.
    before = vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                      custom=vm.custom)
    assert before.errors == []
    assert containers_of(client, vm) == []   # stopped before the storage
    last_xml = libvirt.dumpxml(vm.id)
    libvirt.virsh("destroy", vm.id)
    after = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                     custom=vm.custom)
    assert after.errors == []

    assert containers_of(client, vm) == []
    assert state_files(installation, vm) == []
    assert not libvirt.exists(vm.id)


def test_domain_died_on_its_own(vdsm, installation, engine, libvirt_host,
                                qemu_workdir, container_vm):
    # virsh destroy or qemu killed: Vdsm runs only after_vm_destroy, with
    # the XML libvirt last had; the package's metadata must have survived
    # libvirt for the hook to find the container.
    name, client = engine
    vm = container_vm
    start(vdsm, vm, libvirt_host, qemu_workdir)
    last_xml = libvirt.dumpxml(vm.id)
    assert CONTAINERS_NS in last_xml

    libvirt.virsh("destroy", vm.id)
    after = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                     custom=vm.custom)

    assert after.errors == []
    assert containers_of(client, vm) == []
    assert state_files(installation, vm) == []
    assert not libvirt.exists(vm.id)
