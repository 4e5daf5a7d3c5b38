"""The container's health check as the VM's watchdog.

An Engine VM may have a watchdog device, <watchdog model='i6300esb'
action='none|reset|poweroff|dump|pause'>: what the admin wants done when
the guest stops answering.  The placeholder's idle kernel never arms it;
for a container VM the container's health check (the image's HEALTHCHECK,
bounded at create by spec.bounded_healthcheck) plays the guest's part.  The
start hook reads the action from the domain XML (domxml.watchdog_action),
the helper validates it again and records it in the VM's state
(Record.watchdog; absent: no watchdog device).

The check is the one the engine records for the container (its inspect's
Config.Healthcheck): the image's HEALTHCHECK, or the VM's
containerHealthCmd, which the helper gave the engine at create (none
disables the image's; spec.vm_healthcheck), timed by the VM's
containerHealthOptions (spec.bounded_healthcheck).

The watcher (root) runs a Monitor: every container of a state record that
has a health check is looked at once per probe interval, and at once when
the engine reports a health_status event (Docker does, on every change).
Where the engine runs the check itself (Docker; Podman with systemd
timers) its verdict (State.Health) is taken; where it does not (Podman
4.3 without systemd: "starting" forever, no run logged), the Monitor runs
the check itself by exec after one interval (plus the timeout and a
grace) without any run logged, with the engine's rules: a failure counts
once start_period is over, `retries` failures in a row make "unhealthy",
one success "healthy", and a probe that overruns the check's timeout is
killed and fails (engine.probe).  Each probe runs in a thread of its own
(_Probe): a hung one delays no other VM's check.

When a container becomes unhealthy, the VM's action is carried out on it:

    reset     restart the container; the VM stays Up
    poweroff  stop it; the VM goes Down with "container unhealthy: <output
              of the last probe>" (the exit path of watcher.py/exits.py)
    pause     pause it; the VM stays Up (see _pause)
    dump      save its inspect and the end of its logs in DUMP_DIR (root)
    none      nothing but the event

and the stats hooks report watchdogEvent = {"time", "action"} as Vdsm does
for a libvirt watchdog event, so that Engine logs "Watchdog event (<action>)
triggered on <VM> at <time>": Vdsm lib/vdsm/virt/vm.py onWatchdogEvent
(time.time(); the action named as libvirt's event enum: ignore, pause,
reset, destroy, shutdown, log) and getStats; Engine
VdsBrokerObjectsBuilder (parses "time" as a double, truncated to whole
seconds) and VmAnalyzer.proceedWatchdogEvents (logs WATCHDOG_EVENT when
the time is newer than the last one it stored).  A VM without a watchdog
device gets its health reported (containerHealth) and logged, nothing else.

What the Monitor knows of each VM is in STATE_DIR/<vm id>.health (root's,
readable by vdsm), which the stats hooks read (stats()).  The probe's
output is the tenant's: it is cleaned (engine.clean_text) before it is
written anywhere.
"""

import json
import logging
import os
import threading
import time

from containerhooks import errors
from containerhooks import exits
from containerhooks import paths
from containerhooks import state

log = logging.getLogger("containerhooks.health")

SUFFIX = state.HEALTH

# Engine's watchdog actions (VmWatchdogAction), as the domain XML names them.
ACTIONS = ("none", "reset", "poweroff", "dump", "pause")
# libvirt's other actions, as the nearest of Engine's.
_LIBVIRT_ACTIONS = {"shutdown": "poweroff", "inject-nmi": "none"}
# The action Vdsm reports for each (libvirt's watchdog event: qemu's
# watchdog action for "dump" is "pause", libvirt dumps meanwhile).
VDSM_ACTIONS = {"none": "ignore", "reset": "reset", "poweroff": "destroy",
                "dump": "pause", "pause": "pause"}

# Docker's defaults for a HEALTHCHECK that leaves them out.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
# How long after one interval (and one timeout) without a run logged the
# engine is taken not to run the check.
ENGINE_GRACE = 2.0
# The Monitor's tick, and how often a container without a check or one
# that does not run is looked at again.
TICK = 0.25
# How long a pass waits for a probe it started (most take a tenth of a
# second) before it goes on with the other VMs and takes the result later.
PROBE_WAIT = 0.2
IDLE_RECHECK = 5.0
# A die seen this long after a restart of ours is still ours.
RESTART_GRACE = 2.0
# What a dump keeps of the logs, and how many dumps of one VM are kept.
DUMP_LOG_LINES = 1000
DUMP_LOG_BYTES = 1024 * 1024
DUMPS_KEPT = 5

