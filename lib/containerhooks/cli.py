"""vdsm-containers: the host admin's command line.

Run as root on a host.  Sub-commands:

  check       is this host ready: engines, registry credentials (which
              registries have some), sudo rule and helper, helper
              service, hooks, networks, the exit watcher, the placeholder
              kernel, the secrets directory and files; warns when pids_limit over-commits pid_max
  ps          the container VMs of this host
  logs VM     a VM's container output (-f follows)
  pull IMAGE  pre-pull an image into the engines, with the host's image
              policy and registry credentials, showing the progress
  gc          remove leftovers (gc.py); --dry-run lists them only

  setup-net [BRIDGE --subnet CIDR --gateway IP --ip-range CIDR [--create]]
      show, or write, the container network of a Linux bridge (network.py);
      --create also creates the engines' macvlan networks now instead of
      on the first container start.
  engine-config [--cver 4.7]
      print the engine-config line that lets Engine accept the custom
      properties, with regexes generated from the hook's own grammar.
  secret set NAME | list | rm NAME
      the host's secrets (secrets.py): set reads KEY=VALUE lines from
      standard input, never from arguments; list shows names and keys,
      never values.

Listing commands take --json.  Errors print one line and exit 1.
"""

import argparse
import errno
import json
import logging
import os
import sys
import time

import containerhooks
from containerhooks import config
from containerhooks import dispatch
from containerhooks import errors
from containerhooks import hookenv
from containerhooks import network
from containerhooks import paths
from containerhooks import properties

log = logging.getLogger("containerhooks.cli")

# The hooks the RPM installs, as "check" expects them.
HOOKS = tuple(sorted(dispatch.HOOKS))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if argv[:1] == ["secret"]:
        # argparse would print an unknown argument back ("unrecognized
        # arguments: ..."), and what follows "secret set NAME" by mistake
        # is a value: say so without it.
        args, extra = parser.parse_known_args(argv)
        if extra:
            sys.stderr.write(
                "vdsm-containers: secret %s takes no other arguments (%d "
                "not shown): the variables of a secret are read from "
                "standard input, never from arguments\n"
                % (args.action, len(extra)))
            return 2
    else:
        args = parser.parse_args(argv)
    hookenv.setup_logging()
    # The command's one error boundary: the package's errors and the
    # system's refusals are one line; anything else is logged with its
    # traceback and still ends in one line and exit 1.
    try:
        return args.func(args) or 0
    except errors.Error as e:
        sys.stderr.write("vdsm-containers: %s\n" % e)
    except EnvironmentError as e:
        hint = ""
        if e.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
            hint = " (run it as root)"
        sys.stderr.write("vdsm-containers: %s%s\n" % (e, hint))
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        log.exception("vdsm-containers %s failed", args.command)
        sys.stderr.write("vdsm-containers: unexpected error: %s (the "
                         "traceback is in the host log)\n" % e)
    return 1


