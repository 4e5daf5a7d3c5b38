"""Faults: what goes wrong on a host, with real parts, and what is left.

The promise under test: every container VM is either running with its
container, or Down with a message -- never Up with no container; and
nothing is lost (a VM's data on its volumes) or left behind (container,
domain, mount, loop device, tmpfs, network namespace, process, state).

Each test drives the installed hooks as Vdsm does (tests/vdsm.py), on the
real engines, libvirt, loop devices and mounts, and breaks one thing for
real: an engine daemon stopped or restarted (tests/daemons.py, the
processes dev/services started), the hook killed with SIGKILL halfway
through a start, a registry that stalls or refuses (tests/registries.py,
or the local registry paused), Vdsm restarted, no loop device to be had,
a full state directory, starts and stats calls at the same time.  The
track fixture then checks that nothing of the test's VMs is left, removes
what is, and fails the test if anything was.

The tests marked "daemons" stop, restart or pause a daemon that other test
runs on the same machine use too (dockerd stops every container with it):
leave them out with -m 'not daemons' while others run.

Destroying twice, and destroying a VM whose container was removed by
hand, are lifecycle_test.py's test_destroy_is_quiet_when_already_gone; an
engine whose socket does not exist is its test_engine_down_refused.
"""

import collections
import ctypes
import errno
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import docker
import pytest
import requests

import conftest
import daemons
import domains
import hoststorage
import images
import install
import libvirt
import registries
import vdsm as vdsm_module
import vdsmstats
import vmrun

from containerhooks import engine as engines
from vdsm import HookError
from vmrun import start_hook as start

BASE = "no-nic-in.xml"
PLAIN = "0a0b0c0d-0000-4000-8000-000000000001"
DAEMONS = {"docker": "dockerd", "podman": "podman"}
SOCKETS = conftest.ENGINE_SOCKETS
MIB = 1024 * 1024


# What a test leaves behind

def _mountinfo():
    """(mount point, file system type) of every mount of this namespace."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            found.append((fields[4], fields[fields.index("-") + 1]))
    return found


def _netns_mounts():
    """The network namespaces kept by a mount (ip netns, the engines)."""
    return set(point for point, fstype in _mountinfo() if fstype == "nsfs")


def _sandboxes(clients):
    """The network namespaces the engines' containers use (any test's)."""
    found = set()
    for client in clients:
        for c in client.api.containers(all=True):
            try:
                info = client.api.inspect_container(c["Id"])
            except docker.errors.APIError as e:
                if engines.vanished(e):
                    continue        # removed meanwhile
                raise
            key = (info.get("NetworkSettings") or {}).get("SandboxKey")
            if key:
                found.add(os.path.realpath(key))
    return found


def _cmdlines():
    """{pid: command line} of every process but this one."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8",
                                                              "replace")
        except IOError:
            continue
        if cmdline:
            found[int(entry)] = cmdline
    return found


def _podman_exec_session(cmdline):
    # Podman keeps the conmon of an exec session (docker exec_run) for
    # --exit-delay seconds after it ended, even once the container is
    # removed, so that its exit code can still be asked for: Podman's.
    return "conmon" in cmdline and "--exec-attach" in cmdline


