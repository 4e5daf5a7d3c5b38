"""The host's stats snapshot: every container VM's figures in one file.

The VM stats hooks (vmstats.py) run as a new process for each of Vdsm's
calls, with every VM of the host in the list.  Reading each container's
state file, cgroup and network counters in the hook made a call cost about
a third of a millisecond more per container VM (the issue 13 profile: 43 ms
at 1 VM, 75 ms at 100).  So the exit watcher (root), which follows every
container anyway, takes the figures itself every INTERVAL seconds, for all
container VMs at once, and writes them to one file of the state directory
(state.stats_snapshot_path()); a hook reads that one file and only merges.

Each VM's entry is what vmstats.figures() returns -- the keys to set, the
memory figures, the vNICs with their interface counters and the time they
were read (Vdsm's clock, samples.clock(), the one Engine subtracts network
sampleTimes on), cpuUser and cpuSys over the interval between two of the
watcher's samples -- and the version of the state file its record was read
from (state.version): a hook uses an entry only for the container the VM's
state names when it looks, never the container of a VM that was powered
off and started again since the snapshot was taken.  The watcher also asks each engine once per snapshot for
its list of the package's containers (one API call, whatever their number),
which gives guestContainers its status as the engines word it ("Up 3
minutes (healthy)"), and puts the engine's version and runtime in appsList.

A snapshot older than MAX_AGE (Vdsm's vm_sample_jobs_interval, 15 s,
lib/vdsm/common/config.py.in) counts as none, and a VM the snapshot lacks
(started since, or the watcher is not running) is read directly as before:
the hook never reports figures older than Vdsm's own.

Trust: the file is root's, in root's state directory; the watcher takes a
VM's record only from a file named by a UUID that names that same VM, and
finds the container's cgroup from the pid root recorded, checked to name
the container's id (cgroups.find).
"""

import collections
import json
import logging
import os
import threading
import time

from containerhooks import errors
from containerhooks import samples
from containerhooks import state

log = logging.getLogger("containerhooks.statsnap")

INTERVAL = 5.0
MAX_AGE = 15.0
VERSION = 1
ENGINE_TIMEOUT = 5

Snapshot = collections.namedtuple("Snapshot", "clock, vms")


def read(now=None, max_age=MAX_AGE):
    """{vm id: figures} of a snapshot taken within max_age seconds, or
    None (no snapshot, unreadable, or too old)."""
    now = samples.clock() if now is None else now
    try:
        fd = os.open(state.stats_snapshot_path(),
                     os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    taken, vms = data.get("clock"), data.get("vms")
    if not isinstance(taken, (int, float)) or not isinstance(vms, dict):
        return None
    # The clock is the host's elapsed time (os.times): a snapshot "from the
    # future" is one from before a reboot, as stale as can be.
    if not (now - max_age <= taken <= now + 1.0):
        return None
    return vms


def remove():
    state.remove_file(state.stats_snapshot_path())


class Snapshotter(object):
    """The watcher's thread that writes the snapshot every interval.

    conf: a callable returning the configuration in use (the watcher
    reloads it); stopping: the watcher's Event."""

    def __init__(self, conf, stopping, interval=INTERVAL):
        self._conf = conf
        self._stopping = stopping
        self._interval = interval
        self._cache = samples.Cache()       # in memory, never saved
        self._engines = {}                  # name -> (Engine, EngineInfo)
        self._lock = threading.Lock()
        self._stopped = False
        # container id -> the runtime it runs on (asked once).
        self._runtimes = {}

    def run(self):
        while not self._stopping.is_set():
            started = time.time()
            try:
                self.write()
            except Exception:
                log.exception("cannot write the stats snapshot")
            spent = time.time() - started
            self._stopping.wait(max(0.1, self._interval - spent))

    def stop(self):
        """Remove the snapshot for good: a watcher that ends leaves none
        (the hooks then read the containers themselves at once, rather
        than for MAX_AGE seconds from a snapshot nobody renews)."""
        with self._lock:
            self._stopped = True
            remove()

    def write(self):
        vms = self.take()
        data = json.dumps({"version": VERSION, "clock": samples.clock(),
                           "time": time.time(), "vms": vms})
        with self._lock:
            if self._stopped:
                return vms
            state.write_file(state.stats_snapshot_path(), data,
                             prefix=".stats-")
        return vms

    def take(self):
        """{vm id: vmstats.figures()} of every running container VM."""
        from containerhooks import vmstats
        records, versions = {}, {}
        for vm_id in state.listing().states:
            record, version = _read_state(vm_id)
            if record is not None and record.container_id \
                    and record.pid and not record.stopping:
                records[vm_id] = record
                versions[vm_id] = version
        engines = dict((name, self._engine(name)) for name in
                       set(r.engine for r in records.values()))
        context = vmstats.Context()
        context.cache = self._cache
        vms = {}
        for vm_id, record in records.items():
            summaries, info = engines[record.engine]
            if info is not None:
                # The runtime the helper proved at start (runtimes.py),
                # else (a record older than that) the engine's word.
                info = info._replace(runtime=record.runtime or self._runtime(
                    record, info.runtime))
            try:
                entry = vmstats.figures(
                    record, context, summaries.get(record.container_id),
                    info)
                # The version of the state file the record came from: a
                # hook that finds the same one there now knows the entry
                # is of the container the VM's state names, without
                # reading it (state.version).
                entry["state"] = versions[vm_id]
                vms[vm_id] = entry
            except errors.Error as e:
                log.debug("vm_id=%s not in the snapshot: %s", vm_id, e)
            except Exception:
                log.exception("vm_id=%s not in the snapshot", vm_id)
        self._cache.keep_only(set(records))
        alive = set(r.container_id for r in records.values())
        for container_id in list(self._runtimes):
            if container_id not in alive:
                del self._runtimes[container_id]
        return vms

    def _runtime(self, record, default):
        """The runtime record's container runs on, as its engine says
        (asked once per container), else the engine's default."""
        if record.container_id not in self._runtimes:
            eng = self._engines.get(record.engine, (None,))[0]
            if eng is None:
                return default
            try:
                runtime = eng.inspect(record.container_id).runtime
            except errors.Error:
                return default
            self._runtimes[record.container_id] = runtime
        return self._runtimes[record.container_id] or default

    def _engine(self, name):
        """({container id: engine.Summary}, vmstats.EngineInfo) of engine
        name, or ({}, None) when it does not answer."""
        from containerhooks import engine
        from containerhooks import vmstats
        from containerhooks.spec import LABEL_MANAGED
        conf = self._conf()
        if name not in conf.engines:
            return {}, None
        try:
            if name not in self._engines:
                # A hung engine delays the snapshot by at most this (the
                # hooks read the containers themselves meanwhile).
                eng = engine.Engine.connect(
                    name, conf.sockets[name],
                    min(conf.api_timeout, ENGINE_TIMEOUT))
                facts = eng.facts()
                self._engines[name] = (eng, vmstats.EngineInfo(
                    facts.version, facts.default_runtime))
            eng, info = self._engines[name]
            summaries = eng.summaries(LABEL_MANAGED + "=1")
        except errors.Error as e:
            self._engines.pop(name, None)
            log.debug("%s: no container summaries: %s", name, e)
            return {}, None
        return dict((s.id, s) for s in summaries), info


def _read_state(vm_id):
    """(record, version) of vm_id's state (state.read_with_version), the
    record only when it names that same VM (as the watcher's
    _read_state)."""
    try:
        record, version = state.read_with_version(vm_id)
    except errors.Error:
        return None, None
    if record is None or record.vm_id != vm_id:
        return None, None
    return record, version
