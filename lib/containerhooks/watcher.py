"""The exit watcher: when a VM's container ends, the VM goes Down.

Vdsm never sees the container, only the placeholder domain.  This daemon
(root; the RPM runs it as the systemd service
vdsm-hook-containers-watcher, tests run it as a plain process) follows the
event stream of every engine of containers.conf, filtered on the package's
label, and on a container's "die":

1. checks that the container is the one the VM's state file names and
   that no stop is under way (the helper marks the state "stopping" before
   it stops a container on Engine's power off: that end is not news);
2. asks the engine how it ended (exit code, OOM kill) and writes the exit
   record (exits.py), which survives the destroy hooks that follow;
3. kills the placeholder's qemu process: the one libvirt's pid file
   names, whose command line says "-uuid <vm id>" (procfs.py: a command
   line alone can be any process's, a container's too), re-checked to be
   the same process right before the kill.

Vdsm then sees its qemu die, runs after_vm_destroy (which removes the
container and the state file), and reports the VM Down with exitCode 1
(error) and "Lost connection with qemu process", which the stats hooks
replace with the record's message; Engine restarts the VM when it is
highly available.

Why SIGKILL at once, and not through libvirt: on an oVirt host root's
virsh needs Vdsm's SASL credentials, and a SIGTERM makes qemu report a
shutdown that libvirt passes on as a clean "Stopped Shutdown", which Vdsm
reports as "VM has been terminated on the host" (HOST_SHUTDOWN), not as a
failure of the VM.  The placeholder keeps nothing worth a clean shutdown:
its guest is a halted CPU, and it never writes to the VM's disks.

A die that arrives before Vdsm has created the domain (a container that
exits at once) is kept pending: the qemu process is killed as soon as it
appears, for as long as the state file still names that container.  When
the watcher (re)connects to an engine it first opens the event stream,
then looks at every container of the state files, so an exit that
happened while it was not watching is not missed.

A stop that did not finish (the destroy hooks failed after marking the
state "stopping": the engine was down) is finished by the watcher within
a second of the engine answering again, and until then the container's
recorded first process is killed so that nothing writes to the VM's disks
while Engine shows it Down; a placeholder that ends with no destroy hook
(Vdsm restarting) gets its container stopped the same way.  See
_check_stops.

Nothing the vdsm user or a container's labels can write is followed: a
VM id is used only when it is a UUID, and a state file only when it names
its own VM (the samples directory, vdsm's, lies under the state
directory).

Whether the OOM killer ended the container: the engine's OOMKilled, or a
kernel record of an OOM kill inside the container's cgroup.  Docker
reports a kill of any process of the container; Podman 4 reports only a
kill of its first process, and the first process is an init (catatonit)
that outlives the program the kernel killed, so the watcher also follows
the kernel log (/dev/kmsg) for "oom-kill:" records, which name the
memory cgroup, and so the container id.

It serves the serial console of every container VM that has one, at the
socket ovirt-vmconsole connects to, from when its container runs until
the VM ends (console.py).

It also writes what it knows of the engines (reachable, version,
runtimes) to STATE_DIR/watcher.status, which the host stats and
capabilities hooks read: they run as vdsm and cannot reach the engines'
sockets; and every few seconds every container VM's figures, which the VM
stats hooks read (statsnap.py).
"""

import argparse
import json
import logging
import errno
import os
import re
import signal
import sys
import threading
import time

from containerhooks import config
from containerhooks import console
from containerhooks import errors
from containerhooks import exits
from containerhooks import health
from containerhooks import hookenv
from containerhooks import procfs
from containerhooks import state
from containerhooks import statsnap
from containerhooks.spec import LABEL_MANAGED, LABEL_VM_ID

log = logging.getLogger("containerhooks.watcher")

LABEL = LABEL_MANAGED + "=1"
RUNNING = ("created", "running", "paused", "restarting")

# How often pending kills are retried, and for how long.
RETRY_INTERVAL = 0.1
PENDING_TIMEOUT = 300
# Reconnection to an engine that went away: 1 s, doubling, at most 10 s.
RECONNECT_MIN = 1
RECONNECT_MAX = 10
# How often stops that did not finish are tried again (see _check_stops),
# and how long a placeholder may be gone with its container still
# recorded before the watcher stops the container itself (Vdsm's
# after_vm_destroy does within a second, when Vdsm runs).
FINISH_INTERVAL = 1.0
PLACEHOLDER_GRACE = 5.0
PRUNE_INTERVAL = 3600
# A container that Podman re-initialised (see _reinitialised): how long its
# die event is waited for, and the exit message when nothing says its code.
REINIT_GRACE = 1.0
REINIT_MESSAGE = ("container exited (exit code unknown: Podman "
                  "re-initialised the container as the serial console "
                  "attached to it)")
