"""A stand-in for Vdsm's hook runner: the hook contract, in one place.

Vdsm and Engine cannot run here, so the tests call the hook scripts exactly
as Vdsm's lib/vdsm/common/hooks.py (_runHooksDir) does:

- the scripts are the regular, executable files of <hooks>/<hook_name>/,
  run one after the other sorted by full path, each exec'd directly (its
  shebang picks the interpreter) with stdout and stderr piped;
- the data goes to a file made by tempfile.mkstemp() (owned by the user
  Vdsm runs as): domain XML as text for XML hooks, json.dumps() of the data
  for JSON hooks, an empty file when there is no data (before_vm_destroy);
- the environment is Vdsm's own, plus the hook's params, plus the VM's
  custom properties (one variable each, same name), plus vmId, plus
  PYTHONPATH extended with Vdsm's hook package directory, plus
  _hook_domxml or _hook_json naming the file; device hooks
  (before_disk_hotunplug) add the device's own custom properties as params;
- exit code 0 is success, any other an error (the script's stderr is kept);
  2 skips the remaining scripts; more than 2 is logged as unexpected;
- hooks called with raiseError=True fail before the file is read back,
  with HookError(stderr of the last script that ran, failed or not);
  the others read it back by name (text mode: "\r" reads as "\n"), even
  after a failure;
  before_vm_start raises HookError(stderr of the last failing script)
  after reading it back, and Engine shows "Hook Error: (b'...',)";
- Vdsm runs as the vdsm user (uid 36, group kvm), with no timeout on hooks
  (a safety timeout here keeps a hanging hook from hanging the test run).

What Vdsm hands to before_vm_start is never the test's text as written
(lib/vdsm/virt/vm.py): it gets Vm._buildDomainXML() of Engine's XML
(build_domain_xml below), and the custom properties in the environment are
the leaves of <ovirt-vm:custom> of that same XML (custom_properties).
run() does both, so every test gets Vdsm-shaped input without knowing it.
The other XML hooks get a string Vdsm holds unchanged, so the test passes
what Vdsm would hold: libvirt's XMLDesc() of the running domain (pause,
resume, migrate, hibernate), and for after_vm_destroy the string of Vdsm's
DomainDescriptor (domain_descriptor.py: its xml property returns the
string it was made of, never re-serialized), that is libvirt's live XML
of a domain that ran, or what before_vm_start left of a start that never
reached libvirt (its final_callback).

Vdsm's side of a VM's oVirt guest agent channel is here too (GuestAgent:
lib/vdsm/virt/guestagent.py message by message, connecting as the vdsm
user where Engine's XML puts the socket; PowerDown: Vdsm's Shutdown and
Reboot up to that agent, and how the domain's end then becomes the VM's
exit code and reason).

An Initial Run (cloud-init) is a payload CD-ROM whose files Engine writes,
base64-encoded, into the domain XML's metadata: with_payload() adds one to
Engine's XML as Engine writes it (cloud_init_files() makes its files), with
the ISO's path as Vdsm prepares it.
"""

import array
import base64
import collections
import copy
import grp
import io
import json
import os
import pwd
import re
import socket
import stat
import struct
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

VDSM_USER = "vdsm"
SAFETY_TIMEOUT = 300

XML = "domxml"
JSON = "json"

# hook name -> (data type, raiseError) as in lib/vdsm/common/hooks.py
HOOKS = {
    "before_vm_start": (XML, False),
    "after_vm_start": (XML, False),
    "before_vm_destroy": (XML, False),
    "after_vm_destroy": (XML, False),
    "before_disk_hotunplug": (XML, True),
    "after_disk_hotunplug": (XML, False),
    "before_vm_migrate_source": (XML, True),
    "before_vm_migrate_destination": (XML, True),
    "after_vm_migrate_source": (XML, False),
    "after_vm_migrate_destination": (XML, False),
    "before_vm_hibernate": (XML, True),
    "before_vm_pause": (XML, True),
    "after_vm_pause": (XML, False),
    "before_vm_cont": (XML, True),
    "after_vm_cont": (XML, False),
    "after_get_vm_stats": (JSON, False),
    "after_get_all_vm_stats": (JSON, False),
    "after_get_stats": (JSON, False),
    "after_get_caps": (JSON, False),
}

Script = collections.namedtuple("Script", "path, rc, out, err")

OVIRT_VM_URI = "http://ovirt.org/vm/1.0"

# Vdsm's metadata.Descriptor registers the ovirt-vm prefix with
# ElementTree (lib/vdsm/virt/metadata.py, Metadata.__init__); no other
# prefix is registered, so the tune namespace comes out as ns0.
ET.register_namespace("ovirt-vm", OVIRT_VM_URI)


# What Vdsm makes of a domain XML

