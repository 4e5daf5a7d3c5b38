"""Engine's other VM actions on a container VM, through the real hooks.

The placeholder runs on the host's libvirt (tests/vmrun.py), so that each
hook gets what Vdsm gives it: libvirt's live XML of the domain (vm.py
_underlyingPause/_underlyingCont, the lifecycle event handlers, migrate and
hibernate), and after_vm_destroy the XML Vdsm last read from libvirt.
"""

import os

import pytest

import domains
import images
import libvirt
import vmrun
import vdsm as vdsm_module
from vdsm import HookError

BASE = "no-nic-in.xml"


@pytest.fixture
def running(vdsm, engine, libvirt_host, qemu_workdir):
    """A started container VM: (vm, live XML, container)."""
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, base=BASE)
    live = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
    yield vm, live, client.containers.get("ovirt-vm-" + vm.id)
    if libvirt.exists(vm.id):
        vmrun.destroy(vdsm, vm)
    vmrun.remove_managed(client, [vm.id])


# (Migration restarts the container on the destination, or is refused by
# the host's choice: tests/migration_test.py.)
@pytest.mark.parametrize("hook, message", [
    pytest.param("before_vm_hibernate", "Suspending to disk is not possible "
                 "for container VMs", id="hibernate"),
])
def test_refused_and_vm_keeps_running(vdsm, running, hook, message):
    vm, xml, container = running
    with pytest.raises(HookError) as e:
        vdsm.run(hook, xml, vm_id=vm.id, custom=vm.custom)
    err = e.value.err.decode()
    assert message in err and vm.id in err and err.count("\n") == 1
    container.reload()
    assert container.status == "running"


@pytest.mark.parametrize("hook", ["before_vm_hibernate"])
def test_refused_without_vmid_by_metadata(vdsm, running, hook):
    vm, xml, _ = running
    with pytest.raises(HookError):
        vdsm.run(hook, xml)


def test_pause_and_resume(vdsm, running):
    vm, _, container = running
    libvirt.virsh("suspend", vm.id)
    xml = libvirt.dumpxml(vm.id)
    vdsm.run("after_vm_pause", xml, vm_id=vm.id, custom=vm.custom)
    container.reload()
    assert container.status == "paused"
    # Paused twice (an I/O error pause on top of Engine's): still fine.
    again = vdsm.run("after_vm_pause", xml, vm_id=vm.id, custom=vm.custom)
    assert again.errors == []
    libvirt.virsh("resume", vm.id)
    vdsm.run("after_vm_cont", libvirt.dumpxml(vm.id), vm_id=vm.id,
             custom=vm.custom)
    container.reload()
    assert container.status == "running"


def test_memory_snapshot_restore_starts_the_container_afresh(
        vdsm, installation, running, qemu_workdir):
    # A memory snapshot runs no hook: Vdsm saves the placeholder's memory
    # and its migratable XML.  Later the VM is powered off, and Engine runs
    # it from the snapshot: Vdsm restores the saved placeholder, after
    # before_vm_start on its XML.  The container starts from its image
    # again, with the VM's real size; what it had in memory is gone.
    vm, _, container = running
    vmrun.sh(container, "echo before > /tmp/mark")
    saved_xml = libvirt.virsh("dumpxml", "--migratable", vm.id)[1]
    memory = os.path.join(qemu_workdir, "memory.img")
    libvirt.virsh("save", vm.id, memory)      # the domain stops
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    assert vdsm.run("after_vm_destroy", saved_xml, vm_id=vm.id,
                    custom=vm.custom).errors == []
    assert [n for n in installation.state_files()
            if n.startswith(vm.id)] == []

    vmrun.restore_snapshot(vdsm, vm, saved_xml, memory, qemu_workdir)

    assert libvirt.virsh("domstate", vm.id)[1].strip() == "running"
    client = container.client
    again = client.containers.get("ovirt-vm-" + vm.id)
    assert again.id != container.id and again.status == "running"
    assert again.attrs["HostConfig"]["Memory"] == vm.memory_mib * 1024 ** 2
    rc, _ = again.exec_run(["test", "-e", "/tmp/mark"])
    assert rc != 0
    before, after = vmrun.destroy(vdsm, vm)
    assert before.errors == [] and after.errors == []
    assert vmrun.containers_of(client, vm) == []