def _parser():
    parser = argparse.ArgumentParser(
        prog="vdsm-containers",
        description="Manage the containers that vdsm-hook-containers runs "
                    "for oVirt VMs on this host.")
    parser.add_argument("--version", action="version",
                        version="%(prog)s " + containerhooks.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "check", help="is this host ready to run container VMs?",
        description="Check the engines, which registries each engine has "
        "credentials for (names only), the sudo rule and helper, the hooks, "
        "the networks, the exit watcher, the placeholder kernel and the "
        "secrets; exit 1 if anything is missing.")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=check)

    p = sub.add_parser(
        "ps", help="list the container VMs of this host",
        description="VM id and name, engine, container state, addresses, "
        "uptime, image (with the start of the digest it runs, or for "
        "containerImage=disk:... of the id of the image loaded from the "
        "disk; --json: image_digest and image_id in full) and volumes of "
        "every container VM on this host, and "
        "the image's VOLUMEs that no volumeMap disk keeps (their data is "
        "lost at every power off).")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=ps)

    p = sub.add_parser(
        "logs", help="show a VM's container output",
        description="Print the output of the container of VM (its id, or "
        "its name as Engine shows it).")
    p.add_argument("vm", help="VM id or name")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new output until interrupted")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.set_defaults(func=logs)

    p = sub.add_parser(
        "gc", help="remove leftovers of crashed or killed starts",
        description="Remove containers whose VM has no placeholder, kill "
        "placeholders whose container is gone, release the state and "
        "mounts of VMs that are gone; only what is older than gc_grace "
        "seconds (containers.conf), never a start in progress, never "
        "anything on the VMs' disks.  A container with the package's "
        "labels that no state record names (not created by the package "
        "on this host) is listed, never touched.  Runs every 5 minutes "
        "from vdsm-hook-containers-gc.timer.")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be removed, remove nothing")
    p.add_argument("--grace", type=int, help="override gc_grace (seconds)")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing when there is nothing to clean")
    p.add_argument("--vm", action="append", metavar="VM_ID",
                   help="only this VM (repeatable)")
    p.set_defaults(func=gc_command)

    p = sub.add_parser(
        "pull", help="pre-pull an image on this host",
        description="Pull IMAGE into each engine of engines= (or the one "
        "given) as a VM start would: the host's image policy "
        "(allowed_images, require_digest) and the engine's registry "
        "credentials file apply; the pull's progress is shown.  Then print "
        "the digest it was pulled by (for containerImage=...@sha256:...). "
        "For maintenance windows, and for hosts whose pull_policy is "
        "never.")
    p.add_argument("--engine", choices=config.ENGINES,
                   help="only this engine")
    p.add_argument("--timeout", type=int, metavar="SECONDS",
                   help="give up after this long (default: pull_timeout)")
    p.add_argument("image", metavar="IMAGE",
                   help="an image reference, as containerImage takes it")
    p.set_defaults(func=pull)

    p = sub.add_parser(
        "setup-net", help="show or configure a bridge's container network",
        description="Without BRIDGE, show the configured container networks. "
        "With BRIDGE, reserve addresses on that Linux bridge for "
        "containers: SUBNET is the LAN's network, GATEWAY its real "
        "router, IP_RANGE a part of SUBNET that nothing else on the LAN "
        "hands out (no DHCP pool, no static hosts).  Containers join the "
        "bridge with macvlan; the host gets no address, no NAT rule.")
    p.add_argument("bridge", nargs="?", help="a Linux bridge, e.g. ovirtmgmt")
    p.add_argument("--subnet", help="e.g. 192.168.10.0/24")
    p.add_argument("--gateway", help="e.g. 192.168.10.1")
    p.add_argument("--ip-range", help="e.g. 192.168.10.192/27")
    p.add_argument("--create", action="store_true",
                   help="also create the engines' networks now")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=setup_net)

    p = sub.add_parser(
        "engine-config", help="print the Engine configuration line",
        description="Print the engine-config command that allows the custom "
        "properties containerType, containerImage, volumeMap and "
        "containerIP, then the Engine restart.  Run them on the Engine "
        "machine.")
    p.add_argument("--cver", default="4.7",
                   help="cluster compatibility level (default 4.7)")
    p.set_defaults(func=engine_config)

    p = sub.add_parser(
        "secret", help="manage the secrets VMs name in containerSecrets",
        description="Secrets are root-only files %s/NAME.env of "
        "KEY=VALUE lines; a VM's containerSecrets=NAME[,NAME] adds their "
        "variables to its container's environment.  Values never go "
        "through Engine or Vdsm, nor through arguments." % paths.SECRETS_DIR)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    q = actions.add_parser(
        "set", help="create or replace a secret from standard input",
        description="Read KEY=VALUE lines from standard input (the value is "
        "the rest of the line as it is: no quotes, no escapes; blank lines "
        "and lines starting with # are ignored), check them, and write "
        "them as secret NAME, 0600 root.  Example: printf "
        "'POSTGRES_PASSWORD=%s\\n' \"$pw\" | vdsm-containers secret set "
        "pg")
    q.add_argument("name", help="the secret's name, as containerSecrets "
                   "gives it")
    q.set_defaults(func=secret_set)
    q = actions.add_parser(
        "list", help="the secrets: names and keys, never values")
    q.add_argument("--json", action="store_true", help="machine output")
    q.set_defaults(func=secret_list)
    q = actions.add_parser("rm", help="remove a secret")
    q.add_argument("name", help="the secret's name")
    q.set_defaults(func=secret_rm)
    return parser