def build_domain_xml(data, sorted_attributes=False):
    """What before_vm_start gets for Engine's domain XML data, as
    Vm._buildDomainXML() (lib/vdsm/virt/vm.py) builds it with the default
    xml_minimal_changes = true:

    - <on_reboot> removed;
    - domxml_preprocess.update_disks_xml_from_objs: every disk <source>
      (CD-ROMs, payload included) gets <seclabel type="none" relabel="no"
      model="dac"/> unless it has one (storagexml
      update_disk_element_from_object, storage.disable_dynamic_ownership);
      the paths are taken as prepared already;
    - domxml_preprocess.replace_device_xml_with_hooks_xml: every device but
      a disk whose <ovirt-vm:device> metadata has <ovirt-vm:custom> (vNICs
      with vNIC-profile properties) goes through before_device_create and
      is appended again, so it moves to the end of <devices>;
    - xmlutils.tostring(dom, pretty=True) (_tostring): xml.etree, an XML
      declaration, every namespace declared on <domain> (unregistered
      ones as ns0, ns1...), 4-space indentation.

    (replace_placeholders fills in <sysinfo> on a host; the tests' XMLs
    have it filled in already.)  sorted_attributes: as Vdsm 4.4 on EL8
    writes them, whose Python 3.6 ElementTree sorted every element's
    attributes (3.8 keeps their order, bugs.python.org/issue34160)."""
    root = _fromstring(data)
    for el in root.findall("on_reboot"):
        root.remove(el)
    devices = root.find("devices")
    for disk in devices.findall("disk"):
        source = disk.find("source")
        if source is not None and disk.get("device") != "floppy" \
                and source.find("seclabel") is None:
            ET.SubElement(source, "seclabel",
                          dict(type="none", relabel="no", model="dac"))
    custom_macs = set(
        (dev.get("mac_address") or "").lower()
        for dev in root.iterfind("metadata/{%s}vm/{%s}device"
                                 % (OVIRT_VM_URI, OVIRT_VM_URI))
        if dev.find("{%s}custom" % OVIRT_VM_URI) is not None)
    moved = [nic for nic in devices.findall("interface")
             if (nic.find("mac").get("address") or "").lower()
             in custom_macs]
    for nic in moved:
        devices.remove(nic)
        devices.append(nic)
    if sorted_attributes:
        # vdsm.common.xmlutils.sort_attributes
        for el in root.iter():
            attrib = sorted(el.attrib.items())
            el.attrib.clear()
            el.attrib.update(attrib)
    return _tostring(root)


# Engine's Initial Run (cloud-init) payload

CLOUD_INIT_VOLUME = "config-2"
META_DATA = "openstack/latest/meta_data.json"
USER_DATA = "openstack/latest/user_data"
# Where Vdsm makes the payload's ISO image (mkimage.py getFileName:
# <P_VDSM_RUN>payload/<vm id>.img, P_VDSM_RUN being /run/vdsm/).
PAYLOAD_DIR = "/run/vdsm/payload"
# The payload CD-ROM's target for Engine's CD-ROM interface
# (VmDeviceCommonUtils.getCdPayloadDeviceIndex: ide 3, sata and scsi 1;
# VmInfoBuildUtils.makeDiskName): ide for i440fx, sata for q35.
PAYLOAD_TARGETS = {"ide": "hdd", "sata": "sdb", "scsi": "sdb"}


def cloud_init_files(hostname=None, instance_id=None):
    """The files of Engine's cloud-init payload, {path: bytes}, for an
    Initial Run that sets hostname only (None: none at all), as
    CloudInitHandler.getFileData writes them: meta_data.json from
    storeHostname ("hostname" and "name") and storeExecutionParameters,
    in Jackson's default pretty print (JsonHelper.mapToJson); user_data
    as SnakeYAML's block style dump after "#cloud-config".  The keys are
    in the order of Java's HashMap (checked with Java 17; public_keys,
    none here, would come first)."""
    meta = collections.OrderedDict([("availability_zone", "nova")])
    if hostname is not None:
        meta["hostname"] = hostname
    meta["launch_index"] = "0"
    meta["meta"] = collections.OrderedDict(
        [("role", "server"), ("dsmode", "local"), ("essential", "false")])
    if hostname is not None:
        meta["name"] = hostname
    meta["uuid"] = instance_id or str(uuid.uuid4())
    # Jackson's DefaultPrettyPrinter: two spaces, " : ", no final newline.
    meta_data = json.dumps(meta, indent=2, separators=(",", " : "),
                           ensure_ascii=False)
    user_data = (
        "#cloud-config\n"
        "output:\n"
        "  all: '>> /var/log/cloud-init-output.log'\n"
        "disable_root: false\n"
        "runcmd:\n"
        "- sed -i '/^datasource_list: /d' /etc/cloud/cloud.cfg; echo "
        "'datasource_list: [\"NoCloud\",\n"
        "  \"ConfigDrive\"]' >> /etc/cloud/cloud.cfg\n"
        "ssh_pwauth: true\n"
        "chpasswd:\n"
        "  expire: false\n")
    return collections.OrderedDict([
        (META_DATA, meta_data.encode("utf-8")),
        (USER_DATA, user_data.encode("utf-8"))])


