"""The root helper: everything that needs root, behind one command.

Hooks run as the unprivileged vdsm user and reach this program through
"sudo -n" (the RPM's sudoers file allows exactly this path).  The engine
sockets need root, and so will losetup and mount, so this is the one place
that talks to the container engine.  It trusts nothing from its caller:
every argument is validated again (spec.from_args), and how containers are
confined comes from the host configuration only.

Protocol: on success, one JSON object on stdout and exit 0; on failure, one
line on stderr (shown to the Engine admin) and exit 1; usage errors exit 2.
"""

import argparse
import json
import logging
import multiprocessing
import sys
import time

from containerhooks import appconfig
from containerhooks import config
from containerhooks import errors
from containerhooks import exits
from containerhooks import health
from containerhooks import hookenv
from containerhooks import imageref
from containerhooks import imagepolicy
from containerhooks import network
from containerhooks import registryauth
from containerhooks import runtimes
from containerhooks import spec as specs
from containerhooks import state
from containerhooks import volumes

log = logging.getLogger("containerhooks.helper")

RUNNING = ("running", "paused", "restarting")


def main(argv=None):
    hookenv.setup_logging()
    parser = _parser()
    if argv is None:
        # The hook's values, whatever the locale sudo gives us.
        argv = [hookenv.text(a) for a in sys.argv[1:]]
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except errors.Error as e:
        log.error("%s failed: %s", args.command, e)
        sys.stderr.write(" ".join(str(e).split()) + "\n")
        return 1
    except Exception as e:
        log.exception("%s failed unexpectedly", args.command)
        sys.stderr.write("vdsm-hook-containers helper: unexpected %s: %s\n"
                         % (type(e).__name__, " ".join(str(e).split())))
        return 1
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="containers-helper",
        description="Root helper of vdsm-hook-containers (run by the hooks "
                    "through sudo; not meant to be run by hand).")
    sub = parser.add_subparsers(dest="command")
    sub.required = True

    start = sub.add_parser("start", help="create and start a VM's container")
    start.add_argument("--vm-id", required=True)
    start.add_argument("--vm-name", required=True)
    start.add_argument("--engine", required=True)
    start.add_argument("--image", required=True)
    start.add_argument("--memory-mib", required=True)
    start.add_argument("--vcpus", required=True)
    start.add_argument("--cpu-shares")
    start.add_argument("--nic", action="append",
                       help="MAC,BRIDGE[,IP] of a vNIC (repeated)")
    start.add_argument("--volume", action="append",
                       help="DISK,PATH,file|block,SOURCE (repeated)")
    specs.add_app_arguments(start)
    start.add_argument("--pull", help="the VM's containerPull")
    start.set_defaults(func=start_container)

    stop = sub.add_parser("stop", help="stop and remove a VM's container")
    stop.add_argument("--vm-id", required=True)
    stop.add_argument("--engine")
    stop.set_defaults(func=stop_container)

    for action in ("pause", "unpause"):
        p = sub.add_parser(action, help="%s a VM's container" % action)
        p.add_argument("--vm-id", required=True)
        p.set_defaults(func=pause_container, action=action)
    from containerhooks import migration
    migration.add_commands(sub)
    return parser


def _engine(conf, name, runtime=None):
    """Engine name, through the socket of OCI runtime runtime (None: the
    engine's default; runtimes.socket)."""
    # Imported here: the SDK is needed only once an engine is used.
    from containerhooks import engine
    _check_engine(conf, name)
    return engine.Engine.connect(name, runtimes.socket(conf, name, runtime),
                                 conf.api_timeout)


def _record_engine(conf, record):
    """The engine service that handles record's container: its engine's,
    through the socket of its runtime (runtimes.socket)."""
    return _engine(conf, record.engine, record.runtime)


def _chosen_engine(conf, spec):
    """(runtimes.Choice, Engine) of spec's start: the VM's runtime among
    those the host offers, and the engine service that runs it."""
    _check_engine(conf, spec.engine)
    choice = runtimes.choose(conf, spec.engine, spec.runtime)
    eng = _engine(conf, spec.engine, choice.name)
    if choice.requested and not runtimes.offered(conf, spec.engine):
        runtimes.check_default(conf, spec.engine, spec.runtime,
                               eng.default_runtime())
    return choice, eng


