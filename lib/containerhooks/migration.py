"""Engine's migration of a container VM: its container restarts elsewhere.

The placeholder domain migrates with libvirt like any VM (it is small: a
16 MiB guest that halts its one vCPU); the container cannot, its memory is
not the placeholder's.  So the container is stopped on the source host and
started afresh on the destination, with the same image, volumes, MACs and
addresses: a restart of the application, with no memory state carried over.

What Vdsm does (lib/vdsm/virt/migration.py SourceThread._regular_run and
_startUnderlyingMigration, lib/vdsm/virt/vm.py, lib/vdsm/API.py
migrationCreate, lib/vdsm/common/hooks.py) and what the package does at
each step:

1. source, Vm.prepare_migration: before_vm_migrate_source with the live
   XML; raiseError, so a non-zero exit aborts the migration before the
   destination is asked for anything, and the VM stays Up.  Here: the
   policy (containers.conf "migration"), the checks that the VM can be
   handed over (no disk on block storage, the placeholder's metadata
   records the container's addresses and image), then the VM's state is
   marked "migrating".  The container keeps running.
2. destination, API.migrationCreate -> Vm.waitForMigrationDestinationPrepare:
   once the disks are prepared, before_vm_migrate_destination with the
   source's XML (_srcDomXML, read from libvirt before step 1).  A failure
   makes migrationCreate answer "hookError" ("Destination hook failed:
   <stderr>"), the source raises MigrationDestinationSetupError, and its
   _recover asks the destination to destroy its VM (before_vm_destroy and
   after_vm_destroy run there) and keeps the VM Up on the source.  Here:
   everything a start would check, so that the known failures happen while
   the source still serves -- the properties, the engine, the image (pulled
   or loaded now, by the digest the source runs), the secrets, each
   bridge's container network, the addresses (reserved in the VM's state,
   marked "incoming"), the volumes' sources.
3. libvirt migrates the placeholder (virDomainMigrateToURI3, peer to peer).
   A failure there (the destination's qemu cannot start: no package there,
   so no idle kernel at the path the XML names) runs no hook: _recover
   destroys the destination's VM (our destroy hooks drop the reservation)
   and the source's container never stopped.  Only the "migrating" mark is
   left, replaced by the next migration, gone with the VM.  (Vdsm also
   tells the oVirt guest agent after_migration_failure, which the package
   does not serve.)
4. source, on libvirt's STOPPED/MIGRATED event (vm.py
   _handle_libvirt_domain_stopped): after_vm_migrate_source, not checked
   (raiseError=False); Vdsm waits for it before it reports the VM Down.
   Here: the container is stopped gracefully (stop_timeout), its volumes
   unmounted, their loop devices -- and with them the image locks --
   released, its state dropped: the helper's stop, as at power off.  If
   this fails (the engine down), the watcher finishes the stop as for any
   placeholder that ended without a destroy hook.
5. destination, once the domain runs (vm.py _completeIncomingMigration):
   after_vm_migrate_destination with the live XML, not checked either; the
   VM is Up in Engine when it returns.  Steps 4 and 5 run at the same time
   on two hosts.  Here: wait until the source let go, then start the
   container as before_vm_start would (helper._start), with the reserved
   addresses.  "Let go" is proved, never assumed:

   - a VM with a volume on file storage: the image lock (disklock.py) the
     source's loop device holds goes only once the source's container is
     gone and its file system unmounted; the destination waits for it
     (migration_wait seconds at most).  Its own placeholder already has
     the disks open read-only, so here the lock tolerates qemu readers
     (disklock.lock readers=True) and refuses only a writer or another
     container's mark;
   - a VM with vNICs and no such volume: every address of the container
     is probed with ARP (RFC 5227 probes, from a throwaway macvlan on the
     vNIC's bridge) until nobody answers: the source's container cannot
     keep its address without answering (it has no NET_ADMIN: the kernel
     answers ARP for it);
   - a VM with neither: nothing of it can be seen twice; it starts at once.

   A disk on block storage has no cross-host lock, so such a VM is refused
   at step 1 (the disk could be mounted on two hosts at once).

   After the switchover nothing can send the VM back.  A failure here
   takes the VM Down on the destination with a message Engine shows, as a
   container's own end does: an exit record (exits.py), then the
   placeholder's qemu killed -- once the hook has returned and Vdsm has
   finished the migration (killed while the hook runs, Vdsm's migration
   thread would fail on the vanished domain and report a generic error
   instead of the record's message).

The hooks run as vdsm; what needs root (the state, the engine, the disks)
is the helper's, through the commands add_commands() gives it.
"""