def check(args):
    """Is this host ready to run container VMs?"""
    results = []

    def add(name, ok, detail, warn=False):
        results.append({"check": name, "ok": bool(ok), "detail": detail,
                        "warn": bool(warn)})

    try:
        conf = config.load()
        add("config", True, conf.path)
    except errors.Error as e:
        add("config", False, str(e))
        return _report(results, args.json)
    for name in ("docker", "podman"):
        if name not in conf.engines:
            continue
        try:
            eng = _connect(conf, name)
            version = eng.version()
            add("engine " + name, True, "%s API %s at %s" % (
                version.get("Version"), version.get("ApiVersion"),
                conf.sockets[name]))
            add("runtimes " + name, *_runtimes_health(conf, name, eng))
        except errors.Error as e:
            add("engine " + name, False, str(e))
    for name in conf.engines:
        add("credentials " + name, *_credentials(conf, name))
    add("helper", os.access(paths.HELPER, os.X_OK), paths.HELPER)
    from containerhooks import helperd
    answers = helperd.answers(paths.HELPER_SOCKET)
    add("helper service", answers, "answering at %s" % paths.HELPER_SOCKET
        if answers else "not answering at %s: starts "
        "go through sudo, ~150 ms slower: systemctl enable --now "
        "vdsm-hook-containers-helperd" % paths.HELPER_SOCKET)
    sudoers = paths.SUDOERS
    ok = os.path.isfile(sudoers) and (os.stat(sudoers).st_mode & 0o7777) \
        == 0o440 and _sudoers_names_helper(sudoers)
    add("sudo rule", ok, "%s lets vdsm run %s" % (sudoers, paths.HELPER)
        if ok else "%s missing, not 0440 or not naming %s"
        % (sudoers, paths.HELPER))
    missing = [h for h in HOOKS if not os.access(
        os.path.join(paths.VDSM_HOOKS_DIR, h, "50_containers"), os.X_OK)]
    add("hooks", not missing, "all %d in %s" % (len(HOOKS),
        paths.VDSM_HOOKS_DIR) if not missing else "missing: " +
        ", ".join(missing))
    add("placeholder kernel", os.path.isfile(paths.PLACEHOLDER_KERNEL),
        paths.PLACEHOLDER_KERNEL)
    from containerhooks import procfs
    watcher = _watcher_pid(procfs)
    add("exit watcher", watcher is not None, "pid %s" % watcher
        if watcher else "not running: systemctl enable --now "
        "vdsm-hook-containers-watcher")
    add("pids", True, *_pids_budget(conf))
    add("secrets", *_secrets_health())
    nets = _networks()
    bad = [c.bridge for c in nets
           if not os.path.isdir("/sys/class/net/" + c.bridge)]
    add("networks", not bad, ("%d configured: %s" % (
        len(nets), ", ".join(c.bridge for c in nets)) if nets else
        "none configured: VMs with vNICs will be refused (setup-net)")
        if not bad else "no such bridge: " + ", ".join(bad))
    return _report(results, args.json)


def _runtimes_health(conf, name, eng):
    """(ok, detail) of the OCI runtimes engine name has (runtimes.py)."""
    from containerhooks import engine
    from containerhooks import runtimes

    def connect(socket):
        return engine.Engine.connect(name, socket, conf.api_timeout)
    return runtimes.engine_report(conf, name, eng, connect)


