"""The watcher's stats snapshot (statsnap.py) and the stats hooks reading
it: the unit half here, with a private state directory; the real half
(a watcher on Docker and Podman, guestContainers, the exit message of a
container that prints its environment) below, marked by its fixtures."""

import gc
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


def add_vm(vm_id, container_id="c" * 64):
    """A state record whose container cannot be read (no such process):
    the hook's own path keeps Vdsm's figures for it."""
    state.write(vm_id, state.Record(
        vm_id=vm_id, engine="docker", container_id=container_id,
        memory_mib=256, pid=999999999, created=time.time()))


def entry(vm_id, container_id, now):
    """The VM's entry as the watcher writes it: figures() of the record
    in vm_id's state file, and that file's version."""
    found = figures(container_id, now)
    found["state"] = state.version(vm_id)
    return found


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


def test_entry_of_another_container_is_not_used(state_dir, tmp_path):
    # The VM was powered off and started again on this host since the
    # snapshot was taken: its state names a new container, the entry is
    # the old one's (and the old state file's version).
    vm_id = str(uuid.uuid4())
    add_vm(vm_id, container_id="a" * 64)
    now = samples.clock()
    write_snapshot({vm_id: entry(vm_id, "a" * 64, now)}, now)
    state.remove(vm_id)
    # A stop and a start take longer than a tick of the kernel's clock
    # (the engine makes a new container): the new file's change time is
    # another (state.version).
    time.sleep(0.02)
    add_vm(vm_id, container_id="b" * 64)
    before = vdsmstats.vm_stats(vm_id)

    # The hook reads the new container itself: gone here, so Vdsm's
    # figures -- not the old container's.
    assert run_hook(tmp_path, [before]) == [before]


def test_entry_of_the_state_file_there_is_used_unread(state_dir, tmp_path,
                                                      monkeypatch):
    vm_id = str(uuid.uuid4())
    add_vm(vm_id)
    now = samples.clock()
    write_snapshot({vm_id: entry(vm_id, "c" * 64, now)}, now)

    def no_read(vm_id):
        raise AssertionError("read the state of " + vm_id)
    monkeypatch.setattr(state, "read", no_read)

    ours, = run_hook(tmp_path, [vdsmstats.vm_stats(vm_id)])
    assert ours["cpuUser"] == "12.50"


def test_entry_of_a_rewritten_record_of_the_same_container(state_dir,
                                                          tmp_path):
    # Another version of the state file (the helper wrote it again: a
    # stop began) naming the same container: the entry still holds.
    vm_id = str(uuid.uuid4())
    add_vm(vm_id)
    now = samples.clock()
    write_snapshot({vm_id: entry(vm_id, "c" * 64, now)}, now)
    record = state.read(vm_id)
    record.stopping = True
    state.write(vm_id, record)

    ours, = run_hook(tmp_path, [vdsmstats.vm_stats(vm_id)])
    assert ours["cpuUser"] == "12.50"


def test_state_version_changes_with_every_write(state_dir):
    vm_id = str(uuid.uuid4())
    assert state.version(vm_id) is None
    add_vm(vm_id)
    record, first = state.read_with_version(vm_id)
    assert first == state.version(vm_id)
    # The same content written again is another file.
    state.write(vm_id, record)
    assert state.version(vm_id) != first
    assert state.read_with_version(vm_id)[1] == state.version(vm_id)


# Names and values a VM owner or a guest chooses, in the stats of a VM
# that is not a container (copied as Vdsm wrote them) and of a container
# VM (decoded and encoded again).
HOSTILE = [
    pytest.param(u'q"uote\\back\\"slash', id="quotes-backslashes"),
    pytest.param(u'}, {"vmId": "%s"}]', id="json-in-a-name"),
    pytest.param(u"\u00fc\u4e2d\U0001f600", id="non-ascii"),
    pytest.param(u"\u2028\u2029\x00\x1f\x7f", id="separators-controls"),
    pytest.param(u"\ud800", id="lone-surrogate"),
    pytest.param(u"a" * 70000, id="longer-than-a-read"),
]