import collections
import logging
import os
import time

from containerhooks import errors
from containerhooks import hookenv
from containerhooks import state

log = logging.getLogger("containerhooks.migration")

OUR_NS = b"http://ovirt.org/vdsm-hook-containers/1.0"

# containers.conf "migration".
RESTART = "restart"
REFUSE = "refuse"
POLICIES = (RESTART, REFUSE)

# The state record's "migration": {"outgoing": time} on the source from
# step 1, {"incoming": time} on the destination from step 2 until the
# container runs.
OUTGOING = "outgoing"
INCOMING = "incoming"

# How often the destination looks again while it waits for the source.
POLL_INTERVAL = 0.1
# After the hook has returned, how long Vdsm gets to finish the migration
# (vm.py _completeIncomingMigration: metadata, descriptor, status Up:
# milliseconds) before a failed destination's placeholder is killed, and
# how long at most the killer waits for the hook process.
TAKE_DOWN_GRACE = 2.0
HOOK_WAIT = 60.0

_monotonic = getattr(time, "monotonic", time.time)


# What the placeholder's metadata records of its container

# After a start, the package's metadata element also gets the container's
# addresses (MAC=IP of each interface), the image it runs (its id and
# registry digest) and the OCI runtime it runs on (runtimes.py, as the
# host proved it): what step 2 needs on another host, which only the
# domain XML carries there.  Vdsm keeps the package's namespace as is.
Facts = collections.namedtuple("Facts",
                               "addresses, image_id, digest, runtime")

_ADDRESSES = "addresses"
_IMAGE_ID = "imageId"
_DIGEST = "digest"
_RUNTIME = "runtime"


def with_start_facts(xml, record):
    """xml (a placeholder, bytes) with what the helper's start record says
    of the container added to the package's metadata."""
    from lxml import etree
    from containerhooks import domxml
    dom = domxml.Domain.parse(xml)
    meta = dom.root.find("metadata/{%s}container" % domxml.CONTAINERS_NS)
    if meta is None:
        return xml
    values = (
        (_ADDRESSES, ",".join("%s=%s" % (nic["mac"], nic["ip"])
                              for nic in record.get("nics") or ())),
        (_IMAGE_ID, record.get("image_id")),
        (_DIGEST, record.get("image_digest")),
        (_RUNTIME, record.get("runtime")),
    )
    for tag, value in values:
        old = meta.find("{%s}%s" % (domxml.CONTAINERS_NS, tag))
        if old is not None:
            meta.remove(old)
        if value:
            el = etree.SubElement(meta, "{%s}%s" % (domxml.CONTAINERS_NS,
                                                    tag))
            el.text = value
    return dom.tostring()


def start_facts(dom):
    """The Facts a placeholder (a domxml.Domain) records, or None when it
    records none (started by a version without migration)."""
    from containerhooks import domxml
    meta = dom.root.find("metadata/{%s}container" % domxml.CONTAINERS_NS)
    if meta is None:
        return None

    def text(tag):
        value = meta.findtext("{%s}%s" % (domxml.CONTAINERS_NS, tag))
        return (value or "").strip() or None

    image_id = text(_IMAGE_ID)
    if image_id is None:
        return None
    addresses = {}
    for pair in (text(_ADDRESSES) or "").split(","):
        mac, sep, ip = pair.partition("=")
        if sep:
            addresses[mac.strip().lower()] = ip.strip()
    return Facts(addresses=addresses, image_id=image_id,
                 digest=text(_DIGEST), runtime=text(_RUNTIME))


