"""OCI runtimes: which one runs a VM's container, and proof of it.

The engines (Docker, Podman) hand a container to an OCI runtime: runc
by default, crun (the same isolation, smaller and faster), or gVisor's
runsc, which runs the container on a kernel of its own in user space
(the tenant's system calls reach gVisor's Sentry, not the host's kernel).
A VM chooses one with its containerRuntime property, among the names
the package knows (KNOWN: the same on every host, so that Engine's
regex is one list); each host offers some of them per engine
(containers.conf docker_runtimes, podman_runtimes) and a default.

How a runtime is asked for differs per engine:

- Docker takes the runtime's name at create (HostConfig.Runtime), one of
  the runtimes its daemon.json declares;
- Podman 4.3's Docker-compatible API ignores HostConfig.Runtime: a
  container made through it runs on the service's default runtime
  whatever it asked for (measured: conmon -r /usr/bin/runc for a
  runtime=runsc create; its inspect says "oci" whatever runs).  Each
  runtime is therefore served by its own "podman --runtime NAME system
  service" on a socket of its own (podman_runtime_sockets), and a VM's
  container is made, stopped, paused and probed through the socket of its
  runtime: the service's runtime flags (--runtime-flag) go to every
  runtime command it runs, so another service would run it without them.

An engine's word is not proof (Podman's inspect, a daemon.json entry whose
name and path disagree): after the start, identify() reads from /proc
which runtime the container's supervisor runs, and a start whose
container runs on another runtime than the one chosen is refused.
"""

import collections
import json
import os

from containerhooks import errors

# The runtimes a VM may name (containerRuntime), in the Engine regex's
# order: the drop-down shows them so.
KNOWN = ("runc", "crun", "runsc")

# Where the runtimes' binaries are installed (Debian and EL packages;
# /usr/local for builds of one's own).  Tests point PROC elsewhere.
BINARY_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
               "/bin", "/sbin")
PROC = "/proc"

# The engines' supervisors of a container: the process whose child the
# container's first process is (Podman's conmon; Docker's containerd shim,
# containerd-shim-runc-v2 for runc and every runtime of the same CLI).
CONMON = "conmon"
SHIM_PREFIX = "containerd-shim"

# The runtime a VM's container runs on: its name (None: the engine's
# default, which the proof names), the socket of the engine service to
# use, and whether the VM asked for it (a VM's choice must be proven).
Choice = collections.namedtuple("Choice", "name, socket, requested")


def parse(value, refuse):
    """value (containerRuntime) if it is one of KNOWN; else refuse(reason)
    (the caller's error).  "" is refused: a VM that leaves the choice to
    the host does not set the property (Engine's drop-down has no empty
    entry)."""
    if value not in KNOWN:
        refuse("expected one of %s" % ", ".join(KNOWN))
    return str(value)


def offered(conf, engine):
    """The runtimes conf lets VMs choose on engine (a tuple; empty: only
    the engine's own default)."""
    return conf.runtimes.get(engine, ())


def check_allowed(conf, engine, requested):
    """Refuse requested (a VM's containerRuntime) when conf lists the
    runtimes of engine and it is not one of them.  An empty list is
    checked by the helper, which asks the engine its default."""
    allowed = offered(conf, engine)
    if requested and allowed and requested not in allowed:
        raise _refused(conf, engine, requested, allowed)


def choose(conf, engine, requested):
    """The Choice for a VM of engine whose containerRuntime is requested
    ("" if not set).

    Not set: conf's default runtime for engine, else the engine's own
    default (name None).  Set: it must be one conf offers for engine
    (check_allowed); with none offered, only the engine's default may be
    named, which the helper checks with the engine (check_default)."""
    check_allowed(conf, engine, requested)
    name = requested or conf.default_runtimes.get(engine) or None
    return Choice(name=name, socket=socket(conf, engine, name),
                  requested=bool(requested))


def socket(conf, engine, name):
    """The API socket through which a container of runtime name (None:
    the engine's default) on engine is made and handled."""
    if engine == "podman" and name:
        return conf.podman_runtime_sockets.get(name, conf.sockets[engine])
    return conf.sockets[engine]