def with_payload(data, files=None, encoded=None, volume_id=CLOUD_INIT_VOLUME,
                 bus="ide"):
    """Engine's domain XML data with a payload CD-ROM added, as Engine
    writes it for an Initial Run (LibvirtVmXmlBuilder.writeCdRom and
    writePayloadMetadata, VmInfoBuildUtils.createCloudInitPayloadDevice)
    and with the path Vdsm prepares for it (clientIF.py
    _prepareVolumePathFromPayload, mkimage.py mkIsoFs) in place of
    Engine's "PAYLOAD:"; run() and build_domain_xml() then do the rest.

    files: {path: bytes}, each written as Engine encodes it (commons-codec
    Base64(0): standard alphabet, padded, one line); encoded: {path: text}
    written into the XML as it is, for what Engine never writes.
    volume_id: None for a payload without one (Engine's sysprep or a
    user's payload)."""
    root = _fromstring(data)
    vm_id = root.findtext("uuid")
    target = PAYLOAD_TARGETS[bus]
    devices = root.find("devices")
    disk = ET.Element("disk", dict(type="file", device="cdrom",
                                   snapshot="no"))
    ET.SubElement(disk, "driver", dict(name="qemu", type="raw",
                                       error_policy="report"))
    source = ET.SubElement(disk, "source", dict(
        file=os.path.join(PAYLOAD_DIR, vm_id + ".img"),
        startupPolicy="optional"))
    ET.SubElement(source, "seclabel", dict(model="dac", type="none",
                                           relabel="no"))
    ET.SubElement(disk, "target", dict(dev=target, bus=bus))
    ET.SubElement(disk, "readonly")
    ET.SubElement(disk, "alias", dict(name="ua-" + str(uuid.uuid4())))
    if bus == "scsi":
        ET.SubElement(disk, "address", dict(type="drive", controller="0",
                                            bus="0", target="0", unit="1"))
    disks = devices.findall("disk")
    index = list(devices).index(disks[-1]) + 1 if disks else len(devices)
    devices.insert(index, disk)

    vm = root.find("metadata/{%s}vm" % OVIRT_VM_URI)
    device = ET.Element("{%s}device" % OVIRT_VM_URI,
                        dict(devtype="disk", name=target))
    payload = ET.SubElement(device, "{%s}payload" % OVIRT_VM_URI)
    if volume_id is not None:
        ET.SubElement(payload, "{%s}volId" % OVIRT_VM_URI).text = volume_id
    contents = [(path, base64.b64encode(content).decode("ascii"))
                for path, content in (files or {}).items()]
    contents += list((encoded or {}).items())
    for path, text in contents:
        el = ET.SubElement(payload, "{%s}file" % OVIRT_VM_URI,
                           dict(path=path))
        el.text = text
    # writeVmMetadata: the payload after the disks and launchPaused,
    # before resumeBehavior.
    later = [i for i, el in enumerate(vm)
             if el.tag in ("{%s}resumeBehavior" % OVIRT_VM_URI,
                           "{%s}ballooningEnabled" % OVIRT_VM_URI,
                           "{%s}cpuPinningPolicy" % OVIRT_VM_URI)]
    vm.insert(later[0] if later else len(vm), device)
    return _tostring(root)


def custom_properties(data):
    """The VM's custom properties as Vdsm passes them to every hook: the
    leaves of <ovirt-vm:custom>, text ("" when empty) by local name
    (metadata.Descriptor._load, _elem_to_keyvalue)."""
    custom = _fromstring(data).find(
        "metadata/{%s}vm/{%s}custom" % (OVIRT_VM_URI, OVIRT_VM_URI))
    if custom is None:
        return {}
    return dict((el.tag.split("}")[-1], el.text or "") for el in custom)


def _fromstring(data):
    # vdsm.common.xmlutils.fromstring
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    parser = ET.XMLParser()
    parser.feed(data)
    return parser.close()


def _tostring(root):
    # vdsm.common.xmlutils.tostring(pretty=True), with its indent()
    root = copy.deepcopy(root)
    _indent(root)
    stream = io.BytesIO()
    ET.ElementTree(root).write(stream, encoding="utf-8",
                               xml_declaration=True)
    return stream.getvalue().decode("utf-8")


def _indent(element, level=0, s="    "):
    i = "\n" + level * s
    if len(element):
        if not element.text or not element.text.strip():
            element.text = i + s
        if not element.tail or not element.tail.strip():
            element.tail = i
        for element in element:
            _indent(element, level + 1, s)
        if not element.tail or not element.tail.strip():
            element.tail = i
    else:
        if level and (not element.tail or not element.tail.strip()):
            element.tail = i


