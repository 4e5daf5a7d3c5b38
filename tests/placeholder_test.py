"""Golden tests of the placeholder domain XML (placeholder.py, domxml.py).

Each tests/data/<case>-in.xml is a domain XML as Vdsm 4.4/4.5 hands it to
before_vm_start (Engine's LibvirtVmXmlBuilder output after Vdsm's own
processing: prepared disk paths, filled-in sysinfo, volume chains in the
metadata), in the form Vm._buildDomainXML() writes (tests/vdsm.py
build_domain_xml: ElementTree, an XML declaration, the tune namespace as
ns0, <seclabel> in disk sources, vNICs with custom properties last).  The
vdsm44-* cases have their attributes sorted, as Python 3.6 on EL8 wrote
them; the vdsm45-* ones Engine's order, as Python 3.9.  <case>-out.xml is what vmstart.prepare() makes of it, compared
byte for byte.  After an intended change of the output, regenerate with

    REGENERATE_GOLDEN=1 .venv/bin/pytest tests/placeholder_test.py

and review the diff of tests/data/*-out.xml before committing it: the
goldens are only as good as that review.  The focused tests below check what
an Engine user or Vdsm would notice (README.md, "How it works", says what the
placeholder keeps and why) without relying on the goldens.
"""

import os

import pytest
from lxml import etree

from containerhooks import config
from containerhooks import domxml
from containerhooks import vmstart

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
KERNEL = "/usr/share/vdsm-hook-containers/placeholder.elf"
OVIRT_VM = "{%s}" % domxml.OVIRT_VM_NS
CONTAINERS = "{%s}" % domxml.CONTAINERS_NS
PROPERTIES = ("containerType", "containerImage")

CONTAINER_CASES = [
    pytest.param("i440fx-minimal", id="i440fx-minimal"),
    pytest.param("q35-numa", id="q35-numa"),
    pytest.param("q35-uefi-secureboot", id="q35-uefi-secureboot"),
    pytest.param("hugepages", id="hugepages"),
    pytest.param("no-nic", id="no-nic"),
    pytest.param("vdsm44-el8-payload", id="vdsm44-el8-payload"),
    pytest.param("vdsm45-vmconsole-watchdog", id="vdsm45-vmconsole-watchdog"),
    pytest.param("vdsm45-block-volume", id="vdsm45-block-volume"),
]

# Devices the placeholder must hand to libvirt exactly as Vdsm built them.
UNCHANGED_DEVICES = ("disk", "controller", "channel", "graphics", "video",
                     "memballoon", "rng", "input", "watchdog")
# Engine's serial console socket (LibvirtVmXmlBuilder.getSerialConsolePath).
VMCONSOLE = "/var/run/ovirt-vmconsole-console/%s.sock"


def read_input(case):
    with open(os.path.join(DATA, case + "-in.xml"), "rb") as f:
        return f.read()


def prepare(data, env=None):
    return vmstart.prepare(env or {}, data, config.load("/nonexistent"),
                           kernel=KERNEL)


def convert(case):
    """(input root, output root) of a container case."""
    data = read_input(case)
    plan = prepare(data)
    assert plan is not None, "%s is not seen as a container VM" % case
    return etree.fromstring(data), etree.fromstring(plan.xml)


def kib(el, attr=None):
    value = el.text if attr is None else el.get(attr)
    unit = el.get("unit", "KiB").lower()
    factor = {"kib": 1, "k": 1, "mib": 1024, "m": 1024, "gib": 1024 ** 2,
              "g": 1024 ** 2}[unit]
    return int(value) * factor


def dump(el):
    return etree.tostring(el, with_tail=False)


def strip_properties(data):
    """data with the container properties removed from <ovirt-vm:custom>.

    Whitespace is handled the same way whatever the document, so that
    stripping before and after prepare() gives the same bytes.
    """
    root = etree.fromstring(data)
    custom = root.find("metadata/%svm/%scustom" % (OVIRT_VM, OVIRT_VM))
    for name in PROPERTIES:
        el = custom.find(OVIRT_VM + name)
        prev = el.getprevious()
        if prev is None:
            custom.text = el.tail
        else:
            prev.tail = el.tail
        custom.remove(el)
    return etree.tostring(root, encoding="utf-8")


def custom_properties(data):
    root = etree.fromstring(data)
    custom = root.find("metadata/%svm/%scustom" % (OVIRT_VM, OVIRT_VM))
    return dict((name, custom.find(OVIRT_VM + name).text)
                for name in PROPERTIES)


# The goldens

@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_golden(case):
    xml = prepare(read_input(case)).xml
    path = os.path.join(DATA, case + "-out.xml")
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        with open(path, "wb") as f:
            f.write(xml)
    with open(path, "rb") as f:
        expected = f.read()
    assert xml == expected


