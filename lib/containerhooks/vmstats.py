"""after_get_vm_stats and after_get_all_vm_stats: the container's figures.

Vdsm measures the placeholder (a halted vCPU, 16 MiB); Engine should see
the container.  For every container VM in the list (found by vmId: these
hooks get no custom properties), the hook overlays, in Vdsm's own keys and
types (numbers as strings, lib/vdsm/virt/vmstats.py):

- cpuUser, cpuSys: percent of one host CPU over the interval since the
  previous sample (samples.py), from the cgroup's user and system time;
  cpuUsage: cumulative CPU time in ns;
- memUsage: integer percent of the VM's memory in use (the cgroup's
  charge minus its inactive file cache, see cgroups.py); memoryStats
  mem_total (the VM's memory), mem_unused (not charged at all), mem_free
  (not in use: unused plus reclaimable cache), in KiB;
- network: per vNIC of the container (the state file's nics), the
  counters of its interface in the container's namespace (procfs.py),
  in the entry Vdsm keeps for the vNIC with that MAC;
- guestIPs, netIfaces: the container's addresses with the vNIC's MAC;
  guestFQDN: the FQDN of the VM's Initial Run, else the container's
  hostname;
- appsList: the image, the digest its container runs, the engine and its
  version, the runtime (apps_list); guestContainers: the container as
  Engine's "Containers" sub-tab shows it (guest_containers).

Every other key stays as Vdsm put it; a VM that is not a container is not
touched.  A Down VM whose container ended on its own (an exit record, see
exits.py) gets the record's exitMessage instead of "Lost connection with
qemu process".

The hook never fails the call because of one VM: a container that is gone
or unreadable keeps Vdsm's figures, and the hook logs why.  The file is
replaced atomically (a JSON hook that leaves invalid JSON breaks the stats
of every VM of the host), and only when something changed; the VMs it
did not change are copied byte for byte, only the container VMs are
encoded again.

Nothing here talks to the engine: the figures come from the kernel.  The
exit watcher takes them for every container VM every few seconds and
keeps them in one file (statsnap.py), so a call reads that file once,
whatever the number of VMs; a VM it lacks (just started, or no watcher
runs) costs a few file reads of its own.
"""

import collections
import json
import logging
import time

from json.decoder import WHITESPACE as _WHITESPACE

from containerhooks import cgroups
from containerhooks import errors
from containerhooks import exits
from containerhooks import health
from containerhooks import hookenv
from containerhooks import procfs
from containerhooks import samples
from containerhooks import state
from containerhooks import statsnap

log = logging.getLogger("containerhooks.vmstats")

# Vdsm's exit reasons (lib/vdsm/virt/vmexitreason.py) of a placeholder that
# went down because its qemu process was killed: the watcher's doing when
# there is an exit record.
LOST_QEMU_CONNECTION = 2
HOST_SHUTDOWN = 11

# Vdsm's speed for a virtio or e1000 vNIC (vmstats.nic_info), for an entry
# it did not report itself.
DEFAULT_SPEED = "1000"

KIB = 1024
MIB = 1024 * 1024


def main():
    hookenv.run(vm_stats, failure_rc=hookenv.ERROR)


def vm_stats(env):
    text = hookenv.read_data(env, hookenv.JSON).decode("utf-8")
    try:
        data, spans = _elements(text)
    except ValueError:
        data, spans = json.loads(text), None
    if not isinstance(data, list):
        return
    running, exited = _vm_ids()
    ours = running | exited
    context = Context()
    snapshot = statsnap.read(context.now) if running else None
    changed = set()
    for index, vm in enumerate(data):
        if not isinstance(vm, dict) or vm.get("vmId") not in ours:
            continue
        try:
            found = _snapshot_figures(vm, snapshot)
            updates = apply(vm, found) if found is not None \
                else overlay(vm, context)
        except errors.Error as e:
            log.warning("vm_id=%s keeping Vdsm's figures: %s",
                        vm.get("vmId"), e)
            continue
        except Exception:
            log.exception("vm_id=%s keeping Vdsm's figures",
                          vm.get("vmId"))
            continue
        if updates:
            vm.update(updates)
            changed.add(index)
    if context.cache is not None:
        context.cache.keep_only(running)
        try:
            context.cache.save()
        except Exception:
            log.exception("cannot save the CPU samples")
    if changed:
        hookenv.replace_data(env, hookenv.JSON,
                             _encode(text, data, spans, changed))


