"""Engine's migration of a container VM between two "hosts" on this machine.

The source host is the session's installation with the machine's libvirtd
and Docker; the destination is a second installation (its own state,
configuration, helper) with a libvirtd of its own (tests/desthost.py) and
its own engine: its containers.conf names Podman's Docker-compatible
socket as its "docker", so the two hosts share no container, image store
or address management, as two hosts do not.  They share what hosts share:
the storage (a file storage domain, tests/hoststorage.py) and the LAN (a
bridge with a peer).  The test plays the one oVirt Engine: it drives both
hosts through Vdsm's migration hook sequence (tests/vdsm.py migrate), and
libvirt really migrates the placeholder from one libvirtd to the other.
"""

import contextlib
import copy
import os
import re
import time
import uuid

import pytest
from lxml import etree

import desthost
import domains
import images
import install
import lan as lanmod
import libvirt
import vdsm as vdsm_module
import vmrun
from hoststorage import OtherHost, lock_holder, mounts_under

BASE = "no-nic-in.xml"
BRIDGE = "vhcmig0"
PODMAN_SOCKET = "/run/podman/podman.sock"
MAC = "56:6f:8a:2c:00:01"
WAIT = 20


@pytest.fixture(scope="module")
def destination_libvirtd(libvirt_host):
    """The destination host's libvirtd (tests/desthost.py)."""
    dest = desthost.Destination().start()
    yield dest
    dest.stop()


@pytest.fixture(scope="module")
def destination_installation(services, destination_libvirtd):
    """The package installed for the destination host: its qemu pid files
    are its libvirtd's."""
    inst = install.Installation(
        qemu_run=destination_libvirtd.qemu_run).install()
    yield inst
    inst.remove()


@pytest.fixture(scope="module")
def mig_lan(installation, destination_installation, docker_client,
            podman_client):
    """A bridge both hosts' containers join, with a LAN peer, and its
    container network configured on both hosts."""
    net = lanmod.Lan(BRIDGE, "vhc-mig0", "10.233.0.0/24", "10.233.0.1",
                     "10.233.0.128/28", "10.233.0.2").create()
    confs = []
    for inst in (installation, destination_installation):
        os.makedirs(inst.networks_dir, exist_ok=True)
        path = os.path.join(inst.networks_dir, BRIDGE + ".conf")
        with open(path, "w") as f:
            f.write("[network]\nsubnet = %s\ngateway = %s\nip_range = %s\n"
                    % (net.subnet, net.gateway, net.ip_range))
        confs.append(path)
    yield net
    for client in (docker_client, podman_client):
        for n in client.networks.list(names=["ovirt-" + BRIDGE]):
            n.remove()
    for path in confs:
        if os.path.exists(path):
            os.unlink(path)
    net.remove()