@pytest.mark.parametrize("case", CONTAINER_CASES + [
    pytest.param("plain-vm", id="plain-vm")])
def test_inputs_are_as_vdsm_builds_them(case):
    # Each input is what Vm._buildDomainXML() writes (tests/vdsm.py
    # build_domain_xml): building it once more changes nothing.
    import vdsm
    data = read_input(case).decode("utf-8")
    assert vdsm.build_domain_xml(
        data, sorted_attributes=case.startswith("vdsm44")) == data


def test_plain_vm_passes_through():
    assert prepare(read_input("plain-vm")) is None


def test_every_container_case_has_a_golden():
    names = set(n[:-len("-in.xml")] for n in os.listdir(DATA)
                if n.endswith("-in.xml"))
    cases = set(p.values[0] for p in CONTAINER_CASES)
    assert names - cases == {"plain-vm"}
    for case in cases:
        assert os.path.exists(os.path.join(DATA, case + "-out.xml"))


# Where the properties come from

@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_properties_from_env_only(case):
    # Vdsm before 4.2 passes custom properties as environment variables
    # only; the placeholder must not depend on where they came from.
    data = read_input(case)
    env = custom_properties(data)
    plan = prepare(strip_properties(data), env=env)
    assert plan.xml == strip_properties(prepare(data).xml)


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_properties_from_env_and_metadata(case):
    data = read_input(case)
    plan = prepare(data, env=custom_properties(data))
    assert plan.xml == prepare(data).xml


# Size

@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_memory_is_small_and_consistent(case):
    src, out = convert(case)
    memory = kib(out.find("memory"))
    assert memory <= 64 * 1024
    assert kib(out.find("currentMemory")) == memory
    cells = out.findall("cpu/numa/cell")
    if cells:
        assert sum(kib(c, "memory") for c in cells) == memory
        assert len(cells) == len(src.findall("cpu/numa/cell"))


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_max_memory_unchanged(case):
    src, out = convert(case)
    before, after = src.find("maxMemory"), out.find("maxMemory")
    if before is None:
        assert after is None
    else:
        assert dump(after) == dump(before)


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_no_hugepages(case):
    _, out = convert(case)
    assert out.find("memoryBacking/hugepages") is None


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_one_vcpu_online_maximum_unchanged(case):
    src, out = convert(case)
    before, after = src.find("vcpu"), out.find("vcpu")
    assert after.text == before.text
    assert int(after.get("current", after.text)) == 1
    # Everything sized by the maximum stays as Engine made it.
    assert dump(out.find("cpu/topology")) == dump(src.find("cpu/topology"))
    assert [c.get("cpus") for c in out.findall("cpu/numa/cell")] == \
        [c.get("cpus") for c in src.findall("cpu/numa/cell")]
    if src.find("cputune") is not None:
        assert dump(out.find("cputune")) == dump(src.find("cputune"))
    if src.find("numatune") is not None:
        assert dump(out.find("numatune")) == dump(src.find("numatune"))


# Devices

@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_every_alias_kept(case):
    src, out = convert(case)
    aliases = [a.get("name") for a in src.iter("alias")]
    assert aliases
    assert [a.get("name") for a in out.iter("alias")] == aliases


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_nics_kept_silent(case):
    src, out = convert(case)
    before = src.findall("devices/interface")
    after = out.findall("devices/interface")
    assert len(after) == len(before)
    for old, new in zip(before, after):
        assert [dict(e.attrib) for e in new.findall("link")] == \
            [{"state": "down"}]
        assert [dict(e.attrib) for e in new.findall("rom")] == \
            [{"enabled": "no"}]
        assert new.find("boot") is None
        for tag in ("mac", "source", "model", "alias", "filterref", "mtu",
                    "address", "driver"):
            assert [dump(e) for e in new.findall(tag)] == \
                [dump(e) for e in old.findall(tag)], tag


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_other_devices_unchanged(case):
    src, out = convert(case)
    # A disk the container mounts (volumeMap) becomes read-only, nothing
    # more (vmstart_volumes_test.py).
    custom = src.find("metadata/%svm/%scustom" % (OVIRT_VM, OVIRT_VM))
    mounted = [entry.split(":")[0] for entry in
               (custom.findtext(OVIRT_VM + "volumeMap") or "").split(",")
               if entry]
    for disk in out.iterfind("devices/disk"):
        if disk.find("target").get("dev") in mounted:
            disk.remove(disk.find("readonly"))
    # The oVirt guest agent channel binds elsewhere, nothing more
    # (guestagent_test.py).
    from containerhooks import guestagent
    suffix = guestagent.PLACEHOLDER_SUFFIX
    for source in out.iterfind("devices/channel/source"):
        if source.get("path", "").endswith(suffix):
            source.set("path", source.get("path")[:-len(suffix)])
    for tag in UNCHANGED_DEVICES:
        assert [dump(e) for e in out.findall("devices/" + tag)] == \
            [dump(e) for e in src.findall("devices/" + tag)], tag
    # Engine's console tickets need graphics; Vdsm's stats need a balloon.
    assert len(out.findall("devices/memballoon")) == 1


