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
runs) costs a few file reads of its own.  An entry is used only for the
container the VM's state names: when the state file is the very one the
watcher read (state.version: one stat()), else when the record, read,
names the entry's container.

What a call costs per VM (the hook runs every few seconds, with every VM
of the host in its list): json's scanner decodes each element of Vdsm's
list to find where it ends -- no other way to split JSON is both safe and
faster in Python -- and drops it unless it is a container VM's; a
container VM's is merged and encoded again; everything else is written
back as it was read.  The issue 13 profile is in the README's Benchmark
section.
"""

import collections
import gc
import json
import logging
import re
import time

from json.decoder import WHITESPACE as _WHITESPACE

from containerhooks import errors
from containerhooks import exits
from containerhooks import health
from containerhooks import hookenv
from containerhooks import samples
from containerhooks import state
from containerhooks import statsnap

# cgroups and procfs are imported where a container is read: not needed
# when the watcher's snapshot has every VM.

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
    # A hook run is a short process whose data has no reference cycles:
    # without the collector, decoding Vdsm's list (thousands of dicts and
    # lists at 100 VMs) triggers no collection passes over them.  The
    # process ends without freeing them either (quick_exit).
    gc.disable()
    hookenv.run(vm_stats, failure_rc=hookenv.ERROR, quick_exit=True)


def vm_stats(env):
    """Overlay the container VMs' figures on the stats in env's data file;
    return what was decoded (for quick_exit: never freed)."""
    raw = hookenv.read_data(env, hookenv.JSON)
    text = raw.decode("utf-8")
    found = state.listing()
    ours = found.states | found.exits

    def concerned(vm):
        vm_id = vm.get("vmId") if isinstance(vm, dict) else None
        return isinstance(vm_id, _TEXT) and vm_id in ours

    if not ours:
        return None
    try:
        elements = _elements(text, concerned)
        data = None
    except ValueError:
        # Not as _elements reads a list: json.loads says what it is (and
        # fails the hook, leaving the file as it is, if it is no JSON).
        data = json.loads(text)
        if not isinstance(data, list):
            return None
        elements = [(None, None, vm) for vm in data if concerned(vm)]
    context = Context()
    snapshot = statsnap.read(context.now) if found.states else None
    changed = []
    for element in elements:
        vm = element[2]
        try:
            updates = _updates(vm, found, snapshot, context)
        except errors.Error as e:
            log.warning("vm_id=%s keeping Vdsm's figures: %s", vm["vmId"],
                        e)
            continue
        except Exception:
            log.exception("vm_id=%s keeping Vdsm's figures", vm["vmId"])
            continue
        if updates:
            vm.update(updates)
            changed.append(element)
    if context.cache is not None:
        context.cache.keep_only(found.states)
        try:
            context.cache.save()
        except Exception:
            log.exception("cannot save the CPU samples")
    if changed:
        hookenv.replace_data(env, hookenv.JSON, [
            _ENCODER.encode(data).encode("ascii")] if data is not None
            else _encode(text, raw, changed))
    return elements, data


# What json decodes a string to: str (unicode on Python 2).
_TEXT = type(u"")


def _updates(vm, found, snapshot, context):
    """The keys to replace in the stats of a VM with a state file or an
    exit record (found: the state directory's listing)."""
    vm_id = vm["vmId"]
    if vm.get("status") == "Down":
        if vm_id not in found.exits:
            return {}
        return _exit_message(vm, exits.read(vm_id))
    if vm_id not in found.states:
        return {}
    health_record = vm_id in found.healths
    entry = snapshot.get(vm_id) if snapshot is not None else None
    if isinstance(entry, dict) and entry.get("state") is not None \
            and entry["state"] == state.version(vm_id):
        # Taken from the very state file that is there now.
        return apply(vm, entry, health_record)
    record = state.read(vm_id)
    if record is None:
        return {}
    return apply(vm, _snapshot_figures(record, entry) or
                 figures(record, context), health_record)


def _snapshot_figures(record, entry):
    """entry (the VM's in the watcher's snapshot, statsnap.py) if it is of
    the container record names; else None: no snapshot, a VM started since
    it was taken, or another container -- the VM was powered off and
    started again on this host since, the entry is the old container's."""
    if not isinstance(entry, dict) or not record.container_id \
            or entry.get("container") != record.container_id:
        return None
    return entry


def _elements(text, keep):
    """[(start, end, element)] of the elements of the JSON list text that
    keep(element) is true of, start and end their place in text.

    Each element is decoded by json's own scanner, which says where it
    ends; those keep refuses are dropped at once (their memory serves the
    next: a stats hook keeps only the container VMs of a list of
    hundreds).  ValueError if text is not a JSON list."""
    scan = json.JSONDecoder().scan_once
    kept = []
    i = _skip(text, 0)
    if text[i:i + 1] != "[":
        raise ValueError("not a JSON list")
    i = end = _skip(text, i + 1)
    if text[i:i + 1] != "]":
        while True:
            try:
                item, end = scan(text, i)
            except StopIteration:
                raise ValueError("not a JSON value at %d" % i)
            if keep(item):
                kept.append((i, end, item))
            separator = _SEPARATOR.match(text, end)
            if separator is None:
                break
            i = separator.end()
    i = _skip(text, end)
    if text[i:i + 1] != "]" or text[_skip(text, i + 1):]:
        raise ValueError("not a JSON list")
    return kept


# JSON's white space (RFC 8259: space, tab, LF, CR), and the comma
# between two elements with any of it around.
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _skip(text, i):
    return _WHITESPACE.match(text, i).end()


def _encode(text, raw, changed):
    """The JSON list text with the elements changed ([(start, end,
    value)], in order) encoded again, as chunks to write: everything else
    -- the other elements, the brackets, commas and white space -- is
    copied as it was.  raw: the bytes text was decoded from; when they
    are ASCII, as Vdsm writes them (json.dumps escapes everything else),
    every offset in text is one in raw too, and the copies are slices of
    raw rather than new strings."""
    if len(raw) == len(text):
        source = memoryview(raw)
    else:
        source = None
    chunks, copied = [], 0
    for start, end, value in changed:
        chunks.append(source[copied:start] if source is not None
                      else text[copied:start].encode("utf-8"))
        chunks.append(_ENCODER.encode(value).encode("ascii"))
        copied = end
    chunks.append(source[copied:] if source is not None
                  else text[copied:].encode("utf-8"))
    return chunks


# json.dumps' encoder without its check for reference cycles: decoded
# JSON and the figures added to it have none.  (Vdsm's own json.dumps
# settings otherwise: ", ", ": ", ASCII.)
_ENCODER = json.JSONEncoder(check_circular=False)


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
            from containerhooks import cgroups
            self._mounts = cgroups.cgroup_mounts()
        return self._mounts

    def sample_cache(self):
        if self.cache is None:
            self.cache = samples.Cache.load()
        return self.cache


def figures(record, context, summary=None, engine_info=None):
    """The container's figures, as JSON, independent of what Vdsm put in
    the VM's dict: what apply() overlays, and what the watcher keeps in
    the host's snapshot (statsnap.py) for every container VM.

    summary (engine.Summary) and engine_info (EngineInfo): what the
    engine says of the container and of itself, when the caller could ask
    it (the watcher; the hooks cannot reach the engines)."""
    from containerhooks import procfs
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
    # Of the vNICs, what apply() needs to find the interface and Vdsm's
    # entry: the snapshot holds every container VM, the less the better.
    nics = [{"mac": n.get("mac"), "ifname": n.get("ifname")} for n in nics]
    return {"container": record.container_id, "keys": keys, "mem": mem,
            "nics": nics, "counters": counters, "sampleTime": context.now}


def apply(vm, found, health_record=True):
    """The keys to replace in vm's stats dict, from figures() (perhaps
    read back from the snapshot).  health_record: whether the VM may have
    a health record (False: the state directory has none for it, no need
    to look)."""
    updates = dict(found["keys"])
    stats = dict(vm.get("memoryStats") or {})
    stats.update(found["mem"])
    updates["memoryStats"] = stats
    if found["nics"]:
        updates["network"] = _network(vm, found["nics"], found["counters"],
                                      found["sampleTime"])
    # Read at each call, not kept in the snapshot: a watchdog event is
    # news the moment the watcher acts.
    if health_record:
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
    from containerhooks import cgroups
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
    """Vdsm's network entries with each vNIC's counters (counters:
    {interface: (rx bytes, rx errors, rx dropped, tx bytes, tx errors, tx
    dropped)}, procfs.NetDev or its list in the snapshot) in the entry of
    its MAC."""
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
        rx, rx_errors, rx_dropped, tx, tx_errors, tx_dropped = dev
        key = by_mac.get(mac, ifname)
        entry = dict(entries.get(key) or {})
        entry.update({
            "name": entry.get("name") or ifname,
            "macAddr": mac,
            "speed": entry.get("speed") or DEFAULT_SPEED,
            "state": entry.get("state") or "unknown",
            "rx": "%d" % rx,
            "tx": "%d" % tx,
            "rxErrors": "%d" % rx_errors,
            "txErrors": "%d" % tx_errors,
            "rxDropped": "%d" % rx_dropped,
            "txDropped": "%d" % tx_dropped,
            "sampleTime": now,
        })
        entries[key] = entry
    return entries


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
