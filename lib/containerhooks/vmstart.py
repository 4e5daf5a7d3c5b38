"""before_vm_start: turn a container VM into a placeholder plus a container.

The hook gets the domain XML Vdsm built from Engine's VM (disks already
prepared).  For a VM without containerType it does nothing at all, without
even parsing the XML.  For a container VM it validates the properties,
computes the placeholder XML in memory (prepare), has the root helper start
the container, and only then replaces the XML; if that last step fails, the
container is removed again.  On any failure the hook exits 2 with one line
that becomes the VM's exit message in Engine, and leaves nothing behind.
"""

import collections
import logging
import os

from containerhooks import hookenv
from containerhooks import properties

log = logging.getLogger("containerhooks.vmstart")

Plan = collections.namedtuple("Plan", "spec, xml")


def main():
    hookenv.run(before_vm_start, failure_rc=hookenv.ERROR_STOP)


def before_vm_start(env):
    data = hookenv.read_data(env, hookenv.DOMXML)
    if not properties.may_be_container(env, data):
        return
    from containerhooks import config
    plan = prepare(env, data, config.load())
    if plan is None:
        return
    from containerhooks import privileged
    spec = plan.spec
    log.info("vm_id=%s starting %s container from %s", spec.vm_id,
             spec.engine, spec.image)
    record = privileged.start(spec)
    try:
        # What a migration's destination needs to know of the container
        # (migration.py), which only the XML carries to another host.
        from containerhooks import migration
        hookenv.replace_data(env, hookenv.DOMXML,
                             migration.with_start_facts(plan.xml, record))
    except Exception:
        log.exception("vm_id=%s cannot write the placeholder XML, removing "
                      "the container", spec.vm_id)
        privileged.stop(spec.vm_id, spec.engine)
        raise
    if spec.guest_agent:
        _wait_for_agent(spec.vm_id)


def _wait_for_agent(vm_id):
    """Vdsm looks for the guest agent's socket once, right after the
    domain started (vm.py _vmDependentInit, GuestAgent.start,
    prepareVmChannel stats it): have the watcher's there by then."""
    from containerhooks import guestagent
    from containerhooks import state
    if not os.path.exists(state.watcher_status_path()):
        log.warning("vm_id=%s the exit watcher does not run: Engine's "
                    "Shutdown and Reboot will not reach the container", vm_id)
    elif not guestagent.wait_served(vm_id):
        log.warning("vm_id=%s the exit watcher did not serve the guest "
                    "agent within %.0f s: Engine's Shutdown and Reboot may "
                    "not reach the container", vm_id, guestagent.SERVE_WAIT)


def prepare(env, data, conf, kernel=None):
    """Validate a VM and compute its placeholder XML, changing nothing.

    Returns a Plan (the container spec and the new XML), or None when the
    VM is not a container.
    """
    # Heavier imports only for VMs that may be containers.
    from containerhooks import domxml
    from containerhooks import placeholder
    from containerhooks import spec as specs

    dom = domxml.Domain.parse(data)
    raw = properties.collect(env, dom.custom_properties())
    props = properties.parse(raw, conf.engines)
    if props is None:
        return None
    # Refused here already, before anything else is checked or done (the
    # helper checks again).
    from containerhooks import imagepolicy
    imagepolicy.check(props.image, conf)
    _check_runtime(raw, props, conf)
    _check_hugepages(dom)
    meta = dom.container_meta()
    props = props._replace(image=_image_disk(dom, props))
    spec = specs.from_domain(dom, props, nics=_nics(dom, props, meta),
                             volumes=_volumes(dom, props, meta))
    dom.set_container_meta(domxml.ContainerMeta(
        engine=spec.engine, image=str(spec.image),
        name=specs.container_name(spec.vm_id),
        memory_kib=meta.memory_kib if meta else dom.memory_kib(),
        vcpus=spec.vcpus, nics=[nic.mac for nic in spec.nics],
        console=spec.console))
    spec = spec._replace(
        guest_agent=placeholder.move_agent_channel(dom, spec.vm_id))
    placeholder.rewrite(dom, conf.placeholder_memory_mib, kernel=kernel,
                        readonly_disks=[v.disk for v in spec.volumes]
                        + _readonly_image_disk(dom, spec.image))
    return Plan(spec=spec, xml=dom.tostring())


