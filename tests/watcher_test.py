"""A container that ends takes its VM down, fast, with the reason.

The real flow on both engines: before_vm_start through the installed
hooks as the vdsm user, the placeholder XML it returns run by libvirt as
a transient domain (as Vdsm does), and the exit watcher running as root
as its systemd service does (the watcher fixture).  The container's main
process then ends on its own -- exit 0, exit 3, killed by the OOM killer
-- when the test tells it to (tests/images.py EXITING), so the domain is
surely running by then.  The placeholder's qemu process must have ended
within DOWN_BOUND seconds of the end the engine records (FinishedAt), and
the libvirt domain be gone as soon as the host's init has reaped that
process: libvirt waits for the pid to vanish, and init (pid 1) reaps the
orphaned qemu.  systemd does that at once; the sandbox init of the
project's CI machine only every two seconds or so, which the test reports
apart.  Then Vdsm would run after_vm_destroy (done here) and report the VM
Down; the stats hooks must turn Vdsm's "Lost connection with qemu
process" into the container's exit code and reason.

Needs root, libvirtd and both engines (dev/services).
"""

import json
import os
import pwd
import subprocess
import sys
import time

import pytest
from lxml import etree

import domains
import images
import libvirt
from containerhooks import procfs
from containerhooks.spec import LABEL_MANAGED, LABEL_VM_ID
import vmrun
from vmrun import (domain_exists, down_stats, finished_at, start,
                   wait_exited, wait_gone)

BASE = "no-nic-in.xml"
DOWN_BOUND = 2.0
# libvirt's own teardown once qemu is reaped (it polls every 200 ms).
LIBVIRT_TEARDOWN = 0.5
MEMORY_MIB = 64          # the OOM image fills 300 MiB

EXPECTED = {
    "exit0": "container exited with code 0 (success)",
    "exit3": "container exited with code 3 (error)",
    "oom": "container exited with code 137 (out of memory)",
}


def our_files(installation, vm):
    return [n for n in installation.state_files() if n.startswith(vm.id)]


@pytest.fixture
def vm_factory(engine, installation, libvirt_host, qemu_workdir):
    """Makes container VMs of engine; whatever a test leaves of them
    (domain, container, state, exit record) is removed afterwards."""
    name, client = engine
    made = []

    def make(image):
        vm = domains.container_vm(name, image, base=BASE,
                                  memory_mib=MEMORY_MIB)
        made.append(vm)
        return vm
    yield make
    for vm in made:
        libvirt.virsh("destroy", vm.id, check=False)
        vmrun.remove_managed(client, [vm.id])
        for n in our_files(installation, vm):
            os.unlink(os.path.join(installation.state_dir, n))


def container(client, vm):
    return client.containers.get("ovirt-vm-" + vm.id)


def watch_end(vm, pid, timeout=30):
    """When (time.time()) the qemu process ended (a zombie or gone), when
    it was reaped, and when libvirt's domain was gone; None if not."""
    ended = reaped = gone = None
    deadline = time.time() + timeout
    while time.time() < deadline and reaped is None:
        if ended is None and not procfs.alive(pid):    # a zombie or gone
            ended = time.time()
        if not os.path.exists("/proc/%d" % pid):
            reaped = time.time()
        time.sleep(0.005)
    while reaped is not None and time.time() < deadline:
        if not domain_exists(vm):
            gone = time.time()
            break
        time.sleep(0.01)
    return ended, reaped, gone


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_container_end_takes_vm_down(vdsm, installation, engine, watcher,
                                     exiting_images, libvirt_host,
                                     qemu_workdir, vm_factory, kind):
    name, client = engine
    vm = vm_factory(exiting_images[kind])
    last_xml = start(vdsm, vm, libvirt_host, qemu_workdir)
    c = container(client, vm)
    pid = libvirt.qemu_pid(vm.name)

    c.exec_run(["touch", images.EXIT_TRIGGER])
    ended, reaped, gone = watch_end(vm, pid)

    assert ended is not None, "the placeholder is still running"
    assert gone is not None, "libvirt still has the domain"
    finished = finished_at(c)
    print("exit-to-down %s %s: qemu ended %.3f s after the container, "
          "libvirt domain gone after %.3f s (%.3f s of it waiting for init "
          "to reap qemu)" % (name, kind, ended - finished, gone - finished,
                             reaped - ended))
    assert ended - finished < DOWN_BOUND
    assert gone - reaped < LIBVIRT_TEARDOWN

    # Vdsm saw its qemu die: after_vm_destroy, then the VM is Down.
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
    down = down_stats(vdsm, vm)
    assert down["exitMessage"] == EXPECTED[kind]
    assert down["exitCode"] == 1        # an error: Engine restarts HA VMs
    assert down["status"] == "Down"

    # Engine destroys the Down VM; the container is gone, the next start
    # drops the exit record.
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    assert vmrun.containers_of(client, vm) == []
    assert our_files(installation, vm) == [vm.id + ".exit"]


