"""A container VM's life through the real hook scripts, on Docker and Podman.

Every test drives the installed hooks as Vdsm does (tests/vdsm.py), as the
vdsm user, through sudo and the root helper, against a real engine.
"""

import os
import stat
import time

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


# The OCI runtime a VM chooses (containerRuntime, issue 14): a small
# representative part of the life above, on each runtime of each engine.
# runc is also what every other test runs on (the engines' default).

RUNTIMES = [
    pytest.param("docker", "runc", id="docker-runc"),
    pytest.param("docker", "crun", id="docker-crun"),
    pytest.param("docker", "runsc", id="docker-runsc"),
    pytest.param("podman", "runc", id="podman-runc"),
    pytest.param("podman", "crun", id="podman-crun"),
    pytest.param("podman", "runsc", id="podman-runsc"),
]

def cgroup_file(pid, controller, name):
    """A cgroup v1 (this CI machine) or v2 file of pid's cgroup."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open("/sys/fs/cgroup/%s%s/%s" % (controller, path,
                                                      name)) as g:
                    return g.read().strip()
    with open("/proc/%d/cgroup" % pid) as f:
        path = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")]
    v2 = {"memory.limit_in_bytes": "memory.max"}.get(name, name)
    with open("/sys/fs/cgroup%s/%s" % (path[0], v2)) as g:
        return g.read().strip()


@pytest.mark.parametrize("engine, runtime", RUNTIMES, indirect=["engine"])
def test_runtime_lifecycle(vdsm, runtimes_conf, engine, runtime):
    name, client = engine
    installation = runtimes_conf
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerRuntime": runtime}, memory_mib=192, vcpus=1)

    result = start(vdsm, vm)

    c = container_of(client, vm)
    assert c is not None and c.status == "running"
    pid = c.attrs["State"]["Pid"]
    record = installation.record(vm.id)
    assert record["runtime"] == runtime
    # What really runs, as the host shows it (Podman's inspect says "oci"
    # whatever runs).
    assert vmrun.runtime_on_host(c.id, pid) == runtime
    version = c.exec_run(["cat", "/proc/version"]).output.decode()
    with open("/proc/version") as f:
        host_kernel = f.read()
    if runtime == "runsc":
        # gVisor's own kernel answers, not the host's.
        assert version != host_kernel and "Linux version 4.4.0" in version
    else:
        assert version == host_kernel
    # The limits, in the host's kernel: gVisor's sandbox (the container's
    # process) is in the container's cgroup too.
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") \
        == str(192 * MIB)
    assert cgroup_file(pid, "pids", "pids.max") == "1024"
    # Capabilities as the container's first process has them: from the
    # host's /proc (runc, crun), from gVisor's (runsc: its processes are
    # no host processes).
    expected = sum(1 << bit for bit in CAP_BITS.values())
    if runtime == "runsc":
        status = dict(line.split(":\t", 1) for line in c.exec_run(
            ["cat", "/proc/1/status"]).output.decode().splitlines()
            if ":\t" in line)
        # The engine's seccomp profile is not loaded inside the sandbox
        # (runsc without --oci-seccomp); the sandbox itself, on the host,
        # runs under gVisor's own filter.
        assert status["Seccomp"].strip() == "0"
        assert proc_status(pid)["Seccomp"] == "2"
    else:
        status = proc_status(pid)
        assert status["NoNewPrivs"] == "1"
        assert status["Seccomp"] == "2"     # the engine's default profile
    assert int(status["CapEff"], 16) == expected
    assert int(status["CapBnd"], 16) == expected
    # The stats hooks read the container's cgroup (for runsc gVisor's
    # sandbox's) in place of the placeholder's figures.
    import vdsmstats
    c.exec_run(["sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); "
                "done"])          # some CPU time (crun's start takes none)
    ours, = vdsm.run("after_get_all_vm_stats", [vdsmstats.vm_stats(
        vm.id, name=vm.name, memory_mib=192)]).data
    assert int(ours["cpuUsage"]) > 0
    assert ours["memoryStats"]["mem_total"] == str(192 * 1024)
    assert 0 < 192 * 1024 - int(ours["memoryStats"]["mem_unused"]) \
        < 192 * 1024
    # "vdsm-containers ps" names it.
    rc, out, err = installation.run_cli("ps")
    line, = [l for l in out.splitlines() if l.startswith(vm.id)]
    assert line.split()[3] == runtime, line
    # Engine's pause and resume: the container is frozen and thawed.
    vdsm.run("after_vm_pause", result.data, vm_id=vm.id, custom=vm.custom)
    c.reload()
    assert c.status == "paused"
    vdsm.run("after_vm_cont", result.data, vm_id=vm.id, custom=vm.custom)
    c.reload()
    assert c.status == "running"

    power_off(vdsm, vm, result.data)
    assert_nothing_left(installation, client, vm)


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_runtime_not_offered_refused(vdsm, fresh_conf, engine):
    name, client = engine
    fresh_conf.configure(**{name + "_runtimes": "runc, crun"})
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerRuntime": "runsc"})

    refusal, before, after = vmrun.refused_start(vdsm, vm)

    err = refusal.err.decode("utf-8")
    assert err.startswith("Invalid custom property containerRuntime='runsc'"
                          ": this host runs %s containers on runc, crun "
                          "only" % name), err
    assert err.count("\n") == 1
    assert_nothing_left(fresh_conf, client, vm)


def test_podman_ignoring_the_runtime_refused(vdsm, fresh_conf, podman_client,
                                            registry_image):
    # Podman's compatible API runs the service's runtime whatever a
    # container asks for: a runtime with no service of its own named in
    # podman_runtime_sockets is caught by the host's proof, and the
    # container removed.
    fresh_conf.configure(podman_runtimes="runc, runsc")
    vm = domains.VM({"containerType": "podman",
                     "containerImage": images.IMAGE,
                     "containerRuntime": "runsc"})

    refusal, before, after = vmrun.refused_start(vdsm, vm)

    err = refusal.err.decode("utf-8")
    assert "ran the container on runc instead of runsc" in err, err
    assert "podman_runtime_sockets" in err
    assert_nothing_left(fresh_conf, podman_client, vm)


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_runsc_exit_takes_vm_down(vdsm, runtimes_conf, engine, watcher,
                                  exiting_images, libvirt_host,
                                  qemu_workdir):
    # The watcher follows gVisor's containers as any other (on Podman their
    # end comes through podman_socket's event stream: the services share
    # Podman's event log), and the stats report their exit.
    name, client = engine
    vm = domains.VM({"containerType": name,
                     "containerImage": exiting_images["exit3"],
                     "containerRuntime": "runsc"}, base="no-nic-in.xml",
                    memory_mib=64)
    try:
        last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
        c = container_of(client, vm)
        # The watcher's stats snapshot names the runtime in Engine's
        # Applications list.
        import vdsmstats
        from statsnap_test import snapshot_has
        snapshot_has(runtimes_conf, vm.id)
        ours, = vdsm.run("after_get_all_vm_stats", [vdsmstats.vm_stats(
            vm.id, name=vm.name, memory_mib=64)]).data
        assert "runtime runsc" in ours["appsList"], ours["appsList"]
        c.exec_run(["touch", images.EXIT_TRIGGER])

        assert vmrun.wait_gone(vm, timeout=30) is not None, \
            "the placeholder still runs"
        vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
        down = vmrun.down_stats(vdsm, vm)
        assert down["exitMessage"] == "container exited with code 3 (error)"
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        assert vmrun.containers_of(client, vm) == []
    finally:
        vmrun.discard(client, runtimes_conf, [vm])


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_runsc_vnic_on_the_lan(vdsm, runtimes_conf, engine, lan):
    # gVisor with --network=host (dev/services): the host's network stack
    # in the container's own namespace, with Engine's MAC on the bridge.
    import lan as lanmod
    name, client = engine
    net = lan[0]
    mac = "00:1a:4a:16:01:61"
    vm = domains.add_nics(domains.VM(
        {"containerType": name, "containerImage": images.IMAGE,
         "containerRuntime": "runsc"}), [(mac, lanmod.BRIDGE)])

    result = start(vdsm, vm)

    record = runtimes_conf.record(vm.id)
    assert record["runtime"] == "runsc"
    nic, = record["nics"]
    assert nic["mac"] == mac
    # gVisor's sandbox starts the service a little later than runc would.
    deadline = time.time() + 20
    while True:
        try:
            page = net.fetch(nic["ip"], timeout=3)
            break
        except AssertionError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    assert page == "hello from vdsm-hook-containers\n"
    assert mac in net.exec_("ip", "neigh", "show", nic["ip"])
    # The stats: the address reported as a guest agent would, and the
    # vNIC's counters those of the interface in the container's network
    # namespace (gVisor's sandbox's, with --network=host).
    import vdsmstats
    ours, = vdsm.run("after_get_vm_stats", [vdsmstats.vm_stats(
        vm.id, name=vm.name, macs=[mac])]).data
    assert ours["guestIPs"] == nic["ip"]
    assert int(ours["network"]["vnet0"]["rx"]) > 0
    assert int(ours["network"]["vnet0"]["tx"]) > len(page)
    power_off(vdsm, vm, result.data)
    assert_nothing_left(runtimes_conf, client, vm)


def test_check_lists_the_runtimes(runtimes_conf, registry_image):
    import json
    rc, out, err = runtimes_conf.run_cli("check", "--json")
    rows = dict((r["check"], r) for r in json.loads(out))
    docker_row, podman_row = rows["runtimes docker"], rows["runtimes podman"]
    assert docker_row["ok"] and podman_row["ok"], (docker_row, podman_row)
    assert docker_row["detail"].startswith(
        "has crun, runc, runsc (default runc); VMs may choose runc, crun, "
        "runsc"), docker_row
    assert podman_row["detail"].startswith(
        "has runc, crun, runsc (default runc)"), podman_row
    # A runtime offered but missing fails the check, saying why.
    runtimes_conf.configure(podman_runtimes="runc, runsc")
    rc, out, err = runtimes_conf.run_cli("check", "--json")
    row = dict((r["check"], r) for r in json.loads(out))["runtimes podman"]
    assert not row["ok"] and rc == 1
    assert "runsc: offered (podman_runtimes) but no podman service of it " \
        "is named in podman_runtime_sockets" in row["detail"]


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_runsc_volume_keeps_its_data(vdsm, fresh_conf, engine, storage):
    # A VM disk the host mounts, bound into gVisor's sandbox (its gofer
    # serves the file system): written under runsc, read back under runc
    # after a restart.
    from conftest import RUNTIME_OPTIONS
    name, client = engine
    fresh_conf.configure(storage_roots=storage.root, **RUNTIME_OPTIONS)
    image = storage.image()
    vm = domains.add_disks(domains.VM(
        {"containerType": name, "containerImage": images.IMAGE,
         "containerRuntime": "runsc", "volumeMap": "vda:/data"}),
        domains.disk("vda", image))

    result = start(vdsm, vm)
    assert fresh_conf.record(vm.id)["runtime"] == "runsc"
    rc, out = container_of(client, vm).exec_run(
        ["sh", "-c", "echo kept > /data/file && sync && cat /data/file"])
    assert (rc, out) == (0, b"kept\n")
    power_off(vdsm, vm, result.data)

    vm = vm.edited(containerRuntime="runc")
    domains.add_disks(vm, domains.disk("vda", image))
    result = start(vdsm, vm)
    assert fresh_conf.record(vm.id)["runtime"] == "runc"
    rc, out = container_of(client, vm).exec_run(["cat", "/data/file"])
    assert (rc, out) == (0, b"kept\n")
    power_off(vdsm, vm, result.data)
    assert_nothing_left(fresh_conf, client, vm)


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_runtime_engine_default_only(vdsm, installation, engine):
    # containers.conf as shipped offers no runtime: a VM may name the
    # engine's own default (the helper asks the engine), nothing else.
    name, client = engine
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerRuntime": "runc"})
    result = start(vdsm, vm)
    assert installation.record(vm.id)["runtime"] == "runc"
    power_off(vdsm, vm, result.data)

    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerRuntime": "crun"})
    refusal, before, after = vmrun.refused_start(vdsm, vm)
    err = refusal.err.decode("utf-8")
    assert err.startswith("Invalid custom property containerRuntime='crun'"
                          ": this host runs %s containers on runc only"
                          % name), err
    assert_nothing_left(installation, client, vm)


@pytest.mark.parametrize("engine, runtime", [
    pytest.param("docker", "", id="docker-default"),
    pytest.param("docker", "runc", id="docker-runc"),
    pytest.param("podman", "crun", id="podman-crun"),
], indirect=["engine"])
def test_command_ending_at_once_starts(vdsm, runtimes_conf, engine, runtime):
    # A container whose command ends at once has no process left for the
    # runtime's proof (Docker then reports no pid, or one already gone
    # while it still says "running"): the start succeeds as it did before
    # runtimes were chosen, and its end is the watcher's to report.
    name, client = engine
    props = {"containerType": name, "containerImage": images.IMAGE,
             "containerCommand": "false"}
    if runtime:
        props["containerRuntime"] = runtime
    vm = domains.VM(props)

    result = start(vdsm, vm)

    # Proven if its process was still there, else the one chosen (for
    # the engine's default, none).
    assert runtimes_conf.record(vm.id)["runtime"] in (
        (runtime,) if runtime else (None, "runc"))
    power_off(vdsm, vm, result.data)
    assert_nothing_left(runtimes_conf, client, vm)


def runtime_traces(container_id):
    """What the engines and runtimes keep of a container, by its id: the
    runtimes' state (/run/runc, /run/crun, /run/runsc, Docker's
    runtime-*/moby), containerd's and the engines' own directories."""
    import glob
    found = []
    for top in ("/run", "/var/lib/docker", "/var/lib/containers"):
        for depth in range(0, 4):
            found += glob.glob(top + "/" + "*/" * depth + container_id + "*")
    return found


class Creations(object):
    """The ids of the containers an engine creates while it is open (its
    event stream, read by a thread: Podman's compatible API lists past
    events of none)."""

    def __init__(self, client):
        import threading
        import uuid
        self.ids = {}
        self._stream = client.events(decode=True, filters={
            "type": "container", "event": "create"})
        self._thread = threading.Thread(target=self._read)
        self._thread.daemon = True
        self._thread.start()
        # Once a container of the test's own is seen, the stream is live
        # (Podman's follows its event log from some moment after the
        # request).
        probe = "vhc-creations-" + uuid.uuid4().hex[:12]
        client.containers.create(images.IMAGE, name=probe).remove()
        vmrun.wait(lambda: probe in self.ids.values(), 10, "the event "
                   "stream (the creation of " + probe + ")")

    def _read(self):
        try:
            for e in self._stream:
                actor = e.get("Actor") or {}
                self.ids[actor.get("ID") or e.get("id")] = \
                    (actor.get("Attributes") or {}).get("name")
        except Exception:
            pass            # closed

    def of(self, name, timeout=5):
        # Podman's stream follows its event log a moment behind.
        vmrun.poll(lambda: name in self.ids.values(), timeout)
        self._stream.close()
        self._thread.join(5)
        return [i for i, n in self.ids.items() if n == name]


# A start that fails once the container exists, on each runtime: its
# volume cannot be mounted where the VM says (a file of the image, which
# the runtime finds when it sets the container up); or (Podman) the socket
# named for runsc is a service of another runtime, which the host's proof
# catches once the container runs.
FAILED_STARTS = [
    pytest.param("docker", "runc", None, id="docker-runc"),
    pytest.param("docker", "crun", None, id="docker-crun"),
    pytest.param("docker", "runsc", None, id="docker-runsc"),
    pytest.param("podman", "runc", None, id="podman-runc"),
    pytest.param("podman", "crun", None, id="podman-crun"),
    pytest.param("podman", "runsc", None, id="podman-runsc"),
    pytest.param("podman", "runsc", "crun", id="podman-runsc-socket-of-crun"),
]


@pytest.mark.parametrize("engine, runtime, served_by", FAILED_STARTS,
                         indirect=["engine"])
def test_runtime_failed_start_leaves_nothing(vdsm, fresh_conf, engine,
                                             storage, runtime, served_by):
    # The storage fixture fails the test on a mount, loop device or image
    # lock left behind.
    from conftest import PODMAN_RUNTIME_SOCKETS, RUNTIME_OPTIONS
    name, client = engine
    options = dict(RUNTIME_OPTIONS, storage_roots=storage.root)
    volume = "vda:/data"
    if served_by:
        # The admin named the crun service's socket for runsc.
        options["podman_runtime_sockets"] = "runsc:" + \
            PODMAN_RUNTIME_SOCKETS[served_by]
        expected = "ran the container on %s instead of %s" % (served_by,
                                                             runtime)
    else:
        volume = "vda:/www/index.html"
        expected = "failed to start container ovirt-vm-"
    fresh_conf.configure(**options)
    vm = domains.add_disks(domains.VM(
        {"containerType": name, "containerImage": images.IMAGE,
         "containerRuntime": runtime, "volumeMap": volume}),
        domains.disk("vda", storage.image()))
    creations = Creations(client)

    refusal, before, after = vmrun.refused_start(vdsm, vm)

    err = refusal.err.decode("utf-8")
    made = creations.of("ovirt-vm-" + vm.id)
    assert expected in err and err.count("\n") == 1, err
    assert len(made) == 1, made
    assert_nothing_left(fresh_conf, client, vm)
    assert runtime_traces(made[0]) == []