def check_default(conf, engine, requested, default):
    """A VM named requested while conf offers no runtime on engine: only
    the engine's default (as the engine says, default) may be named."""
    default = runtime_name(default)
    if requested and not offered(conf, engine) and requested != default:
        raise _refused(conf, engine, requested, (default,) if default
                       else ())


def check_served(choice, eng):
    """Refuse choice when the engine service eng (runtimes.socket's) does
    not run containers on its runtime, as the engine says: Docker's
    runtimes (daemon.json) with an executable binary, a Podman service's
    own runtime.  Only the proof after a start (check_proof) is proof;
    this is for a migration's destination, which must refuse before the
    source stops its container (migration.prepare_incoming), where a
    container made on a missing runtime would fail after the switchover
    and take the VM Down."""
    if not choice.name:
        return
    if eng.name == "podman":
        served = runtime_name(eng.default_runtime())
        if served == choice.name:
            return
        reason = "the service runs %s" % (served or "an unknown runtime")
        fix = ("run 'podman --runtime %s system service' on a socket of "
               "its own and name it in podman_runtime_sockets "
               "(containers.conf)" % choice.name)
    else:
        paths = eng.runtime_paths()
        if choice.name in paths and binary(
                choice.name, paths[choice.name]) is not None:
            return
        reason = ("not declared in its daemon.json 'runtimes'"
                  if choice.name not in paths
                  else "its binary %s is missing" % paths[choice.name])
        fix = "declare it in Docker's daemon.json 'runtimes'"
    raise errors.RuntimeUnavailable(
        engine=eng.name, socket=eng.socket, wanted=choice.name,
        reason=reason, fix=fix)


def _refused(conf, engine, requested, allowed):
    return errors.InvalidProperty(
        name="containerRuntime", value=requested,
        reason="this host runs %s containers on %s only (%s_runtimes in %s)"
        "; choose one of them, or leave containerRuntime unset for the "
        "host's default" % (engine, ", ".join(allowed) or "its default",
                            engine, conf.path))


def runtime_name(value):
    """The name of an engine's runtime: Podman names one given by its path
    (podman --runtime /usr/bin/crun) by that path."""
    if value and os.path.isabs(value):
        return os.path.basename(value)
    return value


def create_options(choice, engine):
    """HostConfig keywords that ask engine for choice's runtime: Docker's
    runtime=; none for Podman (its service's own runtime)."""
    if engine == "docker" and choice.name:
        return {"runtime": choice.name}
    return {}


def check_proof(choice, engine, proven, evidence):
    """Refuse a container that runs on another runtime than choice's
    (proven: identify()'s name, evidence: what it read)."""
    if choice.name and proven != choice.name:
        if engine == "podman":
            fix = ("Podman's compatible API ignores the runtime a container "
                   "asks for: run 'podman --runtime %s system service' on "
                   "a socket of its own and name it in "
                   "podman_runtime_sockets (containers.conf)" % choice.name)
        else:
            fix = ("check the runtime %s in Docker's daemon.json "
                   "'runtimes'" % choice.name)
        raise errors.RuntimeMismatch(
            engine=engine, socket=choice.socket, wanted=choice.name,
            proven=proven or "an unknown runtime", evidence=evidence,
            fix=fix)


# Proof, from /proc

def identify(pid):
    """(name, evidence) of the runtime running the container whose first
    process, as its engine reports it, is pid: name is one of KNOWN, or
    None when the host does not show it; evidence says what was read.

    - runsc: the container's process is gVisor's sandbox itself (the
      tenant's processes are no host processes), so /proc/<pid>/exe is
      the runsc binary -- compared by device and inode, not by name: a
      container's own /usr/bin/runsc is another file.
    - otherwise, the process's parent is the engine's supervisor, outside
      the container's pid namespace and root's: Podman's conmon, whose
      command line names the runtime binary it runs (-r PATH), or
      Docker's containerd shim, whose working directory is the bundle
      with options.json (binary_name; none for runc).  Docker writes a
      runtime with arguments as a two-line wrapper script (<data-root>/
      runtimes/NAME: "#!/bin/sh" and the binary with its arguments):
      its binary is read from it.
    """
    if not pid:
        # The engine names no process: the container ended already.
        return None, "the container has no process"
    exe = _stat(os.path.join(PROC, str(pid), "exe"))
    runsc = _known_binary(exe)
    if runsc == "runsc":
        return "runsc", "process %d is %s" % (pid, _readlink(pid, "exe"))
    parent = _ppid(pid)
    if parent is None:
        return None, "process %d is gone" % pid
    supervisor = os.path.basename(_readlink(parent, "exe") or "")
    if supervisor == CONMON:
        binary = _conmon_runtime(parent)
        evidence = "conmon (pid %d) runs %s" % (parent, binary)
    elif supervisor.startswith(SHIM_PREFIX):
        binary = _shim_runtime(parent)
        evidence = "%s (pid %d) runs %s" % (supervisor, parent, binary)
    else:
        return None, ("process %d's parent %d is %s, no engine's "
                      "supervisor" % (pid, parent, supervisor or "unknown"))
    if binary is None:
        return None, evidence
    name = _binary_name(binary)
    return name, evidence


