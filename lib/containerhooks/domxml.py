"""Reading the libvirt domain XML that Vdsm hands to the hooks.

Declarative accessors for the few things the package reads, and the
package's own metadata element, which carries what later hooks need (engine,
image, container name, the VM's real size) through the domain's whole life:
Vdsm rewrites only its own ovirt-vm metadata, so ours survives in the XML
that after_vm_destroy receives.
"""

import collections

import six
from lxml import etree

from containerhooks import errors

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

# What the package stores in its metadata element.
# nics: the MACs of the vNICs the container got (the placeholder sets every
# link down, so a restored placeholder could not tell them apart).
ContainerMeta = collections.namedtuple(
    "ContainerMeta", "engine, image, name, memory_kib, vcpus, nics")


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
                nics=[m for m in (values.get("nics") or "").split(",") if m])
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
                           ("nics", ",".join(meta.nics))):
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
