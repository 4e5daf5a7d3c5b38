"""Domain XML for the integration tests, made from tests/data files.

A test VM is a realistic Vdsm domain XML with its uuid, name and custom
properties set (in <ovirt-vm:custom>, whose leaves Vdsm also passes as the
hook environment, tests/vdsm.py).  VM.xml is kept in the shape Vdsm gives
before_vm_start (vdsm.build_domain_xml), so that a test can compare what a
hook left with it byte for byte; VM.engine_xml is Engine's text, for the
few values that Vdsm's re-serialization changes (a "\r").
"""

import os
import uuid as uuidlib

from lxml import etree

import vdsm

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
OVIRT_VM = "http://ovirt.org/vm/1.0"


class VM(object):
    """One test VM: its id, name, custom properties, memory (MiB) and
    domain XML, made from base (any tests/data/*-in.xml); with an Initial
    Run that sets cloud_init_hostname when that is given."""

    def __init__(self, custom, base="vm-lifecycle.xml", name=None,
                 memory_mib=None, vcpus=None, vm_id=None,
                 cloud_init_hostname=None):
        self._args = dict(base=base, memory_mib=memory_mib, vcpus=vcpus,
                          cloud_init_hostname=cloud_init_hostname)
        self.id = vm_id or str(uuidlib.uuid4())
        self.name = name or "vm-" + self.id[:8]
        self.custom = dict(custom)
        with open(os.path.join(DATA, base), "rb") as f:
            root = etree.fromstring(f.read())
        # The base's uuid also names its sockets and is in its SMBIOS
        # (libvirt refuses a <sysinfo> uuid that is not the domain's).
        base_id = root.findtext("uuid")
        root.find("uuid").text = self.id
        root.find("name").text = self.name
        for dev in ("channel", "console", "serial"):
            for source in root.iterfind("devices/%s/source" % dev):
                path = source.get("path")
                if path:
                    source.set("path", path.replace(base_id, self.id))
        for entry in root.iterfind("sysinfo/system/entry[@name='uuid']"):
            entry.text = self.id
        if memory_mib is not None:
            for tag in ("memory", "currentMemory"):
                root.find(tag).text = str(memory_mib * 1024)
                root.find(tag).set("unit", "KiB")
            for cell in root.iterfind("cpu/numa/cell"):
                cell.set("memory", str(memory_mib * 1024))
        if vcpus is not None:
            root.find("vcpu").set("current", str(vcpus))
        custom_el = root.find("metadata/{%s}vm/{%s}custom"
                              % (OVIRT_VM, OVIRT_VM))
        for key, value in sorted(self.custom.items()):
            # A base may set the property already (the goldens do).
            tag = "{%s}%s" % (OVIRT_VM, key)
            el = custom_el.find(tag)
            if el is None:
                el = etree.SubElement(custom_el, tag)
            el.text = value
        self.memory_mib = int(root.findtext("memory")) // 1024
        # engine_xml: as Engine sends it; xml: as Vdsm passes it on.
        self.engine_xml = etree.tostring(root, encoding="unicode")
        if cloud_init_hostname is not None:
            # An Initial Run setting the hostname (tests/vdsm.py).
            self.engine_xml = vdsm.with_payload(
                self.engine_xml, vdsm.cloud_init_files(cloud_init_hostname))
        self.xml = vdsm.build_domain_xml(self.engine_xml)

    def edited(self, **custom):
        """The same VM (id, name, base) after an admin changed custom
        properties in Engine (a value None removes the property)."""
        values = dict(self.custom, **custom)
        values = dict((k, v) for k, v in values.items() if v is not None)
        return VM(values, name=self.name, vm_id=self.id, **self._args)


def container_vm(engine, image, **kw):
    return VM({"containerType": engine, "containerImage": image}, **kw)


# Engine's channels directory (LibvirtVmXmlBuilder.writeGuestAgentChannels)
ENGINE_CHANNELS_DIR = "/var/lib/libvirt/qemu/channels/"


def with_channels_dir(vm, directory):
    """vm as Engine would write it if its channels directory were
    directory (a private installation's VM_CHANNELS_DIR): where Vdsm
    connects to the guest agent, and the hook expects to find it."""
    for attr in ("engine_xml", "xml"):
        text = getattr(vm, attr)
        assert ENGINE_CHANNELS_DIR in text, "the VM has no channel"
        setattr(vm, attr, text.replace(ENGINE_CHANNELS_DIR,
                                       directory.rstrip("/") + "/"))
    return vm