def _secrets_health():
    """(ok, detail) of the secrets directory and its files."""
    from containerhooks import secrets
    try:
        found = secrets.inventory()
    except errors.Error as e:
        return False, str(e)
    except EnvironmentError as e:
        return False, "cannot read %s: %s" % (paths.SECRETS_DIR, e)
    bad = [i.problem for i in found if i.problem]
    if bad:
        return False, "; ".join(bad)
    return True, "%d in %s" % (len(found), paths.SECRETS_DIR)


# /proc files "check" reads (tests point them elsewhere).
PID_MAX = "/proc/sys/kernel/pid_max"
MEMINFO = "/proc/meminfo"

# The memory of a small container VM: the host's memory divided by this is
# how many container VMs "check" assumes the host may run at once.
SMALL_VM_MIB = 256


def _pids_budget(conf):
    """(detail, warn): whether pids_limit times the container VMs this host
    could run exceeds the kernel's pid_max.

    The kernel's process ids are one pool for the whole host: when it is
    empty, nothing forks any more -- not Vdsm, libvirt, sshd.  pids_limit
    keeps one container from taking it all, not many; and the host's own
    processes need some of it too.  How many VMs: the host's memory over
    SMALL_VM_MIB, or the container VMs there are now if more."""
    from containerhooks import state
    try:
        with open(PID_MAX) as f:
            pid_max = int(f.read())
        with open(MEMINFO) as f:
            mem_kib = int([l for l in f if l.startswith("MemTotal:")][0]
                          .split()[1])
    except (IOError, OSError, ValueError, IndexError) as e:
        return "cannot read %s or %s: %s" % (PID_MAX, MEMINFO, e), True
    vms = max(mem_kib // 1024 // SMALL_VM_MIB, len(state.vm_ids()), 1)
    need = conf.pids_limit * vms
    detail = ("pids_limit %d x %d container VMs (%d MiB of memory / %d "
              "MiB) = %d %s pid_max %d" % (
                  conf.pids_limit, vms, mem_kib // 1024, SMALL_VM_MIB, need,
                  ">" if need > pid_max else "<=", pid_max))
    if need > pid_max:
        return (detail + ": containers can take every process id of the "
                "host; lower pids_limit in %s or raise kernel.pid_max "
                "(sysctl, up to 4194304)" % conf.path), True
    if conf.pids_limit < RUNSC_MIN_PIDS and _offers_runsc(conf):
        return (detail + "; runsc is offered, and gVisor's sandbox counts "
                "its own host threads (about 40 at idle) against "
                "pids_limit: below that a runsc container does not start, "
                "and one whose processes reach it ends as a whole (exit "
                "code 2); raise pids_limit to %d or more in %s"
                % (RUNSC_MIN_PIDS, conf.path)), True
    return detail, False


# The pids_limit below which "check" warns when runsc is offered: gVisor's
# sandbox and gofer had 39 host tasks in the container's pids cgroup at
# idle here (runsc 20221219, the busybox httpd test image), and a start
# with pids_limit 32 failed ("urpc method containerManager.StartRoot
# failed: EOF"); the rest is the application's.
RUNSC_MIN_PIDS = 128


def _offers_runsc(conf):
    return any("runsc" in names for names in conf.runtimes.values()) or \
        "runsc" in conf.default_runtimes.values()


def _credentials(conf, name):
    """(ok, detail, warn) of engine name's registry credentials file: the
    registries it has credentials for, by name only."""
    from containerhooks import registryauth
    try:
        auth = registryauth.load(name, conf)
    except errors.Error as e:
        return False, str(e), False
    found = auth.registries()
    if not found:
        return True, "%s: none (public registries only; to add one: %s)" % (
            auth.path, registryauth.login_command(name, "REGISTRY",
                                                  auth.path)), False
    detail = "%s: %s" % (auth.path, ", ".join(found))
    if os.stat(auth.path).st_mode & 0o044:
        return True, detail + ": readable by other users than root; " \
            "chmod 600 %s" % auth.path, True
    return True, detail, False


def _sudoers_names_helper(path):
    try:
        with open(path) as f:
            return any(paths.HELPER in line and "NOPASSWD" in line
                       and line.split()[0] == "vdsm" for line in f)
    except (IOError, OSError):
        return False


def _watcher_pid(procfs):
    for name in os.listdir(procfs.PROC):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(procfs.PROC, name, "cmdline"), "rb") as f:
                args = f.read().split(b"\0")
        except (IOError, OSError):
            continue
        if any(a.endswith(b"containers-watcher") for a in args[:3]):
            return int(name)
    return None