def vdsm_input(hook, data, custom):
    """(data, custom) as Vdsm passes them to hook, for the test's data
    and custom properties (custom: None, or what the test expects; it
    must agree with the XML, as it always does in Vdsm)."""
    if hook == "before_vm_start":
        # Vm.__init__ reads the custom properties from Engine's XML
        # (metadata.Descriptor.from_xml(conf['xml'])), the hook gets the
        # XML rebuilt: both agree, but for what a parse and ElementTree's
        # serialization change (a "\r" becomes "\n" on the way).
        derived = custom_properties(data)
        data = build_domain_xml(data)
        if custom is not None and dict(custom) != derived:
            raise AssertionError(
                "Vdsm passes the custom properties of the XML (%r), not "
                "%r" % (derived, custom))
        custom = derived
    return data, custom


class HookError(Exception):
    """What Vdsm raises for a failed hook (vdsm.common.exception)."""

    def __init__(self, err, result):
        Exception.__init__(self, err)
        self.err = err
        self.result = result

    @property
    def exit_message(self):
        # What Engine shows as the VM's exit message.
        return "Hook Error: (%r,)" % (self.err,)


class Result(object):

    def __init__(self, data, scripts):
        self.data = data
        self.scripts = scripts

    @property
    def errors(self):
        return [s.err for s in self.scripts if s.rc != 0]


class Spawned(object):
    """A hook script started by Vdsm.spawn(), still running."""

    def __init__(self, hook, script, proc, path):
        self.hook = hook
        self.script = script
        self.proc = proc
        self.path = path

    def finish(self, timeout=SAFETY_TIMEOUT):
        """Wait for the script, then return Result or raise HookError as
        Vdsm.run() does; the data file is removed."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
            return _read_back(self.hook, self.path, [
                Script(self.script, self.proc.returncode, out, err)])
        finally:
            os.unlink(self.path)


def _read_back(hook, path, results):
    """What Vdsm does once the scripts ran: raise for a hook called with
    raiseError, else read the data file back (before_vm_start raises
    after that)."""
    kind, raise_error = HOOKS[hook]
    errors = [s.err for s in results if s.rc != 0]
    if errors and raise_error:
        # _runHooksDir raises HookError(err): the stderr of the last script
        # that ran, whether or not that one failed.
        raise HookError(results[-1].err, Result(None, results))
    with open(path, encoding="utf-8") as f:
        final = f.read()
    result = Result(final if kind == XML else json.loads(final), results)
    if errors and hook == "before_vm_start":
        raise HookError(errors[-1], result)
    return result


class Vdsm(object):
    """Runs hooks from hooks_dir as Vdsm would, as user (name) or root."""

    def __init__(self, hooks_dir, user=VDSM_USER, pythonpath=None,
                 base_env=None):
        self.hooks_dir = hooks_dir
        self.user = user
        self.pythonpath = pythonpath
        self.base_env = base_env if base_env is not None else {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }

    def scripts(self, hook):
        d = os.path.join(self.hooks_dir, hook)
        if not os.path.isdir(d):
            return []
        paths = [os.path.join(d, n) for n in os.listdir(d)]
        return sorted(p for p in paths
                      if os.path.isfile(p) and os.access(p, os.X_OK))

    def run(self, hook, data=None, vm_id=None, custom=None, params=None):
        """Run a hook; return Result, or raise HookError like Vdsm.

        data is what the test has (Engine's XML for before_vm_start, the
        XML Vdsm holds of the domain for after_vm_destroy); the scripts get
        it as Vdsm shapes it (vdsm_input)."""
        data, custom = vdsm_input(hook, data, custom)
        scripts = self.scripts(hook)
        if not scripts:
            return Result(data, [])
        path = self.data_file(hook, data)
        try:
            env = self._env(HOOKS[hook][0], path, vm_id, custom, params)
            results = []
            for script in scripts:
                p = subprocess.Popen([script], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env,
                                     **self._credentials())
                out, err = p.communicate(timeout=SAFETY_TIMEOUT)
                results.append(Script(script, p.returncode, out, err))
                if p.returncode == 2:
                    break
            return _read_back(hook, path, results)
        finally:
            os.unlink(path)

    def hotunplug_disk(self, vm, target):
        """Engine's hot-unplug of vm's disk target, as Vdsm's virt/vm.py
        hotunplugDisk runs the hook: before_disk_hotunplug with the drive's
        own <disk> element (drive.getXML(), built from the disk Engine
        sent, pretty-printed), vmconf {vmId, custom} and the drive's
        device custom properties as params (none here); raiseError, so a
        refusal raises HookError and the unplug never reaches libvirt."""
        from lxml import etree
        root = etree.fromstring(vm.xml.encode("utf-8"))
        for disk in root.iterfind("devices/disk"):
            if disk.find("target").get("dev") == target:
                break
        else:
            raise ValueError("%s has no disk %s" % (vm.id, target))
        xml = etree.tostring(disk, pretty_print=True).decode("utf-8")
        return self.run("before_disk_hotunplug", xml, vm_id=vm.id,
                        custom=vm.custom, params={})

    def spawn(self, hook, data=None, vm_id=None, custom=None, params=None):
        """Start the hook's one script as run() would, without waiting for
        it, so that a test can do something to it meanwhile (kill it);
        Spawned.finish() then does what run() does after the script."""
        scripts = self.scripts(hook)
        if len(scripts) != 1:
            raise ValueError("spawn runs one script, %s has %d"
                             % (hook, len(scripts)))
        data, custom = vdsm_input(hook, data, custom)
        path = self.data_file(hook, data)
        try:
            proc = subprocess.Popen(
                scripts, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                **self.popen_options(hook, path, vm_id, custom, params))
        except BaseException:
            os.unlink(path)
            raise
        return Spawned(hook, scripts[0], proc, path)

    def data_file(self, hook, data):
        """The hook's data in a new file, owned by the user Vdsm runs as."""
        fd, path = tempfile.mkstemp()
        try:
            if HOOKS[hook][0] == XML:
                os.write(fd, data.encode("utf-8") if data else b"")
            else:
                os.write(fd, json.dumps(data).encode("utf-8"))
            os.close(fd)
            if self.user != "root":
                pw = pwd.getpwnam(self.user)
                os.chown(path, pw.pw_uid, pw.pw_gid)
        except BaseException:
            os.unlink(path)
            raise
        return path

    def popen_options(self, hook, path, vm_id=None, custom=None,
                      params=None):
        """The environment and credentials Vdsm runs hook's scripts with,
        for the data file at path (dev/bench.py times the scripts alone
        with them)."""
        kind = HOOKS[hook][0]
        options = dict(env=self._env(kind, path, vm_id, custom, params))
        options.update(self._credentials())
        return options

    def _env(self, kind, path, vm_id, custom, params):
        env = dict(self.base_env)
        for k, v in list((params or {}).items()) + list(
                (custom or {}).items()):
            env[k] = v
        if vm_id:
            env["vmId"] = vm_id
        ppath = env.get("PYTHONPATH", "").split(":")
        if self.pythonpath:
            ppath.append(self.pythonpath)
        env["PYTHONPATH"] = ":".join(ppath)
        env["_hook_domxml" if kind == XML else "_hook_json"] = path
        return env

    def _credentials(self):
        if self.user == "root":
            return {}
        pw = pwd.getpwnam(self.user)
        groups = [g.gr_gid for g in grp.getgrall() if self.user in g.gr_mem]
        return {"user": pw.pw_uid, "group": pw.pw_gid,
                "extra_groups": groups, "cwd": "/"}


