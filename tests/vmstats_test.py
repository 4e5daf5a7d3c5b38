"""after_get_all_vm_stats and after_get_vm_stats, through the real hooks.

A container VM started through before_vm_start on each engine, then the
stats hooks run as Vdsm runs them (as vdsm, tests/vdsm.py) on what Vdsm
would hand them (tests/vdsmstats.py): the container's figures must
replace the placeholder's in Vdsm's keys and types, every other key must
stay, and VMs that are not containers must pass untouched.
"""

import json
import os
import time

import pytest

import domains
import images
import registries
import vdsmstats

MEMORY_MIB = 192
MIB = 1024 * 1024
MAC = "00:1a:4a:16:01:51"
PLAIN = "0a0b0c0d-0000-4000-8000-000000000001"

# What Vdsm sends as strings (vdsm.utils.convertToStr).
STRING_KEYS = ("cpuUser", "cpuSys", "cpuUsage", "memUsage")
MEMORY_KEYS = ("mem_total", "mem_unused", "mem_free")
NIC_COUNTERS = ("rx", "tx", "rxErrors", "txErrors", "rxDropped",
                "txDropped")


def running_vm(vdsm, engine):
    """A running container VM of engine (a generator: powered off when
    resumed)."""
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, memory_mib=MEMORY_MIB)
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    vm.container = client.containers.get("ovirt-vm-" + vm.id)
    yield vm
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    vdsm.run("after_vm_destroy", result.data, vm_id=vm.id, custom=vm.custom)


@pytest.fixture
def container_vm(vdsm, installation, engine):
    """A running container VM of engine, powered off afterwards."""
    yield from running_vm(vdsm, engine)


def stats(vdsm, *vms, **kw):
    hook = kw.get("hook", "after_get_all_vm_stats")
    result = vdsm.run(hook, list(vms))
    assert result.errors == []
    return result.data


def state_path(installation, vm):
    return os.path.join(installation.state_dir, vm.id + ".json")


def edit_state(installation, vm, **changes):
    """Change the VM's state file as the helper would (root, atomic)."""
    path = state_path(installation, vm)
    with open(path) as f:
        record = json.load(f)
    record.update(changes)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.chmod(path + ".tmp", 0o644)
    os.rename(path + ".tmp", path)


def test_figures_in_vdsm_keys_and_types(vdsm, installation, container_vm):
    vm = container_vm
    before = vdsmstats.vm_stats(vm.id, name=vm.name, macs=[MAC],
                                memory_mib=MEMORY_MIB)
    plain = vdsmstats.vm_stats(PLAIN, macs=["00:1a:4a:16:01:99"])

    ours, other = stats(vdsm, before, plain)

    assert other == plain
    for key in STRING_KEYS:
        assert isinstance(ours[key], str), key
    float(ours["cpuUser"]), float(ours["cpuSys"])
    int(ours["cpuUsage"]), int(ours["memUsage"])
    assert ours["memoryStats"]["mem_total"] == str(MEMORY_MIB * 1024)
    for key in MEMORY_KEYS:
        assert isinstance(ours["memoryStats"][key], str), key
    assert ours["guestFQDN"] == vm.name
    assert ours["appsList"][0] == images.IMAGE
    # Everything else as Vdsm put it.
    changed = set(STRING_KEYS) | {"memoryStats", "guestFQDN", "appsList",
                                  "guestContainers"}
    assert dict((k, v) for k, v in ours.items() if k not in changed) == \
        dict((k, v) for k, v in before.items() if k not in changed)


@pytest.mark.parametrize("changes, fqdn", [
    # A record from before the FQDN was kept: the hostname.
    pytest.param({}, None, id="no-fqdn"),
    pytest.param({"hostname": "db.example.com", "fqdn": "db.example.com"},
                 "db.example.com", id="fqdn-as-hostname"),
    # An FQDN longer than Linux's hostname: the container has its first
    # label (spec.host_names), Engine shows the FQDN.
    pytest.param({"hostname": "a" * 40,
                  "fqdn": "a" * 40 + "." + "b" * 20 + ".example.com"},
                 "a" * 40 + "." + "b" * 20 + ".example.com",
                 id="fqdn-longer-than-hostname"),
])
def test_guest_fqdn_is_the_initial_run_fqdn(vdsm, installation,
                                            container_vm, changes, fqdn):
    vm = container_vm
    edit_state(installation, vm, **changes)
    ours = stats(vdsm, vdsmstats.vm_stats(vm.id, memory_mib=MEMORY_MIB))[0]
    assert ours["guestFQDN"] == (fqdn or vm.name)


@pytest.fixture
def pulled_vm(vdsm, installation, engine):
    """A running container VM of engine whose image the start pulled
    (the engine may hold an older image of the tag: the test image is
    made anew by each test session); powered off afterwards."""
    images.remove_local(engine[1])
    yield from running_vm(vdsm, engine)