def test_power_off_is_not_a_container_end(vdsm, installation, engine,
                                          watcher, libvirt_host,
                                          qemu_workdir, vm_factory):
    # Engine's Power Off stops the container first (before_vm_destroy):
    # that end is Engine's doing, the watcher must leave the domain to
    # Vdsm and write no exit record.
    vm = vm_factory(images.IMAGE)
    last_xml = start(vdsm, vm, libvirt_host, qemu_workdir)

    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    time.sleep(DOWN_BOUND)

    assert domain_exists(vm)
    libvirt.virsh("destroy", vm.id)
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
    assert our_files(installation, vm) == []
    down = down_stats(vdsm, vm, exit_code=0, exit_reason=6,
                      message="Admin shut down from the engine")
    assert down["exitMessage"] == "Admin shut down from the engine"


def test_end_while_not_watched(vdsm, installation, engine, exiting_images,
                               libvirt_host, qemu_workdir, vm_factory):
    # The watcher (re)starts after the container ended: it looks at every
    # container of the state files before it waits for events.
    name, client = engine
    vm = vm_factory(exiting_images["exit3"])
    start(vdsm, vm, libvirt_host, qemu_workdir)
    c = container(client, vm)
    c.exec_run(["touch", images.EXIT_TRIGGER])
    wait_exited(c)
    assert domain_exists(vm)

    proc = installation.start_watcher()
    try:
        started = time.time()
        gone = wait_gone(vm, timeout=30)
    finally:
        installation.stop_watcher(proc)

    assert gone is not None and gone - started < DOWN_BOUND
    down = down_stats(vdsm, vm)
    assert down["exitMessage"] == EXPECTED["exit3"]


def test_end_before_the_domain_starts(vdsm, installation, engine, watcher,
                                      exiting_images, libvirt_host,
                                      qemu_workdir, vm_factory):
    # The container ends between before_vm_start and libvirt's createXML:
    # the placeholder is taken down as soon as its qemu process appears.
    name, client = engine
    vm = vm_factory(exiting_images["exit3"])
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    c = container(client, vm)
    c.exec_run(["touch", images.EXIT_TRIGGER])
    wait_exited(c)

    root = etree.fromstring(result.data.encode("utf-8"))
    libvirt.adjust(root, libvirt_host, qemu_workdir)
    created = time.time()
    try:
        libvirt.create(root, qemu_workdir)
    except AssertionError:
        pass            # killed while libvirt was still starting it
    gone = wait_gone(vm, timeout=30)

    assert gone is not None and gone - created < DOWN_BOUND + 1
    assert down_stats(vdsm, vm)["exitMessage"] == EXPECTED["exit3"]


def test_next_start_forgets_the_exit(vdsm, installation, engine, watcher,
                                     exiting_images, libvirt_host,
                                     qemu_workdir, vm_factory):
    name, client = engine
    vm = vm_factory(exiting_images["exit3"])
    last_xml = start(vdsm, vm, libvirt_host, qemu_workdir)
    container(client, vm).exec_run(["touch", images.EXIT_TRIGGER])
    assert wait_gone(vm, timeout=30)
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
    assert vm.id + ".exit" in our_files(installation, vm)

    # Engine restarts the HA VM on this host.
    again = os.path.join(qemu_workdir, "again")
    os.mkdir(again)
    os.chmod(again, 0o755)
    last_xml = start(vdsm, vm, libvirt_host, again)

    assert vm.id + ".exit" not in our_files(installation, vm)
    libvirt.virsh("destroy", vm.id)
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
    # Down for another reason now (qemu died): Vdsm's own message.
    down = down_stats(vdsm, vm)
    assert down["exitMessage"] == "Lost connection with qemu process"


