"""Garbage collection: what a crash, a kill or a hand left behind.

"vdsm-containers gc" (root) runs this by hand, and the RPM's systemd timer
vdsm-hook-containers-gc.timer runs it every 5 minutes.  Vdsm's own hooks
cover every normal end of a VM; this pass covers the rest:

1. a container of the package (label org.ovirt.vdsm-hook-containers=1)
   whose VM has no placeholder running on this host (its before_vm_start
   was killed, the domain never started, Vdsm lost it): the container is
   stopped and removed, its volumes unmounted and its state dropped;
2. a placeholder whose container is gone (removed by hand, lost with the
   engine's storage): the placeholder's qemu is killed, with an exit
   record saying so, and Vdsm reports the VM Down;
3. state, volume mounts, loop devices and lock files of a VM that has
   neither a container nor a placeholder: released;
4. exit records older than a day: removed.

Only the package's own containers are acted on: one that a state record
of this host names (state.owns).  A container that merely carries the
package's labels (an admin ran a VM's image by hand, and the image's
labels mimic the package's; or it is left from before a reboot emptied
/run) is reported as "foreign" and never touched, nor anything its labels
name.

Only things older than gc_grace seconds (containers.conf) are touched, and
never a VM whose start or stop holds its lock: a start in progress is
between the helper and libvirt for a moment, with a container and no
placeholder yet.  Just before acting, under the VM's lock, gc checks again
that the VM is as it found it (the same state record, so the same
container; still no placeholder): a start that ran in between is never
undone.  Nothing here writes to a VM's disks: volumes are only unmounted
and loop devices detached.
"""

import collections
import errno
import logging
import os
import signal
import time

from containerhooks import errors
from containerhooks import exits
from containerhooks import procfs
from containerhooks import state
from containerhooks import volumes

log = logging.getLogger("containerhooks.gc")

# What gc found: kind (container, placeholder, state; foreign: reported
# only), the VM (for foreign: the label, any string), what it is, why it
# goes; the container found (its id) and the VM's state record as gc saw
# it (record_key()), checked again before acting.
Finding = collections.namedtuple(
    "Finding", "kind, vm_id, what, reason, container_id, record")

FOREIGN_REASON = (
    "labelled as the package's, but not recorded in its state on this host: "
    "not created by vdsm-hook-containers here, or left from before a "
    "reboot; left alone, remove it by hand if it is a leftover")


def find(conf, engines, now=None):
    """What a pass would clean, as Findings (changes nothing).

    engines: {name: engine.Engine} of the engines that answer.
    """
    now = time.time() if now is None else now
    findings = []
    seen = set()
    for name, eng in sorted(engines.items()):
        for info in eng.list_managed():
            vm_id, record = _owner(name, info)
            if vm_id is None:
                findings.append(Finding(
                    "foreign", info.vm_id or "", "%s container %s (%s, %s)"
                    % (name, info.name, info.id[:12], info.status),
                    FOREIGN_REASON, info.id, None))
                continue
            seen.add(vm_id)
            if procfs.find_qemu(vm_id) is not None:
                continue
            age = now - (info.created or now)
            if age < conf.gc_grace or _busy(vm_id):
                continue
            findings.append(Finding(
                "container", vm_id, "%s container %s (%s)" % (
                    name, info.name, info.status),
                "its VM has no placeholder on this host", info.id,
                record_key(record)))
    for vm_id in state.vm_ids():
        if vm_id in seen or _busy(vm_id):
            continue
        record = _read(vm_id) or state.Record()
        created = record.created if record.has("created") else now
        if now - created < conf.gc_grace:
            continue
        if record.engine not in engines:
            continue     # engine down: cannot tell whether it is gone
        qemu = procfs.find_qemu(vm_id)
        if qemu is not None:
            findings.append(Finding(
                "placeholder", vm_id, "placeholder qemu pid %d" % qemu,
                "its container %s is gone" % record.container_name,
                None, record_key(record)))
        else:
            findings.append(Finding(
                "state", vm_id, "state file, volumes", "neither container "
                "nor placeholder exists", None, record_key(record)))
    for vm_id in volumes.vm_ids():
        if vm_id not in seen and not state.exists(vm_id) \
                and not _busy(vm_id):
            findings.append(Finding(
                "state", vm_id, "volume mounts", "the VM has no state",
                None, None))
    found = set(f.vm_id for f in findings)
    for vm_id in state.lock_ids():
        # A start killed before it wrote any state (while pulling) leaves
        # its lock file, and nothing else, once no engine has a container.
        if vm_id in seen or vm_id in found or state.exists(vm_id) \
                or set(conf.engines) - set(engines) or _busy(vm_id):
            continue
        if now - state.lock_mtime(vm_id) < conf.gc_grace:
            continue
        findings.append(Finding(
            "state", vm_id, "lock file", "a start or stop of the VM was "
            "killed before it wrote any state", None, None))
    return findings