# How often containers.conf is looked at for a change (one stat).
RELOAD_INTERVAL = 1.0

# The kernel's log, and its OOM kill records (mm/oom_kill.c
# dump_oom_summary): "oom-kill:constraint=CONSTRAINT_MEMCG,...,
# oom_memcg=/docker/<id>,task_memcg=/docker/<id>,task=dd,pid=...".
KMSG = "/dev/kmsg"
_OOM_RECORD = re.compile(r"oom-kill:.*?(?:oom_memcg|task_memcg)=(\S+)")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
# How long a die with SIGKILL's exit code waits for the kernel's OOM record
# to be read, and how long OOM kills are remembered.
OOM_GRACE = 0.2
OOM_MEMORY = 3600
SIGKILL_EXIT = 128 + 9


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="containers-watcher",
        description="Take a container VM down when its container ends "
                    "(vdsm-hook-containers; runs as a systemd service).")
    parser.parse_args(argv)
    hookenv.setup_logging()
    try:
        conf = config.load()
    except errors.Error as e:
        log.error("cannot start: %s", e)
        sys.stderr.write("%s\n" % e)
        return 1
    watcher = Watcher(conf)

    def stop(signo, frame):
        watcher.stopping.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher.run()
    if watcher.restart:
        # The same process (pid, service) starts afresh on the new
        # configuration; the engine threads end with the old image.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.argv[0], sys.argv)
    return 0