# What the vdsm user or a hand-made container can plant

def _as_vdsm(path):
    vdsm = pwd.getpwnam("vdsm")
    os.lchown(path, vdsm.pw_uid, vdsm.pw_gid)


def _hostile_cases(installation, outside):
    """(label vm id, planted record name, record's vm_id) of each case:
    a container whose labels mimic the package's, ending, while the
    vdsm-owned samples directory holds a state-like record of it.

    The record's vm_id climbs out both as an absolute path (os.path.join
    drops STATE_DIR) and relative to STATE_DIR (mkstemp's prefix), so the
    exit record would land in outside."""
    samples = installation.samples_dir
    rel = os.path.relpath(samples, installation.state_dir)

    def escape(name):
        return "/" + "../" * 30 + os.path.join(outside, name).lstrip("/")
    return [
        # label is an absolute path to a planted record
        (os.path.join(samples, "abs"), "abs", escape("abs")),
        # label climbs out of the state directory
        (os.path.join(rel, "rel"), "rel", escape("rel")),
        # label through ".." inside the samples directory
        (os.path.join(rel, "..", os.path.basename(samples), "dots"), "dots",
         escape("dots")),
        # a symlink the vdsm user planted, to its own record
        (os.path.join(rel, "link"), "link -> abs2", escape("link")),
        # a UUID label whose record names a path
        ("6f1383a1-ea92-44bf-a721-0825630000aa", None, escape("uuid")),
    ]


def test_watcher_writes_nothing_outside_its_directory(
        installation, watcher, docker_client, registry_image, tmp_path):
    outside = str(tmp_path / "outside")
    os.mkdir(outside)
    samples = installation.samples_dir
    before_samples = set(os.listdir(samples))
    before_state = set(installation.state_files())
    cases = _hostile_cases(installation, outside)
    # create() never pulls: Docker must hold the image, whatever an
    # earlier test removed (lifecycle_test, cli_test, imagepolicy_test).
    images.ensure_local(docker_client, registry_image)
    made = []
    try:
        for label, planted, record_vm_id in cases:
            c = docker_client.containers.create(
                registry_image, ["true"], labels={
                    LABEL_MANAGED: "1", LABEL_VM_ID: label})
            made.append(c)
            record = {"vm_id": record_vm_id, "engine": "docker",
                      "container_id": c.id, "container_name": c.name}
            if planted is None:
                continue
            name, _, target = planted.partition(" -> ")
            data = os.path.join(samples, (target or name) + ".json")
            with open(data, "w") as f:
                json.dump(record, f)
            _as_vdsm(data)
            if target:
                link = os.path.join(samples, name + ".json")
                os.symlink(data, link)
                _as_vdsm(link)
        for c in made:
            c.start()
        for c in made:
            c.wait(timeout=30)
        time.sleep(2)           # the watcher handles die events in ms
        written = os.listdir(outside)
        new_samples = set(os.listdir(samples)) - before_samples
        new_state = set(installation.state_files()) - before_state
        log = installation.read_log()
    finally:
        for c in made:
            c.remove(force=True)
        for name in set(os.listdir(samples)) - before_samples:
            os.unlink(os.path.join(samples, name))
    print("\n%d hostile containers ended; written outside: %s; new in "
          "samples: %s; new in the state directory: %s"
          % (len(cases), written, sorted(new_samples), sorted(new_state)))
    assert written == []
    assert all(n.endswith(".json") for n in new_samples), new_samples
    assert not [n for n in new_state if n.endswith(".exit")]
    assert watcher.poll() is None, log


# A process that poses as another VM's qemu

