"""after_get_stats and after_get_caps, through the real hooks.

They run as vdsm, which cannot reach the engines: what they report of the
engines comes from the exit watcher (the watcher fixture runs it as its
service does).  Neither may ever fail Vdsm's call.
"""

import os

import pytest

import domains
import images
import vdsmstats

FEATURE = "vdsm-hook-containers"


def status_file(installation):
    return os.path.join(installation.state_dir, "watcher.status")


def test_host_stats(vdsm, installation, docker_client, podman_client,
                    watcher):
    vm = domains.container_vm("docker", images.IMAGE)
    started = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                       custom=vm.custom)
    try:
        before = vdsmstats.host_stats()
        result = vdsm.run("after_get_stats", before)
    finally:
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        vdsm.run("after_vm_destroy", started.data, vm_id=vm.id,
                 custom=vm.custom)

    assert result.errors == []
    section = result.data.pop("containers")
    assert result.data == before                # Vdsm's keys untouched
    assert section["watcher"] is True
    assert section["engines"] == {
        "docker": {"reachable": True,
                   "version": docker_client.version()["Version"],
                   "apiVersion": docker_client.version()["ApiVersion"]},
        "podman": {"reachable": True,
                   "version": podman_client.version()["Version"],
                   "apiVersion": podman_client.version()["ApiVersion"]},
    }
    assert section["vmsRunning"] >= 1
    assert section["vmsExited"] >= 0
    assert 0 < section["hookMs"] < 5000


def test_host_caps(vdsm, installation, docker_client, podman_client,
                   watcher):
    before = vdsmstats.host_caps()

    result = vdsm.run("after_get_caps", before)

    assert result.errors == []
    caps = result.data
    section = caps.pop("containers")
    features = caps.pop("additionalFeatures")
    assert features == before.pop("additionalFeatures") + [
        FEATURE, FEATURE + ":docker", FEATURE + ":podman"]
    assert caps == before
    assert section["watcher"] is True
    for name, client in (("docker", docker_client),
                         ("podman", podman_client)):
        engine = section["engines"][name]
        assert engine["version"] == client.version()["Version"]
        assert engine["runtimes"] == sorted(client.info()["Runtimes"])
        assert engine["defaultRuntime"] == client.info()["DefaultRuntime"]
        # containers.conf as installed offers no runtime: a VM may name
        # the engine's own default only.
        assert engine["vmRuntimes"] == [client.info()["DefaultRuntime"]]
        assert engine["vmDefaultRuntime"] == \
            client.info()["DefaultRuntime"]


def test_host_caps_vm_runtimes(vdsm, fresh_conf, watcher):
    # The runtimes containers.conf offers VMs, as Engine's host
    # capabilities carry them (read at each call: no restart).
    fresh_conf.configure(docker_runtimes="runc, runsc",
                         docker_default_runtime="runsc",
                         podman_runtimes="crun, runc")
    caps = vdsm.run("after_get_caps", vdsmstats.host_caps())
    engines = caps.data["containers"]["engines"]
    assert (engines["docker"]["vmRuntimes"],
            engines["docker"]["vmDefaultRuntime"]) == (["runc", "runsc"],
                                                       "runsc")
    assert (engines["podman"]["vmRuntimes"],
            engines["podman"]["vmDefaultRuntime"]) == (["crun", "runc"],
                                                       "runc")


def test_engine_down(vdsm, fresh_conf):
    fresh_conf.configure(docker_socket="/run/vhc-tests-nothing.sock")
    proc = fresh_conf.start_watcher()
    try:
        stats = vdsm.run("after_get_stats", vdsmstats.host_stats())
        caps = vdsm.run("after_get_caps", vdsmstats.host_caps())
    finally:
        fresh_conf.stop_watcher(proc)

    docker = stats.data["containers"]["engines"]["docker"]
    assert docker["reachable"] is False
    assert "/run/vhc-tests-nothing.sock" in docker["error"]
    assert stats.data["containers"]["engines"]["podman"]["reachable"]
    assert list(caps.data["containers"]["engines"]) == ["podman"]
    assert FEATURE + ":docker" not in caps.data["additionalFeatures"]
    assert FEATURE + ":podman" in caps.data["additionalFeatures"]


@pytest.mark.parametrize("status", [
    pytest.param(None, id="watcher-not-running"),
    pytest.param("{not json", id="garbage-status"),
    pytest.param('{"pid": 999999999, "engines": {"docker": '
                 '{"reachable": true}}}', id="watcher-died"),
])
def test_no_watcher(vdsm, installation, status):
    path = status_file(installation)
    assert not os.path.exists(path)
    if status is not None:
        if not os.path.isdir(installation.state_dir):
            os.makedirs(installation.state_dir)
        with open(path, "w") as f:
            f.write(status)
    try:
        stats = vdsm.run("after_get_stats", vdsmstats.host_stats())
        caps = vdsm.run("after_get_caps", vdsmstats.host_caps())
    finally:
        if status is not None:
            os.unlink(path)

    assert stats.errors == [] and caps.errors == []
    assert stats.data["containers"]["watcher"] is False
    assert stats.data["containers"]["engines"] == {}
    assert caps.data["containers"] == {"watcher": False, "engines": {}}
    # No watcher: a container's end would go unnoticed, so the host does
    # not offer to run container VMs.
    assert caps.data["additionalFeatures"] == \
        vdsmstats.host_caps()["additionalFeatures"]