def test_image_digest_reported(vdsm, installation, pulled_vm):
    # What the container runs, as the registry names the tag it pulled:
    # in the state, "vdsm-containers ps", and Engine's Applications list
    # (appsList).
    vm = pulled_vm
    digest = registries.manifest_digest(
        images.REGISTRY, "vhc-tests/busybox-httpd", images.TAG)
    record = installation.record(vm.id)
    assert record["image_digest"] == digest
    assert record["image_id"] == vm.container.attrs["Image"]

    ours, = stats(vdsm, vdsmstats.vm_stats(vm.id, name=vm.name,
                                           memory_mib=MEMORY_MIB))

    assert ours["appsList"] == [images.IMAGE,
                                images.REPOSITORY + "@" + digest]
    rc, out, err = installation.run_cli("ps", "--json")
    row, = [r for r in json.loads(out) if r["vm_id"] == vm.id]
    assert (row["image_digest"], row["image_id"]) == (
        digest, record["image_id"])
    rc, out, err = installation.run_cli("ps")
    line, = [l for l in out.splitlines() if l.startswith(vm.id)]
    assert line.endswith("%s (%s)" % (images.IMAGE, digest[:19]))


def test_cpu_over_the_interval(vdsm, container_vm):
    vm = container_vm
    vm_stats = vdsmstats.vm_stats(vm.id, memory_mib=MEMORY_MIB)
    stats(vdsm, vm_stats)                     # the first sample
    started = time.time()
    rc, _ = vm.container.exec_run(
        ["sh", "-c", "i=0; while [ $i -lt 250000 ]; do i=$((i+1)); done"])
    assert rc == 0
    busy = time.time() - started
    time.sleep(0.5)

    ours = stats(vdsm, vm_stats)[0]

    # One busy shell on one CPU for busy of the interval's seconds.
    cpu = float(ours["cpuUser"]) + float(ours["cpuSys"])
    interval = time.time() - started + 0.5
    assert cpu > 100 * busy / interval * 0.6
    assert cpu < 100 * 2 * 1.1                # the VM has 2 vCPUs


def test_memory_of_the_container(vdsm, container_vm):
    vm = container_vm
    rc, out = vm.container.exec_run(
        ["dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=48"])
    assert rc == 0, out

    ours = stats(vdsm, vdsmstats.vm_stats(vm.id, memory_mib=MEMORY_MIB))[0]

    # 48 MiB of tmpfs (the engines' /dev/shm holds 64) in a 192 MiB VM:
    # a quarter, plus what the shell and httpd use.
    assert 25 <= int(ours["memUsage"]) <= 32
    memory = ours["memoryStats"]
    total = MEMORY_MIB * 1024
    assert int(memory["mem_free"]) <= total - 48 * 1024
    assert int(memory["mem_unused"]) <= int(memory["mem_free"])


def test_network_and_addresses_from_the_state(vdsm, installation,
                                              container_vm):
    # The container's NICs as the networking code records them; the
    # container has none here (network none), so its loopback stands in.
    vm = container_vm
    edit_state(installation, vm, nics=[
        {"mac": MAC, "ip": "192.0.2.10", "prefix": 24,
         "gateway": "192.0.2.1", "network": "ovirt-lan", "bridge": "lan",
         "ifname": "lo"},
        {"mac": "00:1a:4a:16:01:52", "ip": None, "prefix": None,
         "gateway": None, "network": "ovirt-lan2", "bridge": "lan2",
         "ifname": "eth9"},            # not in the container: skipped
    ], ips=["192.0.2.10"])
    rc, _ = vm.container.exec_run(["wget", "-qO-", "http://127.0.0.1:8080/"])
    assert rc == 0
    before = vdsmstats.vm_stats(vm.id, macs=[MAC.upper()],
                                memory_mib=MEMORY_MIB)
    vdsm_nic = before["network"]["vnet0"]

    ours = stats(vdsm, before, hook="after_get_vm_stats")[0]

    nic = ours["network"]["vnet0"]
    assert nic["name"] == "vnet0" and nic["macAddr"] == MAC
    assert nic["speed"] == "1000" and nic["state"] == "unknown"
    for key in NIC_COUNTERS:
        assert isinstance(nic[key], str), key
    assert int(nic["rx"]) > 0 and int(nic["tx"]) > 0
    assert isinstance(nic["sampleTime"], float)
    assert nic["sampleTime"] >= vdsm_nic["sampleTime"]
    assert list(ours["network"]) == ["vnet0"]
    assert ours["guestIPs"] == "192.0.2.10"
    assert ours["netIfaces"] == [
        {"name": "lo", "hw": MAC, "inet": ["192.0.2.10"], "inet6": []},
        {"name": "eth9", "hw": "00:1a:4a:16:01:52", "inet": [],
         "inet6": []}]


