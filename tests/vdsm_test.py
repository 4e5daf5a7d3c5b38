"""The tests' stand-in for Vdsm (tests/vdsm.py) against Vdsm's own source.

Each test runs a recording hook script through the stand-in, as root, in
a directory of its own: no package, no daemon.  The script copies the
data file and its environment where the test reads them.
"""

import os

import pytest

import domains
import vdsm as vdsm_module

RECORDER = """#!/bin/sh
cp "$_hook_domxml" "%(out)s/data"
env > "%(out)s/env"
"""

# What libvirt's virDomainGetXMLDesc returns of a running domain (as
# "virsh dumpxml" prints it): no XML declaration, two-space indentation,
# each metadata namespace declared on its own element.
LIVE_XML = """<domain type='kvm' id='7'>
  <name>vm-live</name>
  <uuid>5a0c7e52-3d1b-4b8e-9a77-0e2f4c6b8d14</uuid>
  <metadata>
    <ns0:qos xmlns:ns0="http://ovirt.org/vm/tune/1.0"/>
    <ovirt-vm:vm xmlns:ovirt-vm="http://ovirt.org/vm/1.0">
      <ovirt-vm:custom>
        <ovirt-vm:containerType>docker</ovirt-vm:containerType>
      </ovirt-vm:custom>
    </ovirt-vm:vm>
    <containers:container xmlns:containers="http://ovirt.org/vdsm-hook-containers/1.0"/>
  </metadata>
  <devices/>
</domain>
"""


@pytest.fixture
def recording(tmp_path):
    """(Vdsm running the recorder for every hook as root, the directory
    where the recorder leaves what it got)."""
    hooks = tmp_path / "hooks"
    out = tmp_path / "out"
    out.mkdir()
    for hook in vdsm_module.HOOKS:
        if vdsm_module.HOOKS[hook][0] != vdsm_module.XML:
            continue
        d = hooks / hook
        d.mkdir(parents=True)
        script = d / "50_recorder"
        script.write_text(RECORDER % {"out": out})
        script.chmod(0o755)
    return vdsm_module.Vdsm(str(hooks), user="root"), out


def recorded(out):
    data = (out / "data").read_text()
    env = dict(line.split("=", 1)
               for line in (out / "env").read_text().splitlines()
               if "=" in line)
    return data, env


@pytest.mark.parametrize("hook", [
    pytest.param("after_vm_destroy", id="after_vm_destroy"),
    pytest.param("after_vm_pause", id="after_vm_pause"),
    pytest.param("after_vm_cont", id="after_vm_cont"),
    pytest.param("before_vm_migrate_source", id="before_vm_migrate_source"),
    pytest.param("before_vm_hibernate", id="before_vm_hibernate"),
])
def test_live_xml_reaches_the_hook_as_libvirt_wrote_it(recording, hook):
    # Vdsm hands these hooks a string it got from libvirt unchanged:
    # self._dom.XMLDesc() for pause, resume, migrate and hibernate
    # (lib/vdsm/virt/vm.py), and for after_vm_destroy self._domain.xml,
    # DomainDescriptor's xml property, which returns the string the
    # descriptor was made of (lib/vdsm/virt/domain_descriptor.py,
    # DomainDescriptor.__init__ keeps xmlStr; only MutableDomainDescriptor
    # re-serializes), set from XMLDesc() by _updateDomainDescriptor.
    vdsm, out = recording
    vdsm.run(hook, LIVE_XML, vm_id="5a0c7e52-3d1b-4b8e-9a77-0e2f4c6b8d14",
             custom={"containerType": "docker"})
    data, env = recorded(out)
    assert data == LIVE_XML
    assert env["vmId"] == "5a0c7e52-3d1b-4b8e-9a77-0e2f4c6b8d14"
    assert env["containerType"] == "docker"


def test_before_vm_start_gets_vdsm_built_xml_and_its_properties(recording):
    # Vm._buildDomainXML() of Engine's XML, and the custom properties of
    # that XML in the environment (metadata.Descriptor of conf['xml']).
    vdsm, out = recording
    vm = domains.container_vm("docker", "registry.example/app:1")
    vdsm.run("before_vm_start", vm.engine_xml, vm_id=vm.id, custom=vm.custom)
    data, env = recorded(out)
    assert data == vm.xml == vdsm_module.build_domain_xml(vm.engine_xml)
    assert data.startswith("<?xml version='1.0' encoding='utf-8'?>\n<domain")
    assert (env["containerType"], env["containerImage"]) == (
        "docker", "registry.example/app:1")


def test_before_vm_start_refuses_properties_the_xml_does_not_have(recording):
    vdsm, out = recording
    vm = domains.container_vm("docker", "registry.example/app:1")
    with pytest.raises(AssertionError):
        vdsm.run("before_vm_start", vm.engine_xml, vm_id=vm.id,
                 custom=dict(vm.custom, containerImage="other:1"))


def test_before_vm_destroy_gets_an_empty_file(recording):
    # hooks.before_vm_destroy passes None whatever domxml it is given.
    vdsm, out = recording
    vm = domains.container_vm("docker", "registry.example/app:1")
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    data, env = recorded(out)
    assert data == ""
    assert env["vmId"] == vm.id
    # tempfile.mkstemp() with no arguments, as _runHooksDir makes it.
    assert os.path.basename(env["_hook_domxml"]).startswith("tmp")
