"""The container's health check as the VM's watchdog (health.py).

The unit tests read the watchdog action as the hook does and pass it to
the helper; the integration tests run the real flow on both engines:
before_vm_start through the installed hooks as vdsm, the placeholder run
by libvirt, the watcher as root.  The image's HEALTHCHECK fails while a
file exists (tests/images.py HEALTH_IMAGE), which the test creates once
the container is healthy (the pause case gives the VM a check of its own,
containerHealthCmd, failing on a file of its own); the VM's watchdog
action must then be carried out on the container, and the stats hooks
must report Vdsm's watchdogEvent.  The watcher's own probe is bounded by
the check's timeout (engine.probe), on both engines.  The time from the trigger to "unhealthy" and from
"unhealthy" to the action done is printed (run pytest with -s).
"""

import json
import os
import threading
import time

import pytest
from lxml import etree

import domains
import images
import libvirt
import vdsmstats
import vmrun
from containerhooks import domxml
from containerhooks import errors
from containerhooks import health
from containerhooks import paths
from containerhooks import procfs
from containerhooks import spec as specs
from containerhooks import state
from vmrun import down_stats, start

DATA = os.path.join(os.path.dirname(__file__), "data")
VM_ID = "6f1383a1-ea92-44bf-a721-082563ac560f"


# The watchdog action, from the domain XML to the helper

@pytest.mark.parametrize("value, action", [
    pytest.param(None, "reset", id="libvirt-default"),
    pytest.param("reset", "reset", id="reset"),
    pytest.param("poweroff", "poweroff", id="poweroff"),
    pytest.param("pause", "pause", id="pause"),
    pytest.param("dump", "dump", id="dump"),
    pytest.param("none", "none", id="none"),
    pytest.param("shutdown", "poweroff", id="libvirt-shutdown"),
    pytest.param("inject-nmi", "none", id="libvirt-nmi"),
])
def test_parse_action(value, action):
    assert health.parse_action(value) == action


def test_parse_action_refuses_others():
    with pytest.raises(errors.InvalidDomain):
        health.parse_action("explode")


@pytest.mark.parametrize("base, action", [
    pytest.param("no-nic-in.xml", "reset", id="reset"),
    pytest.param("vdsm45-vmconsole-watchdog-in.xml", "poweroff",
                 id="poweroff"),
])
def test_domain_watchdog_action(base, action):
    with open(os.path.join(DATA, base), "rb") as f:
        dom = domxml.Domain.parse(f.read())
    assert dom.watchdog_action() == action


def test_domain_without_watchdog():
    with open(os.path.join(DATA, "no-nic-in.xml"), "rb") as f:
        root = etree.fromstring(f.read())
    for wd in root.iterfind("devices/watchdog"):
        wd.getparent().remove(wd)
    dom = domxml.Domain.parse(etree.tostring(root))
    assert dom.watchdog_action() is None


def _spec(**kw):
    return specs.ContainerSpec(
        vm_id=VM_ID, vm_name="web", engine="docker", image="redis",
        memory_mib=256, vcpus=1, cpu_shares=None, nics=[], volumes=[], **kw)


@pytest.mark.parametrize("action", list(health.ACTIONS) + [None])
def test_helper_arguments_carry_the_action(action):
    import argparse
    from containerhooks import helper
    args = specs.to_args(_spec(watchdog=action))
    assert ("--watchdog=%s" % action in args) == (action is not None)
    ns = helper._parser().parse_args(["start"] + args)
    assert isinstance(ns, argparse.Namespace)
    assert specs.from_args(ns).watchdog == action


def test_helper_refuses_another_action():
    from containerhooks import helper
    ns = helper._parser().parse_args(
        ["start"] + specs.to_args(_spec()) + ["--watchdog=reboot-host"])
    with pytest.raises(errors.InvalidDomain):
        specs.from_args(ns)


# The check