# Engine's migration of a VM: Vdsm's hooks on two hosts

class MoveFailed(Exception):
    """libvirt's migration of the domain failed (its error)."""


class Migration(object):
    """What came of migrate(): outcome (MIGRATED, REFUSED_BY_SOURCE,
    REFUSED_BY_DESTINATION, MOVE_FAILED), error (the HookError or
    MoveFailed that ended it), results {hook: Result or HookError},
    times {step: time.time() when it ended}, the destination's live XML."""

    MIGRATED = "migrated"
    REFUSED_BY_SOURCE = "refused by the source"
    REFUSED_BY_DESTINATION = "refused by the destination"
    MOVE_FAILED = "libvirt's migration failed"

    def __init__(self):
        self.outcome = None
        self.error = None
        self.results = {}
        self.times = {}
        self.destination_xml = None


def migrate(source, destination, vm_id, custom, live_xml, move,
            between=None):
    """Engine's Migrate of VM vm_id from source's host to destination's
    (two Vdsm stand-ins, each running its host's installed hooks), as Vdsm
    runs it (lib/vdsm/virt/migration.py SourceThread._regular_run and
    _startUnderlyingMigration, lib/vdsm/API.py migrationCreate,
    lib/vdsm/virt/vm.py):

    1. the source reads the domain's live XML, live_xml, for the
       destination (Vm.migration_parameters: _srcDomXML), before any hook;
    2. source: before_vm_migrate_source with the live XML
       (Vm.prepare_migration, raiseError): a HookError fails the
       migration there, the destination is never asked;
    3. destination: migrationCreate creates the VM, prepares its disks,
       then before_vm_migrate_destination with _srcDomXML
       (Vm.waitForMigrationDestinationPrepare, raiseError): a HookError
       makes migrationCreate answer hookError, and the source's _recover
       destroys the destination's VM (API destroy -> Vm.doDestroy:
       before_vm_destroy, then releaseVm: after_vm_destroy with the XML
       that VM holds: _srcDomXML);
    4. move(): libvirt's migration of the domain, returning the
       destination's live XML or raising MoveFailed; a failure runs no
       hook on the source (_recover), and destroys the destination's VM
       as in 3;
    5. source: after_vm_migrate_source on libvirt's STOPPED/MIGRATED event
       (vm.py _handle_libvirt_domain_stopped, with the XML the source's
       DomainDescriptor holds, the live XML as read), and destination:
       after_vm_migrate_destination
       once the domain runs there (_completeIncomingMigration, with its
       live XML), at the same time on their two hosts -- or, with
       between, one after the other with between() in the middle.
    """
    import threading
    run = Migration()
    src_dom_xml = live_xml
    try:
        run.results["before_vm_migrate_source"] = source.run(
            "before_vm_migrate_source", live_xml, vm_id=vm_id,
            custom=custom)
    except HookError as e:
        run.results["before_vm_migrate_source"] = e
        run.outcome, run.error = Migration.REFUSED_BY_SOURCE, e
        return run
    run.times["before_vm_migrate_source"] = time.time()

    def recover():
        # The source's _recover: the destination's VM destroyed.
        run.results["destination before_vm_destroy"] = destination.run(
            "before_vm_destroy", None, vm_id=vm_id, custom=custom)
        run.results["destination after_vm_destroy"] = destination.run(
            "after_vm_destroy", src_dom_xml, vm_id=vm_id, custom=custom)

    try:
        run.results["before_vm_migrate_destination"] = destination.run(
            "before_vm_migrate_destination", src_dom_xml, vm_id=vm_id,
            custom=custom)
    except HookError as e:
        run.results["before_vm_migrate_destination"] = e
        run.outcome, run.error = Migration.REFUSED_BY_DESTINATION, e
        recover()
        return run
    run.times["before_vm_migrate_destination"] = time.time()
    try:
        run.destination_xml = move()
    except MoveFailed as e:
        run.outcome, run.error = Migration.MOVE_FAILED, e
        recover()
        return run
    run.times["moved"] = time.time()

    def after(hook, vdsm, data):
        run.results[hook] = vdsm.run(hook, data, vm_id=vm_id, custom=custom)
        run.times[hook] = time.time()

    steps = [("after_vm_migrate_source", source, live_xml),
             ("after_vm_migrate_destination", destination,
              run.destination_xml)]
    if between is not None:
        after(*steps[0])
        between()
        after(*steps[1])
    else:
        threads = [threading.Thread(target=after, args=step)
                   for step in steps]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SAFETY_TIMEOUT)
    run.outcome = Migration.MIGRATED
    return run