class Tracker(object):
    """What a test made: its VMs, installations and directories.

    leftovers() lists whatever of them is still on the host: containers
    (either engine), libvirt domains, processes naming a VM or an
    installation, mounts and loop devices under the installations' and
    the test's directories, network namespaces no container uses, and
    state files of the VMs (exit records are state that explains a Down
    VM: removed, not counted).
    """

    def __init__(self, installation):
        self.vms = []
        self.installations = [installation]
        self.dirs = []
        self.mounted = set()        # the test's own mounts, for now
        self.finalizers = []        # run after clean(), last first
        self.netns = _netns_mounts()

    def vm(self, vm):
        self.vms.append(vm)
        return vm

    def _clients(self):
        return dict((name, conftest._client(name)) for name in SOCKETS)

    def _ours(self, client):
        """The containers of the test's VMs: (id, name, status)."""
        ids = set(vm.id for vm in self.vms)
        return [(c["Id"], c["Names"][0].lstrip("/"), c["State"])
                for c in client.api.containers(all=True)
                if (c.get("Labels") or {}).get("org.ovirt.vm.id") in ids]

    def leftovers(self):
        found = []
        ids = set(vm.id for vm in self.vms)
        for name, client in self._clients().items():
            for _, cname, status in self._ours(client):
                found.append("%s container %s (%s)" % (name, cname, status))
        for vm in self.vms:
            if vmrun.domain_exists(vm):
                found.append("libvirt domain %s" % vm.id)
        roots = [i.root for i in self.installations]
        for pid, cmdline in sorted(_cmdlines().items()):
            if any(x in cmdline for x in list(ids) + roots) \
                    and not _podman_exec_session(cmdline):
                found.append("process %d: %s" % (pid, cmdline[:200]))
        ours = tuple(d + "/" for d in roots + self.dirs)
        for point, fstype in _mountinfo():
            if (point + "/").startswith(ours) and point not in self.mounted:
                found.append("%s mount %s" % (fstype, point))
        for device, backing in hoststorage.loops().items():
            if backing and backing.startswith(ours):
                found.append("loop device %s on %s" % (device, backing))
        new = _netns_mounts() - self.netns
        if new:
            new -= _sandboxes(self._clients().values())
        for point in sorted(new):
            found.append("network namespace %s" % point)
        for inst in self.installations:
            for name in inst.state_files():
                if name[:36] in ids and not name.endswith(".exit"):
                    found.append("state file %s" % name)
            volumes = os.path.join(inst.state_dir, "volumes")
            if os.path.isdir(volumes):
                for name in os.listdir(volumes):
                    if name[:36] in ids:
                        found.append("volume state %s" % name)
        return found

    def clean(self):
        ids = set(vm.id for vm in self.vms)
        for vm in self.vms:
            libvirt.virsh("destroy", vm.id, check=False)
        for client in self._clients().values():
            for cid, _, _ in self._ours(client):
                try:
                    client.api.remove_container(cid, force=True)
                except docker.errors.NotFound:
                    pass
        roots = [i.root for i in self.installations]
        for pid, cmdline in _cmdlines().items():
            if any(x in cmdline for x in list(ids) + roots) \
                    and not _podman_exec_session(cmdline):
                _kill(pid, signal.SIGKILL)
        ours = tuple(d + "/" for d in roots + self.dirs)
        for point, _ in sorted(_mountinfo(), key=lambda m: -len(m[0])):
            if (point + "/").startswith(ours):
                subprocess.call(["umount", "--lazy", point])
        for device, backing in hoststorage.loops().items():
            if backing and backing.startswith(ours):
                subprocess.call(["losetup", "--detach", device])
        for inst in self.installations:
            for name in inst.state_files():
                path = os.path.join(inst.state_dir, name)
                if name[:36] in ids and os.path.isfile(path):
                    os.unlink(path)


@pytest.fixture
def track(installation, docker_client, podman_client):
    """A Tracker of what the test makes; afterwards, whatever of it is
    left is removed and fails the test.  Ask for it before the fixtures
    that run things (watcher...), so that it checks after they ended."""
    t = Tracker(installation)
    yield t
    left = t.leftovers()
    t.clean()
    for finalize in reversed(t.finalizers):
        finalize()
    assert not left, "the test left behind: %s" % left


@pytest.fixture
def disks(track, storage):
    """The storage fixture (conftest.py), whose loop devices and mounts
    track checks too."""
    track.dirs.append(storage.root)
    return storage


# Helpers

def container(client, vm):
    return client.containers.get("ovirt-vm-" + vm.id)


def one_line(e):
    """The VM's exit message of a refused start, checked to be one line
    (Vdsm puts the whole stderr into it)."""
    err = e.err.decode("utf-8")
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err.strip()


def state_path(installation, vm, suffix=".json"):
    return os.path.join(installation.state_dir, vm.id + suffix)


def log_since(installation, offset):
    """What the installation's hooks and helper logged after offset."""
    with open(installation.log) as f:
        f.seek(offset)
        return f.read()


def wait_for(condition, timeout, interval=0.01):
    """condition()'s first true value within timeout seconds, or None."""
    return vmrun.poll(condition, timeout, interval)


def _kill(pid, signo):
    try:
        os.kill(pid, signo)
    except ProcessLookupError:
        pass


def _children():
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except IOError:
            continue
        children[int(stat[stat.rfind(")") + 2:].split()[1])].append(
            int(entry))
    return children


def program(cmdline):
    """The program a command line runs, without its interpreter."""
    words = cmdline.split()
    if "python" in os.path.basename(words[0]):
        words = [w for w in words[1:] if not w.startswith("-")] or words
    return os.path.basename(words[0])


def kill_tree(pid, *markers):
    """SIGKILL pid, every process below it, and every process whose
    command line holds all markers (the helper and the VM id: sudo runs
    the helper in a session of its own, on a pty, with use_pty), as an
    OOM kill or a "kill -9" of Vdsm's hook would.  The processes are
    stopped first, until no new one appears, so that none escapes by
    forking or by its parent dying.  Returns the command lines killed."""
    stopped = {}
    while True:
        children = _children()
        tree, todo = [], [pid]
        while todo:
            p = todo.pop()
            tree.append(p)
            todo.extend(children[p])
        tree += [p for p, cmd in _cmdlines().items()
                 if all(m in cmd for m in markers)]
        new = [p for p in tree if p not in stopped]
        if not new:
            break
        for p in new:
            try:
                with open("/proc/%d/cmdline" % p, "rb") as f:
                    stopped[p] = f.read().replace(b"\0", b" ").decode()
            except IOError:
                stopped[p] = "?"
            _kill(p, signal.SIGSTOP)
    for p in stopped:
        _kill(p, signal.SIGKILL)
    return sorted(stopped.values())