def sandbox_network(pid):
    """The --network of gVisor's sandbox process pid (runsc's global flag,
    before its "boot" command: "sandbox", gVisor's own network stack, by
    default; "host", the host kernel's in the container's namespace;
    "none"), or None when pid shows no runsc command line."""
    args = _cmdline(pid)
    if not args or "boot" not in args:
        return None
    value = "sandbox"
    flags = args[1:args.index("boot")]
    for i, arg in enumerate(flags):
        name, sep, given = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "network":
            if sep:
                value = given
            elif i + 1 < len(flags):
                value = flags[i + 1]
    return value


def check_network(name, pid, bridges):
    """Refuse a container with vNICs (bridges: their bridges) that runs on
    a runsc without a network: runsc --network=none gives the container
    gVisor's loopback only, whatever interfaces its namespace has, and its
    application would answer on none of the VM's addresses."""
    if name == "runsc" and bridges and sandbox_network(pid) == "none":
        raise errors.NetworkError(
            bridge=bridges[0], reason="its runtime runsc runs with "
            "--network=none, so the container has no network; serve runsc "
            "with --network=host (Docker's daemon.json runtimeArgs, the "
            "Podman service's --runtime-flag) or give the VM no vNIC")


def ended(pid):
    """Whether the container's first process pid (the engine's answer;
    None or 0 when it has none) is gone."""
    return not pid or _stat(os.path.join(PROC, str(pid))) is None


def binary(name, path=None):
    """The path of runtime name's binary on this host, or None: path (an
    engine's configured path, absolute or a command name) if it is an
    executable file, else name in BINARY_DIRS."""
    candidates = []
    if path:
        if os.path.isabs(path):
            candidates.append(path)
        else:
            candidates += [os.path.join(d, path) for d in BINARY_DIRS]
    else:
        candidates += [os.path.join(d, name) for d in BINARY_DIRS]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def crun_problem(cgroup_root="/sys/fs/cgroup"):
    """Why crun cannot run containers on this host, or None.

    crun refuses the hybrid cgroup layout (v1 controllers, and cgroup2 at
    <root>/unified) when cgroup2 offers any controller: "cgroups in
    hybrid mode not supported, drop all controllers from cgroupv2"
    (crun's libcrun/cgroup.c, libcrun_cgroup_enter).  A controller that
    no v1 hierarchy mounts is cgroup2's."""
    try:
        with open(os.path.join(cgroup_root, "unified",
                               "cgroup.controllers")) as f:
            controllers = f.read().split()
    except (IOError, OSError):
        return None         # cgroup v2 alone, or v1 without unified
    if not controllers:
        return None
    return ("the host's cgroups are hybrid and cgroup2 offers %s, which "
            "crun refuses ('cgroups in hybrid mode not supported'): mount "
            "%s as cgroup v1 hierarchies, or boot with cgroup v2 alone"
            % (", ".join(controllers), ", ".join(controllers)))


def _known_binary(st):
    """The name in KNOWN whose binary is the file of stat st, or None."""
    if st is None:
        return None
    for name in KNOWN:
        for d in BINARY_DIRS:
            other = _stat(os.path.join(d, name))
            if other is not None and (other.st_dev, other.st_ino) == (
                    st.st_dev, st.st_ino):
                return name
    return None