@pytest.mark.parametrize("test, command", [
    pytest.param(["CMD", "/bin/check", "-q"], ["/bin/check", "-q"],
                 id="exec"),
    pytest.param(["CMD-SHELL", "curl -f localhost || exit 1"],
                 ["/bin/sh", "-c", "curl -f localhost || exit 1"],
                 id="shell"),
    pytest.param(["NONE"], None, id="disabled"),
    pytest.param([], None, id="empty"),
    pytest.param(None, None, id="none"),
])
def test_probe_command(test, command):
    assert health.probe_command({"Test": test}) == command


def test_check_defaults_and_floor():
    check = health.Check({"Test": ["CMD", "true"], "Interval": 10 ** 9})
    assert check.interval == specs.HEALTHCHECK_MIN_INTERVAL
    assert check.timeout == health.DEFAULT_TIMEOUT
    assert check.retries == health.DEFAULT_RETRIES
    assert check.start_period == 0
    check = health.Check({"Test": ["CMD", "true"]})
    assert check.interval == health.DEFAULT_INTERVAL


# What the stats hooks report

@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", str(tmp_path))
    return tmp_path


def _write_health(state_dir, **data):
    (state_dir / (VM_ID + ".health")).write_text(json.dumps(data))


def test_stats_with_event(state_dir):
    _write_health(state_dir, container_id="c1", status="unhealthy",
                  event={"time": 1700000000.5, "action": "reset"})
    got = health.stats(VM_ID, "c1")
    assert got == {"containerHealth": "unhealthy",
                   "watchdogEvent": {"time": 1700000000.5,
                                     "action": "reset"}}


def test_stats_health_only(state_dir):
    _write_health(state_dir, container_id="c1", status="healthy",
                  event=None)
    got = health.stats(VM_ID, "c1")
    assert got == {"containerHealth": "healthy"}


def test_stats_of_another_container_are_none(state_dir):
    _write_health(state_dir, container_id="old", status="unhealthy",
                  event={"time": 1, "action": "reset"})
    assert health.stats(VM_ID, "new") == {}


def test_listing_knows_health_records(state_dir):
    _write_health(state_dir, container_id="c1")
    assert state.listing().healths == {VM_ID}


# The real flow on both engines

HEALTHY_TIMEOUT = 60
# From the trigger: a probe interval, a probe, the action (a restart or a
# stop: the image stops on SIGTERM at once), and the watcher's own start
# grace on an engine that runs no checks.
ACTION_BOUND = images.HEALTH_INTERVAL * 2 + 10
SICK = "out of breath"

# The VM's own check (containerHealthCmd), in place of the image's:
# Healthy while VM_TRIGGER does not exist; unhealthy, printing its content,
# once it does.  No shell but the one the value asks for; "!", ">" and "/"
# are written as they are, spaces as %20.
VM_TRIGGER = "/tmp/vm-sick"
VM_CHECK = "/bin/sh -c !%20cat%20" + VM_TRIGGER + "%202>/dev/null"
VM_CHECK_ARGS = ["/bin/sh", "-c", "! cat %s 2>/dev/null" % VM_TRIGGER]


@pytest.fixture(scope="session")
def health_image(docker_client, registry_image):
    return images.build_and_push_health(docker_client)


@pytest.fixture
def health_vm(engine, installation, libvirt_host, qemu_workdir,
              health_image):
    """Makes a container VM of the health image with a watchdog action
    (None: no watchdog device); whatever is left of it is removed."""
    name, client = engine
    made = []

    def make(action, nics=(), **custom):
        vm = domains.VM(dict(custom, containerType=name,
                             containerImage=health_image),
                        base="no-nic-in.xml", memory_mib=64)
        if nics:
            vm = domains.add_nics(vm, list(nics))
        root = etree.fromstring(vm.xml.encode("utf-8"))
        devices = root.find("devices")
        for wd in devices.findall("watchdog"):
            devices.remove(wd)
        if action is not None:
            etree.SubElement(devices, "watchdog", model="i6300esb",
                             action=action)
        vm.xml = etree.tostring(root, encoding="unicode")
        made.append(vm)
        return vm
    yield make
    vmrun.discard(client, installation, made)


def _health(installation, vm):
    try:
        with open(os.path.join(installation.state_dir,
                               vm.id + ".health")) as f:
            return json.load(f)
    except (IOError, ValueError):
        return None


