"""What the stats hooks keep between calls: CPU samples, cgroup paths.

Vdsm reports cpuUser and cpuSys as a percentage of one host CPU over the
interval between two samples; the kernel only gives cumulative CPU time.
Each stats hook run is a new process, so the previous sample lives in a
file: paths.SAMPLES_DIR/cpu.json, owned by vdsm, one entry per VM:

    {vm_id: {"container": id, "last": [time, user_ns, system_ns],
             "prev": [...], "cgroup": [pid, version, cpu dir, memory dir]}}

The entry also remembers where the container's cgroup is, so that the
next call reads the figures without looking the process up in /proc
again: a cgroup directory carries the container's id and disappears with
the container, so a remembered path can only ever lead to that container
or to nothing.

One file for all VMs: one read and one atomic write per hook run, whatever
the number of VMs.  Two hook runs at once (after_get_vm_stats while
after_get_all_vm_stats runs) may overwrite each other's update; that only
makes the next interval longer.

A sample taken less than MIN_INTERVAL after the last one (Engine asking
for one VM right after the periodic poll) is measured against the sample
before that, and does not replace it, so a burst of calls never divides
by a few milliseconds.

Times are Vdsm's monotonic clock (os.times()[4], lib/vdsm/common/time.py):
the same clock as the network sampleTime Engine subtracts.
"""

import errno
import json
import logging
import os

from containerhooks import paths
from containerhooks import state

log = logging.getLogger("containerhooks.samples")

FILE = "cpu.json"
MIN_INTERVAL = 1.0


def clock():
    return os.times()[4]


class Cache(object):
    """The sample file, read once, updated in memory, written once."""

    def __init__(self, entries=None):
        self.entries = entries or {}
        self.changed = False

    @classmethod
    def load(cls):
        try:
            with open(os.path.join(paths.SAMPLES_DIR, FILE)) as f:
                entries = json.load(f)
        except (IOError, OSError) as e:
            if getattr(e, "errno", None) != errno.ENOENT:
                log.warning("cannot read CPU samples, starting afresh: %s", e)
            entries = {}
        except ValueError as e:
            log.warning("corrupt CPU samples, starting afresh: %s", e)
            entries = {}
        return cls(entries if isinstance(entries, dict) else {})

    def _entry(self, vm_id, container_id):
        entry = self.entries.get(vm_id)
        if not isinstance(entry, dict) \
                or entry.get("container") != container_id:
            entry = {"container": container_id}
            self.entries[vm_id] = entry
            self.changed = True
        return entry

    def interval(self, vm_id, container_id, now, user_ns, system_ns):
        """The base sample to compare (now, user_ns, system_ns) with, or
        None for a VM seen for the first time; records the new sample."""
        entry = self._entry(vm_id, container_id)
        sample = [now, user_ns, system_ns]
        last = entry.get("last")
        if last is None:
            entry["last"] = sample
            self.changed = True
            return None
        if now - last[0] >= MIN_INTERVAL:
            entry["last"], entry["prev"] = sample, last
            self.changed = True
            return last
        return entry.get("prev")

    def cgroup(self, vm_id, container_id, pid):
        """The remembered [version, cpu dir, memory dir] of the container,
        or None."""
        entry = self.entries.get(vm_id)
        if isinstance(entry, dict) and entry.get("container") == container_id:
            found = entry.get("cgroup")
            if isinstance(found, list) and len(found) == 4 \
                    and found[0] == pid:
                return found[1:]
        return None

    def remember_cgroup(self, vm_id, container_id, pid, version, cpu_dir,
                        memory_dir):
        self._entry(vm_id, container_id)["cgroup"] = [pid, version, cpu_dir,
                                                      memory_dir]
        self.changed = True

    def forget_cgroup(self, vm_id):
        entry = self.entries.get(vm_id)
        if isinstance(entry, dict) and entry.pop("cgroup", None):
            self.changed = True

    def keep_only(self, vm_ids):
        """Forget the VMs that are not in vm_ids (their containers are
        gone)."""
        for vm_id in list(self.entries):
            if vm_id not in vm_ids:
                del self.entries[vm_id]
                self.changed = True

    def save(self):
        if not self.changed:
            return
        # json.dumps, not json.dump: only a one-shot dumps uses the C
        # encoder, dump to a file encodes in Python.
        data = json.dumps(self.entries)
        try:
            state.write_file(os.path.join(paths.SAMPLES_DIR, FILE), data,
                             mode=None, prefix=".cpu-")
        except (IOError, OSError) as e:
            log.warning("cannot keep CPU samples in %s (CPU figures will be "
                        "averages since the container started): %s",
                        paths.SAMPLES_DIR, e)
