"""vdsm-containers check, ps, logs and gc, the installed admin command."""

import json
import os
import time

import domains
import images
import libvirt as virt
import vmrun
from vmrun import start_hook as start


def container(client, vm):
    found = vmrun.containers_of(client, vm)
    return found[0] if found else None


def test_gc_removes_a_container_whose_vm_never_started(vdsm, installation,
                                                       engine):
    # before_vm_start ran, but the domain never did (Vdsm or the host
    # died in between): the container has no placeholder.
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    start(vdsm, vm)

    rc, out, _ = installation.run_cli("gc", "--vm", vm.id, "--dry-run",
                                      "--grace", "0")
    assert rc == 0 and "would remove %s" % vm.id in out
    assert container(client, vm).status == "running"

    rc, out, _ = installation.run_cli("gc", "--vm", vm.id, "--grace", "3600")
    assert rc == 0 and "nothing to clean" in out      # within the grace
    assert container(client, vm).status == "running"

    rc, out, err = installation.run_cli("gc", "--vm", vm.id, "--grace", "0")
    assert rc == 0, err
    assert "removing %s" % vm.id in out
    assert container(client, vm) is None
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           vm.id + ".json"))


def test_gc_kills_a_placeholder_whose_container_is_gone(
        vdsm, installation, engine, libvirt_host, qemu_workdir):
    name, client = engine
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE},
                    base="no-nic-in.xml")
    last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir,
                           wait=False)
    try:
        container(client, vm).remove(force=True)      # by hand

        rc, out, err = installation.run_cli("gc", "--vm", vm.id, "--grace",
                                            "0")

        assert rc == 0, err
        assert "placeholder qemu" in out
        deadline = time.time() + 10
        while virt.exists(vm.id) and time.time() < deadline:
            time.sleep(0.1)
        assert not virt.exists(vm.id)
        with open(os.path.join(installation.state_dir,
                               vm.id + ".exit")) as f:
            assert "disappeared outside oVirt" in json.load(f)["message"]
        # Vdsm then runs after_vm_destroy: quiet, and the state goes.
        done = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                        custom=vm.custom)
        assert done.errors == []
        assert not os.path.exists(os.path.join(installation.state_dir,
                                               vm.id + ".json"))
    finally:
        virt.virsh("destroy", vm.id, check=False)


def test_ps_and_logs(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    try:
        rc, out, err = installation.run_cli("ps", "--json")
        assert rc == 0, err
        rows = dict((r["vm_id"], r) for r in json.loads(out))
        row = rows[vm.id]
        assert (row["vm_name"], row["engine"], row["image"], row["state"],
                row["placeholder"]) == (vm.name, name, images.IMAGE,
                                        "running", False)
        assert row["uptime"] is not None and row["uptime"] >= 0
        rc, out, _ = installation.run_cli("ps")
        assert vm.id in out and "running" in out

        c = container(client, vm)
        c.exec_run(["sh", "-c", "echo marker-%s > /proc/1/fd/1" % vm.id[:8]])
        for who in (vm.id, vm.name):
            rc, out, err = installation.run_cli("logs", who, "--tail", "5")
            assert rc == 0, err
            assert "marker-%s" % vm.id[:8] in out
        rc, _, err = installation.run_cli("logs", "no-such-vm")
        assert rc == 1 and "no container VM with that id or name" in err
    finally:
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                 custom=vm.custom)


def test_check(installation, fresh_conf, watcher):
    helperd = installation.start_helperd()
    try:
        rc, out, err = installation.run_cli("check", "--json")
    finally:
        installation.stop_helperd(helperd)
    results = dict((r["check"], r) for r in json.loads(out))
    assert rc == 0, out
    assert set(results) == {"config", "engine docker", "engine podman",
                            "helper", "helper service", "sudo rule", "hooks",
                            "placeholder kernel", "exit watcher", "networks",
                            "pids"}
    assert all(r["ok"] for r in results.values())

    # The helper service stopped: the one failure, and what to do.
    rc, out, _ = installation.run_cli("check")
    assert rc == 1
    [failed] = [l for l in out.splitlines() if l.startswith("FAIL")]
    assert "helper service" in failed
    assert "systemctl enable --now vdsm-hook-containers-helperd" in failed
    helperd = installation.start_helperd()

    fresh_conf.configure(docker_socket="/run/vhc-tests-nothing.sock")
    try:
        rc, out, _ = installation.run_cli("check")
    finally:
        installation.stop_helperd(helperd)
    assert rc == 1
    assert [l for l in out.splitlines() if l.startswith("FAIL")] == [
        l for l in out.splitlines() if "engine docker" in l]