def _check_runtime(raw, props, conf):
    """A containerRuntime this host does not offer is refused here already
    (the helper checks again, and asks the engine when the host lists no
    runtime)."""
    from containerhooks import runtimes
    from containerhooks import spec as specs
    runtimes.check_allowed(conf, props.engine, specs.runtime_of(raw))


# Vdsm's configuration files, in the order Vdsm reads them
# (lib/vdsm/common/config.py.in read_configs: vdsm.conf, then the drop-ins
# of these directories sorted by file name).
VDSM_CONF = "/etc/vdsm/vdsm.conf"
VDSM_DROPIN_DIRS = ("/usr/lib/vdsm/vdsm.conf.d", "/run/vdsm/vdsm.conf.d",
                    "/etc/vdsm/vdsm.conf.d")
HUGEPAGES = "hugepages"


def _check_hugepages(dom):
    """Refuse a VM with hugepages when Vdsm allocates them dynamically.

    With [performance] use_dynamic_hugepages = true, Vdsm allocates the
    VM's hugepages from its custom property hugepages and its memory
    before before_vm_start (virt/vm.py _run, _prepare_hugepages), and
    frees, when the VM ends, the count the memory of the domain that ran
    asks for (_cleanup_hugepages, nr_hugepages, mem_size_mb of the live
    XML): the placeholder's few MiB.  The rest would stay allocated, unused
    (the placeholder has no hugepage backing, the container none at all),
    after every run.  Without dynamic allocation nothing is allocated for
    the VM, and the placeholder simply drops the backing.
    """
    value = dom.custom_properties().get(HUGEPAGES)
    try:
        wanted = int(value or 0) > 0
    except ValueError:
        wanted = False      # Vdsm itself would fail on it first
    if wanted and _dynamic_hugepages():
        from containerhooks import errors
        raise errors.InvalidProperty(
            name=HUGEPAGES, value=value, reason="this host's Vdsm allocates "
            "hugepages for the VM's memory (use_dynamic_hugepages in "
            "vdsm.conf) and would free only the placeholder's, and a "
            "container does not use them: remove the hugepages custom "
            "property from this VM")


def _dynamic_hugepages():
    """Whether Vdsm's configuration sets use_dynamic_hugepages (default
    false); an unreadable configuration counts as Vdsm's default."""
    import glob
    import os
    from six.moves import configparser
    dropins = []
    for d in VDSM_DROPIN_DIRS:
        dropins.extend(glob.glob(os.path.join(d, "*.conf")))
    parser = configparser.RawConfigParser()
    try:
        parser.read([VDSM_CONF] + sorted(dropins, key=os.path.basename))
        return parser.getboolean("performance", "use_dynamic_hugepages")
    except (configparser.Error, ValueError):
        return False


def _nics(dom, props, meta):
    """The container's NICs: one per vNIC on a Linux bridge, in order.

    A vNIC whose link Engine set down (or unplugged), or on Engine's "No
    Network" profile, gets no interface, like an unplugged cable; a vNIC
    that is not on a plain Linux bridge (SR-IOV, Open vSwitch) cannot be
    given to a container, and the start is refused.  A placeholder
    already (meta) lists the MACs its container had.
    """
    from containerhooks import errors
    from containerhooks import spec as specs
    nics = []
    for nic in dom.interfaces():
        el = nic.element
        link = el.find("link")
        if meta is not None:
            if (nic.mac or "").lower() not in meta.nics:
                continue
        elif link is not None and link.get("state") == "down":
            continue
        if nic.bridge == NO_NETWORK_BRIDGE and el.get("type") == "bridge":
            continue
        _check_nic(nic)
        nics.append(specs.Nic(mac=nic.mac.lower(), bridge=nic.bridge,
                              ip=None))
    for nic, ip in zip(list(nics), props.ips):
        if ip:
            nics[nics.index(nic)] = nic._replace(ip=ip)
    if len(props.ips) > len(nics):
        raise errors.InvalidProperty(
            name=properties.CONTAINER_IP, value=",".join(props.ips),
            reason="more addresses than the VM has vNICs (%d)" % len(nics))
    return nics


