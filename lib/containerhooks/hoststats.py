"""after_get_stats and after_get_caps: what the host offers for containers.

Both hooks run as vdsm, which cannot reach the engines' sockets, and must
never slow down or fail Vdsm's call.  They read what the exit watcher
(root, watcher.py) last wrote about the engines, STATE_DIR/watcher.status,
and count the state and exit records; nothing else.

after_get_stats adds a "containers" section to the host stats:

    {"watcher": true,
     "engines": {"docker": {"reachable": true, "version": "20.10.24",
                            "apiVersion": "1.41"}, ...},
     "vmsRunning": 3, "vmsExited": 1, "hookMs": 1.8}

vmsRunning counts the container VMs whose container's first process
runs, vmsExited the VMs whose container ended on its own and whose exit
record is kept (exits.py).  hookMs is the time the hook spent, from the
start of its script.

after_get_caps adds a "containers" section with each reachable engine's
version, isolation runtimes (runc, crun, kata, runsc: what the engine
reports), the runtimes a VM may choose there and the one it gets when it
chooses none (vmRuntimes, vmDefaultRuntime: containers.conf's) and cgroup
driver, and puts "vdsm-hook-containers" in
additionalFeatures (plus "vdsm-hook-containers:<engine>" per reachable
engine) when the watcher runs and at least one engine answers: the hosts
that can take container VMs, as an admin sees them in Engine.  Without a
running watcher a container's end would go unnoticed, so the host does
not advertise the feature then.
"""

import json
import logging
import time

from containerhooks import exits
from containerhooks import hookenv
from containerhooks import procfs
from containerhooks import state

log = logging.getLogger("containerhooks.hoststats")

FEATURE = "vdsm-hook-containers"


def stats_main(started=None):
    hookenv.run(lambda env: host_stats(env, started),
                failure_rc=hookenv.ERROR)


def caps_main():
    hookenv.run(host_caps, failure_rc=hookenv.ERROR)


def host_stats(env, started=None):
    started = time.time() if started is None else started
    data = hookenv.read_json(env)
    if not isinstance(data, dict):
        return
    section = {}
    try:
        status = watcher_status()
        section["watcher"] = status is not None
        section["engines"] = dict(
            (name, _public(info, ("reachable", "version", "apiVersion",
                                  "error")))
            for name, info in _engines(status).items())
        section["vmsRunning"] = running_vms()
        section["vmsExited"] = len(exits.vm_ids())
    except Exception:
        log.exception("cannot describe the containers of this host")
    section["hookMs"] = round((time.time() - started) * 1000, 2)
    data["containers"] = section
    hookenv.write_json(env, data)


def host_caps(env):
    data = hookenv.read_json(env)
    if not isinstance(data, dict):
        return
    section = {"watcher": False, "engines": {}}
    features = []
    try:
        status = watcher_status()
        engines = dict(
            (name, _public(info, ("version", "apiVersion", "runtimes",
                                  "defaultRuntime", "cgroupDriver",
                                  "cgroupVersion")))
            for name, info in _engines(status).items()
            if info.get("reachable"))
        _add_vm_runtimes(engines)
        section = {"watcher": status is not None, "engines": engines}
        if status is not None and engines:
            features = [FEATURE] + ["%s:%s" % (FEATURE, name)
                                    for name in sorted(engines)]
    except Exception:
        log.exception("cannot describe what this host can run")
    data["containers"] = section
    additional = data.get("additionalFeatures")
    if not isinstance(additional, list):
        additional = []
    data["additionalFeatures"] = additional + [
        f for f in features if f not in additional]
    hookenv.write_json(env, data)


def _add_vm_runtimes(engines):
    """Add to each engine's caps the OCI runtimes a VM may name there
    (containerRuntime, runtimes.py): vmRuntimes, containers.conf's
    <engine>_runtimes or else the engine's default alone, and
    vmDefaultRuntime, the one of a VM that names none.  What the host
    offers, not proof: "vdsm-containers check" checks each with the
    engine, and a start proves its container's."""
    from containerhooks import config
    from containerhooks import runtimes
    try:
        conf = config.load()
    except Exception:
        log.exception("cannot read which runtimes VMs may choose")
        return
    for name, info in engines.items():
        default = runtimes.runtime_name(info.get("defaultRuntime"))
        offered = runtimes.offered(conf, name)
        info["vmRuntimes"] = list(offered) if offered else (
            [default] if default else [])
        chosen = conf.default_runtimes.get(name) or default
        if chosen:
            info["vmDefaultRuntime"] = chosen


def status_path():
    """Where the watcher keeps what it knows of the engines."""
    return state.watcher_status_path()


def watcher_status():
    """What the running watcher wrote, or None when it does not run."""
    try:
        with open(status_path()) as f:
            status = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(status, dict) or not procfs.alive(status.get("pid")):
        return None
    return status


def running_vms():
    """Container VMs whose container's first process runs."""
    count = 0
    for vm_id in state.vm_ids():
        try:
            record = state.read(vm_id)
        except Exception:
            continue
        if record and record.pid and procfs.alive(record.pid):
            count += 1
    return count


def _engines(status):
    engines = (status or {}).get("engines")
    return engines if isinstance(engines, dict) else {}


def _public(info, keys):
    return dict((k, info[k]) for k in keys
                if isinstance(info, dict) and info.get(k) is not None)