class Watcher(object):

    def __init__(self, conf):
        self.conf = conf
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        # vm_id -> (container id, deadline) of placeholders to kill once
        # their qemu process shows up.
        self._pending = {}
        # container id -> when the kernel reported an OOM kill in it.
        self._ooms = {}
        self._kmsg = False
        # Wakes the finisher thread at once (an engine answers again).
        self._wake = threading.Event()
        # vm_id -> None while its placeholder runs, then when it was
        # first seen gone.
        self._placeholders = {}
        # vm_id -> why its stop could not be finished (logged once).
        self._unfinished = {}
        # Set when the watcher ends to start again (main() re-executes).
        self.restart = False
        # The containers' health checks, as the VMs' watchdogs.
        self.health = health.Monitor(self, _read_state, self._connect)
        # The container VMs' serial consoles.
        self.console = console.Server(_read_state, self._conf_now,
                                      self._connect, self._console_reinit)
        self._status = {"pid": os.getpid(), "started": time.time(),
                        "engines": dict((name, {"reachable": None})
                                        for name in conf.engines)}

    def run(self):
        log.info("watching %s (pid %d)", ", ".join(self.conf.engines),
                 os.getpid())
        state.ensure_dir()
        self._prune()
        self._write_status()
        self._start_thread(self._follow_kernel_log, "kmsg")
        self._start_thread(self._finish_loop, "finish")
        self._snapshotter = statsnap.Snapshotter(lambda: self.conf,
                                                 self.stopping)
        self._start_thread(self._snapshotter.run, "snapshot")
        self._start_thread(self.health.run, "health", self.stopping)
        self._start_thread(self.console.run, "console", self.stopping)
        self._serve_guest_agents()
        for name in self.conf.engines:
            self._start_thread(self._watch, "watch-" + name, name)
        last_prune = last_reload = time.time()
        conf_version = _file_version(self.conf.path)
        while not self.stopping.wait(RETRY_INTERVAL):
            self._retry_pending()
            now = time.time()
            if now - last_prune > PRUNE_INTERVAL:
                self._prune()
                last_prune = now
            if now - last_reload > RELOAD_INTERVAL:
                last_reload = now
                version = _file_version(self.conf.path)
                if version != conf_version:
                    conf_version = version
                    if self._reload():
                        break
        # The engine threads block in their event streams; they end with
        # the process.
        _unlink(state.watcher_status_path())
        self._snapshotter.stop()
        # Nobody would answer at the consoles' sockets any more.
        self.console.shutdown()
        self._agents_thread.join(1.0)
        log.info("stopped")

    def _serve_guest_agents(self):
        """Be the oVirt guest agent of every container VM whose start hook
        moved the placeholder's channel (guestagent.py): Engine's Shutdown
        stops the container and takes the VM down, its Reboot restarts
        the container.  The thread removes the sockets when it stops."""
        from containerhooks import guestagent
        self.agents = guestagent.Server(self, _read_state, self._connect)
        self._agents_thread = threading.Thread(
            target=self.agents.run, args=(self.stopping,), name="guest-agent")
        self._agents_thread.daemon = True
        self._agents_thread.start()

    def _conf_now(self):
        """containers.conf as the file says now, for a console connection:
        the opt-in console_exec_shell is the admin's current word, not the
        one of the last reload (up to RELOAD_INTERVAL old); a file with an
        error: the configuration in use."""
        try:
            return config.load(self.conf.path)
        except errors.Error:
            return self.conf

    def _reload(self):
        """Take a changed containers.conf; True when the watcher must start
        again (other engines or sockets: one thread follows each engine's
        event stream, opened on the old socket).  A file with an error is
        logged and the configuration in use is kept."""
        try:
            conf = config.load(self.conf.path)
        except errors.Error as e:
            log.error("keeping the configuration in use: %s", e)
            return False
        if (conf.engines, conf.sockets, conf.podman_runtime_sockets) != (
                self.conf.engines, self.conf.sockets,
                self.conf.podman_runtime_sockets):
            log.info("%s: engines or sockets changed, starting again",
                     conf.path)
            self.restart = True
            return True
        self.conf = conf
        log.info("%s reloaded", conf.path)
        return False

    def _connect(self, name, runtime=None):
        """An engine.Engine of engine name, through the socket of OCI
        runtime runtime (runtimes.socket; None: the engine's default)."""
        from containerhooks import engine
        from containerhooks import runtimes
        return engine.Engine.connect(
            name, runtimes.socket(self.conf, name, runtime),
            self.conf.api_timeout)

    def _start_thread(self, target, name, *args):
        t = threading.Thread(target=target, args=args, name=name)
        t.daemon = True
        t.start()

    # One engine

    def _watch(self, name):
        from containerhooks import engine
        delay = RECONNECT_MIN
        while not self.stopping.is_set():
            try:
                eng = engine.Engine.connect(name, self.conf.sockets[name],
                                            self.conf.api_timeout)
                facts = eng.facts()
                events = eng.events(LABEL)
                self._engine_up(name, facts)
                delay = RECONNECT_MIN
                self._reconcile(eng)
                for event in events:
                    if event.action in ("die", "died"):
                        self._on_die(eng, event)
                    elif event.action == "start":
                        self.console.poke()
                    elif (event.action or "").startswith("health_status"):
                        self.health.poke(event.id)
                raise errors.EngineUnavailable(
                    engine=name, socket=eng.socket,
                    reason="it closed the event stream")
            except errors.Error as e:
                self._engine_down(name, str(e))
            except Exception as e:
                log.exception("watching %s failed", name)
                self._engine_down(name, "%s: %s" % (type(e).__name__, e))
            self.stopping.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _on_die(self, eng, event):
        vm_id = event.attributes.get(LABEL_VM_ID)
        if not state.is_id(vm_id):
            # Labels are whoever made the container's: a VM id becomes a
            # file name only once it is a UUID.
            if vm_id:
                log.warning("ignoring the end of container %s: its label "
                            "%s=%r is not a VM id", event.id, LABEL_VM_ID,
                            vm_id)
            return
        try:
            self.container_ended(eng, vm_id, event.id, event.exit_code)
        except Exception:
            log.exception("vm_id=%s handling the end of container %s "
                          "failed", vm_id, event.id)

    def _reconcile(self, eng):
        """Handle the containers that ended while nobody was watching."""
        for vm_id in state.vm_ids():
            record = _read_state(vm_id)
            if record is None or record.engine != eng.name \
                    or record.stopping or not record.container_id:
                continue
            status = eng.exit_status(record.container_id)
            if status is not None and status.status in RUNNING \
                    and not _reinitialised(status, record):
                continue
            if status is None and _read_state(vm_id) is None:
                continue        # a start that failed and cleaned up
            log.info("vm_id=%s container %s ended while not watched",
                     vm_id, record.container_name)
            self.container_ended(eng, vm_id, record.container_id)

    def container_ended(self, eng, vm_id, container_id, event_code=None):
        """Record how vm_id's container ended and take the VM down."""
        record = _read_state(vm_id)
        if record is None or record.engine != eng.name \
                or record.container_id != container_id:
            # Not a VM of this host's hooks, a container of an earlier
            # run, or the VM's state is gone already: not ours to act on.
            return
        if record.stopping:
            log.debug("vm_id=%s container stopped on purpose", vm_id)
            return
        if self.health.restarting(vm_id, container_id):
            log.debug("vm_id=%s container restarted (its watchdog)", vm_id)
            return
        old = exits.read(vm_id)
        if old is None or old.get("container_id") != container_id:
            status = eng.exit_status(container_id)
            reinitialised = _reinitialised(status, record)
            if reinitialised:
                # Its exit code went with it (0 now): the event's, if any.
                status = None
            elif status is not None and status.status in RUNNING:
                return
            exit_record = _exit_record(record, status, event_code)
            if not exit_record["oom_killed"] and \
                    self._oom_killed(container_id, exit_record["exit_code"]):
                exit_record["oom_killed"] = True
            # Before the placeholder goes: the destroy hooks that follow
            # remove the container, and its output with it.
            output = _last_output(eng, record, container_id)
            exit_record["output"] = output or None
            exit_record["message"] = exits.message(
                exit_record["exit_code"], exit_record["oom_killed"],
                exit_record["error"], output)
            if reinitialised and exit_record["exit_code"] is None:
                exit_record["message"] = REINIT_MESSAGE + (
                    ": " + output if output else "")
            exits.write(exit_record)
            log.warning("vm_id=%s %s; taking the VM down", vm_id,
                        exits.read(vm_id)["message"])
        self._take_down(vm_id, container_id)

    def _console_reinit(self, eng, vm_id, container_id):
        """The console attached to vm_id's container as it ended, and
        Podman re-initialised it (console.py): its end, all the same.
        Podman's die event, which carries the exit code, comes first as a
        rule (it syncs the ended state, then re-initialises): it is given
        REINIT_GRACE seconds to be handled."""
        deadline = time.time() + REINIT_GRACE
        while time.time() < deadline and not self.stopping.is_set():
            old = exits.read(vm_id)
            if old is not None and old.get("container_id") == container_id:
                break
            time.sleep(0.05)
        try:
            self.container_ended(eng, vm_id, container_id)
        except Exception:
            log.exception("vm_id=%s handling the end of container %s "
                          "failed", vm_id, container_id)

    # The placeholder

    def _take_down(self, vm_id, container_id):
        qemu = procfs.find_qemu_process(vm_id)
        if qemu is None:
            with self._lock:
                if vm_id not in self._pending:
                    log.info("vm_id=%s no placeholder runs yet; it will be "
                             "taken down when it starts", vm_id)
                self._pending[vm_id] = (container_id,
                                        time.time() + PENDING_TIMEOUT)
            return
        try:
            killed = procfs.kill(qemu, signal.SIGKILL)
        except OSError as e:
            log.warning("vm_id=%s cannot kill qemu process %d: %s", vm_id,
                        qemu.pid, e)
            return
        if not killed:
            return          # it ended meanwhile: Vdsm takes the VM down
        with self._lock:
            self._pending.pop(vm_id, None)
        log.info("vm_id=%s killed the placeholder's qemu process %d",
                 vm_id, qemu.pid)

    def _retry_pending(self):
        with self._lock:
            pending = list(self._pending.items())
        for vm_id, (container_id, deadline) in pending:
            record = _read_state(vm_id)
            if record is None or record.stopping \
                    or record.container_id != container_id:
                with self._lock:
                    self._pending.pop(vm_id, None)
                continue
            if time.time() > deadline:
                log.warning("vm_id=%s no placeholder appeared within %ds; "
                            "giving up", vm_id, PENDING_TIMEOUT)
                with self._lock:
                    self._pending.pop(vm_id, None)
                continue
            if procfs.find_qemu(vm_id) is not None:
                self._take_down(vm_id, container_id)

    # Stops that did not finish; placeholders that ended unseen

    def _finish_loop(self):
        while not self.stopping.is_set():
            try:
                self._check_stops()
            except Exception:
                log.exception("checking for unfinished stops failed")
            self._wake.wait(FINISH_INTERVAL)
            self._wake.clear()

    def _check_stops(self):
        """Finish every stop that was begun and did not end, and stop the
        containers whose placeholder ended with no stop at all.

        A record marked "stopping" whose VM lock nobody holds is a stop
        that failed half-way (the engine was down, a stop timed out, the
        hook was killed): Vdsm ignores the destroy hooks' failures, so the
        VM is Down in Engine while its container, mounts and state are
        still here.  A placeholder that ended while Vdsm was not there to
        run after_vm_destroy (restarting; the qemu killed by sanlock or
        the OOM killer meanwhile) leaves the same.  Either way the
        container must not write on: it is stopped as the destroy hooks
        would, tried again every FINISH_INTERVAL seconds until it
        succeeds, and its processes are killed while it cannot be.
        """
        qemus = procfs.qemu_processes()
        now = time.time()
        ids = state.vm_ids()
        for vm_id in ids:
            record = _read_state(vm_id)
            if record is None or not record.container_id:
                continue
            if record.stopping:
                self._finish_stop(vm_id, record, "a stop that did not finish")
            elif vm_id in qemus:
                self._placeholders[vm_id] = None
            elif vm_id in self._placeholders:
                gone = self._placeholders[vm_id] or now
                self._placeholders[vm_id] = gone
                if now - gone >= PLACEHOLDER_GRACE:
                    self._finish_stop(
                        vm_id, record, "its placeholder ended %d s ago and "
                        "no destroy hook stopped it" % (now - gone))
        for vm_id in set(self._placeholders) - set(ids):
            del self._placeholders[vm_id]
        for vm_id in set(self._unfinished) - set(ids):
            del self._unfinished[vm_id]

    def _finish_stop(self, vm_id, record, why):
        from containerhooks import helper
        try:
            helper.stop_vm(self.conf, vm_id, record.engine)
        except errors.StateError as e:
            if e.fields.get("action") == "lock" and e.fields.get(
                    "reason", "").startswith("another start or stop"):
                return          # state.Lock: a start or stop runs now
            self._stop_failed(vm_id, record, why, str(e))
        except errors.Error as e:
            self._stop_failed(vm_id, record, why, str(e))
        except Exception as e:
            log.exception("vm_id=%s stopping container %s failed", vm_id,
                          record.container_name)
            self._stop_failed(vm_id, record, why,
                              "%s: %s" % (type(e).__name__, e))
        else:
            self._unfinished.pop(vm_id, None)
            self._placeholders.pop(vm_id, None)
            log.warning("vm_id=%s stopped container %s (%s)", vm_id,
                        record.container_name, why)

    def _stop_failed(self, vm_id, record, why, reason):
        """The container cannot be stopped through its engine: kill its
        first process, which root recorded at start, if the kernel still
        counts that pid in the container's cgroup.  It is the init of the
        container's pid namespace, so the kernel kills every other
        process of the container with it (kernel/pid_namespace.c
        zap_pid_ns_processes).  The mounts stay until the engine answers
        and the stop is finished (the engine may still hold them)."""
        init = procfs.container_init(record.pid,
                                     record.container_id)
        killed = False
        if init is not None:
            try:
                killed = procfs.kill(init, signal.SIGKILL)
            except OSError as e:
                reason += "; killing its process %d failed: %s" % (
                    init.pid, e)
        if killed:
            log.warning("vm_id=%s cannot stop container %s (%s): %s; "
                        "killed its processes (first process %d)", vm_id,
                        record.container_name, why, reason,
                        init.pid)
        if self._unfinished.get(vm_id) != reason:
            self._unfinished[vm_id] = reason
            log.warning("vm_id=%s cannot finish stopping container %s (%s) "
                        "yet: %s; trying again every %s s", vm_id,
                        record.container_name, why, reason,
                        FINISH_INTERVAL)

    # The kernel's OOM kills

    def _follow_kernel_log(self):
        try:
            fd = os.open(KMSG, os.O_RDONLY)
            os.lseek(fd, 0, os.SEEK_END)      # only what happens from now
        except OSError as e:
            log.warning("cannot follow the kernel log %s (OOM kills are "
                        "known only from the engines): %s", KMSG, e)
            return
        self._kmsg = True
        while not self.stopping.is_set():
            try:
                record = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EPIPE:    # overwritten while we read
                    continue
                log.warning("reading the kernel log failed: %s", e)
                self._kmsg = False
                return
            self._kernel_record(record.decode("utf-8", "replace"))

    def _kernel_record(self, text):
        m = _OOM_RECORD.search(text)
        if not m:
            return
        now = time.time()
        with self._lock:
            for cid in _CONTAINER_ID.findall(text[m.start():]):
                self._ooms[cid] = now
            for cid, seen in list(self._ooms.items()):
                if now - seen > OOM_MEMORY:
                    del self._ooms[cid]

    def _oom_killed(self, container_id, exit_code):
        """Whether the kernel reported an OOM kill in the container."""
        deadline = time.time() + OOM_GRACE
        while True:
            with self._lock:
                if container_id in self._ooms:
                    return True
            # A process killed by the OOM killer dies of SIGKILL: give the
            # kernel log reader a moment to catch up with the record.
            if not self._kmsg or exit_code != SIGKILL_EXIT \
                    or time.time() > deadline:
                return False
            time.sleep(0.01)

    # What the hooks read

    def _engine_up(self, name, facts):
        self._wake.set()        # stops that waited for it
        log.info("%s %s reachable (runtimes: %s)", name, facts.version,
                 ", ".join(facts.runtimes))
        self._set_engine(name, {
            "reachable": True,
            "version": facts.version,
            "apiVersion": facts.api_version,
            "runtimes": facts.runtimes,
            "defaultRuntime": facts.default_runtime,
            "cgroupDriver": facts.cgroup_driver,
            "cgroupVersion": facts.cgroup_version,
        })

    def _engine_down(self, name, reason):
        with self._lock:
            was = self._status["engines"].get(name, {}).get("reachable")
        if was is not False:
            log.warning("%s is not reachable: %s", name, reason)
        self._set_engine(name, {"reachable": False, "error": reason})

    def _set_engine(self, name, info):
        info["since"] = time.time()
        with self._lock:
            self._status["engines"][name] = info
        self._write_status()

    def _write_status(self):
        with self._lock:
            data = json.dumps(dict(self._status, updated=time.time()),
                              sort_keys=True)
            state.write_file(state.watcher_status_path(), data,
                             prefix=".watcher-")

    def _prune(self):
        for vm_id in exits.prune():
            log.info("vm_id=%s dropped its exit record (older than %ds)",
                     vm_id, exits.MAX_AGE)