def _running_stats(vdsm, vm):
    result = vdsm.run("after_get_all_vm_stats",
                      [vdsmstats.vm_stats(vm.id, name=vm.name,
                                          memory_mib=64)])
    assert result.errors == []
    return result.data[0]


@pytest.mark.parametrize("action", ["reset", "poweroff", "pause", "dump",
                                    "none", None])
def test_unhealthy_container_gets_the_watchdog_action(
        vdsm, installation, engine, watcher, libvirt_host, qemu_workdir,
        health_vm, action):
    name, client = engine
    # The pause case runs the VM's own check (containerHealthCmd), with
    # the image's timing: the image's own is gone.
    own = action == "pause"
    custom = dict(containerHealthCmd=VM_CHECK,
                  containerHealthOptions="interval=%d,timeout=3,retries=1"
                  % images.HEALTH_INTERVAL) if own else {}
    trigger_file, expected = (VM_TRIGGER, SICK) if own \
        else (images.UNHEALTHY_TRIGGER, "sick: " + SICK)
    vm = health_vm(action, **custom)
    last_xml = start(vdsm, vm, libvirt_host, qemu_workdir)
    assert installation.record(vm.id).get("watchdog") == action
    c = client.containers.get("ovirt-vm-" + vm.id)
    if own:
        check = c.attrs["Config"]["Healthcheck"]
        assert check["Test"] == ["CMD"] + VM_CHECK_ARGS
        assert (check["Interval"], check["Timeout"], check["Retries"]) == (
            images.HEALTH_INTERVAL * 10 ** 9, 3 * 10 ** 9, 1)
    qemu = libvirt.qemu_pid(vm.name)

    healthy = vmrun.wait(lambda: (_health(installation, vm) or {}).get(
        "status") == "healthy" and _health(installation, vm),
        HEALTHY_TIMEOUT, "healthy")
    assert _running_stats(vdsm, vm)["containerHealth"] == "healthy"
    started = c.attrs["State"]["StartedAt"]

    trigger = time.time()
    c.exec_run(["sh", "-c", "echo %s > %s" % (SICK, trigger_file)])

    def done():
        h = _health(installation, vm) or {}
        if h.get("status") != "unhealthy" and not h.get("acted"):
            return None
        if action is not None and not (h.get("acted") or {}).get("done"):
            return None
        return h
    h = vmrun.wait(done, ACTION_BOUND + 10, "the watchdog action")
    acted = h.get("acted") or {}
    unhealthy = acted.get("time") or h["since"]
    print("health %s %s: unhealthy %.2f s after the trigger (checked by "
          "%s, interval %d s), action done %.2f s after unhealthy"
          % (name, action, unhealthy - trigger, healthy.get("prober"),
             images.HEALTH_INTERVAL,
             acted.get("done", unhealthy) - unhealthy))
    c.reload()
    engine_health = c.attrs["State"].get("Health") or {}
    print("health %s: the engine's own verdict %s, %d runs logged"
          % (name, engine_health.get("Status"),
             len(engine_health.get("Log") or ())))
    assert "error" not in acted
    assert acted.get("done", unhealthy) - trigger < ACTION_BOUND
    # The last probe's output: the check that ran is the one meant.
    assert h["output"] == expected

    if action == "poweroff":
        vmrun.wait(lambda: not procfs.alive(qemu), 10, "the placeholder's end")
        vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
        down = down_stats(vdsm, vm)
        assert down["exitMessage"] == "container unhealthy: sick: " + SICK
        assert down["exitCode"] == 1
        return

    assert procfs.alive(qemu), "the VM must stay Up"
    stats = _running_stats(vdsm, vm)
    c.reload()
    if action is None:
        assert stats["containerHealth"] == "unhealthy"
        assert "watchdogEvent" not in stats
        assert c.status == "running"
        return
    event = stats["watchdogEvent"]
    assert event["action"] == health.VDSM_ACTIONS[action]
    assert abs(event["time"] - acted["time"]) < 1
    if action == "reset":
        assert c.status == "running"
        assert c.attrs["State"]["StartedAt"] != started
        assert installation.record(vm.id)["pid"] == c.attrs["State"]["Pid"]
        c.exec_run(["rm", "-f", images.UNHEALTHY_TRIGGER])
    elif action == "pause":
        assert c.status == "paused"
        _paused_and_recovered(vdsm, vm, c, stats)
    elif action == "dump":
        assert c.status == "running"
        path = acted["dump"]
        assert os.path.dirname(path) == os.path.join(
            installation.state_dir, "dumps")
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        assert os.stat(path).st_mode & 0o777 == 0o600
        with open(path) as f:
            saved = json.load(f)
        assert saved["inspect"]["Id"] == c.id
        assert "httpd" in json.dumps(saved["inspect"]["Config"])
        assert saved["health_output"] == "sick: " + SICK
        assert all("=" not in e for e in saved["inspect"]["Config"].get(
            "Env") or ())
    else:
        assert c.status == "running"