# 1. The engine daemon is down when a VM starts

@pytest.mark.daemons
def test_engine_daemon_stopped_refuses_start(track, vdsm, installation,
                                             registry_image, podman_client):
    # Podman's API service, really stopped (its containers keep running:
    # conmon holds them).  lifecycle_test covers a socket that does not
    # exist; here the socket's daemon is gone.
    vm = track.vm(domains.container_vm("podman", images.IMAGE))
    with daemons.down("podman"):
        began = time.time()
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        took = time.time() - began
    err = one_line(e.value)
    print("\nengine down: refused in %.2f s: %s" % (took, err))
    assert err.startswith("Container engine podman is not reachable at "
                          "/run/podman/podman.sock: ")
    assert "systemctl start podman.socket" in err
    assert e.value.result.data == vm.xml
    assert took < 10
    assert track.leftovers() == []

    # Back: the same VM starts.
    result = start(vdsm, vm)
    assert container(podman_client, vm).status == "running"
    vmrun.power_off(vdsm, vm, result.data)


# 2. The engine daemon restarts while container VMs run

RESTART_BOUND = 30      # seconds from the engine answering again
DOWN_BOUND = 5          # seconds from a container's end to its VM's


def watcher_sees(installation, name, since):
    """Whether the watcher reports engine name reachable since since."""
    try:
        with open(os.path.join(installation.state_dir,
                               "watcher.status")) as f:
            info = json.load(f)["engines"][name]
    except (IOError, ValueError, KeyError):
        return False
    return info.get("reachable") is True and info.get("since", 0) >= since


def settled(installation, client, vm, name, since):
    """"up" if vm runs with its container (the watcher following the
    engine again), "down" if its placeholder is gone with an exit record,
    None in between -- a placeholder without a running container."""
    up = vmrun.domain_exists(vm)
    try:
        running = container(client, vm).status == "running"
    except docker.errors.NotFound:
        running = False
    except (docker.errors.APIError, requests.exceptions.ConnectionError):
        return None                 # the engine is still coming up
    if up and running and watcher_sees(installation, name, since):
        return "up"
    if not up and os.path.exists(state_path(installation, vm, ".exit")):
        return "down"
    return None


@pytest.mark.daemons
@pytest.mark.parametrize("name", ["docker", "podman"])
def test_engine_restart_while_vm_runs(track, vdsm, installation,
                                      exiting_images, libvirt_host,
                                      qemu_workdir, watcher, name):
    client = conftest._client(name)
    vm = track.vm(domains.container_vm(name, exiting_images["exit3"],
                                       base=BASE))
    last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
    first = container(client, vm).id

    with daemons.restarting(DAEMONS[name]) as restart:
        stopping, answering = restart()
        answered = time.time()
        outcome = wait_for(lambda: settled(installation, client, vm, name,
                                           answered),
                           RESTART_BOUND, interval=0.05)
        when = time.time()
    print("\n%s restart: stopped in %.1f s, answered %.1f s later; the VM "
          "%s %.1f s after that" % (name, stopping, answering,
                                    {"up": "ran on with its container",
                                     "down": "was Down"}.get(outcome, "?"),
                                    when - answered))
    assert outcome is not None, (
        "%d s after %s answered again the VM's placeholder %s and its "
        "container %s" % (RESTART_BOUND, name,
                          "runs" if vmrun.domain_exists(vm) else "is gone",
                          container(client, vm).status))
    if name == "podman":
        # Podman's containers do not depend on its API service.
        assert outcome == "up"

    if outcome == "up":
        # The watcher follows the engine again: the container's end still
        # takes the VM down.
        c = container(client, vm)
        assert c.id == first
        c.exec_run(["touch", images.EXIT_TRIGGER])
        assert vmrun.wait_gone(vm, DOWN_BOUND + 5)
        print("%s: after the restart, container end to VM down: %.2f s"
              % (name, time.time() - vmrun.finished_at(c)))
        expected = "container exited with code 3 (error)"
    else:
        c = container(client, vm)
        with open(state_path(installation, vm, ".exit")) as f:
            expected = json.load(f)["message"]
        print("%s: the container ended with the engine (%s), its VM was "
              "down %.1f s later" % (name, expected,
                                     when - vmrun.finished_at(c)))
        assert expected.startswith("container exited with code ")
    # Vdsm saw qemu die: after_vm_destroy; Engine reads the reason.
    assert vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                    custom=vm.custom).errors == []
    down = vmrun.down_stats(vdsm, vm)
    assert down["exitMessage"] == expected
    assert vmrun.containers_of(client, vm) == []