# The oVirt guest agent channel, from Vdsm's side

# lib/vdsm/virt/guestagent.py
MAX_MESSAGE_SIZE = 1024 * 1024
MAX_SUPPORTED_API_VERSION = 3
RESPONSIVE_SECONDS = 120
# lib/vdsm/virt/vmchannels.py: reconnect attempts before a cooldown of
# guest_agent_timeout (lib/vdsm/common/config.py.in: 30 s), one per
# second (the Listener's poll).
COOLDOWN_RECONNECT_THRESHOLD = 5
# _FILTERED_CHARS, what Vdsm replaces in the guest's strings.
_FILTERED = re.compile(u"[\u0000-\u0008\u000b-\u000c\u000e-\u001f"
                       u"\u007f-\u0084\u0086-\u009f\ud800-\udfff"
                       u"\ufffe-\uffff]")


def channel_path(xml, name="ovirt-guest-agent.0"):
    """The socket Vdsm connects to for the channel name: taken from the
    domain XML Engine sent (vm.py Vm.__init__, _makeChannelPath over
    DomainDescriptor.all_channels: <target name>, <source path>)."""
    for channel in _fromstring(xml).iterfind("devices/channel"):
        target, source = channel.find("target"), channel.find("source")
        if target is not None and source is not None \
                and target.get("name") == name and source.get("path"):
            return source.get("path")
    return None


def prepare_vm_channel(path):
    """supervdsm's prepareVmChannel (lib/vdsm/supervdsm_api/virt.py), run
    as root before Vdsm connects: os.stat() the socket -- which fails when
    nothing is there, and then Vdsm never connects for the VM's life
    (GuestAgent.start raises before it registers the channel) -- and make
    it group-writable."""
    st = os.stat(path)
    os.chmod(path, st.st_mode | stat.S_IWGRP)