def _prove_runtime(eng, spec, choice, pid):
    """The name of the runtime the started container runs on, as the
    host shows it; a container on another runtime than the VM's choice
    is refused (RuntimeMismatch).

    A container whose command ended at once (its first process gone
    before the proof: the engine may still call it running for a moment)
    has nothing left to prove: it runs no code on any runtime, and its
    end is reported as any container's (the watcher takes the VM Down
    with its exit code), as it was before runtimes were chosen; its
    record names the runtime chosen, unproven (the next start proves it
    again)."""
    proven, evidence = runtimes.identify(pid)
    if proven is None and runtimes.ended(pid):
        log.info("vm_id=%s runtime %s not proven: the container ended at "
                 "once (%s)", spec.vm_id, choice.name, evidence)
        return choice.name
    log.info("vm_id=%s runtime %s (%s)", spec.vm_id, proven, evidence)
    runtimes.check_proof(choice, eng.name, proven, evidence)
    return proven or choice.name


# For the migration's commands (migration.py).
engine = _engine


def spec_engine(conf, spec):
    """The engine service that makes spec's container: its OCI runtime's
    (_chosen_engine), for the migration's destination."""
    return _chosen_engine(conf, spec)[1]


def _check_engine(conf, name):
    if name not in conf.engines:
        raise errors.InvalidProperty(
            name="containerType", value=name,
            reason="this host runs containers with %s only"
            % " or ".join(conf.engines))


def start_container(args):
    spec = specs.from_args(args)
    conf = config.load()
    # The host's image policy, before anything is pulled or started
    # (the hook checked it already: a caller that did not).
    imagepolicy.check(spec.image, conf)
    choice, eng = _chosen_engine(conf, spec)
    with state.Lock(spec.vm_id) as lock:
        # How an earlier run's container ended is no longer news.
        exits.remove(spec.vm_id)
        health.remove(spec.vm_id)
        try:
            return _start(eng, spec, conf, choice)
        except BaseException:
            # A failed start leaves no state behind, lock file included.
            lock.release(remove=True)
            raise


def start_prepared(eng, spec, conf, incoming=False):
    """_start for a caller that holds the VM's lock (migration.py, on the
    destination of a migration: incoming); eng: spec_engine's."""
    choice = runtimes.choose(conf, spec.engine, spec.runtime)
    return _start(eng, spec, conf, choice, incoming)


def _start(eng, spec, conf, choice, incoming=False):
    """Pull, plan the network, mount the volumes, create, start.

    The state file is written first (with the addresses reserved and the
    container's name) and completed at the end; any failure undoes every
    step that was done.  The record stays while a container may exist: it
    is what makes that container the package's (state.owns).
    """
    # The application's configuration first: a missing secret or a refused
    # user fails the start before anything was done.
    app_options = appconfig.create_options(spec.app, conf)
    _clear_leftover(eng, spec.vm_id, conf)
    run = ensure_image(eng, spec, conf)
    image_id = run if isinstance(spec.image, imageref.DiskImage) else None
    # The image's own config is the VM owner's: applied within bounds.
    image_config = eng.image_config(run)
    unmapped = specs.unmapped_volumes(image_config, spec.volumes)
    if unmapped:
        log.warning("vm_id=%s image %s declares VOLUME %s, which no "
                    "volumeMap disk covers: what it keeps there is lost at "
                    "every power off", spec.vm_id, spec.image,
                    ", ".join(unmapped))
    name = specs.container_name(spec.vm_id)
    names = specs.host_names(spec.vm_name, spec.fqdn)
    record = state.Record(
        vm_id=spec.vm_id, vm_name=spec.vm_name,
        engine=eng.name, image=str(spec.image),
        container_id=None, container_name=name,
        memory_mib=spec.memory_mib, vcpus=spec.vcpus,
        hostname=names.hostname, fqdn=spec.fqdn,
        created=time.time(), ips=[], nics=[], volumes=[],
        unmapped_volumes=unmapped, runtime=choice.name)
    if spec.watchdog is not None:
        record.watchdog = spec.watchdog
    if spec.console:
        # The watcher serves the VM's serial console (console.py); the
        # container has a terminal for it unless the host's console is a
        # shell in the container (console_exec_shell).
        record.console = True
        record.tty = not conf.console_exec_shell
    if spec.guest_agent:
        record.guest_agent = True
    if image_id is not None:
        record.image_id = image_id
    keys = appconfig.secret_keys(spec.app, app_options)
    if keys:
        record.secret_keys = keys

    def reserve(ips):
        record.ips = ips
        state.write(spec.vm_id, record)

    created = creating = None
    try:
        reserve([])
        endpoints = network.plan(eng, spec, reserve)
        record.volumes = volumes.attach(spec, conf, incoming)
        state.write(spec.vm_id, record)
        options = specs.container_options(spec, conf,
                                          multiprocessing.cpu_count())
        options.update(volumes.container_options(record.volumes))
        options.update(runtimes.create_options(choice, eng.name))
        # From here a container of this name may exist even if create()
        # fails (connecting a second network, a timeout after the engine
        # made it): _clear_leftover freed the name, so whatever holds it
        # now is this start's.
        creating = name
        created = _create(eng, spec, run, name, options, app_options,
                          endpoints, conf)
        record.container_id = created.id
        record.image_id = created.image_id
        record.image_digest = _digest(eng, spec, created.image_id)
        state.write(spec.vm_id, record)
        eng.start(name)
        pid = eng.inspect(name).pid
        record.pid = pid
        record.runtime = _prove_runtime(eng, spec, choice, pid)
        runtimes.check_network(record.runtime, pid, [
            nic.bridge for nic in spec.nics])
        record.nics = network.finish(eng, name, endpoints, pid)
        state.write(spec.vm_id, record)
    except BaseException:
        log.error("vm_id=%s start failed, removing what was created",
                  spec.vm_id)
        gone = creating is None or _quietly(eng.remove, creating)
        gone = _quietly(volumes.detach, spec.vm_id, record.volumes) \
            and gone
        if gone:
            _quietly(state.remove, spec.vm_id)
        else:
            # The record names what is left, for the next stop or gc.
            log.error("vm_id=%s keeping the state of what could not be "
                      "removed", spec.vm_id)
        raise
    log.info("vm_id=%s started container %s (%s) image=%s digest=%s "
             "engine=%s runtime=%s ips=%s", spec.vm_id, name,
             created.id[:12], spec.image, record.image_digest, eng.name,
             record.runtime, record.ips)
    return record.to_dict()