# The hooks

def source_before_main():
    hookenv.run(before_vm_migrate_source, failure_rc=hookenv.ERROR_STOP)


def destination_before_main():
    hookenv.run(before_vm_migrate_destination,
                failure_rc=hookenv.ERROR_STOP)


def source_after_main():
    hookenv.run(after_vm_migrate_source, failure_rc=hookenv.ERROR)


def destination_after_main():
    hookenv.run(after_vm_migrate_destination, failure_rc=hookenv.ERROR)


def before_vm_migrate_source(env):
    """Step 1: refuse what cannot be handed over; mark the migration."""
    from containerhooks import vmactions
    vm_id = vmactions.container_vm(env)
    if not vm_id:
        return
    from containerhooks import config
    conf = config.load()
    if conf.migration == REFUSE:
        raise errors.MigrationRefused(
            vm_id=vm_id, reason="this host does not hand container VMs over "
            "(migration = refuse in %s); power the VM off and start it on "
            "the other host" % conf.path)
    record = state.read(vm_id)
    if record is None:
        raise errors.MigrationRefused(
            vm_id=vm_id, reason="its container is not recorded on this "
            "host; power the VM off and start it again")
    block = [v.get("disk") for v in record.volumes
             if v.get("kind") != "file"]
    if block:
        raise errors.MigrationRefused(
            vm_id=vm_id, reason="its volume %s is on block storage, where "
            "no lock proves that this host unmounted it before the other "
            "host mounts it; power the VM off and start it on the other "
            "host" % ", ".join(block))
    from containerhooks import domxml
    dom = domxml.Domain.parse(hookenv.read_data(env, hookenv.DOMXML))
    facts = start_facts(dom)
    recorded = dict((nic.get("mac"), nic.get("ip")) for nic in record.nics)
    if facts is None or facts.addresses != recorded \
            or facts.image_id != record.image_id:
        raise errors.MigrationRefused(
            vm_id=vm_id, reason="its placeholder does not record the "
            "container's addresses and image as they are (started by an "
            "earlier version of vdsm-hook-containers, or restored from a "
            "memory snapshot); power the VM off and start it again once")
    from containerhooks import privileged
    privileged.migration_mark(vm_id)
    log.info("vm_id=%s migration starts; the container runs on until the "
             "placeholder has moved", vm_id)


def before_vm_migrate_destination(env):
    """Step 2: check and prepare everything the start will need."""
    spec, facts = _incoming(env)
    if spec is None:
        return
    from containerhooks import privileged
    began = time.time()
    privileged.migration_prepare(spec, facts.image_id, facts.runtime)
    log.info("vm_id=%s ready for the container (image %s, addresses %s) "
             "in %.2f s", spec.vm_id, spec.image,
             [nic.ip for nic in spec.nics], time.time() - began)


def after_vm_migrate_source(env):
    """Step 4: the placeholder has left; so does the container."""
    vm_id = env.get("vmId")
    if not vm_id or not state.exists(vm_id):
        return
    from containerhooks import privileged
    began = time.time()
    result = privileged.stop(vm_id)
    log.info("vm_id=%s migrated away: container stopped, volumes released "
             "in %.2f s (at %.3f): %s", vm_id, time.time() - began,
             time.time(), result.get("stopped"))