# 2b. Engine's Power Off while the engine daemon is down

KILL_BOUND = 5          # seconds from the failed stop to the container's end
FINISH_BOUND = 10       # seconds from the engine answering to all cleaned


def what_is_left(installation, client, vm, storage):
    """What a finished stop leaves of vm: nothing."""
    volumes_dir = os.path.join(installation.state_dir, "volumes", vm.id)
    try:
        left = ["container %s (%s)" % (c.name, c.status)
                for c in vmrun.containers_of(client, vm)]
    except (docker.errors.APIError, requests.exceptions.ConnectionError):
        # Podman answers 500 for a container it is removing right now.
        left = ["a container being removed"]
    left += ["mount %s" % p for p in hoststorage.mounts_under(volumes_dir)]
    left += ["loop device %s" % d for d, backing in hoststorage.loops().items()
             if backing and backing.startswith(storage.root + "/")]
    left += ["state file %s" % n for n in installation.state_files()
             if n.startswith(vm.id) and not n.endswith(".exit")]
    return left


@pytest.mark.daemons
@pytest.mark.parametrize("name", ["docker", "podman"])
def test_power_off_while_engine_down_is_finished(track, vdsm, installation,
                                                 disks, watcher, name):
    # Both destroy hooks fail ("engine not reachable"), which Vdsm ignores:
    # the VM is Down in Engine.  Its container must not write on (Podman's
    # keep running without the API service, as Docker's do with
    # live-restore), and once the engine answers, the stop is finished:
    # container, mount, loop device and state gone within seconds.
    client = conftest._client(name)
    vm = track.vm(volume_vm(name, images.IMAGE, disks.image()))
    result = start(vdsm, vm)
    with open(state_path(installation, vm)) as f:
        pid = json.load(f)["pid"]
    assert what_is_left(installation, client, vm, disks)

    with daemons.down(DAEMONS[name]):
        failed = vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                          custom=vm.custom).errors
        stopped = time.time()
        failed += vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                           custom=vm.custom).errors
        dead = wait_for(lambda: not daemons.alive(pid), KILL_BOUND)
        ended = time.time() - stopped
    answered = time.time()
    clean = wait_for(lambda: not what_is_left(installation, client, vm, disks),
                     FINISH_BOUND + 20, interval=0.05)
    took = time.time() - answered
    print("\n%s down at power off: %d hooks failed (%s); the container's "
          "process %s %.2f s after the first failed stop; engine back to all "
          "cleaned: %s" % (
              name, len(failed), failed[0].decode().strip()[:60] if failed
              else "-", "ended" if dead else "still ran", ended,
              "%.2f s" % took if clean else "not within %d s: %s"
              % (FINISH_BOUND + 20, what_is_left(installation, client, vm, disks))))
    assert len(failed) == 2
    assert dead, "the container still runs with its VM Down"
    assert clean, what_is_left(installation, client, vm, disks)
    assert took < FINISH_BOUND


# 3. The hook killed halfway through a start

def volume_vm(name, image, disk_image):
    vm = domains.VM({"containerType": name, "containerImage": image,
                     "volumeMap": "vda:/data"})
    return domains.add_disks(vm, domains.disk("vda", disk_image))


def gc(installation, vm):
    """vdsm-containers gc of vm, without a grace period: what it did."""
    rc, out, err = installation.run_cli("gc", "--grace", "0", "--vm", vm.id)
    assert rc == 0, err
    return out


def recover(track, vdsm, installation, vm, how):
    """After a killed start: the next start succeeds ("start"), or it is
    refused because the killed start's container runs, and succeeds once
    "vdsm-containers gc" removed it; or gc first ("gc"), which must leave
    nothing of the VM, then the start.  Returns the start's Result and
    what it took."""
    if how == "gc":
        removed = gc(installation, vm)
        assert track.leftovers() == [], removed
        return start(vdsm, vm), "gc removed %s" % (
            ", ".join(line.split(": ", 1)[1].split(" (")[0] for line in
                      removed.splitlines() if line.startswith("removing"))
            or "nothing")
    try:
        return start(vdsm, vm), "the next start"
    except HookError as e:
        err = one_line(e)
    assert "A container for VM %s is already running" % vm.id in err, err
    assert "removing %s" % vm.id in gc(installation, vm)
    return start(vdsm, vm), "gc, after the next start was refused"


@pytest.mark.parametrize("how", ["start", "gc"])
@pytest.mark.parametrize("point", [
    pytest.param("pulling", marks=pytest.mark.daemons),
    "volume-mounted", "container-created"])