def _report(results, as_json):
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print("%-4s %-20s %s" % ("FAIL" if not r["ok"] else "WARN"
                                     if r["warn"] else "ok", r["check"],
                                     r["detail"]))
    return 0 if all(r["ok"] for r in results) else 1


def ps(args):
    """The container VMs of this host, from the state files and engines."""
    from containerhooks import procfs
    from containerhooks import state
    conf = config.load()
    engines = {}
    unreachable = {}
    rows = []
    now = time.time()
    for vm_id in sorted(state.vm_ids()):
        record = state.read(vm_id) or state.Record()
        name = record.engine
        status, started = "unknown (engine down)", None
        if name in conf.engines and name not in unreachable:
            try:
                eng = engines.get(name) or _connect(conf, name)
                engines[name] = eng
                info = eng.find(vm_id)
                status = info.status if info else "gone"
                started = info.started if info else None
            except errors.Error as e:
                unreachable[name] = e
        rows.append({
            "vm_id": vm_id, "vm_name": record.vm_name,
            "engine": name, "image": record.image,
            # The OCI runtime, as the host showed it at start (runtimes.py).
            "runtime": record.runtime,
            # What the container runs (helper.py): the manifest's digest.
            "image_digest": record.image_digest,
            "image_id": record.image_id,
            "container": record.container_name, "state": status,
            "placeholder": procfs.find_qemu(vm_id) is not None,
            "ips": [n.get("ip") for n in record.nics],
            "uptime": int(now - started) if started else None,
            "volumes": ["%s:%s" % (v.get("disk"), v.get("path"))
                        for v in record.volumes],
            # The image's VOLUMEs no volumeMap disk covers (helper.py).
            "unmapped_volumes": record.unmapped_volumes,
        })
    _print_ps(rows, args.json)
    # The list is still printed; the exit code says it is incomplete.
    for name, e in sorted(unreachable.items()):
        sys.stderr.write("vdsm-containers: %s\n" % e)
    return 1 if unreachable else 0


def _print_ps(rows, as_json):
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print("%-36s %-16s %-7s %-7s %-10s %-16s %-9s %s" % (
        "VM ID", "NAME", "ENGINE", "RUNTIME", "STATE", "IP", "UPTIME",
        "IMAGE / VOLUMES"))
    for r in rows:
        print("%-36s %-16s %-7s %-7s %-10s %-16s %-9s %s%s" % (
            r["vm_id"], (r["vm_name"] or "")[:16], r["engine"],
            r["runtime"] or "-", r["state"],
            ",".join(r["ips"]) or "-", _duration(r["uptime"]),
            r["image"] + (" (%s)" % _what_runs(r)[:19] if _what_runs(r)
                          else ""),
            (" " + ",".join(r["volumes"]) if r["volumes"] else "") +
            (" (lost at power off: %s)" % ",".join(r["unmapped_volumes"])
             if r["unmapped_volumes"] else "")))


def _what_runs(row):
    """The digest a row's container runs, or for an image from a VM disk
    (containerImage=disk:..., diskimage.py: from no registry) its id."""
    if row["image_digest"]:
        return row["image_digest"]
    if (row["image"] or "").startswith("disk:"):
        return row["image_id"]
    return None


