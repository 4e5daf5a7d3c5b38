"""A container VM run as Engine and Vdsm run it, on the host's libvirt.

start() is Engine's Run: before_vm_start through the installed hooks
(tests/vdsm.py), then the placeholder XML it returns given to libvirt as a
transient domain (tests/libvirt.py adjust and create), as Vdsm does.  The
other functions are the rest of a VM's life (power off, what Engine reads
of a Down VM) and look at what came of it: the VM's containers, whether
its domain still exists, waiting for a domain or a container to end (or
for anything else: wait).

Plain functions, no pytest: the tests that run domains (e2e, watcher, gc,
faults) share them.
"""

import calendar
import glob
import os
import time

from lxml import etree

from containerhooks import engine as engines

import libvirt
import vdsmstats


def start(vdsm, vm, host, workdir, wait=True, bridge=None):
    """Engine's Run: before_vm_start, then libvirt createXML.  Returns the
    domain's live XML, what Vdsm passes to after_vm_destroy later: Vdsm
    re-reads it from libvirt once the domain runs (vm.py _vmDependentInit,
    _updateDomainDescriptor) and hands that to after_vm_destroy
    (releaseVm), never the hook's own output.  bridge: where the
    placeholder's NICs go, for a VM with vNICs (libvirt.adjust)."""
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    root = etree.fromstring(result.data.encode("utf-8"))
    libvirt.adjust(root, host, workdir, bridge)
    libvirt.create(root, workdir)
    if wait:
        libvirt.wait_running(vm.id)
    return libvirt.dumpxml(vm.id)


def containers_of(client, vm):
    """Every container of the engine labelled with vm's id, running or not.

    As engine.py lists: the engine's summaries, then each container
    inspected alone, skipping one gone meanwhile (the SDK's list() fails
    as a whole then; Docker also lists a container being created a moment
    before it can inspect it)."""
    import docker
    found = []
    for summary in client.api.containers(
            all=True, filters={"label": "org.ovirt.vm.id=" + vm.id}):
        try:
            found.append(client.containers.get(summary["Id"]))
        except docker.errors.APIError as e:
            if not engines.vanished(e):
                raise
    return found


MANAGED_LABEL = "org.ovirt.vdsm-hook-containers"


def discard(client, installation, vms):
    """A fixture's teardown of the VMs it made, whatever a test left of
    them: the placeholder domain, the package's containers, the VMs'
    files in the installation's state directory (exit records too)."""
    import os
    for vm in vms:
        libvirt.virsh("destroy", vm.id, check=False)
        remove_managed(client, [vm.id])
        for n in installation.state_files():
            if n.startswith(vm.id):
                os.unlink(os.path.join(installation.state_dir, n))


def remove_managed(client, vm_ids):
    """Remove the package's containers of these VMs; return their names.

    Lists without inspecting (the low-level API's summaries carry the
    labels): a full listing inspects every container it found, and one
    that another test run removes in between fails the whole listing."""
    import docker
    removed = []
    for c in client.api.containers(all=True, filters={
            "label": MANAGED_LABEL + "=1"}):
        if (c.get("Labels") or {}).get("org.ovirt.vm.id") in vm_ids:
            try:
                client.api.remove_container(c["Id"], force=True)
            except docker.errors.APIError as e:
                if not engines.vanished(e):
                    raise
                continue
            removed.append((c.get("Names") or [c["Id"]])[0].lstrip("/"))
    return removed


def domain_exists(vm):
    # Not "virsh domuuid": it takes a name or an id, never finds a uuid.
    return libvirt.virsh("domstate", vm.id, check=False)[0] == 0


def poll(predicate, timeout, interval=0.05):
    """predicate()'s first true value, polled every interval seconds, or
    None if none comes within timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def wait(predicate, timeout, what, interval=0.05):
    """poll()'s value; AssertionError naming what was awaited if none
    comes within timeout seconds."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError("timed out waiting for " + what)
    return value


def wait_gone(vm, timeout):
    """The time the libvirt domain was first seen gone, or None."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not domain_exists(vm):
            return time.time()
        time.sleep(0.01)
    return None


def wait_exited(c, timeout=30):
    """The engine's State of container c once it has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        c.reload()
        if c.attrs["State"]["Status"] in ("exited", "dead"):
            return c.attrs["State"]
        time.sleep(0.05)
    raise AssertionError("container %s still %s" % (c.name, c.status))


def finished_at(c):
    """The engine's FinishedAt (RFC 3339, nanoseconds) in epoch seconds."""
    c.reload()
    stamp = c.attrs["State"]["FinishedAt"]
    for suffix in ("Z", "+00:00"):
        if stamp.endswith(suffix):
            stamp = stamp[:-len(suffix)]
    whole, _, fraction = stamp.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + float("0." + (fraction or "0"))