# The Monitor's rules, with an engine that runs no checks (the watcher
# probes) and a clock the test moves: where a real engine cannot be made
# to take its time.

class _Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class _NoChecksEngine(object):
    """Podman 4.3 without systemd, as inspect shows it: "starting", no run
    logged.  probe() answers what the test sets."""

    name = "podman"

    def __init__(self, clock):
        self.started = clock.now
        self.code, self.output = 0, b"fine\n"
        self.probes = 0
        self.done = []

    def health(self, name):
        return health_engine_health(
            status="running", health="starting", runs=0, output="",
            started=self.started,
            check={"Test": ["CMD-SHELL", "check"], "Interval": 5 * 10 ** 9,
                   "Timeout": 3 * 10 ** 9, "Retries": 2})

    def probe(self, name, command, timeout):
        assert command == ["/bin/sh", "-c", "check"]
        assert timeout == 3
        self.probes += 1
        return self.code, self.output

    def pause(self, name):
        self.done.append(("pause", name))


def health_engine_health(**kw):
    from containerhooks import engine
    return engine.Health(**kw)


class _Watcher(object):
    class conf(object):
        stop_timeout = 10


def test_monitor_probes_when_the_engine_does_not(state_dir):
    clock = _Clock()
    eng = _NoChecksEngine(clock)
    record = state.Record(vm_id=VM_ID, engine="podman", container_id="c1",
                          container_name="ovirt-vm-x", pid=1,
                          watchdog="pause")
    state.write(VM_ID, record)
    monitor = health.Monitor(_Watcher(), lambda vm_id: record,
                             lambda name, runtime=None: eng, now=clock)

    # Within one interval, the timeout and the grace the engine may still
    # run it: no probe of the watcher's.
    monitor.check_all()
    clock.now += 5 + 3 + health.ENGINE_GRACE - 0.5
    monitor.check_all()
    assert eng.probes == 0
    assert health.read(VM_ID)["status"] == "starting"

    clock.now += 1
    monitor.check_all()
    assert eng.probes == 1
    assert health.read(VM_ID)["status"] == "healthy"
    assert health.read(VM_ID)["prober"] == "watcher"

    # Two failures in a row (Retries) make it unhealthy, once per interval.
    eng.code, eng.output = 1, b"sick\x1b[31m\n"
    clock.now += 5
    monitor.check_all()
    monitor.check_all()
    assert eng.probes == 2
    assert health.read(VM_ID)["status"] == "healthy"
    assert eng.done == []
    clock.now += 5
    monitor.check_all()
    got = health.read(VM_ID)
    assert got["status"] == "unhealthy"
    assert got["output"] == "sick"
    assert eng.done == [("pause", "c1")]
    assert got["event"] == {"time": clock.now, "action": "pause"}
    assert health.stats(VM_ID, "c1")["watchdogEvent"]["action"] == "pause"

    # Still unhealthy: the action is not taken again.
    clock.now += 5
    monitor.check_all()
    assert eng.done == [("pause", "c1")]

    # The VM's state is gone: so is its health record.
    state.remove(VM_ID)
    monitor.check_all()
    assert health.read(VM_ID) is None


class _OneHangsEngine(_NoChecksEngine):
    """Container "hung"'s probe does not return until the test says."""

    def __init__(self, clock):
        super(_OneHangsEngine, self).__init__(clock)
        self.release = threading.Event()

    def probe(self, name, command, timeout):
        if name == "hung":
            assert self.release.wait(30)
        return super(_OneHangsEngine, self).probe(name, command, timeout)