# The bridge of a vNIC on Engine's "No Network" vNIC profile: Vdsm's dummy
# bridge, which connects nowhere (lib/vdsm/network/ipwrapper.py
# DUMMY_BRIDGE; vdsm-tool dummybr creates it, tool/dummybr.py).
NO_NETWORK_BRIDGE = ";vdsmdummy;"


def _check_nic(nic):
    """Refuse a vNIC no container interface can stand for, in words an
    Engine admin acts on: which vNIC, which network, what to do."""
    from containerhooks import errors
    from containerhooks import spec as specs
    el = nic.element
    name = nic.alias or "?"
    virtualport = el.find("virtualport")
    kind = virtualport.get("type") if virtualport is not None else None
    if kind == "openvswitch" or el.get("type") == "ovs":
        reason = ("it is on an Open vSwitch network (OVS or OVN, bridge "
                  "%s); containers join Linux bridge networks only: move "
                  "the vNIC to a network of a Linux bridge cluster, or "
                  "unplug it" % (nic.bridge or "?"))
    elif el.get("type") != "bridge" or virtualport is not None:
        reason = ("it is a %s vNIC (SR-IOV, direct or passthrough); "
                  "containers join Linux bridge networks only: give it a "
                  "bridged vNIC profile, or unplug it"
                  % (kind or el.get("type")))
    elif nic.bridge is None or not specs.is_bridge(nic.bridge):
        reason = ("its network's bridge %r is no Linux bridge name this "
                  "host can have; give the vNIC another network, or "
                  "unplug it" % (nic.bridge,))
    elif nic.mac is None or not specs.is_mac(nic.mac):
        reason = "it has no usable MAC address (%r)" % (nic.mac,)
    else:
        return
    raise errors.NicRefused(nic=name, mac=nic.mac or "no MAC",
                            reason=reason)


# Buses on which qemu can give the guest a read-only disk (ide-hd and
# SATA's ide-hd refuse a read-only drive).
READONLY_BUSES = ("virtio", "scsi")


def _volumes(dom, props, meta):
    """The VM disks to mount in the container, checked against the XML.

    Only a hard disk of this VM, raw, on file or block storage, used by
    this VM alone and on a bus where the placeholder can have it read-only
    (qemu must never write to a disk the host has mounted).  The helper
    checks the sources again on the host (volumes.py).  A placeholder
    already (meta) has the disks read-only because of us.
    """
    from containerhooks import errors
    from containerhooks import spec as specs
    if not props.volumes:
        return []
    disks = dict((d.target, d) for d in dom.disks() if d.target)
    value = ",".join("%s:%s" % (v.disk, v.path) for v in props.volumes)
    result = []
    for v in props.volumes:
        disk = disks.get(v.disk)
        if disk is None:
            raise errors.InvalidProperty(
                name=properties.VOLUME_MAP, value=value,
                reason="the VM has no disk %s (its disks: %s); name disks "
                "by their target as Vdsm does (vda, sda, ...)"
                % (v.disk, ", ".join(sorted(disks)) or "none"))
        reason = _unmountable(disk, meta) or _not_prepared(disk, dom)
        if reason:
            raise errors.VolumeRefused(disk=v.disk, reason=reason + (
                ", or remove %s from volumeMap" % v.disk))
        result.append(specs.VolumeSource(disk=v.disk, path=v.path,
                                         kind=disk.type,
                                         source=disk.source))
    return result