def test_start_killed_halfway(track, vdsm, installation, engine, disks,
                              point, how):
    name, client = engine
    vm = track.vm(volume_vm(name, images.IMAGE, disks.image()))
    volumes_dir = os.path.join(installation.state_dir, "volumes", vm.id)

    # The VM's life so far: data written on its volume.
    result = start(vdsm, vm)
    digest = vmrun.sh(container(client, vm), "dd if=/dev/urandom "
                      "of=/data/blob bs=64k count=16 2>/dev/null && sync && "
                      "sha256sum /data/blob").split()[0]
    vmrun.power_off(vdsm, vm, result.data)

    reached = {
        "volume-mounted": lambda: hoststorage.mounts_under(volumes_dir),
        "container-created": lambda: vmrun.containers_of(client, vm),
    }
    if point == "pulling":
        images.remove_local(client)
        log = os.path.getsize(installation.log)
        with daemons.paused("registry"):
            spawned = vdsm.spawn("before_vm_start", vm.xml, vm_id=vm.id,
                                 custom=vm.custom)
            try:
                # The helper asks the engine to pull, which waits for the
                # registry: give it time to get there.
                assert wait_for(lambda: "vm_id=%s pulling" % vm.id
                                in log_since(installation, log), 30)
                time.sleep(1)
            finally:
                killed = kill_tree(spawned.proc.pid, installation.helper,
                                   vm.id)
    else:
        spawned = vdsm.spawn("before_vm_start", vm.xml, vm_id=vm.id,
                             custom=vm.custom)
        try:
            assert wait_for(reached[point], 60), "%s never happened" % point
        finally:
            killed = kill_tree(spawned.proc.pid, installation.helper, vm.id)
    with pytest.raises(HookError):
        spawned.finish()
    assert spawned.proc.returncode == -signal.SIGKILL
    left = sorted(n for n in installation.state_files()
                  if n.startswith(vm.id))
    mounts = hoststorage.mounts_under(volumes_dir)
    containers = [c.status for c in vmrun.containers_of(client, vm)]

    result, recovery = recover(track, vdsm, installation, vm, how)

    print("\n%s, killed when %s: %s; left: state %s, %d mounts, "
          "containers %s; recovery: %s" % (
              name, point, ", ".join(program(c) for c in killed), left,
              len(mounts), containers, recovery))
    assert vmrun.sh(container(client, vm), "sha256sum /data/blob").split(
        )[0] == digest
    vmrun.power_off(vdsm, vm, result.data)


LEFTOVER_GRACE = 5


def test_killed_hook_leaves_a_running_container_that_the_next_start_replaces(
        track, vdsm, installation, engine, disks):
    # The hook killed once its container runs: the helper (its own
    # process, under sudo) finishes the start, Vdsm gives the VM up, and
    # no placeholder goes with the container.  The next start replaces
    # it -- once it is older than leftover_grace -- and the data stays.
    name, client = engine
    installation.configure(storage_roots=disks.root,
                           leftover_grace=LEFTOVER_GRACE)
    vm = track.vm(volume_vm(name, images.IMAGE, disks.image()))
    spawned = vdsm.spawn("before_vm_start", vm.xml, vm_id=vm.id,
                         custom=vm.custom)
    try:
        assert wait_for(lambda: any(c.status == "running" for c in
                                    vmrun.containers_of(client, vm)), 60)
    finally:
        _kill(spawned.proc.pid, signal.SIGKILL)      # the hook alone
    with pytest.raises(HookError):
        spawned.finish()

    def complete():
        with open(state_path(installation, vm)) as f:
            return "pid" in json.load(f)
    assert wait_for(complete, 60), "the helper never finished the start"
    first = container(client, vm)
    digest = vmrun.sh(first, "dd if=/dev/urandom of=/data/blob bs=64k "
                      "count=16 2>/dev/null && sync && "
                      "sha256sum /data/blob").split()[0]

    # Younger than the grace: refused (a start may be on its way to
    # libvirt), the container unharmed.
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    assert "A container for VM %s is already running" % vm.id \
        in one_line(e.value)
    first.reload()
    assert first.status == "running"

    time.sleep(LEFTOVER_GRACE)
    log = os.path.getsize(installation.log)
    result = start(vdsm, vm)
    second = container(client, vm)
    assert second.id != first.id and second.status == "running"
    assert "no placeholder: left by an earlier start, replacing it" \
        in log_since(installation, log)
    assert vmrun.sh(second, "sha256sum /data/blob").split()[0] == digest
    vmrun.power_off(vdsm, vm, result.data)


def test_container_with_a_running_placeholder_is_never_replaced(
        track, vdsm, installation, engine, disks, libvirt_host,
        qemu_workdir):
    # The same leftover, but its placeholder runs (a real libvirt domain:
    # a process that only looks like qemu is not one, procfs.find_qemu):
    # the VM runs on this host, the second start is refused however old
    # the container is.
    name, client = engine
    installation.configure(storage_roots=disks.root, leftover_grace=0)
    vm = track.vm(domains.container_vm(name, images.IMAGE, base=BASE))
    last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir)
    first = container(client, vm)
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    assert "already running" in one_line(e.value)
    first.reload()
    assert first.status == "running"
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    libvirt.virsh("destroy", vm.id)
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)