# Disks, for the volumeMap tests

def disk(target, source, kind="file", fmt="raw", bus=None, device="disk",
         shareable=False, readonly=False):
    """A <disk> element as Vdsm builds it for a prepared disk.

    kind "file": an image on a file storage domain (<source file>); kind
    "block": a device on a block storage domain (<source dev>).  bus: from
    the target's name when not given (vd: virtio, sd: scsi, hd: ide).
    """
    if bus is None:
        bus = {"vd": "virtio", "sd": "scsi", "hd": "ide"}[target[:2]]
    el = etree.Element("disk", type=kind, device=device, snapshot="no")
    etree.SubElement(el, "target", dev=target, bus=bus)
    if source is not None:
        src = etree.SubElement(el, "source",
                               **{"file" if kind == "file" else "dev": source})
        etree.SubElement(src, "seclabel", model="dac", relabel="no",
                         type="none")
    etree.SubElement(el, "driver", name="qemu", type=fmt, cache="none",
                     error_policy="stop",
                     io="threads" if kind == "file" else "native")
    if shareable:
        etree.SubElement(el, "shareable")
    if readonly:
        etree.SubElement(el, "readonly")
    etree.SubElement(el, "alias", name="ua-" + str(uuidlib.uuid4()))
    if device == "disk":
        etree.SubElement(el, "serial").text = str(uuidlib.uuid4())
    return el


def add_disks(vm, *disks):
    """Give vm these disks (elements from disk()), after its devices."""
    root = etree.fromstring(vm.xml.encode("utf-8"))
    devices = root.find("devices")
    for el in disks:
        devices.append(el)
    vm.xml = vdsm.build_domain_xml(etree.tostring(root))
    return vm


# vNICs, for the networking tests

def add_nics(vm, nics):
    """Give a test VM vNICs as Engine does: (mac, bridge[, link state[,
    virtualport type]])."""
    root = etree.fromstring(vm.xml.encode("utf-8"))
    devices = root.find("devices")
    for i, nic in enumerate(nics):
        mac, bridge = nic[:2]
        el = etree.SubElement(devices, "interface", type="bridge")
        etree.SubElement(el, "model", type="virtio")
        etree.SubElement(el, "link", state=nic[2] if len(nic) > 2 else "up")
        etree.SubElement(el, "source", bridge=bridge)
        etree.SubElement(el, "mac", address=mac)
        etree.SubElement(el, "filterref", filter="vdsm-no-mac-spoofing")
        if len(nic) > 3:
            etree.SubElement(el, "virtualport", type=nic[3])
        etree.SubElement(el, "alias", name="ua-" + str(uuidlib.uuid4()))
    vm.xml = vdsm.build_domain_xml(etree.tostring(root))
    return vm


# Engine's serial console, for the console tests

def add_serial_console(vm):
    """Give vm the serial console as Engine writes it for "Enable VirtIO
    serial console" (LibvirtVmXmlBuilder writeConsole and
    writeSerialConsole, the device's specParams enableSocket=true and
    consoleType=serial, VmDeviceUtils.getConsoleDeviceSpecParams): a
    <console> and a <serial> of type unix bound at
    /var/run/ovirt-vmconsole-console/<vm id>.sock, the console with the
    device's alias.  A base that has them already (no-nic-in.xml) keeps
    its own."""
    path = "/var/run/ovirt-vmconsole-console/%s.sock" % vm.id
    root = etree.fromstring(vm.xml.encode("utf-8"))
    devices = root.find("devices")
    if any(s.get("path") == path for s in devices.iterfind("console/source")):
        return vm
    console = etree.SubElement(devices, "console", type="unix")
    etree.SubElement(console, "source", path=path, mode="bind")
    etree.SubElement(console, "target", type="serial", port="0")
    etree.SubElement(console, "alias", name="ua-" + str(uuidlib.uuid4()))
    serial = etree.SubElement(devices, "serial", type="unix")
    etree.SubElement(serial, "source", path=path, mode="bind")
    etree.SubElement(serial, "target", port="0")
    vm.xml = vdsm.build_domain_xml(etree.tostring(root))
    return vm