def _file_version(path):
    """What changes when path is edited or replaced (None if absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime, st.st_size)


def _reinitialised(status, record):
    """Whether the container of record, which ran (root recorded its pid),
    is "created" again: Podman 4.3's compat API re-initialises an ended
    container that a client attaches to (console.py), which nothing else
    of the package does to a container that ran."""
    return status is not None and status.status == "created" \
        and bool(record.pid)


def _exit_record(record, status, event_code):
    if status is not None:
        return exits.record(record.vm_id, status.exit_code,
                            status.oom_killed, status.error,
                            state_record=record,
                            finished_at=status.finished_at)
    return exits.record(record.vm_id, _int(event_code),
                        state_record=record)


def _last_output(eng, record, container_id):
    """The container's last lines of output for its exit message
    (lastwords.py), the host's secrets redacted; "" when it printed
    nothing or the engine cannot say."""
    from containerhooks import lastwords
    try:
        env = eng.inspect(container_id).config.get("Env") or []
        data = lastwords.read_tail(
            eng.logs(container_id, tail=lastwords.READ_LINES))
    except errors.Error as e:
        log.info("vm_id=%s no output for the exit message: %s",
                 record.vm_id, e)
        return ""
    except Exception:
        log.exception("vm_id=%s no output for the exit message",
                      record.vm_id)
        return ""
    secrets = lastwords.secret_values(env, record.secret_keys,
                                      lastwords.host_secret_values())
    return lastwords.last_lines(data, secrets)


def _read_state(vm_id):
    """vm_id's state as the helper wrote it, or None.  Only from a UUID
    (never a path into the vdsm-owned samples directory), and only a
    record that names the same VM."""
    if not state.is_id(vm_id):
        return None
    try:
        record = state.read(vm_id)
    except errors.Error as e:
        log.warning("vm_id=%s unreadable state: %s", vm_id, e)
        return None
    if record is not None and record.vm_id != vm_id:
        log.warning("vm_id=%s ignoring a state file that names another VM",
                    vm_id)
        return None
    return record


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