# 4. A registry that stalls, or is not there

PULL_TIMEOUT = 5


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_stalling_registry_gives_up_in_time(track, vdsm, fresh_conf,
                                            registry_image, name):
    fresh_conf.configure(pull_timeout=PULL_TIMEOUT)
    with registries.Stalling() as registry:
        vm = track.vm(domains.container_vm(name, registry.image()))
        began = time.time()
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        took = time.time() - began
        tried = len(registry.connections)
    err = one_line(e.value)
    print("\n%s, stalling registry, pull_timeout %d s: gave up after "
          "%.1f s (%d connections): %s" % (name, PULL_TIMEOUT, took, tried,
                                          err))
    assert err == ("Pulling image %s did not finish within %d seconds; "
                   "raise pull_timeout in containers.conf or pre-pull the "
                   "image on this host" % (registry.image(), PULL_TIMEOUT))
    assert tried > 0
    assert PULL_TIMEOUT <= took < PULL_TIMEOUT + 10
    assert e.value.result.data == vm.xml


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_unreachable_registry_refused(track, vdsm, installation,
                                      registry_image, name):
    address = "127.0.0.1:%d" % registries.free_port()
    image = address + "/vhc-tests/busybox-httpd:1"
    vm = track.vm(domains.container_vm(name, image))
    began = time.time()
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    took = time.time() - began
    err = one_line(e.value)
    print("\n%s, nothing listening: refused after %.1f s: %s"
          % (name, took, err))
    assert err.startswith("Image %s could not be pulled: its registry %s "
                          "is not reachable (" % (image, address)), err
    assert "connection refused" in err
    assert took < 30
    assert e.value.result.data == vm.xml


# 6. Vdsm restarts: its recovery runs no hook

def test_vdsm_restart(track, vdsm, installation, engine, exiting_images,
                      libvirt_host, qemu_workdir):
    name, client = engine
    ending = track.vm(domains.container_vm(name, exiting_images["exit3"],
                                           base=BASE))
    staying = track.vm(domains.container_vm(name, images.IMAGE, base=BASE))
    for vm, subdir in ((ending, "a"), (staying, "b")):
        workdir = os.path.join(qemu_workdir, subdir)
        os.mkdir(workdir)
        os.chmod(workdir, 0o755)
        vmrun.start(vdsm, vm, libvirt_host, workdir)

    # Vdsm restarts: a new process, which knows the VMs from libvirt only;
    # the watcher starts only now (the host rebooted its services).
    recovered = vdsm_module.Vdsm(installation.hooks_dir, user="vdsm")
    xmls = dict((vm.id, libvirt.dumpxml(vm.id)) for vm in (ending, staying))
    proc = installation.start_watcher()
    try:
        listing = [vdsmstats.vm_stats(vm.id, name=vm.name,
                                      memory_mib=vm.memory_mib)
                   for vm in (ending, staying)]
        listing.append(vdsmstats.vm_stats(PLAIN))
        stats = recovered.run("after_get_all_vm_stats", listing)
        assert stats.errors == []
        for vm, got in zip((ending, staying), stats.data):
            assert got["guestFQDN"] == vm.name
            assert got["memoryStats"]["mem_total"] == str(vm.memory_mib
                                                          * 1024)
        assert stats.data[2] == listing[2]

        c = container(client, ending)
        c.exec_run(["touch", images.EXIT_TRIGGER])
        assert vmrun.wait_gone(ending, DOWN_BOUND), \
            "the watcher did not take the VM down"
        print("\n%s, after a Vdsm restart: container end to VM down %.2f s"
              % (name, time.time() - vmrun.finished_at(c)))
    finally:
        installation.stop_watcher(proc)
    assert recovered.run("after_vm_destroy", xmls[ending.id],
                         vm_id=ending.id, custom=ending.custom).errors == []
    assert vmrun.down_stats(recovered, ending)["exitMessage"] == \
        "container exited with code 3 (error)"

    # Engine powers the other off, through the new Vdsm.
    assert recovered.run("before_vm_destroy", None, vm_id=staying.id,
                         custom=staying.custom).errors == []
    libvirt.virsh("destroy", staying.id)
    assert recovered.run("after_vm_destroy", xmls[staying.id],
                         vm_id=staying.id, custom=staying.custom).errors == []
    assert vmrun.containers_of(client, staying) == []
    assert not os.path.exists(state_path(installation, staying))


# 7. No loop device to be had; a full state directory

CLONE_NEWNS = 0x00020000
# The device nodes a hook, sudo and the helper need: no loop device and
# no /dev/loop-control among them.
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
             ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
             ("ptmx", 5, 2))