def test_a_hung_probe_delays_no_other_vm(state_dir):
    clock = _Clock()
    eng = _OneHangsEngine(clock)
    other = "0d3e3a5c-4f69-4a47-9a0e-5b3c0b2f6a11"
    records = dict(
        (vm_id, state.Record(vm_id=vm_id, engine="podman",
                             container_id=container, container_name=container,
                             pid=1, watchdog="pause"))
        for vm_id, container in ((VM_ID, "hung"), (other, "fine")))
    for vm_id, record in records.items():
        state.write(vm_id, record)
    monitor = health.Monitor(_Watcher(), records.get,
                             lambda name, runtime=None: eng, now=clock)
    monitor.check_all()
    clock.now += 5 + 3 + health.ENGINE_GRACE + 0.5
    try:
        monitor.check_all()
        # The other VM's verdict came while the hung probe still runs.
        assert health.read(other)["status"] == "healthy"
        assert health.read(VM_ID)["status"] == "starting"
        assert eng.probes == 1
        clock.now += health.TICK
        monitor.check_all()
        assert eng.probes == 1      # no second probe of the hung one
    finally:
        eng.release.set()
    clock.now += health.TICK
    deadline = time.time() + 10
    while health.read(VM_ID)["status"] != "healthy" \
            and time.time() < deadline:
        monitor.check_all()
    assert health.read(VM_ID)["status"] == "healthy"
    assert eng.probes == 2


def test_reset_keeps_the_vnics(vdsm, installation, engine, watcher, lan,
                               health_vm):
    """A restarted container is on its bridges again, with Engine's MACs
    and its addresses: what the LAN knows of the VM holds."""
    import network_test
    from network_test import BRIDGE, BRIDGE2, MAC1, MAC2
    name, client = engine
    vm = health_vm("reset", [(MAC1, BRIDGE), (MAC2, BRIDGE2)])
    # The hook alone: the placeholder has no part in a restart.
    result = vmrun.start_hook(vdsm, vm)
    c = client.containers.get("ovirt-vm-" + vm.id)

    def vnics():
        return sorted((v[0], v[1]) for n, v in
                      network_test.links(c).items() if n != "lo")
    before = vnics()
    assert [mac for mac, _ in before] == [MAC1, MAC2]
    vmrun.wait(lambda: (_health(installation, vm) or {}).get("status")
          == "healthy", HEALTHY_TIMEOUT, "healthy")
    c.exec_run(["sh", "-c", "echo %s > %s" % (SICK,
                                              images.UNHEALTHY_TRIGGER)])
    vmrun.wait(lambda: ((_health(installation, vm) or {}).get("acted") or {})
          .get("done"), ACTION_BOUND + 10, "the restart")
    c.exec_run(["rm", "-f", images.UNHEALTHY_TRIGGER])
    assert vnics() == before
    ip1 = before[0][1][0].split("/")[0]
    assert lan[0].fetch(ip1).startswith("hello")
    vmrun.power_off(vdsm, vm, result.data)


def _paused_and_recovered(vdsm, vm, c, stats):
    """The watchdog paused c: the VM stays Up, Engine sees the container
    Paused in its Containers tab; Engine's Pause then Run (Vdsm: libvirt
    suspend and after_vm_pause, libvirt resume and after_vm_cont) thaw
    it, as it was (health.Monitor._pause says why not Paused)."""
    assert stats["status"] == "Up"
    assert stats["containerHealth"] == "unhealthy"
    deadline = time.time() + 20
    while "(Paused)" not in stats["guestContainers"][0]["status"] \
            and time.time() < deadline:
        time.sleep(0.5)     # the watcher's snapshot, every 5 s
        stats = _running_stats(vdsm, vm)
    print("health: guestContainers status %r"
          % stats["guestContainers"][0]["status"])
    assert "(Paused)" in stats["guestContainers"][0]["status"]
    libvirt.virsh("suspend", vm.id)
    vdsm.run("after_vm_pause", libvirt.dumpxml(vm.id), vm_id=vm.id,
             custom=vm.custom)
    c.reload()
    assert c.status == "paused"
    libvirt.virsh("resume", vm.id)
    vdsm.run("after_vm_cont", libvirt.dumpxml(vm.id), vm_id=vm.id,
             custom=vm.custom)
    c.reload()
    assert c.status == "running"
    assert c.exec_run(["cat", VM_TRIGGER]).output == SICK.encode() + b"\n"