class Hosts(object):
    """The two hosts of a test: Vdsm stand-ins, installations, engines."""

    def __init__(self, source, destination, src_inst, dst_inst, docker,
                 podman, libvirtd, host, workdir, storage, lan):
        self.source, self.destination = source, destination
        self.src_inst, self.dst_inst = src_inst, dst_inst
        self.docker, self.podman = docker, podman
        self.libvirtd, self.host, self.workdir = libvirtd, host, workdir
        self.storage, self.lan = storage, lan
        self.vms = []

    def configure_destination(self, **options):
        options.setdefault("docker_socket", PODMAN_SOCKET)
        options.setdefault("storage_roots", self.storage.root)
        options.setdefault("migration_wait", WAIT)
        self.dst_inst.configure(**options)

    def start(self, vm):
        """Engine's Run on the source host: before_vm_start, then the
        placeholder on the machine's libvirtd, its mounted disks on the
        test's storage as Vdsm gave them and its idle kernel the source
        installation's; returns the live XML."""
        self.vms.append(vm)
        result = self.source.run("before_vm_start", vm.xml, vm_id=vm.id,
                                 custom=vm.custom)
        root = etree.fromstring(result.data.encode("utf-8"))
        mounted = [v.split(":")[0] for v in
                   vm.custom.get("volumeMap", "").split(",") if v]
        kept = dict((d.find("target").get("dev"), copy.deepcopy(d))
                    for d in root.iterfind("devices/disk")
                    if d.find("target").get("dev") in mounted)
        kernel = root.findtext("os/kernel")
        libvirt.adjust(root, self.host, self.workdir, bridge=BRIDGE)
        for disk in list(root.iterfind("devices/disk")):
            name = disk.find("target").get("dev")
            if name in kept:
                disk.getparent().replace(disk, kept[name])
        root.find("os/kernel").text = kernel
        libvirt.create(root, self.workdir)
        libvirt.wait_running(vm.id)
        return libvirt.dumpxml(vm.id)

    def migrate(self, vm, live_xml, between=None):
        def move():
            rc, err = self.libvirtd.migrate(vm.id)
            if rc != 0:
                raise vdsm_module.MoveFailed(err)
            return self.libvirtd.dumpxml(vm.id)
        return vdsm_module.migrate(self.source, self.destination, vm.id,
                                   vm.custom, live_xml, move, between)

    def source_container(self, vm):
        return self.docker.containers.get("ovirt-vm-" + vm.id)

    def destination_container(self, vm):
        return self.podman.containers.get("ovirt-vm-" + vm.id)

    def power_off_source(self, vm):
        before, after = vmrun.destroy(self.source, vm)
        assert before.errors == [] and after.errors == []

    def power_off_destination(self, vm):
        before, after = vmrun.destroy(self.destination, vm, self.libvirtd)
        assert before.errors == [] and after.errors == []

    def leftovers(self):
        """What a test left of its VMs on either host."""
        found = []
        for vm in self.vms:
            for where, exists in (
                    ("source domain", libvirt.exists(vm.id)),
                    ("destination domain", self.libvirtd.exists(vm.id))):
                if exists:
                    found.append("%s %s" % (where, vm.id))
            for client in (self.docker, self.podman):
                found += vmrun.remove_managed(client, [vm.id])
        for inst in (self.src_inst, self.dst_inst):
            # (An exit record stays by design: Engine reads a Down VM's
            # reason there until the next start, or a day.)
            found += ["%s: %s" % (inst.root, n) for n in inst.state_files()
                      if any(n.startswith(vm.id) for vm in self.vms)
                      and not n.endswith(".exit")]
            found += mounts_under(os.path.join(inst.state_dir, "volumes"))
        return found


@pytest.fixture
def hosts(installation, destination_installation, destination_libvirtd,
          storage, mig_lan, registry_image, docker_client, podman_client,
          libvirt_host, qemu_workdir):
    """Both hosts, ready: the source's containers.conf with the test's
    storage root (the storage fixture), the destination's too and Podman
    as its engine.  Afterwards nothing of the test's VMs may be left on
    either host (domains, containers, state, mounts)."""
    h = Hosts(vdsm_module.Vdsm(installation.hooks_dir, user="vdsm"),
              vdsm_module.Vdsm(destination_installation.hooks_dir,
                               user="vdsm"),
              installation, destination_installation, docker_client,
              podman_client, destination_libvirtd, libvirt_host,
              qemu_workdir, storage, mig_lan)
    h.configure_destination()
    yield h
    left = h.leftovers()
    for vm in h.vms:
        for run in (libvirt.virsh, destination_libvirtd.virsh):
            run("destroy", vm.id, check=False)
        for inst, vdsm in ((installation, h.source),
                           (destination_installation, h.destination)):
            if any(n.startswith(vm.id) for n in inst.state_files()):
                vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                         custom=vm.custom)
    destination_installation.configure()
    assert not left, "the test left behind: %s" % left


def file_vm(hosts, image=images.IMAGE, nics=True, **custom):
    """A container VM with a blank disk vdb mounted at /data and a vNIC
    on the test's bridge (and the base's own disk vda, not mounted);
    custom: more of its custom properties."""
    disk = hosts.storage.image()
    vm = domains.VM(dict({"containerType": "docker", "containerImage": image,
                          "volumeMap": "vdb:/data"}, **custom), base=BASE)
    vm = domains.add_disks(vm, domains.disk("vdb", disk))
    if nics:
        vm = domains.add_nics(vm, [(MAC, BRIDGE)])
    return vm, disk


def nic_vm(hosts):
    vm = domains.VM({"containerType": "docker",
                     "containerImage": images.IMAGE}, base=BASE)
    return domains.add_nics(vm, [(MAC, BRIDGE)])