def _dev_without_loops():
    """In a new mount namespace, a /dev of its own without loop devices
    (this process only, and what it starts)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    subprocess.check_call(["mount", "--make-rprivate", "/"])
    tmp = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-dev-")
    try:
        subprocess.check_call(["mount", "-t", "tmpfs", "-o",
                               "mode=755,size=64k", "vhc-dev", tmp])
        for node, major, minor in DEV_NODES:
            path = os.path.join(tmp, node)
            os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(path, 0o666)
        for d in ("pts", "shm"):
            os.mkdir(os.path.join(tmp, d))
        subprocess.check_call(["mount", "--bind", "/dev/pts",
                               os.path.join(tmp, "pts")])
        os.symlink("/proc/self/fd", os.path.join(tmp, "fd"))
        for i, std in enumerate(("stdin", "stdout", "stderr")):
            os.symlink("fd/%d" % i, os.path.join(tmp, std))
        subprocess.check_call(["mount", "--move", tmp, "/dev"])
    finally:
        os.rmdir(tmp)


def without_loop_devices(func):
    """func() run in a child process that sees no loop device at all, as
    on a host where every one is taken and no more can be made; nothing
    changes for the rest of the host.  func returns something JSON can
    carry."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:        # the child
        try:
            os.close(r)
            _dev_without_loops()
            out = {"value": func()}
        except BaseException as e:
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        with os.fdopen(w, "w") as f:
            json.dump(out, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    out = json.loads(text)
    if "error" in out:
        raise AssertionError("in the namespace without loop devices: "
                             + out["error"])
    return out["value"]


def test_no_loop_device(track, vdsm, installation, disks, docker_client,
                        registry_image):
    vm = track.vm(volume_vm("docker", images.IMAGE, disks.image()))

    def attempt():
        try:
            start(vdsm, vm)
        except HookError as e:
            return {"err": e.err.decode("utf-8"), "xml": e.result.data}
        return {"err": None}

    outcome = without_loop_devices(attempt)

    err = outcome["err"]
    print("\nno loop device: %s" % err)
    assert err is not None, "the VM started without a loop device"
    assert err.count("\n") == 1
    assert err.startswith("VM disk vda cannot be mounted in the container: "
                          "no loop device could be attached to its image "
                          "("), err
    assert outcome["xml"] == vm.xml
    assert track.leftovers() == []
    # The host's loop devices work: the same VM starts outside.
    result = start(vdsm, vm)
    vmrun.power_off(vdsm, vm, result.data)


PAGE = os.sysconf("SC_PAGE_SIZE")
TINY_PAGES = 64


class TinyStateDir(object):
    """An installation whose state directory is a small tmpfs that a
    test fills up to a chosen number of free pages."""

    def __init__(self, inst):
        self.inst = inst
        self.filler = os.path.join(inst.state_dir, ".filler")

    def free(self):
        return os.statvfs(self.inst.state_dir).f_bavail

    def files(self, subdir):
        path = os.path.join(self.inst.state_dir, subdir)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def fill(self, free_pages):
        """Leave exactly free_pages pages free."""
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\xff" * PAGE)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
        size = os.path.getsize(self.filler)
        os.truncate(self.filler, max(0, size - free_pages * PAGE))
        assert self.free() == free_pages, (self.free(), free_pages)


@pytest.fixture
def tiny(track, disks):
    """A second installation (tests/install.py) whose state directory is
    a tmpfs of TINY_PAGES pages, with the storage root of disks.  Once
    track has checked and cleaned up after the test, the tmpfs is
    unmounted and the installation removed."""
    inst = install.Installation().install()
    track.installations.append(inst)

    def remove():
        if inst.state_dir in [p for p, _ in _mountinfo()]:
            subprocess.check_call(["umount", inst.state_dir])
        inst.remove()
    track.finalizers.append(remove)
    os.makedirs(inst.state_dir)
    subprocess.check_call(["mount", "-t", "tmpfs", "-o",
                           "size=%d,mode=755" % (TINY_PAGES * PAGE),
                           "vhc-tiny", inst.state_dir])
    track.mounted.add(inst.state_dir)
    inst.configure(storage_roots=disks.root)
    return TinyStateDir(inst)


def test_state_directory_full(track, tiny, disks, docker_client,
                              registry_image):
    vdsm = vdsm_module.Vdsm(tiny.inst.hooks_dir, user="vdsm")
    vm = track.vm(volume_vm("docker", images.IMAGE, disks.image()))
    refused = []
    result = None
    for free in range(0, 8):
        tiny.fill(free)
        try:
            result = start(vdsm, vm)
            break
        except HookError as e:
            err = one_line(e)
            xml = e.result.data
        refused.append((free, err))
        assert "unexpected" not in err, err
        assert "No space left on device" in err, err
        assert xml == vm.xml
        assert track.leftovers() == [], (free, err)
        # Not even a temporary file; the host-wide network lock and an
        # empty volumes directory may stay.
        assert set(os.listdir(tiny.inst.state_dir)) <= {
            ".filler", "network.lock", "volumes"}, free
        assert tiny.files("volumes") == [], free
    print("\n" + "\n".join("%d pages free: %s" % r for r in refused))
    assert refused, "the first start, with no free page, succeeded"
    assert result is not None, "no start succeeded with up to 7 free pages"
    assert container(docker_client, vm).status == "running"

    # Full again: Engine's power off still stops and releases everything.
    tiny.fill(0)
    off = vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    assert off.errors == []
    assert vmrun.containers_of(docker_client, vm) == []
    assert vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                    custom=vm.custom).errors == []
    assert track.leftovers() == []