def _duration(seconds):
    if seconds is None:
        return "-"
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % divmod(seconds // 60, 60)


def logs(args):
    """Print (or follow) a VM's container output; VM is an id or a name."""
    from containerhooks import state
    conf = config.load()
    matches = [v for v in state.vm_ids() if v == args.vm.lower() or
               (state.read(v) or state.Record()).vm_name == args.vm]
    if len(matches) != 1:
        raise errors.StateError(
            action="find", vm_id=args.vm, reason="no container VM with "
            "that id or name on this host (see 'vdsm-containers ps')"
            if not matches else "several VMs have that name; give the id")
    record = state.read(matches[0]) or state.Record()
    eng = _connect(conf, record.engine)
    out = getattr(sys.stdout, "buffer", sys.stdout)
    try:
        for chunk in eng.logs(record.container_name, follow=args.follow,
                              tail=args.tail if args.tail is not None
                              else "all"):
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        pass
    return 0


def gc_command(args):
    """Find leftovers, and remove them unless --dry-run."""
    from containerhooks import gc
    from containerhooks import helper
    conf = config.load()
    if args.grace is not None:
        conf = conf._replace(gc_grace=args.grace)
    engines = {}
    for name in conf.engines:
        try:
            engines[name] = _connect(conf, name)
        except errors.Error as e:
            sys.stderr.write("vdsm-containers: skipping %s: %s\n" % (name, e))
    findings = gc.find(conf, engines)
    if args.vm:
        findings = [f for f in findings if f.vm_id in args.vm]
    for f in findings:
        if f.kind == "foreign":
            # The label is anybody's text: shown escaped, never as is.
            print("leaving %s labelled %s (%s)" % (
                f.what, repr(f.vm_id[:80]).lstrip("u"), f.reason))
            continue
        print("%s %s: %s (%s)" % ("would remove" if args.dry_run
                                  else "removing", f.vm_id, f.what,
                                  f.reason))
    if args.dry_run:
        return 0
    failed = gc.clean(conf, findings, helper.stop_vm)
    for f, e in failed:
        sys.stderr.write("vdsm-containers: %s: %s\n" % (f.vm_id, e))
    if not [f for f in findings if f.kind != "foreign"] and not args.quiet:
        print("nothing to clean")
    return 1 if failed else 0


def pull(args):
    """Pull an image into this host's engines, showing the progress."""
    from containerhooks import imagepolicy
    from containerhooks import imageref
    from containerhooks import registryauth
    conf = config.load()
    ref = imageref.parse(args.image)
    imagepolicy.check(ref, conf)
    names = [args.engine] if args.engine else list(conf.engines)
    timeout = args.timeout or conf.pull_timeout
    failed = 0
    for name in names:
        try:
            eng = _connect(conf, name)
            auth = registryauth.load(name, conf)
            print("%s: pulling %s" % (name, ref))
            sys.stdout.flush()
            eng.pull(ref, timeout, conf.api_timeout, auth=auth,
                     progress=Progress(name, sys.stdout))
            digest = eng.repo_digest(eng.image_id(ref), ref)
        except errors.Error as e:
            sys.stderr.write("vdsm-containers: %s: %s\n" % (name, e))
            failed += 1
            continue
        print("%s: %s is %s" % (name, ref, "%s@%s" % (ref.repository, digest)
                                if digest else "an image of no registry"))
    return 1 if failed else 0


class Progress(object):
    """Prints an engine's pull messages: each layer's new status, and its
    progress bar at most every INTERVAL seconds."""

    INTERVAL = 1.0

    def __init__(self, engine, out, clock=time.time):
        self.engine = engine
        self.out = out
        self.clock = clock
        self._last = {}

    def __call__(self, layer, status, detail):
        now = self.clock()
        status_was, shown = self._last.get(layer, (None, 0))
        if status == status_was and (not detail
                                     or now - shown < self.INTERVAL):
            return
        self._last[layer] = (status, now)
        self.out.write("%s: %s%s%s\n" % (
            self.engine, layer + " " if layer else "", status,
            " " + detail if detail else ""))
        self.out.flush()


def _connect(conf, name):
    from containerhooks import engine
    if name not in conf.engines:
        raise errors.ConfigError(path=conf.path, reason="engine %r is not "
                                 "in engines" % (name,))
    return engine.Engine.connect(name, conf.sockets[name], conf.api_timeout)


def _networks():
    configs = []
    if os.path.isdir(paths.NETWORKS_DIR):
        for name in sorted(os.listdir(paths.NETWORKS_DIR)):
            if name.endswith(".conf"):
                configs.append(network.load(name[:-5]))
    return configs


def setup_net(args):
    if args.bridge is None:
        return _show_networks(args.json)
    missing = [o for o in ("subnet", "gateway", "ip_range")
               if getattr(args, o) is None]
    if missing:
        raise errors.ConfigError(
            path=network.config_path(args.bridge), reason="setup-net "
            "%s needs --%s" % (args.bridge, ", --".join(
                m.replace("_", "-") for m in missing)))
    cfg = network.NetworkConfig(bridge=args.bridge, subnet=args.subnet,
                                gateway=args.gateway, ip_range=args.ip_range)
    network.save(cfg)
    print("wrote %s" % network.config_path(args.bridge))
    if args.create:
        from containerhooks import engine
        conf = config.load()
        for name in conf.engines:
            eng = engine.Engine.connect(name, conf.sockets[name],
                                        conf.api_timeout)
            print("%s: network %s ready" % (name, network.ensure(eng, cfg)))
    return 0


def _show_networks(as_json):
    configs = _networks()
    if as_json:
        print(json.dumps([c._asdict() for c in configs], indent=2))
        return 0
    if not configs:
        print("No container network configured (%s is empty); see "
              "'vdsm-containers setup-net --help'." % paths.NETWORKS_DIR)
        return 0
    print("%-15s %-18s %-15s %s" % ("BRIDGE", "SUBNET", "GATEWAY",
                                    "IP RANGE"))
    for c in configs:
        print("%-15s %-18s %-15s %s" % (c.bridge, c.subnet, c.gateway,
                                        c.ip_range))
    return 0


def engine_config_value():
    """The UserDefinedVMProperties value: name=regex;name=regex..."""
    regexes = properties.engine_regexes(config.ENGINES)
    return ";".join("%s=%s" % item for item in regexes.items())


def engine_config(args):
    print("engine-config -s UserDefinedVMProperties='%s' --cver=%s"
          % (engine_config_value(), args.cver))
    print("systemctl restart ovirt-engine")
    return 0


def _need_root(command):
    if os.geteuid() != 0:
        raise errors.NeedsRoot(command=command, reason="secrets are root's "
                               "files, and only root's are used")


def secret_set(args):
    from containerhooks import secrets
    _need_root("secret set")
    secrets.check_name(args.name)
    if sys.stdin.isatty():
        sys.stderr.write("Type KEY=VALUE lines, then Ctrl-D:\n")
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    data = stdin.read(secrets.MAX_SIZE + 1)
    keys = secrets.write(args.name, data)
    print("wrote %s: %s" % (secrets.path(args.name), ", ".join(keys)))
    return 0


def secret_list(args):
    from containerhooks import secrets
    _need_root("secret list")
    found = secrets.inventory()
    if args.json:
        print(json.dumps([i._asdict() for i in found], indent=2))
    elif not found:
        print("No secrets (%s has none)." % paths.SECRETS_DIR)
    else:
        print("%-24s %s" % ("NAME", "KEYS"))
        for i in found:
            print("%-24s %s" % (i.name, ", ".join(i.keys) if not i.problem
                                else "UNUSABLE: " + i.problem))
    return 1 if any(i.problem for i in found) else 0


def secret_rm(args):
    from containerhooks import secrets
    _need_root("secret rm")
    secrets.remove(args.name)
    print("removed %s" % secrets.path(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