def ensure_image(eng, spec, conf):
    """Have spec's image in eng: pulled as the pull policy says, or loaded
    from the VM's disk.  What the container runs: spec.image, or for an
    image disk the id of the image its archive holds."""
    if isinstance(spec.image, imageref.DiskImage):
        # The archive on the VM's disk; the container runs it by its id.
        # No pull policy applies: the engine loads it when it lacks it.
        from containerhooks import diskimage
        return diskimage.ensure(eng, spec.image, conf)
    policy, source = pull_policy(spec, conf)
    if imagepolicy.must_pull(policy, source, spec.image,
                             eng.has_image(spec.image), eng.name):
        log.info("vm_id=%s pulling %s with %s (pull policy %s)",
                 spec.vm_id, spec.image, eng.name, policy)
        eng.pull(spec.image, conf.pull_timeout, conf.api_timeout,
                 auth=registryauth.load(eng.name, conf))
    return spec.image


def _digest(eng, spec, image_id):
    """The digest of what the new container runs; None (logged) if the
    engine cannot say: not worth failing the start for."""
    if isinstance(spec.image, imageref.DiskImage):
        return None     # from no registry: its id says what runs
    if spec.image.digest:
        return spec.image.digest
    try:
        return eng.repo_digest(image_id, spec.image) if image_id else None
    except errors.Error as e:
        log.warning("vm_id=%s cannot read the digest of image %s: %s",
                    spec.vm_id, image_id, e)
        return None


def pull_policy(spec, conf):
    """The pull policy of spec's start, and what set it (for messages):
    the VM's containerPull, else the host's pull_policy."""
    if spec.pull:
        return spec.pull, "containerPull=%s" % spec.pull
    return conf.pull_policy, "pull_policy in %s" % conf.path