def test_restore_refused_fails_clearly(vdsm, installation, running,
                                       qemu_workdir):
    # A restore whose before_vm_start fails fails as a whole (Vdsm raises
    # the HookError before touching the saved memory): here the engine the
    # snapshot's VM used is no longer allowed on this host.
    vm, _, container = running
    saved_xml = libvirt.virsh("dumpxml", "--migratable", vm.id)[1]
    memory = os.path.join(qemu_workdir, "memory.img")
    libvirt.virsh("save", vm.id, memory)
    vmrun.power_off(vdsm, vm, saved_xml)
    bad = saved_xml.replace(">%s</ovirt-vm:containerImage>" % images.IMAGE,
                            "></ovirt-vm:containerImage>")
    assert bad != saved_xml
    vm.custom = dict(vm.custom, containerImage="")
    with pytest.raises(HookError) as e:
        vmrun.restore_snapshot(vdsm, vm, bad, memory, qemu_workdir)
    assert b"containerImage" in e.value.err
    assert not libvirt.exists(vm.id)
    assert vmrun.containers_of(container.client, vm) == []


@pytest.mark.parametrize("hook", ["before_vm_migrate_source",
                                  "before_vm_hibernate", "after_vm_pause",
                                  "after_vm_cont"])
def test_plain_vm_untouched(vdsm, installation, hook):
    vm = domains.VM({})
    result = vdsm.run(hook, vm.xml, vm_id=vm.id, custom=vm.custom)
    assert result.errors == [] and result.data == vm.xml


@pytest.mark.parametrize("hook, message", [
    pytest.param("before_vm_hibernate", b"Suspending to disk is not "
                 b"possible", id="hibernate"),
])
def test_refusal_survives_a_later_script(vdsm, running, hook, message):
    # Vdsm fails the action with the stderr of the last script that ran
    # (hooks._runHooksDir raises HookError(err) after the loop), not of the
    # last one that failed: the refusal exits 2, so that another package's
    # later script never runs and Engine shows the package's message.
    vm, xml, container = running
    ours = vdsm.scripts(hook)
    with libvirt.workdir() as hooks_dir:
        d = os.path.join(hooks_dir, hook)
        os.mkdir(d)
        for path in ours:
            os.symlink(path, os.path.join(d, os.path.basename(path)))
        later = os.path.join(d, "90_other_package")
        with open(later, "w") as f:
            f.write("#!/bin/sh\necho other package says hello >&2\n")
        os.chmod(later, 0o755)
        with pytest.raises(HookError) as e:
            vdsm_module.Vdsm(hooks_dir, user="vdsm").run(
                hook, xml, vm_id=vm.id, custom=vm.custom)
    assert message in e.value.err
    assert [os.path.basename(s.path) for s in e.value.result.scripts] == \
        [os.path.basename(p) for p in ours]
    container.reload()
    assert container.status == "running"


def test_hotunplug_of_a_mounted_disk_refused(vdsm, installation, storage,
                                             docker_client, registry_image):
    mounted, other = storage.image(), storage.image()
    vm = domains.add_disks(
        domains.VM({"containerType": "docker",
                    "containerImage": images.IMAGE,
                    "volumeMap": "vda:/data"}),
        domains.disk("vda", mounted), domains.disk("vdb", other))
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    try:
        with pytest.raises(HookError) as e:
            vdsm.hotunplug_disk(vm, "vda")
        assert e.value.err.decode() == (
            "Hot-unplugging disk vda of VM %s is refused: the VM's "
            "container has it mounted at /data (volumeMap); power the VM "
            "off first, or remove vda from volumeMap and restart the VM\n"
            % vm.id)
        assert e.value.result.scripts[-1].rc == 2
        container = docker_client.containers.get("ovirt-vm-" + vm.id)
        vmrun.sh(container, "echo still > /data/mounted")
        # A disk that is not in volumeMap unplugs as on any VM.
        assert vdsm.hotunplug_disk(vm, "vdb").errors == []
    finally:
        vmrun.power_off(vdsm, vm, result.data)


def test_hotunplug_on_a_plain_vm_untouched(vdsm, installation):
    vm = domains.add_disks(domains.VM({}), domains.disk(
        "vda", "/rhev/data-center/mnt/nfs.example.com:_data/0f6a/images/1/2"))
    result = vdsm.hotunplug_disk(vm, "vda")
    assert result.errors == [] and "<target dev=\"vda\"" in result.data