def address(container):
    """(MAC, IP) of the container's interface on the test's bridge."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    net = networks["ovirt-" + BRIDGE]
    return net["MacAddress"].lower(), net["IPAddress"]


def engine_time(stamp):
    """An engine's RFC 3339 time (nanoseconds, Z or +00:00), epoch s."""
    import calendar
    stamp = re.sub(r"(Z|[+-]00:00)$", "", stamp)
    whole, _, fraction = stamp.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) \
        + float("0." + (fraction or "0"))


def log_time(inst, pattern):
    """When the installation's log says pattern (the first such line),
    epoch seconds (the log's asctime is local time, milliseconds)."""
    for line in inst.read_log().splitlines():
        if re.search(pattern, line):
            stamp = line[:23]
            whole, _, millis = stamp.partition(",")
            return time.mktime(time.strptime(
                whole, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000.0
    raise AssertionError("no log line matches %r" % pattern)


def assert_still_serving(hosts, vm, before_mac_ip):
    """The VM runs on the source as before: domain, container, address."""
    assert libvirt.exists(vm.id)
    c = hosts.source_container(vm)
    assert c.status == "running"
    if before_mac_ip:
        assert address(c) == before_mac_ip
        assert "hello" in hosts.lan.fetch(before_mac_ip[1])
    assert not hosts.libvirtd.exists(vm.id)
    assert [n for n in hosts.dst_inst.state_files()
            if n.startswith(vm.id + ".json")] == []


# Success

def test_migrates_with_its_volume_and_address(hosts):
    vm, disk = file_vm(hosts)
    live = hosts.start(vm)
    src = hosts.source_container(vm)
    vmrun.sh(src, "dd if=/dev/urandom of=/data/blob bs=64k count=16 "
             "2>/dev/null && sync")
    before = vmrun.sh(src, "sha256sum /data/blob").split()[0]
    mac_ip = address(src)
    assert mac_ip[0] == MAC

    began = time.time()
    run = hosts.migrate(vm, live)

    assert run.outcome == run.MIGRATED, run.error
    for hook, result in sorted(run.results.items()):
        assert result.errors == [], (hook, result.errors)
    # The source: nothing left of the VM.
    assert not libvirt.exists(vm.id)
    assert vmrun.containers_of(hosts.docker, vm) == []
    assert [n for n in hosts.src_inst.state_files()
            if n.startswith(vm.id + ".")] == []
    # The destination: the same disk, data, MAC and address, serving.
    dst = hosts.destination_container(vm)
    assert dst.status == "running"
    assert vmrun.sh(dst, "sha256sum /data/blob").split()[0] == before
    assert address(dst) == mac_ip
    assert "hello" in hosts.lan.fetch(mac_ip[1])
    assert hosts.dst_inst.record(vm.id)["volumes"][0]["source"] == disk
    assert "migration" not in hosts.dst_inst.record(vm.id)
    assert lock_holder(disk) == "vdsm-hook-containers"

    # Never two writers: the source's container had ended before the
    # destination mounted the disk, and the destination's started after.
    src_stop = log_time(hosts.src_inst, r"vm_id=%s stopping " % vm.id)
    src_removed = log_time(hosts.src_inst, r"vm_id=%s removed container"
                           % vm.id)
    src_released = log_time(hosts.src_inst, r"vm_id=%s released disk vdb"
                            % vm.id)
    mounted = log_time(hosts.dst_inst, r"vm_id=%s mounted disk vdb" % vm.id)
    dst.reload()
    started = engine_time(dst.attrs["State"]["StartedAt"])
    assert src_stop < src_removed < src_released < mounted < started
    job = hosts.libvirtd.job_info(vm.id)
    steps = sorted(run.times.items(), key=lambda item: item[1])
    print("\n" + ", ".join("%s +%.2f s" % (step, t - began)
                           for step, t in steps))
    print("\nmigration of a container VM with a volume (Docker -> Podman):"
          " placeholder moved in %s (%s processed, libvirt downtime %s); "
          "the application was down from the source's stop to the "
          "destination's start: %.2f s; whole migration %.2f s"
          % (job.get("Time elapsed"), job.get("Data processed"),
             job.get("Total downtime"), started - src_stop,
             run.times["after_vm_migrate_destination"] - began))

    hosts.power_off_destination(vm)
    assert lock_holder(disk) is None


# Refused before anything moved: the VM stays on the source, serving

def unique_image(docker_client):
    """A test image of its own (a file unique to it: its own id),
    pushed to the local registry: its reference."""
    run = str(uuid.uuid4())
    repository = "%s/vhc-tests/migrating-%s" % (images.REGISTRY, run[:8])
    api = docker_client.api
    api.import_image_from_data(
        images.rootfs_tar(files=[("www/run", run.encode(), 0o644)]),
        repository=repository, tag="1", changes=["CMD " + images.COMMAND])
    images.push(api, repository, "1")
    return repository + ":1"


@contextlib.contextmanager
def host_opts_out(hosts, vm, live):
    hosts.src_inst.configure(storage_roots=hosts.storage.root,
                             migration="refuse")
    try:
        yield
    finally:
        hosts.src_inst.configure(storage_roots=hosts.storage.root)


@contextlib.contextmanager
def engine_down(hosts, vm, live):
    hosts.configure_destination(
        docker_socket="/run/vhc-tests-no-engine.sock")
    try:
        yield
    finally:
        hosts.configure_destination()


@contextlib.contextmanager
def bridge_not_configured(hosts, vm, live):
    conf = os.path.join(hosts.dst_inst.networks_dir, BRIDGE + ".conf")
    os.rename(conf, conf + ".off")
    try:
        yield
    finally:
        os.rename(conf + ".off", conf)


@contextlib.contextmanager
def package_missing(hosts, vm, live):
    # A host without the package lacks the idle kernel the placeholder
    # boots (<os><kernel>, a file of the package): libvirt cannot start
    # the incoming qemu.  (Such a host has no migration hook either; the
    # destination's hooks run here, so that its reservation is seen to go.)
    kernel = etree.fromstring(live.encode("utf-8")).findtext("os/kernel")
    with hosts.libvirtd.hide(os.path.dirname(kernel)):
        yield


@contextlib.contextmanager
def image_gone(hosts, vm, live):
    # Deleted from the registry since the source pulled it, and not in
    # the destination's engine (an earlier attempt pulled it there): the
    # destination cannot have it.
    import docker
    import urllib.request
    image = vm.custom["containerImage"]
    name = image[len(images.REGISTRY) + 1:].rsplit(":", 1)[0]
    record = hosts.src_inst.record(vm.id)
    urllib.request.urlopen(urllib.request.Request(
        "http://%s/v2/%s/manifests/%s" % (images.REGISTRY, name,
                                          record["image_digest"]),
        method="DELETE"), timeout=30).close()
    try:
        hosts.podman.images.remove(record["image_id"], force=True)
    except docker.errors.NotFound:
        pass
    yield


@contextlib.contextmanager
def runtime_not_offered(hosts, vm, live):
    # The VM's containerRuntime (runc) is not among those the destination
    # offers: refused there, before the source stops anything.
    hosts.configure_destination(docker_runtimes="crun")
    try:
        yield
    finally:
        hosts.configure_destination()


# What breaks the migration, who refuses it, what the admin reads.
REFUSALS = [
    ("the host opts out", host_opts_out, vdsm_module.Migration
     .REFUSED_BY_SOURCE, "Migration of container VM {vm} is refused: this "
     "host does not hand container VMs over (migration = refuse in {conf}); "
     "power the VM off and start it on the other host"),
    ("engine down", engine_down, vdsm_module.Migration
     .REFUSED_BY_DESTINATION, "Container engine docker is not reachable at "
     "/run/vhc-tests-no-engine.sock"),
    ("bridge without container network", bridge_not_configured,
     vdsm_module.Migration.REFUSED_BY_DESTINATION, "Bridge %s has no "
     "container network on this host" % BRIDGE),
    ("destination without the package", package_missing,
     vdsm_module.Migration.MOVE_FAILED, "unable to stat: {kernel}: No such "
     "file or directory"),
    ("runtime not offered", runtime_not_offered, vdsm_module.Migration
     .REFUSED_BY_DESTINATION, "Invalid custom property containerRuntime="
     "'runc': this host runs docker containers on crun only"),
    ("image gone", image_gone, vdsm_module.Migration.REFUSED_BY_DESTINATION,
     "Image {image}@sha256:"),
]


def test_refused_migrations_leave_the_vm_serving_on_the_source(hosts):
    """Each way a migration is refused before the VM moved, one after the
    other on one VM (each leaves it as it was)."""
    image = unique_image(hosts.docker)
    # It names its runtime: the engine's default, which a host offering
    # no runtime lets a VM name (the source here).
    vm, _ = file_vm(hosts, image=image, containerRuntime="runc")
    live = hosts.start(vm)
    mac_ip = address(hosts.source_container(vm))
    kernel = etree.fromstring(live.encode("utf-8")).findtext("os/kernel")
    for what, breaking, outcome, message in REFUSALS:
        with breaking(hosts, vm, live):
            run = hosts.migrate(vm, live)
        assert run.outcome == outcome, (what, run.outcome, run.error)
        text = run.error.err.decode() if outcome != run.MOVE_FAILED \
            else str(run.error)
        expected = message.format(vm=vm.id, conf=hosts.src_inst.conf,
                                  kernel=kernel, image=image)
        assert expected in text and text.count("\n") <= 1, (what, text)
        if outcome == run.REFUSED_BY_SOURCE:
            # The destination was never asked; nothing marked.
            assert list(run.results) == ["before_vm_migrate_source"]
            assert "migration" not in hosts.src_inst.record(vm.id)
        else:
            # Vdsm's _recover destroyed the destination's VM: nothing of
            # it stays there.  The source keeps its mark, replaced by the
            # next migration, gone with the VM.
            for hook in ("destination before_vm_destroy",
                         "destination after_vm_destroy"):
                assert run.results[hook].errors == [], what
            assert "outgoing" in hosts.src_inst.record(vm.id)["migration"]
        assert_still_serving(hosts, vm, mac_ip)
    hosts.power_off_source(vm)
    # The test's own image: gone from the registry, now from Docker too.
    hosts.docker.images.remove(image, force=True)


def test_vm_keeps_its_runtime_or_stays(hosts):
    """A VM that names no containerRuntime runs on each host's default:
    the destination refuses a default other than the runtime the source
    proved (its placeholder records it), before the source stops."""
    vm = nic_vm(hosts)
    live = hosts.start(vm)
    assert hosts.src_inst.record(vm.id)["runtime"] == "runc"
    mac_ip = address(hosts.source_container(vm))
    hosts.configure_destination(docker_runtimes="runc, crun",
                                docker_default_runtime="crun")
    try:
        run = hosts.migrate(vm, live)
    finally:
        hosts.configure_destination()
    assert run.outcome == run.REFUSED_BY_DESTINATION, (run.outcome,
                                                       run.error)
    text = run.error.err.decode()
    assert ("Migration of container VM %s is refused: its container runs "
            "on runc on the source and would run on crun here (this host's "
            "default for docker VMs that set no containerRuntime); set "
            "containerRuntime=runc on the VM, or give the hosts the same "
            "docker_default_runtime" % vm.id) in text, text
    assert_still_serving(hosts, vm, mac_ip)
    hosts.power_off_source(vm)


# After the VM moved: the destination waits for the source, or goes Down

def test_vm_without_volume_waits_for_its_address_to_go_silent(hosts):
    vm = nic_vm(hosts)
    live = hosts.start(vm)
    src = hosts.source_container(vm)
    mac_ip = address(src)
    run = hosts.migrate(vm, live)
    assert run.outcome == run.MIGRATED, run.error
    for hook, result in sorted(run.results.items()):
        assert result.errors == [], (hook, result.errors)
    dst = hosts.destination_container(vm)
    assert address(dst) == mac_ip
    assert "hello" in hosts.lan.fetch(mac_ip[1])
    dst.reload()
    started = engine_time(dst.attrs["State"]["StartedAt"])
    removed = log_time(hosts.src_inst, r"vm_id=%s removed container"
                       % vm.id)
    waited = float(re.search(r"vm_id=%s incoming migration: container "
                             r"started .* \(waited ([0-9.]+) s"
                             % vm.id, hosts.dst_inst.read_log()).group(1))
    assert removed < started
    print("\nmigration of a container VM with an address, no volume: the "
          "destination heard the address for %.2f s; application down "
          "%.2f s" % (waited, started - log_time(
              hosts.src_inst, r"vm_id=%s stopping " % vm.id)))
    hosts.power_off_destination(vm)


def test_disk_held_past_the_wait_takes_the_vm_down(hosts):
    vm, disk = file_vm(hosts, nics=False)
    live = hosts.start(vm)
    hosts.configure_destination(migration_wait=2)
    others = []

    def another_host_takes_the_disk():
        # The source has let go (only the destination's placeholder, a
        # qemu, reads the disk); another host holds it now.
        assert lock_holder(disk) == "qemu"
        others.append(OtherHost(disk, readers=True))

    try:
        run = hosts.migrate(vm, live, between=another_host_takes_the_disk)
        result = run.results["after_vm_migrate_destination"]
        returned = run.times["after_vm_migrate_destination"]
        err = result.errors[0].decode()
        assert "still" in err and "disk vdb" in err, err
        assert [s.rc for s in result.scripts] == [1]
        # The placeholder is killed once the hook has returned to Vdsm.
        gone = hosts.libvirtd.wait_gone(vm.id, 15)
        assert gone is not None, "the destination's placeholder still runs"
        assert gone - returned >= 1.5
    finally:
        for other in others:
            other.release()
    # Vdsm sees its qemu die: after_vm_destroy, the VM Down; Engine reads
    # the reason.
    after = hosts.destination.run("after_vm_destroy", run.destination_xml,
                                  vm_id=vm.id, custom=vm.custom)
    assert after.errors == []
    stats = vmrun.down_stats(hosts.destination, vm)
    assert stats["exitMessage"].startswith(
        "migration to this host failed after the VM moved: disk vdb is "
        "still mounted by the source host after 2 s"), stats
    assert vmrun.containers_of(hosts.podman, vm) == []
    assert not any(n.startswith(vm.id + ".json")
                   for n in hosts.dst_inst.state_files())
    print("\nthe destination's placeholder went %.2f s after its hook "
          "returned" % (gone - returned))


# Without daemons: what the placeholder records, what is refused early

def test_start_facts_round_trip():
    from containerhooks import domxml
    from containerhooks import migration
    from containerhooks import vmstart
    from containerhooks import config
    vm = domains.add_nics(domains.VM({"containerType": "docker",
                                      "containerImage": images.IMAGE}),
                          [(MAC, BRIDGE)])
    plan = vmstart.prepare(dict(vm.custom), vm.xml.encode("utf-8"),
                           config.load("/nonexistent"), kernel="/k")
    assert migration.start_facts(domxml.Domain.parse(plan.xml)) is None
    record = {"nics": [{"mac": MAC, "ip": "10.233.0.130"}],
              "image_id": "sha256:" + "a" * 64,
              "image_digest": "sha256:" + "b" * 64, "runtime": "runsc"}
    xml = migration.with_start_facts(plan.xml, record)
    dom = domxml.Domain.parse(xml)
    assert migration.start_facts(dom) == migration.Facts(
        addresses={MAC: "10.233.0.130"}, image_id="sha256:" + "a" * 64,
        digest="sha256:" + "b" * 64, runtime="runsc")
    # The rest of the package's metadata as it was; again gives the same.
    assert dom.container_meta() == domxml.Domain.parse(
        plan.xml).container_meta()
    assert migration.with_start_facts(xml, record) == xml


class FakeClock(object):

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_silence_gives_up_after_migration_wait(monkeypatch):
    from containerhooks import config
    from containerhooks import errors
    from containerhooks import migration
    from containerhooks import spec as specs
    heard = []
    monkeypatch.setattr(migration, "answers",
                        lambda bridge, ip: heard.append(ip) or True)
    spec = specs.ContainerSpec(
        vm_id=str(uuid.uuid4()), vm_name="vm", engine="docker",
        image=None, memory_mib=64, vcpus=1, cpu_shares=None,
        nics=[specs.Nic(mac=MAC, bridge=BRIDGE, ip="10.233.0.130")],
        volumes=[])
    conf = config.load("/nonexistent")._replace(migration_wait=3)
    clock = FakeClock()
    with pytest.raises(errors.MigrationFailed) as e:
        migration.wait_for_source(spec, conf, clock=clock, sleep=clock.sleep)
    assert "address 10.233.0.130 still answers on bridge %s" % BRIDGE \
        in str(e.value)
    assert 3 < clock.now < 3.2 and len(heard) > 25
    # Silent at once: no wait at all.
    monkeypatch.setattr(migration, "answers", lambda bridge, ip: False)
    assert migration.wait_for_source(spec, conf, clock=clock,
                                     sleep=clock.sleep) == 0