def after_vm_migrate_destination(env):
    """Step 5: wait for the source to let go, start the container; or take
    the VM down."""
    vm_id = env.get("vmId")
    from containerhooks import privileged
    try:
        spec, facts = _incoming(env)
    except Exception as e:
        # The placeholder runs and the VM is Up when this hook returns:
        # without its container it must go down.
        if vm_id and state.is_id(vm_id):
            privileged.migration_fail(vm_id, str(e), os.getpid())
        raise
    if spec is None:
        return
    began = time.time()
    result = privileged.migration_start(spec, facts.image_id, os.getpid())
    log.info("vm_id=%s migrated here: container %s runs (waited %.2f s for "
             "the source; %.2f s in all, at %.3f)", spec.vm_id,
             result.get("container_name"), result.get("waited", 0),
             time.time() - began, time.time())


def _incoming(env):
    """(spec, Facts) of the container the migrating VM's XML stands for,
    as before_vm_start would make it, with the source's addresses and
    image; (None, None) for a VM that is not a container."""
    data = hookenv.read_data(env, hookenv.DOMXML)
    if OUR_NS not in data:
        return None, None
    from containerhooks import config
    from containerhooks import domxml
    from containerhooks import imageref
    from containerhooks import vmstart
    plan = vmstart.prepare(env, data, config.load())
    if plan is None:
        return None, None
    spec = plan.spec
    dom = domxml.Domain.parse(data)
    facts = start_facts(dom)
    if facts is None:
        raise errors.MigrationRefused(
            vm_id=spec.vm_id, reason="its placeholder does not record its "
            "container's addresses and image (the source runs an earlier "
            "version of vdsm-hook-containers); power the VM off and start "
            "it on this host")
    nics = []
    for nic in spec.nics:
        ip = facts.addresses.get(nic.mac)
        if not ip or (nic.ip and nic.ip != ip):
            raise errors.MigrationRefused(
                vm_id=spec.vm_id, reason="its placeholder records no "
                "address for vNIC %s (or another than containerIP): power "
                "the VM off and start it again" % nic.mac)
        nics.append(nic._replace(ip=ip))
    image = spec.image
    if isinstance(image, imageref.ImageRef) and facts.digest:
        if image.digest and image.digest != facts.digest:
            raise errors.MigrationRefused(
                vm_id=spec.vm_id, reason="its container runs %s, not the "
                "digest %s names" % (facts.digest, image))
        # The very image the source runs, whatever the tag says now.
        image = image._replace(digest=facts.digest)
    return spec._replace(nics=nics, image=image, guest_agent=(
        spec.guest_agent or _agent_moved(dom, spec.vm_id))), facts


def _agent_moved(dom, vm_id):
    """Whether the source's start moved the placeholder's oVirt guest
    agent channel away for the watcher to serve (guestagent.py): then the
    destination's watcher serves it too.  By its name only: hosts keep
    the channels in the same directory, which the XML does not prove."""
    from containerhooks import guestagent
    source = dom.channel_source(guestagent.CHANNEL)
    return source is not None and os.path.basename(
        source.get("path") or "") == os.path.basename(
            guestagent.placeholder_path(vm_id))


# The root side: the helper's commands

def add_commands(sub):
    """The helper's migration commands (helper.py _parser)."""
    from containerhooks import spec as specs
    mark = sub.add_parser("migration-mark", help="mark a VM's container as "
                          "migrating away (before_vm_migrate_source)")
    mark.add_argument("--vm-id", required=True)
    mark.set_defaults(func=mark_outgoing)
    for name, func, what in (
            ("migration-prepare", prepare_incoming,
             "check and reserve what an incoming VM's container needs "
             "(before_vm_migrate_destination)"),
            ("migration-start", start_incoming,
             "start an incoming VM's container once the source let go "
             "(after_vm_migrate_destination)")):
        p = sub.add_parser(name, help=what)
        _start_arguments(p, specs)
        p.add_argument("--image-id", required=True,
                       help="the id of the image the source runs")
        if func is prepare_incoming:
            p.add_argument("--source-runtime",
                           help="the OCI runtime the source's container "
                           "runs on")
        if func is start_incoming:
            p.add_argument("--hook-pid", required=True)
        p.set_defaults(func=func)
    fail = sub.add_parser("migration-fail", help="take an incoming VM "
                          "down: its container cannot run here")
    fail.add_argument("--vm-id", required=True)
    fail.add_argument("--reason", required=True)
    fail.add_argument("--hook-pid", required=True)
    fail.set_defaults(func=fail_incoming)