def _binary_name(path):
    """The runtime of binary path: a KNOWN binary by identity, through
    Docker's wrapper script, else its name if it is one of KNOWN."""
    if not os.path.isabs(path):
        path = binary(path, path) or path
    path = _unwrap(path)
    name = _known_binary(_stat(path))
    if name is not None:
        return name
    base = os.path.basename(path)
    return base if base in KNOWN else None


def _unwrap(path):
    """The binary a Docker runtime wrapper script runs, else path.

    Docker (daemon/runtime_unix.go) writes a runtime that has
    runtimeArgs as "#!/bin/sh\\n<path> <args> $@\\n", root's, 0700."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except (IOError, OSError):
        return path
    if not head.startswith(b"#!"):
        return path
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[1].split() if len(lines) > 1 else []
    return words[0] if words and words[0].startswith("/") else path


def _conmon_runtime(pid):
    args = _cmdline(pid)
    for i, arg in enumerate(args[:-1]):
        if arg in ("-r", "--runtime"):
            return args[i + 1]
    return None


def _shim_runtime(pid):
    """The runtime binary of a containerd runc shim: options.json of its
    bundle (its working directory); runc when it names none."""
    try:
        with open(os.path.join(PROC, str(pid), "cwd", "options.json")) as f:
            options = json.load(f)
    except (IOError, OSError):
        return "runc"       # no options: the shim's default, runc
    except ValueError:
        return None
    return (options.get("binary_name") or options.get("BinaryName")
            or "runc") if isinstance(options, dict) else None


def _cmdline(pid):
    try:
        with open(os.path.join(PROC, str(pid), "cmdline"), "rb") as f:
            data = f.read()
    except (IOError, OSError):
        return []
    return [a.decode("utf-8", "replace") for a in data.split(b"\0") if a]


def _ppid(pid):
    try:
        with open(os.path.join(PROC, str(pid), "stat")) as f:
            data = f.read()
    except (IOError, OSError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = data.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _readlink(pid, name):
    try:
        return os.readlink(os.path.join(PROC, str(pid), name))
    except OSError:
        return None


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


# What "vdsm-containers check" says

def engine_report(conf, engine, eng, connect):
    """(ok, detail) of engine's OCI runtimes: those it really has (an
    executable binary, and for Podman a service that answers), its
    default, and whether every runtime conf offers is among them.

    eng: the engine's connection (its default socket); connect(socket):
    another of its services (Podman's runtime sockets)."""
    default = runtime_name(eng.default_runtime())
    paths = eng.runtime_paths()
    has = []        # runtimes a container can be made on
    problems = []
    if engine == "docker":
        for name in sorted(paths):
            if name.startswith("io.containerd."):
                continue        # the containerd shims' names, runc's
            if binary(name, paths[name]) is not None:
                has.append(name)
    else:
        if default and binary(default, paths.get(default)) is not None:
            has.append(default)
        for name, socket in sorted(conf.podman_runtime_sockets.items()):
            try:
                served = runtime_name(connect(socket).default_runtime())
            except errors.Error as e:
                problems.append("%s: no service answers at %s (%s)"
                                % (name, socket, e))
                continue
            if served != name:
                problems.append("%s: the service at %s runs %s" % (
                    name, socket, served))
            elif name not in has:
                has.append(name)
    problem = crun_problem() if "crun" in has else None
    if problem:
        problems.append("crun: " + problem)
        has.remove("crun")
    for name in offered(conf, engine):
        if name not in has and not any(p.startswith(name + ":")
                                       for p in problems):
            problems.append(
                "%s: offered (%s_runtimes) but %s" % (
                    name, engine, "not declared in daemon.json 'runtimes' "
                    "or its binary is missing" if engine == "docker" else
                    "no podman service of it is named in "
                    "podman_runtime_sockets"))
    detail = "has %s (default %s); VMs may choose %s" % (
        ", ".join(has) or "none", default,
        ", ".join(offered(conf, engine)) or "none (the default only)")
    if conf.default_runtimes.get(engine):
        detail += "; default for VMs %s" % conf.default_runtimes[engine]
    if problems:
        detail += "; " + "; ".join(problems)
    return not problems, detail