def _consoles(root):
    return [(e.tag, e.get("type"), e.find("source"), dump(e.find("target")),
             e.find("alias") is not None and e.find("alias").get("name"))
            for tag in ("console", "serial")
            for e in root.iterfind("devices/" + tag)]


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_serial_console_becomes_a_pty(case):
    """qemu must not bind Engine's console socket (the watcher serves it);
    the devices stay, with their targets and aliases, for Engine."""
    src, out = convert(case)
    before, after = _consoles(src), _consoles(out)
    assert len(after) == len(before)
    path = VMCONSOLE % src.findtext("uuid")
    for (tag, kind, source, target, alias), new in zip(before, after):
        if kind == "unix" and source.get("path") == path:
            assert new == (tag, "pty", None, target, alias)
    meta = out.find("metadata/%scontainer" % CONTAINERS)
    has = any(k == "unix" for _, k, _, _, _ in before)
    assert (meta.findtext(CONTAINERS + "console") == "true") == has


def test_a_unix_console_elsewhere_is_left_alone():
    """Only the socket Engine names after this VM's id is the console."""
    data = read_input("vdsm45-vmconsole-watchdog").replace(
        b"/var/run/ovirt-vmconsole-console/b7e4d2a9",
        b"/var/run/ovirt-vmconsole-console/00000000")
    src = etree.fromstring(data)
    out = etree.fromstring(prepare(data).xml)
    assert [dump(e) for e in out.iterfind("devices/console")] == \
        [dump(e) for e in src.iterfind("devices/console")]
    meta = out.find("metadata/%scontainer" % CONTAINERS)
    assert meta.find(CONTAINERS + "console") is None


def test_restored_placeholder_keeps_the_console():
    """A placeholder (Vdsm restoring it) has a pty console: the package's
    metadata says the VM has the console, for its container's terminal."""
    first = prepare(read_input("vdsm45-vmconsole-watchdog"))
    again = prepare(first.xml)
    assert first.spec.console and again.spec.console
    assert _consoles(etree.fromstring(again.xml)) == \
        _consoles(etree.fromstring(first.xml))


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_os_boots_the_idle_kernel(case):
    src, out = convert(case)
    os_el = out.find("os")
    assert [k.text for k in os_el.findall("kernel")] == [KERNEL]
    for tag in ("loader", "nvram", "initrd", "cmdline"):
        assert os_el.find(tag) is None, tag
    assert os_el.get("firmware") is None
    assert dump(os_el.find("type")) == dump(src.find("os/type"))


# Identity and metadata

@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_identity_unchanged(case):
    src, out = convert(case)
    assert out.get("type") == src.get("type") == "kvm"
    assert out.findtext("uuid") == src.findtext("uuid")
    assert out.findtext("name") == src.findtext("name")


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_ovirt_metadata_unchanged(case):
    src, out = convert(case)
    for path in ("metadata/%svm" % OVIRT_VM,
                 "metadata/{http://ovirt.org/vm/tune/1.0}qos"):
        assert dump(out.find(path)) == dump(src.find(path)), path


@pytest.mark.parametrize("case", CONTAINER_CASES)
def test_our_metadata_has_the_real_size(case):
    src, out = convert(case)
    meta = domxml.Domain(out).container_meta()
    props = custom_properties(etree.tostring(src))
    vcpu = src.find("vcpu")
    assert meta.engine == props["containerType"]
    assert meta.memory_kib == kib(src.find("memory"))
    assert meta.vcpus == int(vcpu.get("current", vcpu.text))
    assert meta.name == "ovirt-vm-" + src.findtext("uuid")
    assert meta.image == props["containerImage"]



def test_placeholder_of_a_placeholder_keeps_the_real_size():
    # before_vm_start also runs when Vdsm restores a saved domain, whose XML
    # is a placeholder already: the container must still get the VM's size.
    from containerhooks import config, domxml, vmstart
    with open(os.path.join(DATA, "q35-numa-in.xml"), "rb") as f:
        data = f.read()
    conf = config.load("/nonexistent")
    first = vmstart.prepare({}, data, conf, kernel=KERNEL)
    again = vmstart.prepare({}, first.xml, conf, kernel=KERNEL)
    # The saved domain's guest agent channel is the placeholder's: Vdsm,
    # which takes the path from that XML, connects to qemu's socket then,
    # and the watcher does not serve one (README, Shutdown and Reboot).
    assert first.spec.guest_agent and not again.spec.guest_agent
    assert again.spec == first.spec._replace(guest_agent=False)

    def canonical(xml):
        parser = etree.XMLParser(remove_blank_text=True)
        return etree.tostring(etree.fromstring(xml, parser))
    assert canonical(again.xml) == canonical(first.xml)
    assert domxml.Domain.parse(again.xml).container_meta() == \
        domxml.Domain.parse(first.xml).container_meta()


