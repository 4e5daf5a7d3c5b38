"""vdsm-containers check, ps, logs and gc, the installed admin command."""

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import docker
import pytest

import domains
import images
import libvirt as virt
import vmrun
from vdsm import HookError
from vmrun import start_hook as start


def container(client, vm):
    found = vmrun.containers_of(client, vm)
    return found[0] if found else None


def test_gc_removes_a_container_whose_vm_never_started(vdsm, installation,
                                                       engine):
    # before_vm_start ran, but the domain never did (Vdsm or the host
    # died in between): the container has no placeholder.
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    start(vdsm, vm)

    rc, out, _ = installation.run_cli("gc", "--vm", vm.id, "--dry-run",
                                      "--grace", "0")
    assert rc == 0 and "would remove %s" % vm.id in out
    assert container(client, vm).status == "running"

    rc, out, _ = installation.run_cli("gc", "--vm", vm.id, "--grace", "3600")
    assert rc == 0 and "nothing to clean" in out      # within the grace
    assert container(client, vm).status == "running"

    rc, out, err = installation.run_cli("gc", "--vm", vm.id, "--grace", "0")
    assert rc == 0, err
    assert "removing %s" % vm.id in out
    assert container(client, vm) is None
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           vm.id + ".json"))


def test_gc_kills_a_placeholder_whose_container_is_gone(
        vdsm, installation, engine, libvirt_host, qemu_workdir):
    name, client = engine
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE},
                    base="no-nic-in.xml")
    last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir,
                           wait=False)
    try:
        container(client, vm).remove(force=True)      # by hand

        rc, out, err = installation.run_cli("gc", "--vm", vm.id, "--grace",
                                            "0")

        assert rc == 0, err
        assert "placeholder qemu" in out
        vmrun.wait(lambda: not virt.exists(vm.id), 10,
                   "the placeholder's end", interval=0.1)
        with open(os.path.join(installation.state_dir,
                               vm.id + ".exit")) as f:
            assert "disappeared outside oVirt" in json.load(f)["message"]
        # Vdsm then runs after_vm_destroy: quiet, and the state goes.
        done = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                        custom=vm.custom)
        assert done.errors == []
        assert not os.path.exists(os.path.join(installation.state_dir,
                                               vm.id + ".json"))
    finally:
        virt.virsh("destroy", vm.id, check=False)


def test_ps_and_logs(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    try:
        rc, out, err = installation.run_cli("ps", "--json")
        assert rc == 0, err
        rows = dict((r["vm_id"], r) for r in json.loads(out))
        row = rows[vm.id]
        assert (row["vm_name"], row["engine"], row["image"], row["state"],
                row["placeholder"]) == (vm.name, name, images.IMAGE,
                                        "running", False)
        assert row["uptime"] is not None and row["uptime"] >= 0
        rc, out, _ = installation.run_cli("ps")
        assert vm.id in out and "running" in out

        c = container(client, vm)
        c.exec_run(["sh", "-c", "echo marker-%s > /proc/1/fd/1" % vm.id[:8]])
        for who in (vm.id, vm.name):
            rc, out, err = installation.run_cli("logs", who, "--tail", "5")
            assert rc == 0, err
            assert "marker-%s" % vm.id[:8] in out
        rc, _, err = installation.run_cli("logs", "no-such-vm")
        assert rc == 1 and "no container VM with that id or name" in err
    finally:
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                 custom=vm.custom)


def test_check(installation, fresh_conf, watcher):
    helperd = installation.start_helperd()
    try:
        rc, out, err = installation.run_cli("check", "--json")
    finally:
        installation.stop_helperd(helperd)
    results = dict((r["check"], r) for r in json.loads(out))
    assert rc == 0, out
    assert set(results) == {"config", "engine docker", "engine podman",
                            "helper", "helper service", "sudo rule", "hooks",
                            "placeholder kernel", "exit watcher", "networks",
                            "pids", "secrets", "credentials docker",
                            "credentials podman", "runtimes docker",
                            "runtimes podman"}
    assert all(r["ok"] for r in results.values())

    # The helper service stopped: the one failure, and what to do.
    rc, out, _ = installation.run_cli("check")
    assert rc == 1
    [failed] = [l for l in out.splitlines() if l.startswith("FAIL")]
    assert "helper service" in failed
    assert "systemctl enable --now vdsm-hook-containers-helperd" in failed
    helperd = installation.start_helperd()

    fresh_conf.configure(docker_socket="/run/vhc-tests-nothing.sock")
    try:
        rc, out, _ = installation.run_cli("check")
    finally:
        installation.stop_helperd(helperd)
    assert rc == 1
    assert [l for l in out.splitlines() if l.startswith("FAIL")] == [
        l for l in out.splitlines() if "engine docker" in l]


