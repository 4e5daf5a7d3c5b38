"""The watcher's stats snapshot (statsnap.py) and the stats hooks reading
it: the unit half here, with a private state directory; the real half
(a watcher on Docker and Podman, guestContainers, the exit message of a
container that prints its environment) below, marked by its fixtures."""

import json
import os
import time
import uuid

import pytest

import vdsmstats

from containerhooks import hookenv
from containerhooks import paths
from containerhooks import samples
from containerhooks import state
from containerhooks import statsnap
from containerhooks import vmstats

MAC = "00:1a:4a:16:01:51"


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", str(tmp_path))
    monkeypatch.setattr(paths, "SAMPLES_DIR", str(tmp_path / "samples"))
    return tmp_path


def figures(container_id, now):
    """What vmstats.figures() returns for a container with one vNIC."""
    return {
        "container": container_id,
        "keys": {"cpuUser": "12.50", "cpuSys": "1.25",
                 "cpuUsage": "123000000", "memUsage": "42",
                 "guestIPs": "192.0.2.10", "guestFQDN": "web",
                 "appsList": ["nginx:1", "docker 24.0.7", "runtime runc"],
                 "guestContainers": [{
                     "id": container_id, "names": ["ovirt-vm-x"],
                     "image": "nginx:1", "command": "nginx",
                     "status": "Up 3 minutes (healthy)"}]},
        "mem": {"mem_total": "262144", "mem_unused": "1024",
                "mem_free": "2048"},
        "nics": [{"mac": MAC, "ifname": "eth0", "ip": "192.0.2.10"}],
        "counters": {"eth0": [100, 1, 2, 200, 3, 4]},
        "sampleTime": now,
    }


def write_snapshot(vms, clock):
    state.write_file(state.stats_snapshot_path(), json.dumps(
        {"version": statsnap.VERSION, "clock": clock, "time": time.time(),
         "vms": vms}))


def add_vm(vm_id):
    """A state record whose container cannot be read (no such process):
    the hook's own path keeps Vdsm's figures for it."""
    state.write(vm_id, state.Record(
        vm_id=vm_id, engine="docker", container_id="c" * 64,
        memory_mib=256, pid=999999999, created=time.time()))


def run_hook(tmp_path, data):
    path = str(tmp_path / "data.json")
    with open(path, "w") as f:
        json.dump(data, f)
    vmstats.vm_stats({hookenv.JSON: path})
    with open(path) as f:
        return json.load(f)


def test_fresh_snapshot_is_used(state_dir, tmp_path):
    vm_id = str(uuid.uuid4())
    add_vm(vm_id)
    now = samples.clock()
    write_snapshot({vm_id: figures("c" * 64, now)}, now)
    before = vdsmstats.vm_stats(vm_id, macs=[MAC.upper()])
    plain = vdsmstats.vm_stats(str(uuid.uuid4()))

    ours, other = run_hook(tmp_path, [before, plain])

    assert other == plain
    assert ours["cpuUser"] == "12.50" and ours["memUsage"] == "42"
    assert ours["memoryStats"]["mem_total"] == "262144"
    nic = ours["network"]["vnet0"]
    assert (nic["rx"], nic["tx"], nic["rxErrors"], nic["rxDropped"]) == \
        ("100", "200", "1", "2")
    assert nic["macAddr"] == MAC and nic["sampleTime"] == now
    assert ours["guestContainers"][0]["status"] == "Up 3 minutes (healthy)"
    assert ours["appsList"] == ["nginx:1", "docker 24.0.7", "runtime runc"]
    assert ours["balloonInfo"] == before["balloonInfo"]


@pytest.mark.parametrize("age", [
    pytest.param(statsnap.MAX_AGE + 1, id="older-than-vdsm-interval"),
    pytest.param(-60, id="from-before-a-reboot"),
])
def test_stale_snapshot_is_ignored(state_dir, tmp_path, age):
    vm_id = str(uuid.uuid4())
    add_vm(vm_id)
    now = samples.clock()
    write_snapshot({vm_id: figures("c" * 64, now - age)}, now - age)
    before = vdsmstats.vm_stats(vm_id)

    # The hook reads the container itself: gone here, so Vdsm's figures.
    assert run_hook(tmp_path, [before]) == [before]