DUMP_DIR = paths.HEALTH_DUMP_DIR


def parse_action(value):
    """The watchdog action of a <watchdog action=...> value (libvirt's
    default, reset, for none given)."""
    value = value or "reset"
    value = _LIBVIRT_ACTIONS.get(value, value)
    if value not in ACTIONS:
        raise errors.InvalidDomain(
            reason="watchdog action %r is none of %s" % (value,
                                                         ", ".join(ACTIONS)))
    return value


def probe_command(check):
    """The command line of a health check (the engine's Config.Healthcheck),
    or None when there is none."""
    test = (check or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return None


class Check(object):
    """A health check's command and timing, in seconds (the engine's
    nanoseconds, its defaults for zero, the interval at least the
    package's floor); timeout bounds each of the watcher's probes."""

    def __init__(self, check):
        from containerhooks import spec as specs
        ns = 1e9
        self.command = probe_command(check)
        self.interval = max(check.get("Interval") / ns if check.get(
            "Interval") else DEFAULT_INTERVAL,
            specs.HEALTHCHECK_MIN_INTERVAL)
        self.timeout = check.get("Timeout") / ns if check.get("Timeout") \
            else DEFAULT_TIMEOUT
        self.retries = check.get("Retries") or DEFAULT_RETRIES
        self.start_period = (check.get("StartPeriod") or 0) / ns


# The stats hooks' side

def path(vm_id):
    return state.path(vm_id, SUFFIX)


def read(vm_id):
    """The health record of vm_id (a dict), or None."""
    if not state.is_id(vm_id):
        return None
    return state.read_json_file(path(vm_id))


def remove(vm_id):
    state.remove_file(path(vm_id))


def stats(vm_id, container_id):
    """The keys the VM stats get from vm_id's health record: the health
    (containerHealth), and Vdsm's watchdogEvent once an action was taken.
    Nothing for a record of another container than container_id (the one
    the VM's state names)."""
    health = read(vm_id)
    if not health or health.get("container_id") != container_id:
        return {}
    result = {"containerHealth": str(health.get("status"))}
    event = health.get("event")
    if isinstance(event, dict) and "time" in event:
        result["watchdogEvent"] = {"time": event["time"],
                                   "action": event.get("action")}
    return result


# The watcher's side

class _Vm(object):
    """What the Monitor keeps of one VM's container."""

    def __init__(self, container_id, old=None):
        self.container_id = container_id
        self.check = None           # Check, once the container was seen
        self.next = 0.0
        self.status = None
        self.since = None
        self.streak = 0             # failures in a row (own probes)
        self.output = ""
        self.prober = None          # "engine" or "watcher"
        self.probing = None         # the watcher's _Probe under way
        self.event = None
        self.acted = None
        if old and old.get("container_id") == container_id:
            # The watcher started again: what was done is not done twice.
            self.status = old.get("status")
            self.since = old.get("since")
            self.event = old.get("event")
            self.acted = old.get("acted")


class Monitor(object):
    """Follows the health of every container VM; see the module doc.

    watcher: the Watcher (its conf, container_ended); read_state(vm_id):
    the VM's state record as the watcher checks it, or None;
    connect(name, runtime): an engine.Engine for the engine of that name,
    through the socket of that OCI runtime (None: the default's) (the
    Monitor keeps its own connections: the watcher's carry event
    streams); now: the clock.
    """

    def __init__(self, watcher, read_state, connect, now=time.time):
        self._watcher = watcher
        self._read_state = read_state
        self._connect = connect
        self._now = now
        self._engines = {}
        self._vms = {}
        self._wake = threading.Event()
        self._lock = threading.Lock()
        # vm_id -> (container id, until when its die is ours).
        self._restarts = {}

    # Called from the watcher's threads

    def poke(self, container_id):
        """The engine says container_id's health changed: look now."""
        with self._lock:
            for vm in self._vms.values():
                if vm.container_id == container_id:
                    vm.next = 0.0
        self._wake.set()

    def restarting(self, vm_id, container_id):
        """Whether a die of container_id is a restart of ours (reset)."""
        with self._lock:
            known = self._restarts.get(vm_id)
        return bool(known) and known[0] == container_id \
            and (known[1] is None or self._now() < known[1])

    def forget_restart(self, vm_id):
        """A stop of vm_id's container after a restart of ours is no part
        of it: its end is news again (Engine's Shutdown right after a
        Reboot, guestagent.py)."""
        with self._lock:
            self._restarts.pop(vm_id, None)

    def run(self, stopping):
        while not stopping.is_set():
            try:
                self.check_all()
            except Exception:
                log.exception("checking the containers' health failed")
            self._wake.wait(TICK)
            self._wake.clear()

    # One pass

    def check_all(self):
        ids = state.vm_ids()
        for vm_id in ids:
            record = self._read_state(vm_id)
            if record is None or record.stopping or not record.container_id \
                    or not record.pid:
                continue
            with self._lock:
                vm = self._vms.get(vm_id)
                if vm is None or vm.container_id != record.container_id:
                    vm = _Vm(record.container_id, read(vm_id))
                    self._vms[vm_id] = vm
            if self._now() < vm.next:
                continue
            try:
                self._check(vm_id, record, vm)
            except errors.Error as e:
                log.warning("vm_id=%s cannot check the health of container "
                            "%s: %s", vm_id, record.container_name, e)
                self._engines.pop((record.engine, record.runtime), None)
                vm.next = self._now() + IDLE_RECHECK
            except Exception:
                log.exception("vm_id=%s checking the health of container %s "
                              "failed", vm_id, record.container_name)
                vm.next = self._now() + IDLE_RECHECK
        with self._lock:
            for vm_id in set(self._vms) - set(ids):
                del self._vms[vm_id]
        for vm_id in state.listing().healths - set(ids):
            remove(vm_id)

    def _engine(self, record):
        """The engine service of record's container: the socket of its
        OCI runtime (runtimes.socket: a Podman service's runtime flags go
        to every runtime command it runs)."""
        key = (record.engine, record.runtime)
        eng = self._engines.get(key)
        if eng is None:
            eng = self._engines[key] = self._connect(*key)
        return eng

    def _check(self, vm_id, record, vm):
        from containerhooks import engine
        eng = self._engine(record)
        now = self._now()
        h = eng.health(record.container_id)
        if h is None or h.status != "running":
            vm.next = now + IDLE_RECHECK / 5
            return
        if vm.check is None:
            vm.check = Check(h.check or {})
        check = vm.check
        if check.command is None:
            vm.next = now + IDLE_RECHECK * 12   # no check: it cannot get one
            return
        vm.next = now + check.interval
        if h.runs:
            vm.prober = "engine"
            self._update(vm_id, record, vm, eng, h.health,
                         engine.clean_text(h.output))
            return
        started = h.started or now
        if now - started < check.interval + min(check.timeout, 10) \
                + ENGINE_GRACE:
            vm.next = now + 1.0
            self._update(vm_id, record, vm, eng, vm.status or "starting",
                         vm.output)
            return
        if vm.prober != "watcher":
            log.info("vm_id=%s %s runs no health check of container %s; "
                     "the watcher probes it every %.0f s", vm_id, eng.name,
                     record.container_name, check.interval)
            vm.prober = "watcher"
        if vm.probing is None:
            vm.probing = _Probe(eng, record.container_id, check, now)
        probe, vm.next = vm.probing, now + TICK
        if not probe.wait(PROBE_WAIT):
            return      # a later pass takes its result
        vm.probing = None
        code, output = probe.result()
        status = vm.status or "starting"
        if code == 0:
            vm.streak = 0
            status = "healthy"
        elif probe.started - started >= check.start_period:
            vm.streak += 1
            if vm.streak >= check.retries:
                status = "unhealthy"
        vm.next = self._now() + check.interval
        self._update(vm_id, record, vm, eng, status, output)

    def _update(self, vm_id, record, vm, eng, status, output):
        previous = vm.status
        vm.output = output
        if status != previous:
            vm.status, vm.since = status, self._now()
            level = logging.WARNING if status == "unhealthy" else logging.INFO
            log.log(level, "vm_id=%s container %s is %s (was %s; checked "
                    "by %s): %s", vm_id, record.container_name, status,
                    previous, vm.prober, output)
            if status == "unhealthy":
                self._act(vm_id, record, vm, eng, output)
        self._write(vm_id, vm)

    def _write(self, vm_id, vm):
        data = {"vm_id": vm_id, "container_id": vm.container_id,
                "status": vm.status, "since": vm.since, "output": vm.output,
                "prober": vm.prober, "checked": self._now(),
                "event": vm.event, "acted": vm.acted}
        state.write_file(path(vm_id), json.dumps(data, sort_keys=True),
                         prefix="." + vm_id)

    # The watchdog

    def _act(self, vm_id, record, vm, eng, output):
        action = record.watchdog
        if action is None:
            return          # no watchdog device: reported only
        now = self._now()
        vm.event = {"time": now, "action": VDSM_ACTIONS[action]}
        log.warning("vm_id=%s container %s unhealthy: watchdog action %s",
                    vm_id, record.container_name, action)
        vm.acted = {"action": action, "time": now}
        try:
            vm.acted.update(getattr(self, "_" + action)(
                vm_id, record, vm, eng, output) or {})
        except (errors.Error, IOError, OSError) as e:
            log.error("vm_id=%s watchdog action %s on container %s failed: "
                      "%s", vm_id, action, record.container_name, e)
            vm.acted["error"] = str(e)
        else:
            vm.acted["done"] = self._now()

    def _none(self, vm_id, record, vm, eng, output):
        pass

    def _pause(self, vm_id, record, vm, eng, output):
        """Freeze the container; the VM stays Up in Engine, its Containers
        tab says "Paused" (the engine's status), Engine's event log has
        the watchdog event.

        Not reported as a Paused VM: Engine's Run of a Paused VM resumes
        it (RunVmCommand.getFlow: RESUME_PAUSE), that is Vdsm's VM.cont,
        whose _underlyingCont runs before_vm_cont and then libvirt's
        resume of the placeholder -- which libvirt refuses on a running
        domain (qemuDomainResume: "domain is already running"); and
        Vdsm's own VM_status events, which no hook sees, would say Up
        meanwhile.  The root watcher cannot pause the placeholder itself:
        Vdsm configures libvirt's read-write socket with SASL
        (lib/vdsm/tool/configurators/libvirt.py, auth_unix_rw), its
        credentials are Vdsm's.  What an admin does in Engine instead:
        Pause, then Run -- Vdsm pauses the placeholder (after_vm_pause:
        the container is frozen already) and resumes it (after_vm_cont
        thaws the container: vmactions.py); or Power Off."""
        eng.pause(record.container_id)
        log.warning("vm_id=%s container %s paused by its watchdog; the VM "
                    "stays Up: Pause then Run the VM in Engine to resume "
                    "it, or Power Off", vm_id, record.container_name)

    def _reset(self, vm_id, record, vm, eng, output):
        self.restart(vm_id, vm.container_id, eng)

    def restart(self, vm_id, container_id, eng):
        """Restart vm_id's container container_id (stop_timeout, the
        image's STOPSIGNAL), its vNICs with their MACs again; the VM stays
        Up.  The watchdog's reset, and Engine's Reboot through the guest
        agent (guestagent.py).  False when the VM's state names no such
        container any more, or a stop runs."""
        with state.Lock(vm_id):
            record = self._read_state(vm_id)
            if record is None or record.stopping \
                    or record.container_id != container_id:
                return False
            with self._lock:
                self._restarts[vm_id] = (record.container_id, None)
            try:
                eng.restart(record.container_id,
                            self._watcher.conf.stop_timeout)
                # A new first process: what the stats hooks and the
                # watcher's kill follow (samples.py, _stop_failed).
                record.pid = eng.inspect(record.container_id).pid
                record.nics = _reconnect(eng, record)
                state.write(vm_id, record)
            finally:
                with self._lock:
                    self._restarts[vm_id] = (record.container_id,
                                             self._now() + RESTART_GRACE)
        with self._lock:
            vm = self._vms.get(vm_id)
            if vm is not None and vm.container_id == container_id:
                vm.status, vm.since, vm.streak = "starting", self._now(), 0
                vm.probing = None   # of the container before the restart
                vm.next = self._now() + 1.0
        return True

    def _poweroff(self, vm_id, record, vm, eng, output):
        exits.write(exits.record(
            vm_id, None, state_record=record,
            text="container unhealthy: %s" % (output or "no output")))
        eng.stop(record.container_id, self._watcher.conf.stop_timeout)
        self._watcher.container_ended(eng, vm_id, record.container_id)

    def _dump(self, vm_id, record, vm, eng, output):
        raw = eng.raw_inspect(record.container_id)
        config = raw.get("Config") or {}
        if config.get("Env"):
            # Values may be the host's secrets (containerSecrets): names
            # only.
            config["Env"] = [e.split("=", 1)[0] for e in config["Env"]]
        chunks, size = [], 0
        for chunk in eng.logs(record.container_id, tail=DUMP_LOG_LINES):
            chunks.append(chunk)
            size += len(chunk)
            if size >= DUMP_LOG_BYTES:
                break
        logs = b"".join(chunks)[-DUMP_LOG_BYTES:].decode("utf-8", "replace")
        data = {"vm_id": vm_id, "vm_name": record.vm_name,
                "time": self._now(), "health_output": output,
                "inspect": raw, "logs": logs}
        target = dump(vm_id, json.dumps(data, sort_keys=True, indent=1),
                      self._now())
        log.warning("vm_id=%s saved container %s in %s", vm_id,
                    record.container_name, target)
        return {"dump": target}


class _Probe(object):
    """One run of the watcher's probe of a container, in a thread of its
    own: a probe takes up to its check's timeout (engine.probe ends it
    then), and the other VMs' checks do not wait for it."""

    def __init__(self, eng, container_id, check, now):
        self.started = now
        self._eng = eng
        self._container_id = container_id
        self._check = check
        self._outcome = None
        self._done = threading.Event()
        thread = threading.Thread(target=self._run, name="health-probe-"
                                  + container_id[:12])
        thread.daemon = True
        thread.start()

    def _run(self):
        from containerhooks import engine
        try:
            code, output = self._eng.probe(self._container_id,
                                           self._check.command,
                                           self._check.timeout)
            self._outcome = (code, engine.clean_text(output or b""))
        except errors.EngineUnavailable as e:
            self._outcome = e   # the engine's failure, not the container's
        except errors.Error as e:
            self._outcome = (-1, engine.clean_text("the probe failed: %s"
                                                   % e))
        except Exception as e:
            log.exception("probing container %s failed",
                          self._container_id[:12])
            self._outcome = e
        finally:
            self._done.set()

    def wait(self, timeout):
        """Whether the probe is done, waiting up to timeout seconds."""
        return self._done.wait(timeout)

    def result(self):
        """(exit code, cleaned output); raises what the engine raised
        when it could not be asked."""
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome


def _reconnect(eng, record):
    """Give the restarted container's interfaces their vNICs' MACs again,
    as its start did (network.finish): the engines give a restarted
    container new interfaces, and only the first network's carries the
    MAC asked for (tests/health_test.py saw the second lose it on both
    engines)."""
    from containerhooks import engine
    from containerhooks import network
    nics = [n for n in record.nics or () if isinstance(n, dict)]
    if not nics:
        return record.nics
    endpoints = [engine.Endpoint(n["network"], ip=n["ip"], mac=n["mac"])
                 for n in nics]
    return network.finish(eng, record.container_id, endpoints, record.pid)


def dump(vm_id, text, now):
    """Write a dump of vm_id into DUMP_DIR (root only); keep the last
    DUMPS_KEPT of the VM; return its path."""
    state.valid_id(vm_id)
    try:
        os.makedirs(DUMP_DIR, 0o700)
    except OSError:
        if not os.path.isdir(DUMP_DIR):
            raise
    os.chmod(DUMP_DIR, 0o700)
    target = os.path.join(DUMP_DIR, "%s-%d.json" % (vm_id, int(now)))
    state.write_file(target, text, mode=0o600, prefix="." + vm_id)
    mine = sorted(n for n in os.listdir(DUMP_DIR)
                  if n.startswith(vm_id + "-") and n.endswith(".json"))
    for name in mine[:-DUMPS_KEPT]:
        state.remove_file(os.path.join(DUMP_DIR, name))
    return target