def _start_arguments(p, specs):
    # helper.py's "start" options, the same parser (spec.from_args).
    for option in ("--vm-id", "--vm-name", "--engine", "--image",
                   "--memory-mib", "--vcpus"):
        p.add_argument(option, required=True)
    p.add_argument("--cpu-shares")
    p.add_argument("--nic", action="append")
    p.add_argument("--volume", action="append")
    p.add_argument("--pull")
    specs.add_app_arguments(p)


def mark_outgoing(args):
    from containerhooks import spec as specs
    vm_id = specs.vm_id(args.vm_id)
    with state.Lock(vm_id):
        record = state.read(vm_id)
        if record is None or not record.container_id:
            raise errors.MigrationRefused(
                vm_id=vm_id, reason="its container is not recorded on this "
                "host; power the VM off and start it again")
        record.migration = {OUTGOING: time.time()}
        state.write(vm_id, record)
    return {"vm_id": vm_id}


def prepare_incoming(args):
    """Step 2, as root: what the start will need, checked and reserved."""
    from containerhooks import appconfig
    from containerhooks import config
    from containerhooks import helper
    from containerhooks import imagepolicy
    from containerhooks import network
    from containerhooks import runtimes
    from containerhooks import spec as specs
    spec = specs.from_args(args)
    image_id = _image_id(args.image_id)
    conf = config.load()
    # The cheap checks first, then the engine, then what takes time.
    _check_volumes(spec, conf)
    imagepolicy.check(spec.image, conf)
    for nic in spec.nics:
        network.load(nic.bridge)
        if not os.path.isdir("/sys/class/net/%s" % nic.bridge):
            raise errors.NetworkError(bridge=nic.bridge,
                                      reason="no such network device on "
                                      "this host")
    eng = helper.spec_engine(conf, spec)
    # The VM's OCI runtime, as the engine offers it: a container made on
    # a runtime the engine lacks would fail only at step 5, after the
    # source let go (the VM would go Down instead of staying Up there).
    choice = runtimes.choose(conf, spec.engine, spec.runtime)
    runtimes.check_served(choice, eng)
    _check_same_runtime(spec, choice, eng, args.source_runtime)
    with state.Lock(spec.vm_id) as lock:
        old = state.read(spec.vm_id)
        if old is not None and INCOMING not in (old.migration or {}):
            raise errors.MigrationRefused(
                vm_id=spec.vm_id, reason="this host has a container "
                "recorded for it already (vdsm-containers ps)")
        try:
            appconfig.create_options(spec.app, conf)
            run = helper.ensure_image(eng, spec, conf)
            have = run if run == image_id else eng.image_id(run)
            if have != image_id:
                raise errors.MigrationRefused(
                    vm_id=spec.vm_id, reason="image %s is %s on this host, "
                    "but the container runs %s on the source; make the "
                    "same image available here" % (spec.image, have,
                                                   image_id))
            record = state.Record(
                vm_id=spec.vm_id, vm_name=spec.vm_name, engine=eng.name,
                image=str(spec.image), container_id=None,
                container_name=None, memory_mib=spec.memory_mib,
                vcpus=spec.vcpus, created=time.time(), ips=[], nics=[],
                volumes=[], migration={INCOMING: time.time()})
            if spec.guest_agent:
                # The watcher serves the agent from now on: Vdsm connects
                # when the domain has arrived, before
                # after_vm_migrate_destination runs (vm.py
                # _completeIncomingMigration -> _domDependentInit ->
                # _vmDependentInit -> GuestAgent.start).
                record.guest_agent = True

            def reserve(ips):
                record.ips = ips
                state.write(spec.vm_id, record)

            reserve([])
            network.plan(eng, spec, reserve)
        except BaseException:
            _drop_reservation(spec.vm_id, lock)
            raise
    log.info("vm_id=%s incoming migration: image %s, addresses %s "
             "reserved", spec.vm_id, image_id, record.ips)
    return record.to_dict()