def test_vm_without_state_is_not_taken_from_the_snapshot(state_dir,
                                                         tmp_path):
    # Destroyed since the snapshot was taken: the state file is gone.
    vm_id = str(uuid.uuid4())
    now = samples.clock()
    write_snapshot({vm_id: figures("c" * 64, now)}, now)
    before = vdsmstats.vm_stats(vm_id)
    assert run_hook(tmp_path, [before]) == [before]


def test_unreadable_snapshot_is_none(state_dir):
    with open(state.stats_snapshot_path(), "w") as f:
        f.write("{not json")
    assert statsnap.read() is None
    os.unlink(state.stats_snapshot_path())
    assert statsnap.read() is None


@pytest.mark.parametrize("seconds, text", [
    (0, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
    (60, "About a minute"), (119, "About a minute"), (180, "3 minutes"),
    (3600, "About an hour"), (3 * 3600, "3 hours"), (3 * 86400, "3 days"),
    (21 * 86400, "3 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_as_docker_ps(seconds, text):
    assert vmstats.human_duration(seconds) == text


def test_profile_hook_flat_in_vms(state_dir, tmp_path, capsys):
    """The hook's own work (in process: no interpreter start) at 1, 10,
    50, 100 container VMs and as many others, from a fresh snapshot."""
    times = {}
    for n in (1, 10, 50, 100):
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for vm_id in ids:
            add_vm(vm_id)
        now = samples.clock()
        write_snapshot(dict((i, figures("c" * 64, now)) for i in ids), now)
        data = [vdsmstats.vm_stats(i, macs=[MAC]) for i in ids]
        data += [vdsmstats.vm_stats(str(uuid.uuid4())) for _ in range(n)]
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            result = run_hook(tmp_path, data)
            runs.append(time.perf_counter() - started)
        assert result[0]["cpuUser"] == "12.50"
        times[n] = sorted(runs)[2]
        for vm_id in ids:
            state.remove(vm_id)
    with capsys.disabled():
        print("\n  hook in process, from the snapshot: " + ", ".join(
            "%d VMs %.1f ms" % (n, t * 1000) for n, t in times.items()))


# The real half: a watcher (root) on each engine, the hooks as vdsm.

import domains  # noqa: E402
import images  # noqa: E402
import libvirt  # noqa: E402
import vmrun  # noqa: E402

SECRET = "exit-env"
PASSWORD = u"s3cr=t p\u00e4ss,word #1"
TOKEN = u"tok-12345-abcdef"


def snapshot_has(installation, vm_id, timeout=statsnap.INTERVAL * 3):
    """The watcher's snapshot entry of vm_id, once it has one."""
    path = os.path.join(installation.state_dir, state.STATS_SNAPSHOT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                found = json.load(f)["vms"].get(vm_id)
        except (IOError, ValueError, KeyError):
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("no snapshot entry for %s within %ss"
                         % (vm_id, timeout))


@pytest.fixture
def started_vm(vdsm, installation, engine):
    """A container VM of engine through before_vm_start (no domain: the
    stats hooks do not need one), powered off afterwards."""
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, memory_mib=192)
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    vm.container = client.containers.get("ovirt-vm-" + vm.id)
    yield vm
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    vdsm.run("after_vm_destroy", result.data, vm_id=vm.id, custom=vm.custom)


def test_guest_containers_and_apps_from_the_watcher(vdsm, installation,
                                                   engine, watcher,
                                                   started_vm):
    name, client = engine
    vm = started_vm
    started = time.time()
    entry = snapshot_has(installation, vm.id)
    print("snapshot entry %.2f s after the start" % (time.time() - started))
    assert entry["container"] == vm.container.id

    result = vdsm.run("after_get_all_vm_stats", [vdsmstats.vm_stats(
        vm.id, name=vm.name, memory_mib=192)])
    assert result.errors == []
    ours = result.data[0]

    [shown] = ours["guestContainers"]
    assert shown["id"] == vm.container.id
    assert shown["names"] == ["ovirt-vm-" + vm.id]
    assert images.IMAGE in shown["image"]
    assert isinstance(shown["command"], str)
    # The engine's own words, as docker ps / podman ps show them.
    assert shown["status"].startswith("Up "), shown["status"]
    version = client.version()["Version"]
    # The runtime as the host shows it (runtimes.identify), recorded at
    # start: runc, Docker's default and the test Podman service's; Podman's
    # inspect would say "oci" whatever runs.
    runtime = installation.record(vm.id)["runtime"]
    assert runtime == "runc"
    assert ours["appsList"][0] == images.IMAGE
    assert "%s %s" % (name, version) in ours["appsList"]
    assert "runtime %s" % runtime in ours["appsList"]
    assert float(ours["cpuUser"]) >= 0 and int(ours["memUsage"]) >= 0
    assert ours["memoryStats"]["mem_total"] == str(192 * 1024)


def _escaped(script):
    """script as containerCommand's one argument (README: %20 a space,
    %3B a semicolon, %25 a percent sign)."""
    return script.replace("%", "%25").replace(" ", "%20").replace(
        ";", "%3B")


@pytest.fixture
def env_secret(installation):
    rc, _, err = installation.run_cli(
        "secret", "set", SECRET,
        input=(u"DB_PASSWORD=%s\nAPI_TOKEN=%s\n" % (PASSWORD, TOKEN))
        .encode("utf-8"))
    assert rc == 0, err
    yield SECRET
    installation.run_cli("secret", "rm", SECRET)


def test_exit_message_last_lines_secrets_redacted(
        vdsm, installation, engine, watcher, exiting_images, libvirt_host,
        qemu_workdir, env_secret):
    name, client = engine
    script = ("until [ -e %s ]; do sleep 0.05; done; env; "
              "printf 'bell\\a \\033[31mred\\033[0m\\n'; "
              # The engine merges stdout and stderr by arrival: a pause
              # keeps the stderr line last.
              "echo token=$API_TOKEN; sleep 0.5; "
              "echo password is $DB_PASSWORD >&2; "
              "exit 3" % images.EXIT_TRIGGER)
    vm = domains.container_vm(
        name, exiting_images["exit3"], base="no-nic-in.xml",
        memory_mib=64).edited(containerSecrets=env_secret,
                              containerCommand="sh -c " + _escaped(script))
    try:
        last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
        c = client.containers.get("ovirt-vm-" + vm.id)
        # The container really has the secret, and prints it.
        rc, out = c.exec_run(["sh", "-c", "echo $API_TOKEN"])
        assert out.decode("utf-8").strip() == TOKEN
        c.exec_run(["touch", images.EXIT_TRIGGER])
        vmrun.wait_exited(c)
        assert vmrun.wait_gone(vm, 30) is not None, "the domain still runs"
        logs = c.logs().decode("utf-8")
        assert TOKEN in logs and PASSWORD in logs   # what it printed
        vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                 custom=vm.custom)
        down = vmrun.down_stats(vdsm, vm)

        message = down["exitMessage"]
        print("exit message: %r" % message)
        assert message == ("container exited with code 3 (error): "
                           "bell red | token=*** | password is ***")
        with open(os.path.join(installation.state_dir,
                               vm.id + ".exit")) as f:
            record = f.read()
        for value in (PASSWORD, TOKEN, u"s3cr=t"):
            assert value not in message and value not in record
    finally:
        libvirt.virsh("destroy", vm.id, check=False)
        vmrun.remove_managed(client, [vm.id])
        for n in installation.state_files():
            if n.startswith(vm.id):
                os.unlink(os.path.join(installation.state_dir, n))