# Containers the package did not create.  An admin runs a VM's image by
# hand; the image's labels (a VM owner's to choose) mimic the package's:
# org.ovirt.vdsm-hook-containers=1 and a VM id of the owner's choice.  Root
# must not act on such a container, nor on anything its labels name.

FOREIGN_PREFIX = "vhc-foreign-"


class Decoy(object):
    """What a hostile VM id label points at: a directory with a tmpfs
    mounted on it and a *.json file beside it (what gc would unmount and
    delete as the volumes and the state of that "VM")."""

    def __init__(self):
        self.top = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-decoy-")
        self.target = os.path.join(self.top, "victim")
        os.mkdir(self.target)
        subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=1m",
                               "vhc-decoy", self.target])
        with open(os.path.join(self.target, "canary"), "w") as f:
            f.write("mounted\n")
        self.json = self.target + ".json"
        with open(self.json, "w") as f:
            f.write('{"volumes": []}\n')

    def labels(self):
        """The hostile VM ids: the target as an absolute path, and as a
        path relative to the state directory climbing out of it."""
        return [self.target, "../" * 40 + self.target.lstrip("/")]

    def intact(self):
        """What of the decoy is no longer as it was made (empty: all)."""
        lost = []
        if not os.path.exists(os.path.join(self.target, "canary")):
            lost.append("tmpfs at %s unmounted" % self.target)
        if not os.path.exists(self.json):
            lost.append("%s deleted" % self.json)
        for suffix in (".lock", ".exit"):
            if os.path.exists(self.target + suffix):
                lost.append("%s%s created" % (self.target, suffix))
        return lost

    def remove(self):
        while os.path.ismount(self.target):
            subprocess.check_call(["umount", self.target])
        shutil.rmtree(self.top)


@pytest.fixture
def decoy():
    d = Decoy()
    yield d
    d.remove()


@pytest.fixture
def foreign(engine):
    """run(vm_id_label, name=None): a container run by hand on the test's
    engine from the test image, labelled as the package labels its own;
    every one is removed after the test."""
    name, client = engine
    images.ensure_local(client)
    made = []

    def run(label, cname=None):
        cname = cname or FOREIGN_PREFIX + uuid.uuid4().hex[:12]
        # Removed by its name too: a run() that fails after the engine
        # created the container (Podman's start failing) returns nothing.
        made.append(cname)
        c = client.containers.run(
            images.IMAGE, detach=True,
            name=cname,
            labels={vmrun.MANAGED_LABEL: "1", "org.ovirt.vm.id": label,
                    "org.ovirt.vm.name": "not-a-vm"},
            # Docker's default limits here are above what runc may set;
            # the package's own containers set theirs too.
            ulimits=[docker.types.Ulimit(name=n, soft=1024, hard=1024)
                     for n in ("nofile", "nproc")])
        return c

    yield run
    for cname in made:
        try:
            client.containers.get(cname).remove(force=True)
        except docker.errors.NotFound:
            pass


def running(c):
    """Whether container c still exists and runs."""
    try:
        c.reload()
    except docker.errors.NotFound:
        return False
    return c.status == "running"


def test_gc_leaves_foreign_containers_and_what_they_name_alone(
        vdsm, installation, engine, foreign, decoy):
    name, client = engine
    # One of ours, started with no placeholder: gc removes it.
    vm = domains.container_vm(name, images.IMAGE)
    start(vdsm, vm)
    ours = container(client, vm)
    hostile = decoy.labels() + [
        str(uuid.uuid4()),                  # a UUID of no VM
        vm.id,                              # a VM of ours, another container
    ]
    others = [foreign(label) for label in hostile]
    nameless = str(uuid.uuid4())            # holds a VM's container name
    others.append(foreign(nameless, cname="ovirt-vm-" + nameless))
    hostile.append(nameless)
    only = []
    for label in hostile:
        only += ["--vm", label]

    rc, dry, err = installation.run_cli("gc", "--dry-run", "--grace", "0",
                                        *only)
    assert rc == 0, err
    print("\n%s, gc --dry-run:\n%s" % (name, dry))
    assert [c.name for c in others if not running(c)] == []
    assert decoy.intact() == []

    rc, out, err = installation.run_cli("gc", "--grace", "0", *only)
    print("%s, gc:\n%s%s" % (name, out, err))
    assert decoy.intact() == []
    assert [c.name for c in others if not running(c)] == []
    assert rc == 0, err
    assert not running(ours)
    # What gc reports: ours removed, the others named, as not recorded.
    assert "would remove %s: %s container ovirt-vm-%s" % (
        vm.id, name, vm.id) in dry
    for c in others:
        assert "not recorded" in [l for l in dry.splitlines()
                                  if c.name in l][0], c.name
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           vm.id + ".json"))
    print("%s: %d hostile containers left alone" % (name, len(others)))