def connect_as(user, path):
    """(errno, socket): path connected to by a process running as user
    with its groups, as Vdsm's vmchannels Listener connects
    (GuestAgent._connect: connect_ex), handed back to this process."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            here.close()
            pw = pwd.getpwnam(user)
            os.setgroups([g.gr_gid for g in grp.getgrall()
                          if user in g.gr_mem])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            rc = sock.connect_ex(path)
            fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    array.array("i", [sock.fileno()]))] if rc == 0 else []
            there.sendmsg([struct.pack("i", rc)], fds)
            code = 0
        finally:
            os._exit(code)
    there.close()
    try:
        msg, ancdata, _, _ = here.recvmsg(4, socket.CMSG_LEN(4))
    finally:
        here.close()
        os.waitpid(pid, 0)
    rc = struct.unpack("i", msg)[0]
    if rc != 0:
        return rc, None
    fds = array.array("i")
    fds.frombytes(ancdata[0][2])
    return 0, socket.socket(fileno=fds[0])


class GuestAgent(object):
    """Vdsm's GuestAgent (lib/vdsm/virt/guestagent.py), message by message:
    what it sends (refresh on connect, shutdown) and how it reads what the
    agent says (_handleData, _parseLine, _handleMessage) into guestInfo,
    as Vdsm reports it to Engine.  A message Vdsm would fail on (a
    heartbeat without free-ram: a KeyError in its channel thread) fails
    the test; one it does not know is kept in .unknown (Vdsm logs "Unknown
    message type")."""

    def __init__(self, path, user=VDSM_USER):
        self.path = path
        self.user = user
        self.sock = None
        self.guest_info = {
            "username": "Unknown", "memUsage": 0, "guestCPUCount": -1,
            "guestIPs": "", "guestFQDN": "", "session": "Unknown",
            "appsList": (), "disksUsage": [], "netIfaces": [],
            "memoryStats": {}}
        self.guest_status = None
        self.agent_timestamp = 0
        self.messages = []          # (time, name, args) as parsed
        self.unknown = []
        self.errors = []            # lines Vdsm logs as bad
        self._buffer = b""
        self.attempts = 0

    def start(self, attempts=COOLDOWN_RECONNECT_THRESHOLD, interval=1.0):
        """GuestAgent.start: prepare the channel, then connect as the
        Listener does, once a second up to attempts times (then it would
        cool down for 30 s); on success send refresh.  The errno of the
        last failure (ConnectionError) otherwise."""
        prepare_vm_channel(self.path)
        rc = None
        for self.attempts in range(1, attempts + 1):
            rc, sock = connect_as(self.user, self.path)
            if rc == 0:
                self.sock = sock
                self._buffer = b""
                self.forward("refresh",
                             {"apiVersion": MAX_SUPPORTED_API_VERSION})
                return self
            time.sleep(interval)
        raise ConnectionError(rc, os.strerror(rc))

    def forward(self, cmd, args=None):
        """_forward: json.dumps(args) with __name__ added, one line."""
        args = dict(args or {})
        args["__name__"] = cmd
        self.sock.sendall((json.dumps(args) + "\n").encode("utf8"))

    def desktop_shutdown(self, timeout, message, reboot):
        """desktopShutdown, as VmShutdown and VmReboot call it (the delay
        as an int, reboot as str(bool))."""
        self.forward("shutdown", {"timeout": timeout, "message": message,
                                  "reboot": str(reboot)})

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def is_responsive(self):
        return time.time() - self.agent_timestamp < RESPONSIVE_SECONDS

    def read(self, timeout):
        """Read what arrives within timeout; False once the agent closed
        the connection (Vdsm then reconnects)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(2 ** 16)
        except socket.timeout:
            return True
        if not data:
            return False
        self._handle_data(data)
        return True

    def wait_for(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while not predicate():
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("Vdsm's guest agent did not see %s "
                                     "within %ss" % (what, timeout))
            if not self.read(min(left, 0.5)):
                raise AssertionError("the agent closed the connection "
                                     "before %s" % what)
        return predicate()

    def received(self, name, since=0):
        return [args for t, n, args in self.messages
                if n == name and t >= since]

    def _handle_data(self, data):
        while b"\n" in data:
            line, data = data.split(b"\n", 1)
            line = self._buffer + line
            self._buffer = b""
            self._process(line)
        self._buffer += data
        if len(self._buffer) >= MAX_MESSAGE_SIZE:
            raise AssertionError("the agent sent a line of %d bytes"
                                 % len(self._buffer))

    def _process(self, line):
        try:
            # _parseLine: bad UTF-8 replaced, JSON, XML-unsafe characters
            # replaced, __name__ popped.
            args = json.loads(line.decode("utf8", "replace"))
            args = _filter(args)
            name = args.pop("__name__")
        except ValueError as e:
            self.errors.append((str(e), line))
            return
        self.agent_timestamp = time.time()
        self.messages.append((self.agent_timestamp, name, args))
        self._handle_message(name, args)

    def _handle_message(self, message, args):
        info = self.guest_info
        if message == "heartbeat":
            info["memUsage"] = int(args["free-ram"])
            for k in ("mem_total", "mem_unused", "mem_buffers",
                      "mem_cached", "swap_in", "swap_out", "pageflt",
                      "majflt"):
                if k in args.get("memory-stat", {}):
                    info["memoryStats"][k] = str(args["memory-stat"][k])
            self.guest_status = "Up"
        elif message == "host-name":
            info["guestName"] = args["name"]
        elif message == "os-version":
            info["guestOs"] = args["version"]
        elif message == "network-interfaces":
            interfaces, old_ips = [], ""
            for iface in args["interfaces"]:
                iface["inet"] = iface.get("inet", [])
                iface["inet6"] = iface.get("inet6", [])
                interfaces.append(iface)
                old_ips += " ".join(iface["inet"]) + " "
            info["netIfaces"] = interfaces
            info["guestIPs"] = old_ips.strip()
        elif message == "applications":
            info["appsList"] = tuple(args["applications"])
        elif message == "fqdn":
            info["guestFQDN"] = args["fqdn"]
        elif message in ("active-user", "session-logon", "session-lock",
                         "session-unlock", "session-logoff", "uninstalled",
                         "session-startup", "session-shutdown", "os-info",
                         "timezone", "containers", "disks-usage",
                         "number-of-cpus", "completion"):
            pass        # parsed by Vdsm; the package sends none of these
        else:
            self.unknown.append(message)


def _filter(obj):
    # guestagent.py _filterObject
    if isinstance(obj, dict):
        return dict((_filter(k), _filter(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_filter(i) for i in obj]
    if isinstance(obj, str):
        return _FILTERED.sub(u"\ufffd", obj)
    return obj


# Vdsm's Shutdown and Reboot, and how the VM's end becomes its exit

# lib/vdsm/virt/vmexitreason.py; vm.py NORMAL, ERROR
NORMAL, ERROR = 0, 1
LOST_QEMU_CONNECTION = 2
ADMIN_SHUTDOWN = 6
USER_SHUTDOWN = 7
HOST_SHUTDOWN = 11
DESTROYED_ON_PAUSE_TIMEOUT = 14
EXIT_REASONS = {
    LOST_QEMU_CONNECTION: "Lost connection with qemu process",
    ADMIN_SHUTDOWN: "Admin shut down from the engine",
    USER_SHUTDOWN: "User shut down from within the guest",
    HOST_SHUTDOWN: "VM has been terminated on the host",
}
# lib/vdsm/API.py: the defaults when Engine sends no delay or message
# (Engine's RebootVm and ShutdownVm send none: JsonRpcVdsServer.shutdown).
USER_SHUTDOWN_TIMEOUT = 30
USER_SHUTDOWN_MESSAGE = "System going down"


class PowerDown(object):
    """A VM's Shutdown and Reboot as Vdsm runs them (vm.py Vm.shutdown,
    vmpowerdown.py VmShutdown/VmReboot) up to the oVirt guest agent, and
    how Vdsm then turns the end of the domain into the VM's exit (vm.py
    _handle_libvirt_domain_shutdown, _handle_libvirt_domain_stopped,
    _getShutdownReason, _onQemuDeath, setDownStatus).

    The chain's first link is real: the QEMU guest agent through libvirt
    (virsh shutdown/reboot --mode agent, as shutdownFlags(...GUEST_AGENT)
    and reboot(...GUEST_AGENT)), which must fail on a placeholder -- and
    Vdsm's qemuGuestAgentShutdown sets the exit reason ADMIN_SHUTDOWN
    before it even tries.  Then the oVirt guest agent, if it is
    responsive."""

    def __init__(self, vm_id, agent):
        self.vm_id = vm_id
        self.agent = agent
        self.shutdown_reason = None
        self.qemu_ga = None

    def shutdown(self, reboot=False, delay=USER_SHUTDOWN_TIMEOUT,
                 message=USER_SHUTDOWN_MESSAGE):
        import libvirt as host
        if not reboot:
            # vm.py qemuGuestAgentShutdown, first line.
            self.shutdown_reason = ADMIN_SHUTDOWN
        rc, out, err = host.virsh("reboot" if reboot else "shutdown",
                                  "--mode", "agent", self.vm_id, check=False)
        self.qemu_ga = (rc, err.strip())
        if rc == 0:
            raise AssertionError("the placeholder's QEMU guest agent "
                                 "answered: %s" % out)
        if not self.agent.is_responsive():
            raise AssertionError("Vdsm would not try the oVirt guest agent: "
                                 "it said nothing for %d s"
                                 % RESPONSIVE_SECONDS)
        self.agent.desktop_shutdown(int(delay), message, reboot)

    def on_lifecycle(self, event, detail):
        """A libvirt lifecycle event, in virsh event's words ("Shutdown",
        "Finished after host request"; "Stopped", "Failed"): the exit info
        (exitCode, exitReason, exitMessage) when the domain stopped."""
        if event == "Shutdown":
            if self.shutdown_reason is None:
                if "host" in detail:
                    self.shutdown_reason = HOST_SHUTDOWN
                else:
                    self.shutdown_reason = USER_SHUTDOWN
            return None
        if event != "Stopped" or detail in ("Migrated", "Saved"):
            return None
        reason = self.shutdown_reason
        if reason is None:
            code, reason = ERROR, LOST_QEMU_CONNECTION
        elif reason in (DESTROYED_ON_PAUSE_TIMEOUT, HOST_SHUTDOWN):
            code = ERROR
        else:
            code = NORMAL
        return {"exitCode": code, "exitReason": reason,
                "exitMessage": EXIT_REASONS.get(reason, "VM terminated")}