def start_incoming(args):
    """Step 5, as root: wait for the source, start; or take the VM down."""
    from containerhooks import config
    from containerhooks import exits
    from containerhooks import health
    from containerhooks import helper
    from containerhooks import spec as specs
    spec = specs.from_args(args)
    image_id = _image_id(args.image_id)
    hook_pid = _pid(args.hook_pid)
    began = time.time()
    try:
        conf = config.load()
        with state.Lock(spec.vm_id) as lock:
            record = state.read(spec.vm_id)
            if record is None or INCOMING not in (record.migration or {}):
                raise errors.MigrationFailed(
                    vm_id=spec.vm_id, reason="nothing was prepared for it "
                    "here (before_vm_migrate_destination did not run or "
                    "failed)")
            try:
                eng = helper.spec_engine(conf, spec)
                waited = wait_for_source(spec, conf)
                exits.remove(spec.vm_id)
                health.remove(spec.vm_id)
                result = helper.start_prepared(eng, spec, conf,
                                               incoming=True)
                if result.get("image_id") != image_id:
                    log.warning("vm_id=%s runs image %s, the source ran %s",
                                spec.vm_id, result.get("image_id"),
                                image_id)
            except BaseException:
                _drop_reservation(spec.vm_id, lock)
                raise
    except errors.Error as e:
        _take_down(spec.vm_id, e.fields.get("reason") if isinstance(
            e, errors.MigrationFailed) else str(e), hook_pid)
        raise
    except Exception as e:
        _take_down(spec.vm_id, "%s: %s" % (type(e).__name__, e), hook_pid)
        raise
    result["waited"] = waited
    log.info("vm_id=%s incoming migration: container started %.3f s after "
             "the request (waited %.3f s for the source)", spec.vm_id,
             time.time() - began, waited)
    return result


def fail_incoming(args):
    """The destination's hook could not even ask for a start."""
    from containerhooks import spec as specs
    vm_id = specs.vm_id(args.vm_id)
    reason = " ".join(args.reason.split())[:500]
    with state.Lock(vm_id) as lock:
        _drop_reservation(vm_id, lock)
    _take_down(vm_id, reason, _pid(args.hook_pid))
    return {"vm_id": vm_id}


def _drop_reservation(vm_id, lock):
    """Remove vm_id's incoming reservation (and its lock file), if that is
    what its record still is: a start that failed half-way keeps the
    record of what it could not remove (helper._start), for the destroy
    hooks that follow the VM's end."""
    try:
        record = state.read(vm_id)
    except errors.StateError:
        return
    if record is None or INCOMING in (record.migration or {}):
        if record is not None:
            state.remove_file(state.path(vm_id))
        lock.release(remove=True)


def _check_same_runtime(spec, choice, eng, source):
    """Refuse a container that would run on another OCI runtime here than
    on the source (source: the runtime its placeholder records, None from
    a version that recorded none).  A VM that names no containerRuntime
    runs on each host's default: a host whose default is runsc and one
    whose default is runc would silently take the VM out of gVisor's
    sandbox (or into it, with its limits) on a Migrate button.  The
    recorded name comes from the vdsm user's hook, checked here as
    containerRuntime is; it can only refuse."""
    from containerhooks import properties
    from containerhooks import runtimes
    if not source:
        return
    source = properties.parse_runtime(source)
    here = choice.name or runtimes.runtime_name(eng.default_runtime())
    if here and here != source:
        raise errors.MigrationRefused(
            vm_id=spec.vm_id, reason="its container runs on %s on the "
            "source and would run on %s here (this host's default for %s "
            "VMs that set no containerRuntime); set containerRuntime=%s on "
            "the VM, or give the hosts the same %s_default_runtime"
            % (source, here, spec.engine, source, spec.engine)
            if not spec.runtime else "its container runs on %s on the "
            "source, not on %s, its containerRuntime" % (source, here))