@pytest.mark.parametrize("damage", [
    pytest.param({"pid": 1}, id="pid-of-another-process"),
    pytest.param({"pid": 999999999}, id="process-gone"),
    pytest.param({"container_id": "e" * 64}, id="another-container"),
    pytest.param(None, id="corrupt-state-file"),
])
def test_broken_container_keeps_vdsm_figures(vdsm, installation,
                                             container_vm, damage):
    vm = container_vm
    with open(state_path(installation, vm)) as f:
        good = f.read()
    if damage is None:
        with open(state_path(installation, vm), "w") as f:
            f.write("{not json")
    else:
        edit_state(installation, vm, **damage)
    before = vdsmstats.vm_stats(vm.id, memory_mib=MEMORY_MIB)
    plain = vdsmstats.vm_stats(PLAIN)

    try:
        result = vdsm.run("after_get_all_vm_stats", [before, plain])
    finally:
        # The power off needs the state; so does every start (network.py
        # reads all state files).
        with open(state_path(installation, vm), "w") as f:
            f.write(good)

    assert result.errors == []
    assert result.data == [before, plain]
    assert "vm_id=%s keeping Vdsm's figures" % vm.id in \
        installation.read_log()


def test_exit_message_of_a_down_vm(vdsm, installation):
    vm_id = "6f1383a1-ea92-44bf-a721-082563ac560f"
    record = os.path.join(installation.state_dir, vm_id + ".exit")
    if not os.path.isdir(installation.state_dir):
        os.makedirs(installation.state_dir)
    with open(record, "w") as f:
        json.dump({"vm_id": vm_id, "exit_code": 137, "oom_killed": True,
                   "message": "container exited with code 137 (out of "
                              "memory)"}, f)
    try:
        lost = vdsmstats.down_vm_stats(vm_id)
        admin = vdsmstats.down_vm_stats(
            vm_id, exit_code=0, exit_reason=6,
            message="Admin shut down from the engine")

        assert stats(vdsm, lost)[0]["exitMessage"] == \
            "container exited with code 137 (out of memory)"
        assert stats(vdsm, admin) == [admin]
    finally:
        os.unlink(record)


def test_plain_vms_untouched(vdsm, installation):
    vms = [vdsmstats.vm_stats(PLAIN, macs=["00:1a:4a:16:01:99"]),
           vdsmstats.down_vm_stats("0a0b0c0d-0000-4000-8000-000000000002")]
    for hook in ("after_get_all_vm_stats", "after_get_vm_stats"):
        result = vdsm.run(hook, vms)
        assert result.data == vms
        assert all(s.rc == 0 and s.err == b"" for s in result.scripts)


def test_samples_directory_missing(vdsm, installation, container_vm):
    # The CPU figures fall back to the average since the container
    # started; nothing fails.
    os.rename(installation.samples_dir, installation.samples_dir + ".off")
    try:
        ours = stats(vdsm, vdsmstats.vm_stats(container_vm.id))[0]
    finally:
        os.rename(installation.samples_dir + ".off",
                  installation.samples_dir)
    assert float(ours["cpuUser"]) >= 0
    assert "cannot keep CPU samples" in installation.read_log()


def test_container_ended_since_the_last_call(vdsm, installation,
                                             container_vm):
    # The second call finds the remembered cgroup gone with the container.
    vm = container_vm
    vm_stats = vdsmstats.vm_stats(vm.id, memory_mib=MEMORY_MIB)
    assert stats(vdsm, vm_stats)[0]["memoryStats"]
    vm.container.kill()
    vm.container.wait(timeout=30)

    assert stats(vdsm, vm_stats) == [vm_stats]
    assert "its cgroup is gone" in installation.read_log()


@pytest.mark.parametrize("text", [
    pytest.param('[]', id="empty"),
    pytest.param(' [\n] \n', id="empty-spaced"),
    pytest.param('[{"vmId": "a", "x": "]},{"}, {"vmId": "b"}]',
                 id="brackets-in-strings"),
    pytest.param('[{"vmId":"a"},{"vmId":"b","n":1.50}]', id="compact"),
    pytest.param('[\n  {"vmId": "a"},\n  {"vmId": "b"}\n]\n',
                 id="indented"),
])
def test_unchanged_vms_copied_byte_for_byte(text):
    from containerhooks import vmstats
    kept = vmstats._elements(text, lambda vm: True)
    assert [item for _, _, item in kept] == json.loads(text)
    if not kept:
        return
    start, end, first = kept[0]
    first["cpuUser"] = "1.00"
    raw = text.encode("utf-8")

    out = b"".join(vmstats._encode(text, raw, [kept[0]])).decode("utf-8")

    assert json.loads(out) == [first] + [item for _, _, item in kept[1:]]
    assert out.startswith(text[:start])
    assert out.endswith(text[kept[1][0] if len(kept) > 1 else end:])


@pytest.mark.parametrize("text", ['[1,]', '[1 2]', '[1] x', '{"a": 1}'])
def test_not_a_list_is_refused(text):
    from containerhooks import vmstats
    with pytest.raises(ValueError):
        vmstats._elements(text, lambda vm: True)