def _snapshot_figures(vm, snapshot):
    """The VM's figures from the watcher's snapshot (statsnap.py), or None:
    no snapshot, a Down VM, a VM started since it was taken."""
    if snapshot is None or vm.get("status") == "Down":
        return None
    found = snapshot.get(vm["vmId"])
    return found if isinstance(found, dict) else None


def _elements(text):
    """The elements of a JSON list, and where each is in text."""
    decoder = json.JSONDecoder()
    items, spans = [], []
    i = _skip(text, 0)
    if text[i:i + 1] != "[":
        raise ValueError("not a JSON list")
    i = _skip(text, i + 1)
    if text[i:i + 1] == "]":
        return items, spans
    while True:
        item, end = decoder.raw_decode(text, i)
        items.append(item)
        spans.append((i, end))
        i = _skip(text, end)
        if text[i:i + 1] == "]" and not text[_skip(text, i + 1):]:
            return items, spans
        if text[i:i + 1] != ",":
            raise ValueError("not a JSON list")
        i = _skip(text, i + 1)


def _skip(text, i):
    return _WHITESPACE.match(text, i).end()


def _encode(text, data, spans, changed):
    """The JSON of data: the changed elements encoded again, the others
    as they were in text."""
    if spans is None:
        return json.dumps(data).encode("utf-8")
    parts = [json.dumps(item) if index in changed
             else text[spans[index][0]:spans[index][1]]
             for index, item in enumerate(data)]
    return ("[" + ", ".join(parts) + "]").encode("utf-8")


def _vm_ids():
    """The VMs with a state file, and those with an exit record: one look
    at the state directory (state.listing)."""
    found = state.listing()
    return found.states, found.exits


class Context(object):
    """What one hook run reads once for all its VMs."""

    def __init__(self, now=None, wall=None):
        self.now = samples.clock() if now is None else now
        self.wall = time.time() if wall is None else wall
        self._mounts = None
        self.cache = None

    @property
    def mounts(self):
        if self._mounts is None:
            self._mounts = cgroups.cgroup_mounts()
        return self._mounts

    def sample_cache(self):
        if self.cache is None:
            self.cache = samples.Cache.load()
        return self.cache


def overlay(vm, context):
    """The keys to replace in vm's stats dict (empty: leave it as is)."""
    vm_id = vm["vmId"]
    if vm.get("status") == "Down":
        return _exit_message(vm, exits.read(vm_id))
    record = state.read(vm_id)
    if record is None:
        return {}
    return apply(vm, figures(record, context))


def figures(record, context, summary=None, engine_info=None):
    """The container's figures, as JSON, independent of what Vdsm put in
    the VM's dict: what apply() overlays, and what the watcher keeps in
    the host's snapshot (statsnap.py) for every container VM.

    summary (engine.Summary) and engine_info (EngineInfo): what the
    engine says of the container and of itself, when the caller could ask
    it (the watcher; the hooks cannot reach the engines)."""
    vm_id = record.vm_id
    pid = record.pid
    cgroup = _cgroup(vm_id, record, context)
    try:
        cpu, memory = cgroup.cpu(), cgroup.memory()
    except (IOError, OSError) as e:
        context.sample_cache().forget_cgroup(vm_id)
        raise errors.CGroupError(
            pid=pid, container=record.container_id,
            reason="its cgroup is gone (%s)" % (e.strerror or e))
    keys = {}
    keys.update(_cpu(vm_id, record, cpu, context))
    mem = _memory(record, memory)
    keys["memUsage"] = mem.pop("memUsage")
    nics = [n for n in record.nics or () if isinstance(n, dict)]
    counters = {}
    if nics:
        wanted = set(n.get("ifname") for n in nics)
        counters = dict((name, list(dev))
                        for name, dev in procfs.net_dev(pid).items()
                        if name in wanted)
    keys.update(_guest(record, nics))
    apps = apps_list(record, engine_info)
    if apps:
        keys["appsList"] = apps
    keys["guestContainers"] = guest_containers(record, summary,
                                               context.wall)
    return {"container": record.container_id, "keys": keys, "mem": mem,
            "nics": nics, "counters": counters, "sampleTime": context.now}