def _image_id(value):
    if not value.startswith("sha256:") or len(value) != 71 \
            or not all(c in "0123456789abcdef" for c in value[7:]):
        raise errors.InvalidDomain(reason="bad image id %r" % (value,))
    return value


def _pid(value):
    try:
        pid = int(value)
    except ValueError:
        pid = 0
    if pid < 2:
        raise errors.InvalidDomain(reason="bad hook pid %r" % (value,))
    return pid


def _check_volumes(spec, conf):
    """The volumes' sources, as a start checks them (a raw image Vdsm
    prepared, under storage_roots), without looking at who uses them:
    the source host does, until step 4."""
    from containerhooks import hostdisk
    for volume in spec.volumes:
        if volume.kind != "file":
            raise errors.MigrationRefused(
                vm_id=spec.vm_id, reason="its volume %s is on block "
                "storage, which no lock protects across hosts"
                % volume.disk)
        hostdisk.check_source(volume, conf)


# Waiting for the source

def wait_for_source(spec, conf, clock=_monotonic, sleep=time.sleep):
    """Return once the source host has let go of the VM's container (the
    seconds waited); MigrationFailed after conf.migration_wait seconds."""
    deadline = clock() + conf.migration_wait
    began = clock()
    files = [v for v in spec.volumes if v.kind == "file"]
    if files:
        _wait_for_locks(spec, files, conf, deadline, clock, sleep)
    elif spec.nics:
        _wait_for_silence(spec, deadline, clock, sleep)
    return clock() - began


def _wait_for_locks(spec, volumes, conf, deadline, clock, sleep):
    from containerhooks import disklock
    from containerhooks import hostdisk
    for volume in volumes:
        fd = hostdisk.check_source(volume, conf, keep_open=True)
        try:
            while disklock.holder(fd, readers=True) is not None:
                if clock() > deadline:
                    raise errors.MigrationFailed(
                        vm_id=spec.vm_id, reason="disk %s is still mounted "
                        "by the source host after %d s (its image lock is "
                        "held); see the source host's log, and raise "
                        "migration_wait in containers.conf if its "
                        "container takes longer to stop" % (
                            volume.disk, conf.migration_wait))
                sleep(POLL_INTERVAL)
        finally:
            os.close(fd)


def _wait_for_silence(spec, deadline, clock, sleep):
    for nic in spec.nics:
        while answers(nic.bridge, nic.ip):
            if clock() > deadline:
                raise errors.MigrationFailed(
                    vm_id=spec.vm_id, reason="address %s still answers on "
                    "bridge %s: the source host's container did not stop "
                    "in time; see the source host's log" % (nic.ip,
                                                            nic.bridge))
            sleep(POLL_INTERVAL)


# ARP probes (RFC 5227): "who has IP?" from sender address 0.0.0.0, which
# every Linux stack answers for an address it holds (net/ipv4/arp.c
# arp_process, the duplicate address detection case).

PROBES = 2
PROBE_WAIT = 0.15
_ETH_P_ARP = 0x0806
_IP_BIN = "ip"