# Initial Run payloads

# Where Vdsm makes a payload's ISO image: mkimage.py getFileName,
# <P_VDSM_RUN>payload/<vm id>.img (no hash in the name since Vdsm 4.40.1);
# P_VDSM_RUN is /var/run/vdsm/ in 4.4 (4.40.x), /run/vdsm/ in 4.5.
PAYLOAD_DIRS = {"vdsm44": "/var/run/vdsm/payload/",
                "vdsm45": "/run/vdsm/payload/"}
PAYLOAD_CASES = {"vdsm44-el8-payload": "web-frontend-01.example.com",
                 "vdsm45-block-volume": "batch-runner-07.example.com"}


@pytest.mark.parametrize("case, fqdn", [
    pytest.param(case, fqdn, id=case)
    for case, fqdn in sorted(PAYLOAD_CASES.items())])
def test_payload_cdrom_as_engine_and_vdsm_make_it(case, fqdn):
    # Engine (4.2+) writes a payload's files into the VM's metadata
    # (LibvirtVmXmlBuilder.writePayloadMetadata) and Vdsm makes the ISO
    # from them where mkimage.getFileName says: the container gets the
    # Initial Run's FQDN from that metadata.
    src = etree.fromstring(read_input(case))
    cdroms = [d for d in src.iterfind("devices/disk[@device='cdrom']")
              if "/payload/" in d.find("source").get("file", "")]
    assert len(cdroms) == 1
    target = cdroms[0].find("target").get("dev")
    assert cdroms[0].find("source").get("file") == \
        PAYLOAD_DIRS[case[:6]] + src.findtext("uuid") + ".img"
    device = src.find("metadata/%svm/%sdevice[@name='%s']"
                      % (OVIRT_VM, OVIRT_VM, target))
    assert device is not None and device.get("devtype") == "disk"
    assert device.findtext("%spayload/%svolId" % (OVIRT_VM, OVIRT_VM)) \
        == "config-2"
    assert domxml.Domain(src).cloud_init_fqdn() == fqdn
    assert prepare(read_input(case)).spec.fqdn == fqdn


# Hugepages

@pytest.mark.parametrize("files, refused", [
    pytest.param({}, False, id="no-vdsm-conf"),
    pytest.param({"vdsm.conf": "[performance]\nuse_dynamic_hugepages = "
                  "false\n"}, False, id="static"),
    pytest.param({"vdsm.conf": "[performance]\nuse_dynamic_hugepages = "
                  "true\n"}, True, id="dynamic"),
    pytest.param({"vdsm.conf": "[performance]\nuse_dynamic_hugepages = "
                  "true\n", "etc/50-off.conf": "[performance]\n"
                  "use_dynamic_hugepages = false\n"}, False,
                 id="dynamic-turned-off-by-dropin"),
    pytest.param({"run/10-on.conf": "[performance]\n"
                  "use_dynamic_hugepages = true\n"}, True,
                 id="dynamic-by-dropin"),
])
def test_hugepages_with_vdsm_dynamic_allocation_refused(
        tmp_path, monkeypatch, files, refused):
    # Vdsm allocates a VM's hugepages by its memory before before_vm_start
    # and, with use_dynamic_hugepages, frees by the placeholder's memory
    # when it ends (vm.py _prepare_hugepages, _cleanup_hugepages): the VM
    # is refused then, and starts without hugepage backing otherwise.
    from containerhooks import errors
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(vmstart, "VDSM_CONF", str(tmp_path / "vdsm.conf"))
    monkeypatch.setattr(vmstart, "VDSM_DROPIN_DIRS", (
        str(tmp_path / "usr"), str(tmp_path / "run"), str(tmp_path / "etc")))
    data = read_input("hugepages")
    if refused:
        with pytest.raises(errors.InvalidProperty) as e:
            prepare(data)
        assert "hugepages='2048'" in str(e.value)
        assert "remove the hugepages custom property" in str(e.value)
        assert prepare(data.replace(b"<ovirt-vm:hugepages>2048",
                                    b"<ovirt-vm:hugepages>0")) is not None
    else:
        out = etree.fromstring(prepare(data).xml)
        assert out.find("memoryBacking/hugepages") is None