def apply(vm, found):
    """The keys to replace in vm's stats dict, from figures() (perhaps
    read back from the snapshot)."""
    updates = dict(found["keys"])
    stats = dict(vm.get("memoryStats") or {})
    stats.update(found["mem"])
    updates["memoryStats"] = stats
    if found["nics"]:
        counters = dict((name, procfs.NetDev(*values))
                        for name, values in found["counters"].items())
        updates.update(_network(vm, found["nics"], counters,
                                found["sampleTime"]))
    # Read at each call, not kept in the snapshot: a watchdog event is
    # news the moment the watcher acts.
    updates.update(health.stats(vm["vmId"], found.get("container")))
    return updates


def guest_containers(record, summary=None, now=None):
    """Engine's VM "Containers" sub-tab: [{id, names, image, command,
    status}], all strings but names, a list of strings (ovirt-engine
    VdsBrokerObjectsBuilder.initGuestContainers).  The engine's own
    summary when there is one (its status reads "Up 3 minutes (healthy)",
    as docker ps and podman ps say); else from the VM's record, the status
    "Up <how long>" since the container started."""
    if summary is not None:
        return [{
            "id": summary.id,
            "names": list(summary.names),
            "image": summary.image or record.image or "",
            "command": summary.command or "",
            "status": summary.status or "",
        }]
    return [{
        "id": record.container_id or "",
        "names": [record.container_name] if record.container_name else [],
        "image": record.image or "",
        "command": "",
        "status": "Up " + human_duration(
            (time.time() if now is None else now)
            - float(record.created or 0)),
    }]