def _image_disk(dom, props):
    """props.image, and for containerImage=disk:<target> the disk's kind
    and source, checked against the XML: a hard disk of this VM, raw, on
    file or block storage, prepared by Vdsm for it (the helper checks the
    source again on the host, hostdisk.open_image_source).  Unlike a
    volume it may be read-only (better: nothing writes it) and shared
    with other VMs: it is only read, before the container exists."""
    from containerhooks import errors
    from containerhooks import imageref
    image = props.image
    if not isinstance(image, imageref.DiskImage):
        return image
    disks = dict((d.target, d) for d in dom.disks() if d.target)
    disk = disks.get(image.disk)
    if disk is None:
        raise errors.InvalidProperty(
            name=properties.CONTAINER_IMAGE, value=str(image),
            reason="the VM has no disk %s (its disks: %s); attach the disk "
            "holding the image archive, and name it by its target as Vdsm "
            "does (vdb, sda, ...)" % (image.disk,
                                      ", ".join(sorted(disks)) or "none"))
    reason = _unreadable(disk) or _not_prepared(disk, dom)
    if reason:
        raise errors.ImageDiskRefused(disk=image.disk, reason=reason)
    return image._replace(kind=disk.type, source=disk.source)


def _unreadable(disk):
    """Why disk cannot hold the image archive, or None."""
    if disk.device != "disk":
        return ("it is a %s device; attach the archive as a hard disk "
                "(uploaded as a raw disk)" % disk.device)
    if disk.type not in ("file", "block"):
        return ("it is a %s disk; only disks on file or block storage "
                "domains can be read" % disk.type)
    if not disk.source:
        return "it has no image; attach a prepared disk"
    if (disk.format or "raw") != "raw":
        return ("it is a %s image; upload the archive as a raw disk, "
                "without snapshots" % disk.format)
    return None


def _readonly_image_disk(dom, image):
    """The image disk, for the placeholder to have read-only where qemu
    can (READONLY_BUSES): nothing writes an image archive."""
    from containerhooks import imageref
    if not isinstance(image, imageref.DiskImage):
        return []
    for disk in dom.disks():
        if disk.target == image.disk and not disk.readonly:
            bus = disk.element.find("target").get("bus")
            if bus in READONLY_BUSES:
                return [image.disk]
    return []


def _not_prepared(disk, dom):
    """Why a block disk is not a volume of a storage domain, or not the
    one Vdsm's metadata names for it; or None.  The helper checks the
    device itself on the host (hostdisk.check_block_volume); this says
    early what a direct LUN is, and catches a source changed on the way
    (another hook) before anything runs as root."""
    if disk.type != "block":
        return None
    if disk.source.startswith("/dev/mapper/"):
        # clientIF.py prepareVolumePath: a direct LUN ("GUID" drive) is
        # /dev/mapper/<GUID>, a multipath device, not a volume of a domain.
        return ("it is a direct LUN (%s); only disks on storage domains can "
                "be mounted" % disk.source)
    ids = dom.disk_ids(disk.target)
    if ids is None:
        return None
    domain, image, volume = ids
    if disk.source.split("/")[-4:] == [domain, "images", image, volume]:
        return None
    return ("its source %s is not the volume Vdsm prepared for it (domain "
            "%s, image %s, volume %s in Vdsm's metadata); find what changed "
            "the domain XML" % (disk.source, domain, image, volume))


def _unmountable(disk, meta):
    """Why disk (a domxml.Disk) cannot be mounted, or None."""
    if disk.device == "cdrom":
        return "it is a CD-ROM; list hard disks only"
    if disk.device != "disk":
        return ("it is a %s device, passed through to the guest; list hard "
                "disks only" % disk.device)
    if disk.shareable:
        return ("it is shareable (attached to other VMs too); a mounted disk "
                "must be used by this VM alone: make it not shareable")
    if disk.readonly and meta is None:
        return ("it is attached read-only; volumeMap mounts disks "
                "read-write: attach it read-write")
    if disk.type not in ("file", "block"):
        return ("it is a %s disk; only disks on file or block storage "
                "domains can be mounted" % disk.type)
    if not disk.source:
        return "it has no image; attach a prepared disk"
    if (disk.format or "raw") != "raw":
        return ("it is a %s image; only raw disks can be mounted (a "
                "preallocated disk, or a thin one on file storage, without "
                "snapshots)" % disk.format)
    bus = disk.element.find("target").get("bus") or "?"
    if bus not in READONLY_BUSES:
        return ("it is on the %s bus, where qemu cannot make it read-only "
                "for the placeholder: move it to VirtIO or VirtIO-SCSI"
                % bus)
    return None