def _create(eng, spec, image, name, options, app_options, endpoints, conf,
            healthcheck=None, again=False):
    """Create spec's container with healthcheck (None: the image's; by
    default the VM's containerHealthCmd, spec.vm_healthcheck); again when
    the image's HEALTHCHECK needs the VM's containerHealthOptions or its
    interval raised to the floor (spec.bounded_healthcheck).

    What the engine will run is read from the created container, not from
    the image: Podman's image inspect does not show a HEALTHCHECK that its
    containers do run."""
    if healthcheck is None and not again:
        healthcheck = specs.vm_healthcheck(spec.app)
    names = specs.host_names(spec.vm_name, spec.fqdn)
    created = eng.create(name, image, specs.labels(spec), options,
                         hostname=names.hostname,
                         domainname=names.domainname, endpoints=endpoints,
                         healthcheck=healthcheck,
                         layer_size=conf.writable_layer_size,
                         config=app_options,
                         terminal=spec.console
                         and not conf.console_exec_shell)
    bounded = specs.bounded_healthcheck(created.config, spec.app)
    if bounded is None:
        if spec.app.health_options and not spec.app.health_cmd \
                and health.probe_command(created.config.get(
                    "Healthcheck")) is None:
            log.warning("vm_id=%s containerHealthOptions=%s has no check to "
                        "time: image %s has no HEALTHCHECK and the VM no "
                        "containerHealthCmd", spec.vm_id,
                        spec.app.health_options, spec.image)
        return created
    if again:
        _quietly(eng.remove, name)
        raise errors.ContainerError(
            engine=eng.name, action="bound the HEALTHCHECK of", name=name,
            reason="the engine did not take the check %s"
            % json.dumps(bounded, sort_keys=True))
    if not spec.app.health_options or "start_interval" in bounded:
        check = created.config["Healthcheck"]
        log.warning("vm_id=%s image %s runs its HEALTHCHECK every %.3f s%s; "
                    "raised to %d s", spec.vm_id, spec.image,
                    (check.get("Interval") or 0) / 1e9,
                    " (every %.3f s in its start period)"
                    % (check["StartInterval"] / 1e9)
                    if "start_interval" in bounded else "",
                    specs.HEALTHCHECK_MIN_INTERVAL)
    else:
        log.info("vm_id=%s the image's HEALTHCHECK timed by "
                 "containerHealthOptions=%s: interval %.0f s, timeout %.0f s, "
                 "retries %d, start period %.0f s (0: the engine's default)",
                 spec.vm_id, spec.app.health_options,
                 bounded["interval"] / 1e9, bounded["timeout"] / 1e9,
                 bounded["retries"], bounded["start_period"] / 1e9)
    eng.remove(name)
    return _create(eng, spec, image, name, options, app_options, endpoints,
                   conf, bounded, again=True)


def _clear_leftover(eng, vm_id, conf):
    """Remove what an earlier run of this VM left: its stopped container,
    or a running one that no placeholder goes with, and its volumes; and
    free the name this start gives its container.

    The earlier run's container is the one its state record names
    (state.owns), on the engine it records; a container merely labelled
    with this VM's id is left alone.  Vdsm starts a VM only when, as far
    as it knows, it does not run on this host; the recorded container
    still running then is a leftover (a start whose hook was killed after
    the container appeared, a destroy that never ran) -- unless its
    placeholder qemu runs, or it started less than leftover_grace seconds
    ago (a start of the same VM may still be on its way from this hook to
    libvirt).  Called with the VM's lock held: no start or stop of it runs
    meanwhile.
    """
    record = state.read(vm_id)
    if record:
        same = record.engine == eng.name and eng.socket == runtimes.socket(
            conf, record.engine, record.runtime)
        old_eng = eng if same else _record_engine(conf, record)
        old = _recorded_container(old_eng, record)
        if old is not None:
            _remove_leftover(old_eng, vm_id, old, conf)
    # The name this start needs, held by a container no record names:
    # one left from before a reboot (/run is empty then, the engine keeps
    # its stopped containers) is removed -- no path or volume of it is
    # touched, only the container that has this VM's name; a running one
    # is not this package's to stop.
    name = specs.container_name(vm_id)
    holder = eng.lookup(name)
    if holder is not None:
        if holder.status in RUNNING:
            raise errors.ForeignContainer(vm_id=vm_id, name=name,
                                          engine=eng.name)
        log.warning("vm_id=%s removing stopped container %s (%s): not "
                    "recorded here, it holds the name this start needs",
                    vm_id, name, holder.id[:12])
        eng.remove(holder.id)
    # Its volumes: unmounted (after the container is gone), so that this
    # start attaches them afresh.
    if record and record.volumes:
        log.info("vm_id=%s releasing the volumes of an earlier run", vm_id)
        volumes.detach(vm_id, record.volumes)