@pytest.mark.parametrize("ascii", [
    pytest.param(True, id="ascii-as-vdsm-writes"),
    pytest.param(False, id="utf-8-as-another-hook-may-write"),
])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_and_values_keep_the_json_valid(state_dir, tmp_path,
                                                      value, ascii):
    ours_id, plain_id = str(uuid.uuid4()), str(uuid.uuid4())
    value = value.replace("%s", ours_id)
    add_vm(ours_id)
    now = samples.clock()
    write_snapshot({ours_id: entry(ours_id, "c" * 64, now)}, now)
    ours = vdsmstats.vm_stats(ours_id, name=value, macs=[MAC])
    plain = vdsmstats.vm_stats(plain_id, name=value)
    # A guest agent's data: a nested object that names a container VM.
    plain["guestOsInfo"] = {"vmId": ours_id, "name": value}
    ours["guestOsInfo"] = {"vmId": plain_id, "name": value}
    data = [plain, ours, plain]
    text = json.dumps(data, ensure_ascii=ascii)
    path = str(tmp_path / "data.json")
    with open(path, "wb") as f:
        f.write(text.encode("utf-8", "surrogatepass" if not ascii
                            else "strict"))
    if not ascii and u"\ud800" in value:
        # Not UTF-8: Vdsm's own json.dumps never writes it; the hook
        # leaves the file as it is.
        with pytest.raises(UnicodeDecodeError):
            vmstats.vm_stats({hookenv.JSON: path})
        return

    vmstats.vm_stats({hookenv.JSON: path})

    with open(path, "rb") as f:
        out = f.read().decode("utf-8")
    result = json.loads(out)
    assert result[0] == plain and result[2] == plain
    assert result[1]["vmName"] == value
    assert result[1]["cpuUser"] == "12.50"
    assert result[1]["guestOsInfo"] == {"vmId": plain_id, "name": value}
    # The other VMs as they were written, byte for byte.
    element = json.dumps(plain, ensure_ascii=ascii)
    assert out.startswith("[" + element + ", ")
    assert out.endswith(", " + element + "]")


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
    """The hook's own work (in process: no interpreter start, no imports)
    at 1, 10, 50, 100 container VMs and as many others, from a fresh
    snapshot as the watcher writes it; printed, per call and per VM."""
    times = {}
    path = str(tmp_path / "data.json")
    for n in (1, 10, 50, 100):
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for vm_id in ids:
            add_vm(vm_id)
        data = [vdsmstats.vm_stats(i, macs=[MAC]) for i in ids]
        data += [vdsmstats.vm_stats(str(uuid.uuid4())) for _ in range(n)]
        content = json.dumps(data)
        runs = []
        for _ in range(7):
            now = samples.clock()
            write_snapshot(dict((i, entry(i, "c" * 64, now)) for i in ids),
                           now)
            with open(path, "w") as f:
                f.write(content)
            gc.disable()            # as the hook runs (vmstats.main)
            try:
                started = time.perf_counter()
                vmstats.vm_stats({hookenv.JSON: path})
                runs.append(time.perf_counter() - started)
            finally:
                gc.enable()
        with open(path) as f:
            result = json.load(f)
        assert [vm["cpuUser"] for vm in result[:n]] == ["12.50"] * n
        assert result[n:] == data[n:]
        times[n] = sorted(runs)[len(runs) // 2]
        for vm_id in ids:
            state.remove(vm_id)
    with capsys.disabled():
        print("\n  hook in process, from the snapshot: " + ", ".join(
            "%d VMs %.2f ms" % (n, t * 1000) for n, t in times.items())
            + "; %.0f us per container VM and other VM beyond the first"
            % ((times[100] - times[1]) / 99 * 1e6))


# The real half: a watcher (root) on each engine, the hooks as vdsm.

import domains  # noqa: E402
import images  # noqa: E402
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


# What a stats hook that finds every container VM in the snapshot has no
# use for: the syslog handler's and tempfile's imports, six, the modules
# that read a container.
NOT_FROM_THE_SNAPSHOT = ("logging.handlers", "socket", "tempfile", "shutil",
                         "random", "six", "containerhooks.cgroups",
                         "containerhooks.procfs", "docker", "lxml")


def test_hook_from_the_snapshot_imports_only_what_it_uses(
        installation, monkeypatch):
    import dispatch_test
    import vdsm as vdsm_module
    monkeypatch.setattr(paths, "STATE_DIR", installation.state_dir)
    vm_id = str(uuid.uuid4())
    add_vm(vm_id)
    try:
        now = samples.clock()
        write_snapshot({vm_id: entry(vm_id, "c" * 64, now)}, now)
        profiling = vdsm_module.Vdsm(
            installation.hooks_dir, user="vdsm", base_env={
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                "PYTHONPROFILEIMPORTTIME": "1"})
        plain = vdsmstats.vm_stats(str(uuid.uuid4()))

        result = profiling.run("after_get_all_vm_stats",
                               [vdsmstats.vm_stats(vm_id), plain])

        assert [s.rc for s in result.scripts] == [0]
        assert result.data[0]["cpuUser"] == "12.50"
        modules = dispatch_test.imported(result.scripts[0].err)
        assert "containerhooks.vmstats" in modules
        assert sorted(m for m in modules if m in NOT_FROM_THE_SNAPSHOT
                      or m.split(".")[0] in NOT_FROM_THE_SNAPSHOT) == []
    finally:
        state.remove(vm_id)
        statsnap.remove()


def restore_snapshot(installation, saved):
    """Write the watcher's snapshot saved back as the watcher would, taken
    now (a snapshot is used for 15 s)."""
    path = os.path.join(installation.state_dir, state.STATS_SNAPSHOT)
    with open(path + ".tmp", "w") as f:
        json.dump(dict(saved, clock=samples.clock()), f)
    os.chmod(path + ".tmp", 0o644)
    os.rename(path + ".tmp", path)


@pytest.mark.parametrize("engine", ["docker"], indirect=True)
def test_restart_on_the_same_host_never_shows_the_old_container(
        vdsm, installation, engine, watcher):
    # Powered off and started again on this host within the watcher's
    # interval: its snapshot still has the old container's entry.  The
    # watcher is stopped to hold that snapshot still (it removes it; the
    # test writes it back, fresh); the engine's version in appsList tells
    # an entry of the watcher from what the hook read itself.
    name, client = engine
    version = "%s %s" % (name, client.version()["Version"])
    vm = domains.container_vm(name, images.IMAGE, memory_mib=192)
    last = vmrun.start_hook(vdsm, vm).data
    try:
        old = client.containers.get("ovirt-vm-" + vm.id).id
        snapshot_has(installation, vm.id)
        with open(os.path.join(installation.state_dir,
                               state.STATS_SNAPSHOT)) as f:
            saved = json.load(f)
        assert saved["vms"][vm.id]["container"] == old
        installation.stop_watcher(watcher)
        stats = [vdsmstats.vm_stats(vm.id, name=vm.name, memory_mib=192)]

        restore_snapshot(installation, saved)
        ours = vdsm.run("after_get_all_vm_stats", stats).data[0]
        assert ours["guestContainers"][0]["id"] == old
        assert version in ours["appsList"]          # the watcher's entry

        vmrun.power_off(vdsm, vm, last)
        last = vmrun.start_hook(vdsm, vm).data
        new = client.containers.get("ovirt-vm-" + vm.id).id
        assert new != old
        restore_snapshot(installation, saved)
        ours = vdsm.run("after_get_all_vm_stats", stats).data[0]

        assert ours["guestContainers"][0]["id"] == new
        assert version not in ours["appsList"]      # read by the hook
        assert ours["memoryStats"]["mem_total"] == str(192 * 1024)
    finally:
        vmrun.power_off(vdsm, vm, last)


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
        vmrun.discard(client, installation, [vm])