def test_health_cmd_none_disables_the_image_check(vdsm, engine, health_vm):
    """The engine runs no check (its config says NONE, not the image's),
    and the watcher, which reads the check from that config, runs none
    either (probe_command: test_probe_command)."""
    name, client = engine
    vm = health_vm("poweroff", containerHealthCmd="none",
                   containerHealthOptions="interval=5")
    result = vmrun.start_hook(vdsm, vm)
    c = client.containers.get("ovirt-vm-" + vm.id)
    assert c.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert health.probe_command(c.attrs["Config"]["Healthcheck"]) is None
    assert c.attrs["State"].get("Health") is None or not c.attrs["State"][
        "Health"].get("Log")
    vmrun.power_off(vdsm, vm, result.data)


# The watcher's own probe (engine.probe): bounded by the check's timeout

@pytest.fixture
def idle_container(engine, registry_image):
    """A running container of the test image, removed afterwards."""
    name, client = engine
    import docker
    c = client.containers.run(
        images.ensure_local(client), name="vhc-probe-test-%d" % os.getpid(),
        detach=True, ulimits=[docker.types.Ulimit(name=n, soft=1024,
                                                  hard=1024)
                              for n in ("nofile", "nproc")])
    yield name, client, c
    c.remove(force=True)


def test_probe_is_bounded_by_the_check_timeout(idle_container):
    from containerhooks import config
    from containerhooks import engine as engines
    name, client, c = idle_container
    eng = engines.Engine.connect(name, config.load("/nonexistent").sockets[
        name], 60)
    assert eng.probe(c.id, ["sh", "-c", "echo fine"], 2) == (0, b"fine\n")
    assert eng.probe(c.id, ["sh", "-c", "echo bad; exit 3"], 2) == (
        3, b"bad\n")
    timeout = 2
    started = time.time()
    code, output = eng.probe(c.id, ["sh", "-c", "sleep 30; echo late"],
                             timeout)
    took = time.time() - started
    print("health %s: a probe sleeping past its %d s timeout failed after "
          "%.2f s" % (name, timeout, took))
    assert (code, output) == (-1, b"Health check exceeded timeout (2s)")
    assert took < 30
    # Its processes were killed, the child too (the group): none left.
    ps = c.exec_run(["ps", "-o", "args"]).output.decode()
    assert "sleep 30" not in ps, ps


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_runsc_watchdog_reset(vdsm, runtimes_conf, engine, watcher,
                              libvirt_host, qemu_workdir, health_vm):
    # The health check as the VM's watchdog, under runsc on Podman: the
    # Monitor probes and restarts the container through the runsc
    # service's socket (through another service the restart fails:
    # runsc start without --network=host).
    name, client = engine
    vm = health_vm("reset", containerRuntime="runsc")
    vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
    assert runtimes_conf.record(vm.id)["runtime"] == "runsc"
    c = client.containers.get("ovirt-vm-" + vm.id)
    vmrun.wait(lambda: (_health(runtimes_conf, vm) or {}).get(
        "status") == "healthy", HEALTHY_TIMEOUT, "healthy")
    started = c.attrs["State"]["StartedAt"]

    c.exec_run(["sh", "-c", "echo sick > %s" % images.UNHEALTHY_TRIGGER])

    def done():
        acted = (_health(runtimes_conf, vm) or {}).get("acted")
        return acted if acted and acted.get("done") else None
    acted = vmrun.wait(done, ACTION_BOUND + 10, "the reset")
    assert "error" not in acted, acted
    c.reload()
    assert c.status == "running" and c.attrs["State"]["StartedAt"] != started
    assert vmrun.runtime_on_host(c.id, c.attrs["State"]["Pid"]) == "runsc"
