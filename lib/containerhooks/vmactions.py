"""What the other Engine actions on a VM mean for its container.

- Hibernation (before_vm_hibernate) is refused: a container's memory is
  not the placeholder's, so the saved state could not carry it.  The hook
  exits 2 (no later script runs, so Vdsm's HookError carries this message:
  _runHooksDir raises with the stderr of the last script that ran), Vdsm
  aborts the action, the VM keeps running, and Engine shows the message.
  Migration restarts the container on the other host: migration.py.
- A memory snapshot runs no hook at all (Vdsm's virt/jobs/snapshot.py): it
  saves the placeholder's memory and XML, never the container's.  Restoring
  it runs before_vm_start on that saved placeholder XML, output ignored
  (vm.py _run, _FILE_ORIGIN): vmstart.py starts the container afresh from
  its image, with the VM's real size kept in the placeholder's metadata,
  and libvirt resumes the saved placeholder.  So a memory snapshot of a
  container VM is a disk snapshot whose restore is a cold start of the
  container.
- Hot-unplugging a disk the container has mounted (before_disk_hotunplug)
  is refused: qemu would let go of a disk it never wrote, Vdsm would tear
  down its volume, and the container would keep writing to storage that
  Engine believes detached.  Other disks unplug as usual.  (Vdsm gives no
  hook for a live storage migration (diskReplicateStart) or a disk resize
  (diskSizeExtend): see the README.)
- Pause (after_vm_pause) freezes the container, resume (after_vm_cont)
  thaws it.  after_vm_pause also fires when Vdsm pauses a VM on a storage
  I/O error: the container is frozen then too, because its volumes live on
  the same storage; Vdsm's own auto-resume (after_vm_cont) thaws it.
- Shutdown: Engine's Shutdown asks the guest through ACPI or the guest
  agent; the placeholder has neither, so it ignores the request, and the
  way to stop a container VM gracefully is Power Off (the container gets
  SIGTERM and stop_timeout seconds; see vmdestroy.py).

A VM that is not a container costs one file-existence check.
"""

import logging
import os

from containerhooks import errors
from containerhooks import hookenv
from containerhooks import state

log = logging.getLogger("containerhooks.vmactions")


class Refused(errors.Error):
    msg = ("{action} is not possible for container VMs (VM {vm_id}): the "
           "container's state lives outside the placeholder; {what}")


_OUR_NS = b"http://ovirt.org/vdsm-hook-containers/1.0"


def container_vm(env):
    """The VM id when the hook's VM is a container VM, else None.

    By vmId and the state file; failing that (vmId missing), by the
    package's metadata in the live XML these hooks get.
    """
    vm_id = env.get("vmId")
    if vm_id:
        return vm_id if state.exists(vm_id) else None
    data = hookenv.read_data(env, hookenv.DOMXML)
    if _OUR_NS not in data:
        return None
    from containerhooks import domxml
    return domxml.Domain.parse(data).uuid


def refuse_hibernation(env):
    vm_id = container_vm(env)
    if vm_id:
        raise Refused(action="Suspending to disk", vm_id=vm_id,
                      what="power the VM off instead")


def refuse_disk_hotunplug(env):
    """Refuse when the disk to unplug is mounted in vm's container.

    Vdsm (virt/vm.py hotunplugDisk) gives the drive's own <disk> XML, the
    VM's custom properties and vmId; a non-zero exit aborts the unplug
    before libvirt is asked.  The disk is recognized by its target name or
    by the image it leads to, as the state file recorded them.
    """
    vm_id = env.get("vmId")
    record = state.read(vm_id) if vm_id else None
    mounted = (record.volumes if record else None) or []
    if not mounted:
        return
    from lxml import etree
    disk = etree.fromstring(hookenv.read_data(env, hookenv.DOMXML))
    target = disk.find("target")
    name = target.get("dev") if target is not None else None
    source = disk.find("source")
    path = None
    if source is not None:
        path = source.get("file") or source.get("dev")
    real = os.path.realpath(path) if path else None
    for entry in mounted:
        if entry.get("disk") == name or \
                (real is not None and entry.get("source") == real):
            raise errors.DiskInUse(action="Hot-unplugging",
                                   disk=entry.get("disk"), vm_id=vm_id,
                                   path=entry.get("path"))


def pause(env):
    vm_id = container_vm(env)
    if vm_id:
        from containerhooks import privileged
        privileged.pause(vm_id)


def resume(env):
    vm_id = container_vm(env)
    if vm_id:
        from containerhooks import privileged
        privileged.unpause(vm_id)


def hibernate_main():
    hookenv.run(refuse_hibernation, failure_rc=hookenv.ERROR_STOP)


def disk_hotunplug_main():
    hookenv.run(refuse_disk_hotunplug, failure_rc=hookenv.ERROR_STOP)


def pause_main():
    hookenv.run(pause, failure_rc=hookenv.ERROR)


def cont_main():
    hookenv.run(resume, failure_rc=hookenv.ERROR)