def helper_stop(installation, vm_id, engine_name):
    """The root helper's stop, as the destroy hooks run it."""
    p = subprocess.Popen([installation.helper, "stop", "--vm-id=" + vm_id,
                          "--engine=" + engine_name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=120)
    return p.returncode, out.decode(), err.decode()


def test_stop_removes_only_the_recorded_container(vdsm, installation,
                                                  engine, foreign):
    name, client = engine
    # A VM that has no container here (Engine's destroy after a start that
    # failed early): a container labelled with its id is not its own.
    stray = str(uuid.uuid4())
    others = [foreign(stray), foreign(stray, cname="ovirt-vm-" + stray)]
    rc, out, err = helper_stop(installation, stray, name)
    assert rc == 0, err
    assert json.loads(out)["stopped"] is None

    # A VM of ours beside a container labelled with its id: Power Off
    # removes its own container only.
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    ours = container(client, vm)
    # The record that proves it is root's alone: vdsm can neither change
    # it nor put one beside it.
    record = os.path.join(installation.state_dir, vm.id + ".json")
    for path in (record, os.path.join(installation.state_dir, "x.json")):
        assert subprocess.call(["sudo", "-n", "-u", "vdsm", "sh", "-c",
                                "echo {} > " + path],
                               stderr=subprocess.DEVNULL) != 0, path
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           "x.json"))
    others.append(foreign(vm.id))
    vmrun.power_off(vdsm, vm, result.data)
    assert not running(ours)

    assert [c.name for c in others if not running(c)] == []
    print("\n%s: %d hostile containers left alone by the stop path"
          % (name, len(others)))


def test_start_leaves_a_foreign_container_of_its_vm_alone(
        vdsm, installation, fresh_conf, engine, foreign):
    name, client = engine
    fresh_conf.configure(leftover_grace=0)
    vm = domains.container_vm(name, images.IMAGE)
    # Labelled with the VM's id, another name: not a leftover of the VM.
    other = foreign(vm.id)
    result = start(vdsm, vm)
    assert running(other)
    assert running(client.containers.get("ovirt-vm-" + vm.id))
    vmrun.power_off(vdsm, vm, result.data)
    assert running(other)

    # Running under the name the VM's container needs, never recorded:
    # the start is refused, that container untouched.
    holder = foreign(vm.id, cname="ovirt-vm-" + vm.id)
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    assert b"not created by vdsm-hook-containers" in e.value.err
    assert running(holder)
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           vm.id + ".json"))

    # Stopped (left from before a reboot: /run was emptied, the engine
    # kept its containers): in the way of the start, which replaces it.
    holder.stop(timeout=1)
    result = start(vdsm, vm)
    assert running(client.containers.get("ovirt-vm-" + vm.id))
    vmrun.power_off(vdsm, vm, result.data)
    assert running(other)


@pytest.fixture
def in_process(installation, monkeypatch):
    """The package's gc in this process, on the installation's state
    directory and configuration; the engines as {name: Engine}."""
    from containerhooks import config
    from containerhooks import engine as engines
    from containerhooks import paths
    monkeypatch.setattr(paths, "STATE_DIR", installation.state_dir)
    monkeypatch.setattr(paths, "CONF_FILE", installation.conf)
    conf = config.load()
    return conf, dict(
        (name, engines.Engine.connect(name, conf.sockets[name],
                                      conf.api_timeout))
        for name in conf.engines)


@pytest.mark.parametrize("kind", ["container", "state", "lock"])
def test_gc_never_undoes_a_start_that_raced_it(vdsm, installation, engine,
                                                in_process, kind):
    from containerhooks import gc
    from containerhooks import helper
    name, client = engine
    conf, engines = in_process
    conf = conf._replace(gc_grace=0, leftover_grace=0)
    vm = domains.container_vm(name, images.IMAGE)
    if kind == "lock":
        # What a start killed before it wrote any state leaves.
        open(os.path.join(installation.state_dir, vm.id + ".lock"),
             "w").close()
    else:
        start(vdsm, vm)     # no placeholder follows
    if kind == "state":
        container(client, vm).remove(force=True)     # by hand
    findings = [f for f in gc.find(conf, engines) if f.vm_id == vm.id]
    assert [f.kind for f in findings] == [
        "state" if kind == "lock" else kind]

    # Engine starts the VM again meanwhile: a new container (replacing
    # the old one), a new state record.
    installation.configure(leftover_grace=0)
    try:
        result = start(vdsm, vm)
    finally:
        installation.configure()
    new = container(client, vm)

    failed = gc.clean(conf, findings, helper.stop_vm)

    assert failed == []
    assert running(new)
    with open(os.path.join(installation.state_dir, vm.id + ".json")) as f:
        assert json.load(f)["container_id"] == new.id
    vmrun.power_off(vdsm, vm, result.data)