# 8. Starts and stats at the same time

CONCURRENT = 4      # Vdsm runs up to 4 VM creations at once


def test_four_starts_while_stats_run(track, vdsm, installation, engine):
    name, client = engine
    vms = [track.vm(domains.container_vm(name, images.IMAGE,
                                         memory_mib=128))
           for _ in range(CONCURRENT)]
    listing = [vdsmstats.vm_stats(vm.id, name=vm.name, memory_mib=128)
               for vm in vms] + [vdsmstats.vm_stats(PLAIN)]
    done = threading.Event()
    calls, failures = [], []

    def poll_stats():
        while not done.is_set():
            began = time.time()
            try:
                result = vdsm.run("after_get_all_vm_stats", listing)
            except Exception as e:      # invalid JSON, a hang...
                failures.append(repr(e))
                continue
            result.span = (began, time.time())
            calls.append(result)

    poller = threading.Thread(target=poll_stats)
    poller.start()
    try:
        assert wait_for(lambda: calls, 30)
        starting = time.time()
        outcomes = run_at_once([lambda vm=vm: start(vdsm, vm) for vm in vms])
        started = time.time()
        after = len(calls)
        wait_for(lambda: len(calls) >= after + 2, 30)
    finally:
        done.set()
        poller.join()

    assert [o for o in outcomes if isinstance(o, Exception)] == []
    during = [c for c in calls if c.span[0] < started
              and c.span[1] > starting]
    print("\n%s: %d starts at once took %.1f s, %d stats calls meanwhile"
          % (name, CONCURRENT, started - starting, len(during)))
    assert failures == []
    assert during
    for result in calls:
        assert result.errors == []
        assert [s["vmId"] for s in result.data] == \
            [s["vmId"] for s in listing]
        assert result.data[-1] == listing[-1]
    for vm, got in zip(vms, calls[-1].data):
        assert got["guestFQDN"] == vm.name
        assert container(client, vm).status == "running"

    offs = run_at_once([lambda vm=vm, o=o: vmrun.power_off(vdsm, vm, o.data)
                        for vm, o in zip(vms, outcomes)])
    assert [o for o in offs if isinstance(o, Exception)] == []
    for vm in vms:
        assert vmrun.containers_of(client, vm) == []


def run_at_once(funcs):
    """Call every func in a thread of its own, all released at once;
    their results or exceptions, in order."""
    barrier = threading.Barrier(len(funcs))
    outcomes = [None] * len(funcs)

    def call(i):
        barrier.wait()
        try:
            outcomes[i] = funcs[i]()
        except Exception as e:
            outcomes[i] = e
    threads = [threading.Thread(target=call, args=(i,))
               for i in range(len(funcs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_same_vm_started_twice_at_once(track, vdsm, installation, engine):
    name, client = engine
    vm = track.vm(domains.container_vm(name, images.IMAGE))

    outcomes = run_at_once([lambda: start(vdsm, vm)] * 2)

    started = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, HookError)]
    assert len(started) == 1 and len(refused) == 1, outcomes
    err = one_line(refused[0])
    print("\n%s, the second start: %s" % (name, err))
    # Refused by the lock while the first start runs, or right after it,
    # by the container it left with no placeholder yet (too recent to be
    # a leftover: leftover_grace).
    assert err == ("Cannot lock container state for VM %s: another start "
                   "or stop of this VM is running" % vm.id) or re.match(
        r"A container for VM %s is already running \(ovirt-vm-%s\), started "
        r"\d+ s ago with no placeholder: a start of this VM may still be "
        r"under way; if not, start the VM again in \d+ s \(the start then "
        r"replaces that container\)$" % (vm.id, vm.id), err), err
    assert refused[0].result.data == vm.xml
    # The first start's container runs, and is the one its state names.
    c = container(client, vm)
    assert c.status == "running"
    with open(state_path(installation, vm)) as f:
        assert json.load(f)["container_id"] == c.id
    vmrun.power_off(vdsm, vm, started[0].data)