def human_duration(seconds):
    """How long, as docker ps says it (docker/go-units HumanDuration):
    "Less than a second", "5 seconds", "About a minute", "3 minutes",
    "About an hour", "2 hours", "3 days", "2 weeks", "4 months"..."""
    seconds = int(max(0, seconds))
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return "%d seconds" % seconds
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    if int(round(seconds / 3600.0)) == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    if hours < 24 * 7 * 2:
        return "%d days" % (hours // 24)
    if hours < 24 * 30 * 2:
        return "%d weeks" % (hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "%d months" % (hours // 24 // 30)
    return "%d years" % (hours // 24 // 365)


def apps_list(record, engine_info=None):
    """What Engine's Applications sub-tab of the VM lists (a guest agent's
    appsList): the image as the VM names it, and the digest of what its
    container runs, "repository@sha256:...", so that an admin sees what
    runs after a tag moved; then, when the watcher knows them
    (engine_info: EngineInfo), the engine and its version ("docker
    24.0.7") and the isolation runtime ("runtime runc").  (Engine joins
    the list with "," and splits it again, VdsBrokerObjectsBuilder
    updateVDSDynamicData/appsList: none of these has a ",".)"""
    apps = _image_apps(record)
    if engine_info is not None:
        if engine_info.version:
            apps.append("%s %s" % (record.engine, engine_info.version))
        if engine_info.runtime:
            apps.append("runtime %s" % engine_info.runtime)
    return apps


# What the watcher knows of the engine a container runs on.
EngineInfo = collections.namedtuple("EngineInfo", "version, runtime")


def _image_apps(record):
    apps = []
    if record.image:
        apps.append(record.image)
    if (record.image or "").startswith("disk:") and record.image_id:
        # From a VM disk (diskimage.py): no registry, no digest; the id of
        # the image its archive held is what runs.
        apps.append(record.image_id)
        return apps
    if record.image and record.image_digest \
            and not record.image.endswith("@" + record.image_digest):
        from containerhooks import imageref
        try:
            repository = imageref.parse(record.image).repository
        except errors.Error:
            return apps
        apps.append(repository + "@" + record.image_digest)
    return apps


def _cgroup(vm_id, record, context):
    """The container's cgroup: remembered from an earlier call, else
    looked up from its first process (see samples.py for why remembering
    is safe)."""
    cache = context.sample_cache()
    container_id, pid = record.container_id, record.pid
    known = cache.cgroup(vm_id, container_id, pid)
    if known is not None:
        return cgroups.CGroup(*known)
    cgroup = cgroups.find(pid, container_id, context.mounts)
    cache.remember_cgroup(vm_id, container_id, pid, cgroup.version,
                          cgroup.cpu_dir, cgroup.memory_dir)
    return cgroup


def _exit_message(vm, record):
    if not record or not record.get("message"):
        return {}
    reason = vm.get("exitReason")
    if reason is None:
        lost = "qemu" in str(vm.get("exitMessage", ""))
    else:
        try:
            lost = int(reason) in (LOST_QEMU_CONNECTION, HOST_SHUTDOWN)
        except (TypeError, ValueError):
            lost = False
    if not lost:
        # Down for another reason (Engine powered it off while the
        # container was ending): Vdsm's message is the right one.
        return {}
    return {"exitMessage": record["message"]}


def _cpu(vm_id, record, cpu, context):
    base = context.sample_cache().interval(
        vm_id, record.container_id, context.now, cpu.user_ns,
        cpu.system_ns)
    if base is not None:
        seconds = context.now - base[0]
        user, system = cpu.user_ns - base[1], cpu.system_ns - base[2]
    else:
        # First sample of this container: its average since it started.
        seconds = context.wall - float(record.created or 0)
        user, system = cpu.user_ns, cpu.system_ns
    updates = {"cpuUsage": "%d" % (cpu.user_ns + cpu.system_ns)}
    if seconds > 0:
        updates["cpuUser"] = _percent(user, seconds)
        updates["cpuSys"] = _percent(system, seconds)
    return updates


def _percent(ns, seconds):
    return "%.2f" % max(0.0, 100.0 * ns / 1e9 / seconds)


def _memory(record, memory):
    total = int(record.memory_mib) * MIB
    used = max(0, memory.usage - memory.inactive_file)
    percent = min(100, int(round(100.0 * used / total)))
    return {
        "memUsage": "%d" % percent,
        "mem_total": "%d" % (total // KIB),
        "mem_unused": "%d" % (max(0, total - memory.usage) // KIB),
        "mem_free": "%d" % (max(0, total - used) // KIB),
    }


def _network(vm, nics, counters, now):
    entries = dict(vm.get("network") or {})
    by_mac = dict((str(v.get("macAddr", "")).lower(), k)
                  for k, v in entries.items() if isinstance(v, dict))
    for nic in nics:
        mac = str(nic.get("mac") or "").lower()
        ifname = nic.get("ifname")
        dev = counters.get(ifname)
        if not mac or dev is None:
            log.debug("vm_id=%s no interface %s in the container for vNIC "
                      "%s", vm.get("vmId"), ifname, mac)
            continue
        key = by_mac.get(mac, ifname)
        entry = dict(entries.get(key) or {})
        entry.update({
            "name": entry.get("name") or ifname,
            "macAddr": mac,
            "speed": entry.get("speed") or DEFAULT_SPEED,
            "state": entry.get("state") or "unknown",
            "rx": "%d" % dev.rx_bytes,
            "tx": "%d" % dev.tx_bytes,
            "rxErrors": "%d" % dev.rx_errors,
            "txErrors": "%d" % dev.tx_errors,
            "rxDropped": "%d" % dev.rx_dropped,
            "txDropped": "%d" % dev.tx_dropped,
            "sampleTime": now,
        })
        entries[key] = entry
    return {"network": entries}


def _guest(record, nics):
    """What a guest agent would report: addresses, interfaces, name."""
    updates = {}
    ips = [n["ip"] for n in nics if n.get("ip")] or list(
        record.ips or ())
    if nics:
        updates["netIfaces"] = [{
            "name": n.get("ifname") or "",
            "hw": str(n.get("mac") or "").lower(),
            "inet": [n["ip"]] if n.get("ip") else [],
            "inet6": [],
        } for n in nics]
    if ips:
        updates["guestIPs"] = " ".join(ips)
    name = record.fqdn or hostname(record)
    if name:
        updates["guestFQDN"] = name
    return updates


def hostname(record):
    """The container's hostname, as the helper chose it (spec.hostname),
    or the engines' default: the first 12 digits of the container id."""
    if record.has("hostname"):
        name = record.hostname
    else:
        # A state file written before the helper recorded the hostname.
        from containerhooks import spec as specs
        name = specs.hostname(_Named(record.vm_name or ""))
    return name or (record.container_id or "")[:12] or None


class _Named(object):
    def __init__(self, vm_name):
        self.vm_name = vm_name
