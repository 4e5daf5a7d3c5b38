"""A VM without containerType passes through every hook unchanged."""

import domains
import images


def test_plain_vm_untouched(vdsm, installation, docker_client, podman_client):
    vm = domains.VM({"someOtherProperty": "value"})
    # Summaries, not inspected containers: another test run may remove
    # one of its own between a listing and its inspection.
    before = [c["Id"] for c in docker_client.api.containers(all=True)]

    started = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                       custom=vm.custom)
    pre = vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    post = vdsm.run("after_vm_destroy", vm.xml, vm_id=vm.id,
                    custom=vm.custom)

    assert started.data == vm.xml          # byte for byte
    assert post.data == vm.xml
    assert pre.data == ""
    for result in (started, pre, post):
        assert result.errors == []
        assert all(s.err == b"" for s in result.scripts)
    assert [c["Id"] for c in docker_client.api.containers(all=True)] \
        == before
    assert [f for f in installation.state_files()
            if f.startswith(vm.id)] == []


def test_image_property_without_type_untouched(vdsm, installation):
    # containerType decides; a stray containerImage alone changes nothing.
    vm = domains.VM({"containerImage": images.IMAGE})
    started = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                       custom=vm.custom)
    assert started.data == vm.xml
    assert started.errors == []
