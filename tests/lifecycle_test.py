"""A container VM's life through the real hook scripts, on Docker and Podman.

Every test drives the installed hooks as Vdsm does (tests/vdsm.py), as the
vdsm user, through sudo and the root helper, against a real engine.
"""

import os
import stat

import pytest
from lxml import etree

import domains
import images
import vmrun
from vdsm import HookError
from vmrun import power_off, start_hook as start

CONTAINERS_NS = "http://ovirt.org/vdsm-hook-containers/1.0"
MIB = 1024 * 1024

# Capability bit numbers (linux/capability.h) of config.BASE_CAPABILITIES.
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4,
            "KILL": 5, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10}


def container_of(client, vm):
    import docker
    try:
        return client.containers.get("ovirt-vm-" + vm.id)
    except docker.errors.NotFound:
        return None


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def assert_nothing_left(installation, client, vm):
    assert container_of(client, vm) is None
    assert [n for n in installation.state_files()
            if n.startswith(vm.id)] == []


def test_start_and_power_off(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, memory_mib=192, vcpus=1)

    result = start(vdsm, vm)

    # The placeholder XML carries our metadata and boots the idle kernel.
    root = etree.fromstring(result.data.encode("utf-8"))
    meta = root.find("metadata/{%s}container" % CONTAINERS_NS)
    assert meta.find("{%s}engine" % CONTAINERS_NS).text == name
    assert meta.find("{%s}image" % CONTAINERS_NS).text == images.IMAGE
    assert meta.find("{%s}memory" % CONTAINERS_NS).text == str(192 * 1024)
    assert root.find("os/kernel").text == installation.kernel
    assert root.find("uuid").text == vm.id

    c = container_of(client, vm)
    assert c is not None and c.status == "running"
    hc = c.attrs["HostConfig"]
    assert hc["Memory"] == 192 * MIB
    assert hc["NanoCpus"] == 10 ** 9
    assert hc["CpuShares"] == 1020
    assert hc["Privileged"] is False
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["PidsLimit"] == 1024
    assert hc["NetworkMode"] == "none"
    limits = dict((u["Name"].replace("RLIMIT_", "").lower(),
                   (u["Soft"], u["Hard"])) for u in hc["Ulimits"])
    assert limits == {"nofile": (8192, 8192), "nproc": (4096, 4096)}
    assert c.labels["org.ovirt.vm.id"] == vm.id
    assert c.labels["org.ovirt.vdsm-hook-containers"] == "1"

    # What the kernel enforces on the container's first process.
    status = proc_status(c.attrs["State"]["Pid"])
    expected = sum(1 << bit for bit in CAP_BITS.values())
    assert int(status["CapEff"], 16) == expected
    assert int(status["CapBnd"], 16) == expected
    assert status["NoNewPrivs"] == "1"

    # The state file is there for the other hooks, readable by vdsm.
    state_file = os.path.join(installation.state_dir, vm.id + ".json")
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o644

    power_off(vdsm, vm, result.data)
    assert_nothing_left(installation, client, vm)


def test_domain_died_on_its_own(vdsm, installation, engine):
    # virsh destroy or qemu killed: only after_vm_destroy runs.
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    assert container_of(client, vm).status == "running"

    vdsm.run("after_vm_destroy", result.data, vm_id=vm.id, custom=vm.custom)

    assert_nothing_left(installation, client, vm)


def test_destroy_is_quiet_when_already_gone(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    container_of(client, vm).remove(force=True)   # removed by hand

    power_off(vdsm, vm, result.data)
    again = vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                     custom=vm.custom)

    assert again.errors == []
    assert_nothing_left(installation, client, vm)


def test_image_pulled_from_registry_when_missing(vdsm, installation, engine):
    name, client = engine
    images.remove_local(client)
    vm = domains.container_vm(name, images.IMAGE)

    result = start(vdsm, vm)

    assert container_of(client, vm).status == "running"
    client.images.get(images.IMAGE)
    assert "pull %s" % images.IMAGE in installation.read_log()
    power_off(vdsm, vm, result.data)


@pytest.mark.parametrize("custom, message", [
    pytest.param({"containerImage": "--privileged"},
                 "Invalid custom property containerImage='--privileged'",
                 id="option-lookalike-image"),
    pytest.param({"containerImage": "busybox; rm -rf /"},
                 "Invalid custom property containerImage=",
                 id="shell-metacharacters"),
    pytest.param({"containerType": "lxc"},
                 "Invalid custom property containerType='lxc'",
                 id="unknown-engine"),
    pytest.param({"containerImage": ""},
                 "an image reference is required", id="empty-image"),
])
def test_bad_property_refused(vdsm, installation, engine, custom, message):
    name, client = engine
    props = {"containerType": name, "containerImage": images.IMAGE}
    props.update(custom)
    vm = domains.VM(props)

    # Engine then destroys the Down VM: before_vm_destroy, and
    # after_vm_destroy on the XML Vdsm read back from the refused hook.
    refusal, before, after = vmrun.refused_start(vdsm, vm)

    err = refusal.err.decode("utf-8")
    assert message in err
    assert err.count("\n") == 1     # one line: the VM's exit message
    assert refusal.result.scripts[-1].rc == 2
    # XML untouched: what Vdsm gave the hook.
    assert refusal.result.data == vm.xml
    assert before.errors == [] and after.errors == []
    assert [s.rc for s in before.scripts + after.scripts] == [0, 0]
    assert_nothing_left(installation, client, vm)


def test_engine_down_refused(vdsm, fresh_conf, engine):
    name, client = engine
    fresh_conf.configure(**{name + "_socket": "/run/vhc-tests-nothing.sock"})
    vm = domains.container_vm(name, images.IMAGE)

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert "Container engine %s is not reachable" % name in err
    assert err.count("\n") == 1
    assert e.value.result.data == vm.xml
    assert_nothing_left(fresh_conf, client, vm)


def test_image_missing_from_registry_refused(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.MISSING)

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert "Image %s was not found" % images.MISSING in err
    assert err.count("\n") == 1
    assert e.value.result.data == vm.xml
    assert_nothing_left(installation, client, vm)


def test_engine_not_enabled_on_host(vdsm, fresh_conf, engine):
    name, client = engine
    other = "podman" if name == "docker" else "docker"
    fresh_conf.configure(engines=other)
    vm = domains.container_vm(name, images.IMAGE)

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    assert "this host runs containers with %s only" % other \
        in e.value.err.decode("utf-8")
    assert_nothing_left(fresh_conf, client, vm)


def test_second_start_of_running_vm_refused(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    first = container_of(client, vm).id

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    assert "already running" in e.value.err.decode("utf-8")
    c = container_of(client, vm)
    assert c.id == first and c.status == "running"   # the first is unharmed
    power_off(vdsm, vm, result.data)


def test_leftover_stopped_container_replaced(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    start(vdsm, vm)
    container_of(client, vm).stop(timeout=5)     # died, never destroyed

    result = start(vdsm, vm)

    assert container_of(client, vm).status == "running"
    power_off(vdsm, vm, result.data)