def down_stats(vdsm, vm, **kw):
    """What Engine reads of the Down VM, through after_get_all_vm_stats."""
    plain = vdsmstats.vm_stats("0a0b0c0d-0000-4000-8000-000000000001")
    result = vdsm.run("after_get_all_vm_stats",
                      [vdsmstats.down_vm_stats(vm.id, **kw), plain])
    assert result.errors == []
    assert result.data[1] == plain
    return result.data[0]


def start_hook(vdsm, vm):
    """Vdsm's before_vm_start for vm alone (no domain is created)."""
    return vdsm.run("before_vm_start", vm.xml, vm_id=vm.id, custom=vm.custom)


def power_off(vdsm, vm, last_xml):
    """Engine's Power Off of a VM with no domain running: before_vm_destroy,
    then after_vm_destroy with the XML Vdsm holds of the VM (vm.py doDestroy,
    releaseVm): libvirt's live XML of a domain that ran; the XML Vdsm read
    back from before_vm_start (its final_callback) for a start that never
    reached libvirt, refused or not.  Returns both Results."""
    before = vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                      custom=vm.custom)
    after = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                     custom=vm.custom)
    return before, after


def destroy(vdsm, vm, libvirtd=libvirt):
    """Engine's Power Off of a VM whose domain runs: before_vm_destroy, the
    domain destroyed, after_vm_destroy with its last live XML (vm.py
    doDestroy, releaseVm).  libvirtd: the host's (the machine's, or a
    desthost.Destination's).  Returns both Results."""
    before = vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                      custom=vm.custom)
    last_xml = libvirtd.dumpxml(vm.id)
    libvirtd.virsh("destroy", vm.id)
    after = vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id,
                     custom=vm.custom)
    return before, after


def refused_start(vdsm, vm):
    """Engine's Run refused by before_vm_start, then what Engine does with
    the Down VM: destroy it on the host.  Vdsm keeps the XML it read back
    from the failed hook (hooks.before_vm_start calls final_callback,
    Vm._updateDomainDescriptor, before raising HookError), and Engine's
    destroy runs before_vm_destroy and after_vm_destroy on it.  Returns
    (HookError, before Result, after Result)."""
    import vdsm as vdsm_module
    try:
        result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                          custom=vm.custom)
    except vdsm_module.HookError as e:
        refusal = e
    else:
        raise AssertionError("the start was not refused: %s"
                             % (result.scripts,))
    before, after = power_off(vdsm, vm, refusal.result.data)
    return refusal, before, after


def restore_snapshot(vdsm, vm, saved_xml, memory_file, workdir):
    """Engine's Run of a VM previewing a memory snapshot, as Vdsm restores
    it (vm.py _run, the _FILE_ORIGIN branch, from_snapshot):

    - before_vm_start gets _buildDomainXML() of the XML saved with the
      snapshot (jobs/snapshot.py vm_conf_for_memory_snapshot keeps the
      running domain's migratable XML as _srcDomXML, which becomes
      conf['xml'] in Vm.__init__); its output is ignored, and a failing
      hook fails the restore (hooks.before_vm_start raises HookError);
    - libvirt restores the saved memory with that saved XML, paused
      (VIR_DOMAIN_SAVE_PAUSED), and Vdsm resumes it
      (_completeIncomingMigration, cont), which fires after_vm_cont with
      the live XML.

    (before_vm_dehibernate and after_vm_dehibernate run too; the package
    installs neither.)  Returns the live XML."""
    vdsm.run("before_vm_start", saved_xml, vm_id=vm.id, custom=vm.custom)
    path = libvirt.write_xml(etree.fromstring(saved_xml.encode("utf-8")),
                             workdir, name="restore.xml")
    libvirt.virsh("restore", memory_file, "--xml", path, "--paused")
    libvirt.virsh("resume", vm.id)
    live = libvirt.dumpxml(vm.id)
    assert vdsm.run("after_vm_cont", live, vm_id=vm.id,
                    custom=vm.custom).errors == []
    return live


def sh(container, script):
    """Run script in container with sh -c; its output (AssertionError if
    it fails)."""
    rc, out = container.exec_run(["sh", "-c", script])
    out = out.decode("utf-8", "replace")
    assert rc == 0, "%r failed (%d): %s" % (script, rc, out)
    return out


RUNSC = "/usr/bin/runsc"


def runtime_on_host(container_id, pid):
    """The runtime running a container as the host shows it, read apart
    from the package's own proof (runtimes.identify): gVisor's sandbox is
    the container's process itself; runc keeps its state in
    <root>/<id>/state.json, crun in <root>/<id>/status (Podman's roots
    /run/runc, /run/crun; Docker's <exec-root>/runtime-runc/moby for
    every runtime of its runc shim)."""
    if os.path.samefile("/proc/%d/exe" % pid, RUNSC):
        return "runsc"
    found = set()
    for depth in range(1, 5):
        pattern = "/run/" + "*/" * depth + container_id
        for directory in glob.glob(pattern):
            if os.path.isfile(os.path.join(directory, "state.json")):
                found.add("runc")
            if os.path.isfile(os.path.join(directory, "status")):
                found.add("crun")
    assert len(found) == 1, found
    return found.pop()
