"""Exit records: how a VM's container ended on its own.

When a container's main process exits (normally, with an error, killed by
the OOM killer or by a signal), the exit watcher (root, watcher.py) writes
STATE_DIR/<vm id>.exit before it takes the placeholder down.  Vdsm then
reports the VM Down with "Lost connection with qemu process"; while Vdsm
still lists the VM, the stats hooks (vdsm, vmstats.py) replace that with
the record's message, for example

    container exited with code 137 (out of memory)
    container exited with code 3 (error): connecting to db | db: no route

(the last lines of the container's output, see lastwords.py).

The record is a file of its own, not a field of the state file, because
the destroy hooks that run right after the placeholder went down remove
the container and its state.  It is dropped when the VM starts again
(the helper's start), and the watcher drops records older than MAX_AGE:
Engine reads a Down VM within seconds and then destroys it in Vdsm.
"""

import json
import os
import signal
import time

from containerhooks import state

SUFFIX = state.EXIT
MAX_AGE = 24 * 3600

# Exit codes with a conventional meaning (POSIX shells, and Docker and
# Podman for a command that cannot be run).
_CODES = {
    0: "success",
    125: "the engine could not run the container",
    126: "command cannot be run",
    127: "command not found",
}


def message(exit_code, oom_killed=False, error=None, output=None):
    """One line for Engine's exit message, naming the code and reason,
    then the container's last lines of output (lastwords.py: bounded,
    printable, host secrets redacted) when it printed any."""
    if exit_code is None:
        return "container is gone (removed outside of oVirt)"
    if oom_killed:
        reason = "out of memory"
    elif exit_code in _CODES:
        reason = _CODES[exit_code]
    elif 128 < exit_code < 128 + 65:
        reason = "killed by %s" % _signal_name(exit_code - 128)
    else:
        reason = "error"
    text = "container exited with code %d (%s)" % (exit_code, reason)
    if error:
        text += ": " + " ".join(error.split())[:200]
    if output:
        text += ": " + output
    return text


def _signal_name(number):
    for name in dir(signal):
        if name.startswith("SIG") and not name.startswith("SIG_") \
                and getattr(signal, name) == number:
            return name
    return "signal %d" % number


def record(vm_id, exit_code, oom_killed=False, error=None, text=None,
           state_record=None, finished_at=None, now=None, output=None):
    """The exit record of vm_id, the one shape the watcher and gc write.

    state_record (the VM's state.Record) names the engine and container
    that ended; text (the message) defaults to message(exit_code,
    oom_killed, error, output)."""
    state_record = state_record or state.Record()
    return {
        "vm_id": vm_id,
        "engine": state_record.engine,
        "container_id": state_record.container_id,
        "container_name": state_record.container_name,
        "exit_code": exit_code,
        "oom_killed": oom_killed,
        "error": error,
        "output": output,
        "finished_at": finished_at,
        "time": time.time() if now is None else now,
        "message": text if text is not None
        else message(exit_code, oom_killed, error, output),
    }


def path(vm_id):
    # A UUID, never a path (state.valid_id): the record's vm_id may come
    # from a container label.
    return state.path(vm_id, SUFFIX)


def write(record):
    """Write record (a dict with vm_id, see record()) atomically, readable
    by vdsm."""
    target = path(record["vm_id"])
    state.write_file(target, json.dumps(record, sort_keys=True),
                     prefix="." + record["vm_id"])


def read(vm_id):
    """The exit record of vm_id, or None (also when it is unreadable, and
    for what is not a VM id)."""
    if not state.is_id(vm_id):
        return None
    return state.read_json_file(path(vm_id))


def remove(vm_id):
    _unlink(path(vm_id))


def vm_ids():
    return sorted(state.listing().exits)


def prune(now=None, max_age=MAX_AGE):
    """Remove records older than max_age seconds; return their VM ids."""
    now = time.time() if now is None else now
    removed = []
    for vm_id in vm_ids():
        try:
            age = now - os.lstat(path(vm_id)).st_mtime
        except OSError:
            continue
        if age > max_age:
            remove(vm_id)
            removed.append(vm_id)
    return removed


_unlink = state.remove_file