def answers(bridge, ip, probes=PROBES, wait=PROBE_WAIT):
    """Whether anything on bridge answers ARP for ip.

    Asked from a macvlan interface of its own on the bridge, in bridge
    mode, without an address: the containers' interfaces are macvlans of
    the bridge too, and a bridge's own sockets never reach its macvlans
    (nor would a host address on the bridge be welcome)."""
    import binascii
    import socket
    import struct
    from containerhooks import commands
    name = "vhcp" + binascii.hexlify(os.urandom(5)).decode("ascii")
    commands.run([_IP_BIN, "link", "add", "link", bridge, "name", name,
                  "type", "macvlan", "mode", "bridge"])
    try:
        _quiet_ipv6(name)
        commands.run([_IP_BIN, "link", "set", name, "up"])
        with open("/sys/class/net/%s/address" % name) as f:
            mac = binascii.unhexlify(f.read().strip().replace(":", ""))
        target = socket.inet_aton(ip)
        frame = (b"\xff" * 6 + mac + struct.pack("!H", _ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
                 + mac + b"\0" * 4 + b"\0" * 6 + target)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                             socket.htons(_ETH_P_ARP))
        try:
            sock.bind((name, _ETH_P_ARP))
            for _ in range(probes):
                sock.send(frame)
                end = _monotonic() + wait
                while True:
                    left = end - _monotonic()
                    if left <= 0:
                        break
                    sock.settimeout(left)
                    try:
                        data = sock.recv(128)
                    except socket.timeout:
                        break
                    # An ARP reply (op 2) whose sender address is ip.
                    if len(data) >= 42 and data[12:14] == b"\x08\x06" \
                            and data[20:22] == b"\x00\x02" \
                            and data[28:32] == target:
                        return True
            return False
        finally:
            sock.close()
    finally:
        commands.run([_IP_BIN, "link", "del", name])


def _quiet_ipv6(name):
    # No IPv6 link-local address, router solicitation or DAD from the
    # probe's interface.
    try:
        with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % name,
                  "w") as f:
            f.write("1")
    except (IOError, OSError):
        pass


# Taking a VM down on the destination

def _take_down(vm_id, reason, hook_pid):
    """Leave Engine the reason (an exit record, which the stats hooks show
    as the Down VM's exit message) and kill the placeholder's qemu once the
    hook process hook_pid has returned to Vdsm."""
    from containerhooks import exits
    message = ("migration to this host failed after the VM moved: %s; its "
               "container was stopped on the source host and could not "
               "start here: start the VM again" % reason)
    try:
        exits.write(exits.record(vm_id, None, text=message))
    except (IOError, OSError) as e:
        log.error("vm_id=%s cannot write the exit record: %s", vm_id, e)
    log.error("vm_id=%s %s; taking the VM down", vm_id, message)
    _kill_placeholder_later(vm_id, hook_pid)


def _kill_placeholder_later(vm_id, hook_pid):
    """In a process of its own (detached: the hook's pipes to Vdsm closed,
    so that Vdsm does not wait for it), wait for hook_pid to end, give
    Vdsm TAKE_DOWN_GRACE seconds to set the VM Up, then kill the VM's
    placeholder qemu (the one libvirt's pid file names, checked again
    right before: procfs.kill)."""
    from containerhooks import procfs
    watched = procfs.start_time(hook_pid)
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # Nothing of the request either (the helper service's connection:
        # the hook waits for it to close).  Logging opens its own again.
        os.closerange(3, 65536)
        root = logging.getLogger("containerhooks")
        for handler in list(root.handlers):
            root.removeHandler(handler)
        hookenv.setup_logging()
        deadline = _monotonic() + HOOK_WAIT
        while watched is not None and _monotonic() < deadline \
                and procfs.start_time(hook_pid) == watched:
            time.sleep(POLL_INTERVAL)
        time.sleep(TAKE_DOWN_GRACE)
        qemu = procfs.find_qemu_process(vm_id)
        if qemu is not None:
            procfs.kill(qemu)
            log.info("vm_id=%s killed the placeholder's qemu process %d",
                     vm_id, qemu.pid)
        else:
            log.info("vm_id=%s no placeholder runs any more", vm_id)
    except BaseException:
        log.exception("vm_id=%s taking the VM down failed", vm_id)
    finally:
        os._exit(0)
