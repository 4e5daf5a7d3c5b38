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