def _remove_leftover(eng, vm_id, old, conf):
    if old.status in RUNNING:
        from containerhooks import procfs
        if procfs.find_qemu(vm_id) is not None:
            raise errors.AlreadyRunning(vm_id=vm_id, name=old.name)
        age = time.time() - (old.started or old.created or time.time())
        if age < conf.leftover_grace:
            raise errors.LeftoverTooRecent(
                vm_id=vm_id, name=old.name, age=int(age),
                wait=int(conf.leftover_grace - age) + 1)
        log.warning("vm_id=%s container %s has run for %d s with no "
                    "placeholder: left by an earlier start, replacing it",
                    vm_id, old.name, age)
        eng.stop(old.id, conf.stop_timeout)
    log.info("vm_id=%s removing leftover container %s (%s)", vm_id,
             old.name, old.status)
    eng.remove(old.id)


def _recorded_container(eng, record):
    """The container the state record names on eng, or None: by its
    recorded id, or by its reserved name while no id is recorded."""
    wanted = record.container_id or record.container_name
    info = eng.lookup(wanted) if wanted else None
    if info is not None and state.owns(record, eng.name, info):
        return info
    return None


def stop_container(args):
    # --engine (what the placeholder's metadata says) is checked like any
    # argument, but not used: the state record names the engine.
    conf = config.load()
    vm_id = specs.vm_id(args.vm_id)
    if args.engine is not None:
        _check_engine(conf, args.engine)
    return stop_vm(conf, vm_id)


def stop_vm(conf, vm_id, engine=None, check=None):
    """Stop and remove vm_id's container, unmount its volumes, drop its
    state; quiet when there is nothing.  (Also the garbage collector's.)

    The container is the one the VM's state record names (state.owns),
    never one found by its labels: without a record, no container is
    touched.  check(record), when given, runs under the VM's lock before
    anything is done, and raises to leave everything as it is (gc's
    re-check).  engine: unused, kept for callers that name one.
    """
    stopped = None
    with state.Lock(vm_id) as lock:
        record = state.read(vm_id)
        if check is not None:
            check(record)
        if record:
            # The exit watcher ignores the end of a container it finds
            # "stopping": this stop is Engine's doing, not news.  Only
            # that: a state directory that cannot be written (full) must
            # not keep the container from stopping.
            record.stopping = True
            try:
                state.write(vm_id, record)
            except errors.StateError as e:
                log.warning("vm_id=%s cannot mark the container as "
                            "stopping: %s", vm_id, e)
            eng = _record_engine(conf, record)
            info = _recorded_container(eng, record)
            if info is not None:
                if info.status in RUNNING:
                    log.info("vm_id=%s stopping %s (timeout %ss)", vm_id,
                             info.name, conf.stop_timeout)
                    eng.stop(info.id, conf.stop_timeout)
                    info = eng.inspect(info.id)
                eng.remove(info.id)
                stopped = {"container_name": info.name,
                           "exit_code": info.exit_code,
                           "oom_killed": info.oom_killed}
                log.info("vm_id=%s removed container %s", vm_id, info.name)
        # Unmount only once no container can use the volumes any more.
        volumes.detach(vm_id, record.volumes if record else [])
        state.remove(vm_id)
        health.remove(vm_id)
        if record and record.console:
            # At once, not at the watcher's next look: the console ends
            # with the VM.
            from containerhooks import console
            _quietly(console.remove_socket, vm_id)
        lock.release(remove=True)
    return {"vm_id": vm_id, "stopped": stopped}


def pause_container(args):
    """Freeze (or thaw) a VM's container with the cgroup freezer."""
    vm_id = specs.vm_id(args.vm_id)
    record = state.read(vm_id)
    if record is None:
        raise errors.StateError(action="find", vm_id=vm_id,
                                reason="no container is recorded for it")
    conf = config.load()
    eng = _record_engine(conf, record)
    # By its recorded id: whatever holds the name now may not be it.
    name = record.container_id or record.container_name
    info = eng.inspect(name)
    if args.action == "pause" and info.status == "running":
        eng.pause(name)
    elif args.action == "unpause" and info.status == "paused":
        eng.unpause(name)
    log.info("vm_id=%s %s: container %s was %s", vm_id, args.action,
             info.name, info.status)
    return {"vm_id": vm_id, "was": info.status}


def _quietly(func, *args):
    """func(*args); whether it succeeded (a failure is logged)."""
    try:
        func(*args)
        return True
    except Exception:
        log.exception("cleanup step %s failed", func.__name__)
        return False


if __name__ == "__main__":
    sys.exit(main())
