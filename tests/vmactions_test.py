"""Engine's other VM actions on a container VM, through the real hooks."""

import pytest

import domains
import images
import vmrun
from vdsm import HookError


@pytest.fixture
def running(vdsm, engine):
    """A started container VM: (vm, placeholder XML, container)."""
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    yield vm, result.data, client.containers.get("ovirt-vm-" + vm.id)
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    vdsm.run("after_vm_destroy", result.data, vm_id=vm.id, custom=vm.custom)


@pytest.mark.parametrize("hook, message", [
    pytest.param("before_vm_migrate_source", "Migration is not possible for "
                 "container VMs", id="migrate"),
    pytest.param("before_vm_hibernate", "Suspending to disk or a memory "
                 "snapshot is not possible for container VMs", id="hibernate"),
])
def test_refused_and_vm_keeps_running(vdsm, running, hook, message):
    vm, xml, container = running
    with pytest.raises(HookError) as e:
        vdsm.run(hook, xml, vm_id=vm.id, custom=vm.custom)
    err = e.value.err.decode()
    assert message in err and vm.id in err and err.count("\n") == 1
    container.reload()
    assert container.status == "running"


@pytest.mark.parametrize("hook", ["before_vm_migrate_source",
                                  "before_vm_hibernate"])
def test_refused_without_vmid_by_metadata(vdsm, running, hook):
    vm, xml, _ = running
    with pytest.raises(HookError):
        vdsm.run(hook, xml)


def test_pause_and_resume(vdsm, running):
    vm, xml, container = running
    vdsm.run("after_vm_pause", xml, vm_id=vm.id, custom=vm.custom)
    container.reload()
    assert container.status == "paused"
    # Paused twice (an I/O error pause on top of Engine's): still fine.
    again = vdsm.run("after_vm_pause", xml, vm_id=vm.id, custom=vm.custom)
    assert again.errors == []
    vdsm.run("after_vm_cont", xml, vm_id=vm.id, custom=vm.custom)
    container.reload()
    assert container.status == "running"


@pytest.mark.parametrize("hook", ["before_vm_migrate_source",
                                  "before_vm_hibernate", "after_vm_pause",
                                  "after_vm_cont"])
def test_plain_vm_untouched(vdsm, installation, hook):
    vm = domains.VM({})
    result = vdsm.run(hook, vm.xml, vm_id=vm.id, custom=vm.custom)
    assert result.errors == [] and result.data == vm.xml


def test_hotunplug_of_a_mounted_disk_refused(vdsm, installation, storage,
                                             docker_client, registry_image):
    mounted, other = storage.image(), storage.image()
    vm = domains.add_disks(
        domains.container_vm("docker", images.IMAGE),
        domains.disk("vda", mounted), domains.disk("vdb", other))
    vm.custom["volumeMap"] = "vda:/data"
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
