"""Reading the libvirt domain XML that Vdsm hands to the hooks.

Declarative accessors for the few things the package reads, and the
package's own metadata element, which carries what later hooks need (engine,
image, container name, the VM's real size) through the domain's whole life:
Vdsm rewrites only its own ovirt-vm metadata, so ours survives in the XML
that after_vm_destroy receives.
"""

import base64
import binascii
import collections
import json
import logging
import re

import six
from lxml import etree

from containerhooks import errors
from containerhooks import spec as specs

log = logging.getLogger("containerhooks.domxml")

OVIRT_VM_NS = "http://ovirt.org/vm/1.0"
CONTAINERS_NS = "http://ovirt.org/vdsm-hook-containers/1.0"

_UNITS = {
    "b": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000 ** 2, "m": 1024 ** 2, "mib": 1024 ** 2,
    "gb": 1000 ** 3, "g": 1024 ** 3, "gib": 1024 ** 3,
    "tb": 1000 ** 4, "t": 1024 ** 4, "tib": 1024 ** 4,
}

Disk = collections.namedtuple(
    "Disk", "target, device, type, source, format, shareable, readonly, "
    "element")

Interface = collections.namedtuple(
    "Interface", "mac, bridge, alias, element")

# Engine's Initial Run (cloud-init) payload: a CD-ROM whose files Engine
# sends in the domain XML's metadata, base64-encoded, and Vdsm writes into
# an ISO9660 image labelled with its volId (see cloud_init_fqdn).
CLOUD_INIT_VOLUME = "config-2"
CLOUD_INIT_META_DATA = "openstack/latest/meta_data.json"
# The most base64 text of meta_data.json read: Engine's for an Initial Run
# is well under 4 KiB (a few SSH keys the most of it); more is not Engine's.
MAX_META_DATA_BASE64 = 64 * 1024
_BASE64_RE = re.compile(r"\A(?:[A-Za-z0-9+/]{4})*"
                        r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_XML_SPACE_RE = re.compile(r"[ \t\r\n]+")

# Where Engine binds a VM's serial console for ovirt-vmconsole:
# LibvirtVmXmlBuilder.getSerialConsolePath writes
# "/var/run/ovirt-vmconsole-console/<vm id>.sock" into a <console
# type="unix"> (writeConsole) and a <serial type="unix"> (writeSerialConsole)
# when the console device's specParams say enableSocket (VmDeviceUtils
# getConsoleDeviceSpecParams: always, for "Enable VirtIO serial console").
# The XML's form; where the watcher serves it is paths.VMCONSOLE_DIR.
ENGINE_VMCONSOLE_DIR = "/var/run/ovirt-vmconsole-console"
CONSOLE_DEVICES = ("console", "serial")

# What the package stores in its metadata element.
# nics: the MACs of the vNICs the container got (the placeholder sets every
# link down, so a restored placeholder could not tell them apart).
# console: whether the VM has Engine's serial console (the placeholder's
# console is a pty then, so a restored placeholder could not tell).
ContainerMeta = collections.namedtuple(
    "ContainerMeta", "engine, image, name, memory_kib, vcpus, nics, console")
ContainerMeta.__new__.__defaults__ = (False,)


class Domain(object):

    def __init__(self, root):
        if root.tag != "domain":
            raise errors.InvalidDomain(
                reason="root element is <%s>, not <domain>" % root.tag)
        self.root = root

    @classmethod
    def parse(cls, data):
        parser = etree.XMLParser(resolve_entities=False, no_network=True,
                                 remove_blank_text=False)
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as e:
            raise errors.InvalidDomain(reason="malformed XML: %s" % e)
        return cls(root)

    def tostring(self):
        return etree.tostring(self.root, encoding="utf-8",
                              xml_declaration=False)

    # Identity

    @property
    def uuid(self):
        return self._text("uuid")

    @property
    def name(self):
        return self._text("name")

    # Size

    def memory_kib(self):
        """The VM's memory (the <memory> element), in KiB."""
        return kib(self._element("memory"))

    def vcpus(self):
        """The number of vCPUs the VM starts with."""
        vcpu = self._element("vcpu")
        try:
            return int(vcpu.get("current") or vcpu.text)
        except (TypeError, ValueError):
            raise errors.InvalidDomain(reason="bad <vcpu> element")

    def cpu_shares(self):
        shares = self.root.find("cputune/shares")
        if shares is None:
            return None
        try:
            return int(shares.text)
        except (TypeError, ValueError):
            raise errors.InvalidDomain(reason="bad <cputune><shares>")

    # Devices

    def watchdog_action(self):
        """What the VM's watchdog device does when it fires
        (health.ACTIONS), or None when the VM has none."""
        from containerhooks import health
        device = self.root.find("devices/watchdog")
        if device is None:
            return None
        return health.parse_action(device.get("action"))

    def console_devices(self):
        """The <console> and <serial> elements Engine binds at the VM's
        serial console socket (ENGINE_VMCONSOLE_DIR/<vm id>.sock, the path
        made from the domain's own uuid: another path is not Engine's
        console and is left alone)."""
        wanted = "%s/%s.sock" % (ENGINE_VMCONSOLE_DIR, self.uuid.lower())
        found = []
        for tag in CONSOLE_DEVICES:
            for el in self.root.iterfind("devices/" + tag):
                source = el.find("source")
                if el.get("type") == "unix" and source is not None and \
                        (source.get("path") or "").lower() == wanted:
                    found.append(el)
        return found

    def channel_source(self, name):
        """The <source> element of the unix channel whose target is name
        and whose socket qemu binds (Engine's guest agent channels,
        LibvirtVmXmlBuilder.writeGuestAgentChannels), or None."""
        for channel in self.root.iterfind("devices/channel"):
            target, source = channel.find("target"), channel.find("source")
            if channel.get("type") == "unix" and target is not None \
                    and target.get("name") == name and source is not None \
                    and source.get("mode", "bind") == "bind":
                return source
        return None

    def disks(self):
        result = []
        for disk in self.root.iterfind("devices/disk"):
            target = disk.find("target")
            source = disk.find("source")
            driver = disk.find("driver")
            src = None
            if source is not None:
                src = source.get("file") or source.get("dev")
            result.append(Disk(
                target=target.get("dev") if target is not None else None,
                device=disk.get("device", "disk"),
                type=disk.get("type"),
                source=src,
                format=driver.get("type") if driver is not None else None,
                shareable=disk.find("shareable") is not None,
                readonly=disk.find("readonly") is not None,
                element=disk,
            ))
        return result

    def interfaces(self):
        result = []
        for nic in self.root.iterfind("devices/interface"):
            mac = nic.find("mac")
            source = nic.find("source")
            alias = nic.find("alias")
            result.append(Interface(
                mac=mac.get("address") if mac is not None else None,
                bridge=source.get("bridge") if source is not None else None,
                alias=alias.get("name") if alias is not None else None,
                element=nic,
            ))
        return result

    # Metadata

    def custom_properties(self):
        """The VM custom properties from <ovirt-vm:custom> (Vdsm 4.2+)."""
        custom = self.root.find(
            "metadata/{%s}vm/{%s}custom" % (OVIRT_VM_NS, OVIRT_VM_NS))
        if custom is None:
            return {}
        return dict(
            (etree.QName(e).localname, e.text or "")
            for e in custom if isinstance(e.tag, six.string_types)
        )

    def disk_ids(self, target):
        """(domain id, image id, volume id) that Vdsm's metadata records
        for the disk of that target, or None if it records none.

        Vdsm keys a disk's <ovirt-vm:device devtype="disk"> by the drive's
        name, its target (virt/vm.py updateDriveParameters); domainID,
        imageID and volumeID are what it prepared (clientIF.py
        prepareVolumePath).
        """
        for dev in self.root.iterfind(
                "metadata/{%s}vm/{%s}device" % (OVIRT_VM_NS, OVIRT_VM_NS)):
            if dev.get("devtype") != "disk" or dev.get("name") != target:
                continue
            ids = tuple((dev.findtext("{%s}%s" % (OVIRT_VM_NS, tag)) or "")
                        .strip() for tag in ("domainID", "imageID",
                                              "volumeID"))
            return ids if all(ids) else None
        return None

    def cloud_init_fqdn(self):
        """The FQDN Engine's Initial Run (cloud-init) gives the VM, or None:
        the "hostname" of the meta_data.json in the payload metadata, as
        spec.as_fqdn() writes it.

        Engine writes the payload CD-ROM's files under its
        <ovirt-vm:device devtype="disk" name="hdd"> (sdb on q35), in
        <ovirt-vm:payload>, as
        <ovirt-vm:volId>config-2</ovirt-vm:volId> and one
        <ovirt-vm:file path="...">BASE64</ovirt-vm:file> per file
        (ovirt-engine LibvirtVmXmlBuilder.writePayloadMetadata;
        VmInfoBuildUtils.createCloudInitPayloadDevice encodes them with
        commons-codec Base64(0): standard alphabet, padded, no line
        breaks; CloudInitHandler.storeHostname puts the Initial Run's
        hostname in meta_data.json as "hostname" and "name").  Vdsm passes
        that metadata on to before_vm_start as Engine wrote it
        (virt/vm.py Vm._buildDomainXML changes devices only), and makes
        the guest's ISO from it: base64.b64decode of each file
        (mkimage.py _decodeFilesIntoDir, mkIsoFs with the volId as the
        label, which cloud-init's ConfigDrive source looks for).

        Anything else is no FQDN: no such payload, a meta_data.json
        without "hostname" (Ignition keeps its hostname elsewhere, in
        user_data), or one that is not what Engine writes (more than
        MAX_META_DATA_BASE64 characters, not base64, not UTF-8 JSON, a
        hostname that is not a host name).  The last ones are logged: an
        admin's typo in the Initial Run hostname must not keep the VM
        from starting, it runs with its own name as the hostname.
        """
        text = self._payload_file(CLOUD_INIT_VOLUME, CLOUD_INIT_META_DATA)
        if text is None:
            return None
        try:
            meta = _decode_json(text)
        except ValueError as e:
            log.warning("vm_id=%s ignoring the Initial Run's %s: %s",
                        self.uuid, CLOUD_INIT_META_DATA, e)
            return None
        value = meta.get("hostname") if isinstance(meta, dict) else None
        if value is None or value == "":
            return None
        fqdn = specs.as_fqdn(value)
        if fqdn is None:
            log.warning("vm_id=%s ignoring the Initial Run's hostname %r: "
                        "not a host name (labels of 1-63 letters, digits "
                        "or '-' separated by '.', %d characters at most); "
                        "the container is named after the VM", self.uuid,
                        value[:specs.FQDN_MAX + 2]
                        if isinstance(value, six.string_types)
                        else type(value).__name__, specs.FQDN_MAX)
        return fqdn

    def _payload_file(self, volume, path):
        """The text of the payload file path of the payload volume, as in
        the XML (base64), or None."""
        ns = {"o": OVIRT_VM_NS}
        for payload in self.root.iterfind(
                "metadata/o:vm/o:device/o:payload", ns):
            if payload.getparent().get("devtype") != "disk" or \
                    payload.findtext("o:volId", "", ns).strip() != volume:
                continue
            for f in payload.iterfind("o:file", ns):
                if f.get("path") == path:
                    return f.text or ""
        return None

    def container_meta(self):
        """The package's metadata, or None for a domain that has none."""
        meta = self.root.find("metadata/{%s}container" % CONTAINERS_NS)
        if meta is None:
            return None
        values = dict((etree.QName(e).localname, e.text) for e in meta
                      if isinstance(e.tag, six.string_types))
        try:
            return ContainerMeta(
                engine=values["engine"], image=values["image"],
                name=values["name"], memory_kib=int(values["memory"]),
                vcpus=int(values["vcpus"]),
                nics=[m for m in (values.get("nics") or "").split(",") if m],
                console=values.get("console") == "true")
        except (KeyError, TypeError, ValueError) as e:
            raise errors.InvalidDomain(
                reason="incomplete containers metadata (%s)" % e)

    def set_container_meta(self, meta):
        metadata = self.root.find("metadata")
        if metadata is None:
            metadata = etree.Element("metadata")
            # libvirt wants <metadata> before the devices; after <uuid> is
            # as early as any domain has it.
            self._element("uuid").addnext(metadata)
        old = metadata.find("{%s}container" % CONTAINERS_NS)
        if old is not None:
            metadata.remove(old)
        el = etree.SubElement(metadata, "{%s}container" % CONTAINERS_NS,
                              nsmap={"containers": CONTAINERS_NS})
        for tag, value in (("engine", meta.engine), ("image", meta.image),
                           ("name", meta.name),
                           ("memory", meta.memory_kib),
                           ("vcpus", meta.vcpus),
                           ("nics", ",".join(meta.nics))) + (
                               (("console", "true"),) if meta.console
                               else ()):
            child = etree.SubElement(el, "{%s}%s" % (CONTAINERS_NS, tag))
            child.text = str(value) or None
            if tag == "memory":
                child.set("unit", "KiB")

    # Helpers

    def _element(self, path):
        el = self.root.find(path)
        if el is None:
            raise errors.InvalidDomain(reason="no <%s> element" % path)
        return el

    def _text(self, path):
        return (self._element(path).text or "").strip()


def kib(element):
    """The size an element such as <memory unit='MiB'> gives, in KiB."""
    unit = element.get("unit", "KiB").lower()
    try:
        return int(element.text) * _UNITS[unit] // 1024
    except (KeyError, TypeError, ValueError):
        raise errors.InvalidDomain(
            reason="bad size in <%s unit=%r>" % (element.tag, unit))


def _decode_json(text):
    """The JSON object in text, base64 of UTF-8 JSON; ValueError saying
    what is wrong."""
    if len(text) > MAX_META_DATA_BASE64:
        raise ValueError("%d characters of base64, more than %d"
                         % (len(text), MAX_META_DATA_BASE64))
    # Whitespace only between the characters, as base64.b64decode (Vdsm's)
    # skips it; anything else outside the alphabet is not Engine's.
    compact = _XML_SPACE_RE.sub("", text)
    if not _BASE64_RE.match(compact):
        raise ValueError("not base64")
    try:
        data = base64.b64decode(compact.encode("ascii"))
        return json.loads(data.decode("utf-8"))
    except (binascii.Error, TypeError, UnicodeError) as e:
        raise ValueError("not UTF-8 JSON (%s)" % e)
    except RuntimeError:
        # Python's JSON decoder recursing into "[[[[...": RecursionError
        # (Python 3), RuntimeError (2.7).
        raise ValueError("JSON nested too deeply")