def record_key(record):
    """What identifies one run of a VM in its state record: when the start
    began and the container it made; None without a record."""
    if not record:
        return None
    return (record.created, record.container_id)


def clean(conf, findings, stop_vm):
    """Act on findings; return the ones that failed, with their error.

    stop_vm(conf, vm_id, engine, check) is the helper's own stop
    (helper.stop_vm); it runs check(record) under the VM's lock.  Foreign
    containers are only logged; a VM that changed since find() is left.
    """
    failed = []
    for f in findings:
        if f.kind == "foreign":
            log.warning("gc left alone %s labelled vm_id=%r: %s", f.what,
                        f.vm_id, f.reason)
            continue
        try:
            if f.kind == "placeholder":
                _kill_placeholder(f)
            else:
                stop_vm(conf, f.vm_id, None,
                        lambda record, f=f: _check(f, record))
            log.info("gc vm_id=%s removed %s: %s", f.vm_id, f.what, f.reason)
        except errors.VmChanged as e:
            log.info("gc vm_id=%s did not remove %s: %s", f.vm_id, f.what, e)
        except (errors.Error, OSError) as e:
            log.error("gc vm_id=%s could not remove %s: %s", f.vm_id, f.what,
                      e)
            failed.append((f, e))
    exits.prune()
    return failed


def _check(f, record):
    """Under the VM's lock, just before acting: is the VM as find() saw
    it?  A start since then wrote a new record (or none, if it failed);
    a new record names a new container."""
    if record_key(record) != f.record:
        raise errors.VmChanged(vm_id=f.vm_id, reason="its state record "
                               "changed: a start or stop of it ran since")
    if f.kind != "placeholder" and procfs.find_qemu(f.vm_id) is not None:
        raise errors.VmChanged(vm_id=f.vm_id, reason="its placeholder "
                               "runs now")


def _kill_placeholder(f):
    with state.Lock(f.vm_id):
        record = state.read(f.vm_id)
        _check(f, record)
        pid = procfs.find_qemu(f.vm_id)
        if pid is None:
            return
        exits.write(exits.record(
            f.vm_id, None, state_record=record,
            text="container %s disappeared outside oVirt"
            % (record.container_name if record and
               record.has("container_name") else "?")))
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise


def _owner(engine, info):
    """(vm_id, its state record) if a state record names container info
    of engine; else (None, None): not the package's."""
    vm_id = info.vm_id
    if not state.is_id(vm_id):
        return None, None
    record = _read(vm_id)
    if not state.owns(record, engine, info):
        return None, None
    return vm_id, record


def _read(vm_id):
    try:
        return state.read(vm_id)
    except errors.StateError as e:
        log.warning("gc vm_id=%s unreadable state: %s", vm_id, e)
        return None


def _busy(vm_id):
    """Whether a start or stop of vm_id holds its lock right now (without
    a lock file, none does: gc makes none for asking)."""
    if not state.lock_exists(vm_id):
        return False
    lock = state.Lock(vm_id)
    try:
        lock.__enter__()
    except errors.StateError:
        return True
    lock.release()
    return False