@pytest.fixture
def poser(tmp_path):
    """poser(vm_id): a plain process started now whose command line is
    what a qemu of vm_id shows ("qemu-system-x86_64 ... -uuid <vm id>"),
    as a container's process may show; killed afterwards."""
    made = []

    def make(vm_id):
        p = subprocess.Popen(
            ["/usr/bin/qemu-system-x86_64", "-c",
             "import time; time.sleep(600)", "-name", "guest=poser",
             "-uuid", vm_id], executable=sys.executable)
        made.append(p)
        return p
    yield make
    for p in made:
        p.kill()
        p.wait()


@pytest.mark.parametrize("engine", ["docker"], indirect=True)
def test_poser_is_neither_killed_nor_taken_for_the_placeholder(
        vdsm, installation, engine, watcher, exiting_images, libvirt_host,
        qemu_workdir, vm_factory, poser):
    name, client = engine
    vm = vm_factory(exiting_images["exit3"])
    # Before the domain: the placeholder's qemu gets a higher pid, and
    # a search by command line finds the poser first.
    posing = poser(vm.id)
    assert procfs.find_qemu(vm.id) is None, "a poser taken for qemu"
    start(vdsm, vm, libvirt_host, qemu_workdir)
    pid = libvirt.qemu_pid(vm.name)
    assert procfs.find_qemu(vm.id) == pid

    container(client, vm).exec_run(["touch", images.EXIT_TRIGGER])
    ended, _, _ = watch_end(vm, pid)

    print("\nposer %d (argv of qemu -uuid %s): %s; placeholder %d: %s"
          % (posing.pid, vm.id, "alive" if posing.poll() is None
             else "killed", pid, "ended" if ended else "still running"))
    assert posing.poll() is None, "the watcher killed the poser"
    assert ended is not None, "the placeholder is still running"


# The placeholder ends while Vdsm is not there to run its hooks

STOP_BOUND = 10         # the watcher's grace (5 s) and the stop


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_placeholder_end_with_no_hook_stops_the_container(
        vdsm, installation, engine, watcher, libvirt_host, qemu_workdir,
        vm_factory):
    # qemu killed (sanlock, the OOM killer) while Vdsm restarts: no
    # after_vm_destroy runs, and Vdsm's recovery runs no hook either.
    name, client = engine
    vm = vm_factory(images.IMAGE)
    start(vdsm, vm, libvirt_host, qemu_workdir)
    time.sleep(1.5)         # the watcher has seen the placeholder run
    pid = libvirt.qemu_pid(vm.name)
    os.kill(pid, 9)
    killed = time.time()

    def gone():
        return not vmrun.containers_of(client, vm) \
            and not [n for n in our_files(installation, vm)
                     if not n.endswith(".exit")]
    deadline = killed + STOP_BOUND + 20
    while time.time() < deadline and not gone():
        time.sleep(0.1)
    took = time.time() - killed
    print("\nplaceholder killed, no hook: container and state %s %.1f s "
          "later" % ("gone" if gone() else "still there", took))
    assert gone(), [c.status for c in vmrun.containers_of(client, vm)]
    assert took < STOP_BOUND


def test_watcher_follows_a_changed_configuration(fresh_conf, watcher):
    # containers.conf says a change needs no restart: the watcher takes
    # it within seconds; new engines or sockets make it start again (same
    # pid: the service is not restarted), a broken file is not taken.
    installation = fresh_conf
    status = os.path.join(installation.state_dir, "watcher.status")

    def engines():
        with open(status) as f:
            return sorted(json.load(f)["engines"])

    installation.configure(stop_timeout="7")
    vmrun.wait(lambda: "containers.conf reloaded" in installation.read_log(),
               15, "the reload", interval=0.1)
    installation.configure(stop_timeout="seven")
    vmrun.wait(lambda: "keeping the configuration in use"
               in installation.read_log(), 15,
               "the broken file's refusal", interval=0.1)
    assert watcher.poll() is None

    installation.configure(engines="docker")
    vmrun.wait(lambda: os.path.exists(status) and engines() == ["docker"],
               15, "the new engines in watcher.status", interval=0.1)
    assert watcher.poll() is None
    assert "engines or sockets changed, starting again" \
        in installation.read_log()
