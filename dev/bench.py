#!/usr/bin/python3
"""make bench: the monitoring's costs, each as a ratio against a baseline
measured in the same run (medians over several runs).

1. after_get_all_vm_stats on 1, 10, 50 and 100 container VMs, plus as
   many VMs that are not containers, against "docker stats --no-stream"
   over the same containers and against a bare "python3 -c pass";
2. each hook on a VM that is not a container (while container VMs run on
   the host), against a bare "python3 -c pass";
3. before_vm_start until the container runs (image present), against
   "docker run -d" of the same image and configuration: through the
   helper service and through sudo, with no volume, with two, and a
   configured application (environment, command, a host secret);
4. a container's end until its placeholder is down, with the exit watcher
   and real libvirt;
5. (only when asked: --parts 5) volumeMap's blank check on large raw
   images, called as the root helper calls it (hostdisk.filesystem on the
   image's loop device, the image's own descriptor for the reads): a
   sparse image, a preallocated one (fallocate: unwritten extents) and one
   written with zeros by dd (allocated extents, as a preallocated disk on
   NFS v3, where the image has no holes to skip); also, with --blank-block,
   the written image as a block device (a loop device read whole, as an LV
   is).  Absolute times in seconds, no target: the check reads every
   allocated byte, so it is as fast as the storage.  Needs root and loop
   devices, not the daemons; the images go into --blank-dir (its file
   system's speed is what is measured) and are removed afterwards.
6. per OCI runtime (containerRuntime: runc, crun, runsc) on each engine,
   before_vm_start until the container runs and the memory of an idle
   container (its cgroup's charge, and the proportional set size of its
   supervisor -- Docker's shim, Podman's conmon -- and everything under
   it: the container's processes, gVisor's sandbox and gofer), as ratios
   against runc in the same run.

Everything goes through the real pieces, as the tests do: the package is
installed into a private root (tests/install.py), hooks run as the vdsm
user with Vdsm's environment (tests/vdsm.py), and the container VMs of (1)
are started through before_vm_start, four at a time as Vdsm does, on
Docker.  A hook's time is its process alone (the data file is written
beforehand, as Vdsm does); the bare interpreter runs the same way, as
vdsm.  Everything the benchmark creates is removed at the end, also when
it fails.  Needs root and the daemons (make bench starts them).

With --baseline REF (a git revision of this checkout, e.g. main), (1)
also times REF's after_get_all_vm_stats on the same VMs, data and
snapshot, alternating with this checkout's and the bare interpreter: a
before/after in one run.

    dev/bench.py [--sizes 1,10,50,100] [--runs 7] [--parts 1,2,3,4,6] [--quick]
                 [--baseline REF]
    dev/bench.py --parts 5 [--blank-gib 10] [--blank-runs 3]
                 [--blank-dir /var/tmp] [--blank-block]
"""

import argparse
import calendar
import collections
import concurrent.futures
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
sys.path.insert(0, os.path.join(TOP, "lib"))

import domains  # noqa: E402
import hoststorage  # noqa: E402
import images  # noqa: E402
import install  # noqa: E402
import libvirt  # noqa: E402
import vdsm as vdsm_module  # noqa: E402
import vdsmstats  # noqa: E402
import vmrun  # noqa: E402
from containerhooks import procfs  # noqa: E402

BARE = ["/usr/bin/python3", "-c", "pass"]
# dev/services' daemons, or others (as the tests take them).
DOCKER_SOCKET = os.environ.get("VHC_DOCKER_SOCKET") or "/var/run/docker.sock"
PODMAN_SOCKET = os.environ.get("VHC_PODMAN_SOCKET") \
    or "/run/podman/podman.sock"
PODMAN_RUNTIME_SOCKETS = {
    "crun": os.environ.get("VHC_PODMAN_CRUN_SOCKET")
    or "/run/podman/podman-crun.sock",
    "runsc": os.environ.get("VHC_PODMAN_RUNSC_SOCKET")
    or "/run/podman/podman-runsc.sock",
}
RUNTIMES = ("runc", "crun", "runsc")
# How long a container of (6) idles before its memory is read.
IDLE_SECONDS = 3
START_WORKERS = 4       # Vdsm runs up to 4 VM creations at once

# The configured application of (3): an environment variable, an argument
# and a host secret, as issue 12's properties give them; and the same with
# docker run.
BENCH_SECRET = "bench-app"
APP_PROPERTIES = {"containerEnv": "APP_MODE=bench%2C configured",
                  "containerCommand": "Hello%20bench",
                  "containerSecrets": BENCH_SECRET}
APP_DOCKER_RUN = ["-e", "APP_MODE=bench, configured",
                  "-e", "APP_PASSWORD=bench-password",
                  images.APP_IMAGE, "Hello bench"]

TARGETS = {
    "stats_vs_docker_at_50": 30.0,      # at least, faster
    "stats_vs_bare_at_50": 6.0,         # at most
    "stats_100_vs_1": 1.3,              # at most
    "plain_vs_bare": 1.5,               # at most
    "start_vs_docker_run": 1.3,         # at most
    "exit_to_down": 2.0,                # seconds, at most
}


def median(values):
    return statistics.median(list(values))


# Medians of one hook and of the bare interpreter run beside it: wall
# clock and CPU time (user + system) of the process; base and base_cpu:
# the same hook of the --baseline revision (None without one).
Timing = collections.namedtuple(
    "Timing", "hook, bare, hook_cpu, bare_cpu, base, base_cpu")


def ms(seconds):
    return "%.1f ms" % (seconds * 1000)


class Bench(object):

    def __init__(self, args):
        self.args = args
        self.inst = install.Installation().install()
        self.vdsm = vdsm_module.Vdsm(self.inst.hooks_dir, user="vdsm")
        self.vdsm_uid = pwd.getpwnam("vdsm")
        self.workdir = tempfile.mkdtemp(prefix="vhc-bench-", dir="/var/tmp")
        os.chmod(self.workdir, 0o755)
        # Hook data files, in a directory vdsm may write (the hooks replace
        # them by renaming a file over them), as Vdsm's /tmp.
        self.datadir = os.path.join(self.workdir, "data")
        os.mkdir(self.datadir, 0o755)
        os.chown(self.datadir, self.vdsm_uid.pw_uid, self.vdsm_uid.pw_gid)
        self.vms = []            # (vm, placeholder xml) started for (1)
        self.extra_vms = []      # VMs of (3) and (4), cleaned up too
        self.watcher = None
        self.storage = None
        import docker
        self.docker = docker.DockerClient(base_url="unix://" + DOCKER_SOCKET,
                                          version="auto", timeout=300)
        self.podman = docker.DockerClient(base_url="unix://" + PODMAN_SOCKET,
                                          version="auto", timeout=300)
        self.results = {}
        self.baseline = None
        if args.baseline:
            self.baseline = self.install_baseline(args.baseline)

    def install_baseline(self, ref):
        """REF's after_get_all_vm_stats script and library, beside the
        installation and reading the same state directory (its _site.py):
        the script's path."""
        root = os.path.join(self.workdir, "baseline")
        os.mkdir(root)
        archive = subprocess.check_output(
            ["git", "-C", TOP, "archive", ref, "lib/containerhooks",
             "hooks/after_get_all_vm_stats"])
        subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
        lib = os.path.join(root, "lib")
        shutil.copy(os.path.join(self.inst.lib_dir, "containerhooks",
                                 "_site.py"),
                    os.path.join(lib, "containerhooks", "_site.py"))
        subprocess.check_call(["/usr/bin/python3", "-m", "compileall", "-q",
                               os.path.join(lib, "containerhooks")])
        script = os.path.join(root, "hooks", "after_get_all_vm_stats",
                              "50_containers")
        with open(script) as f:
            lines = f.read().splitlines(True)
        lines.insert(1, "import sys; sys.path.insert(0, %r)\n" % lib)
        with open(script, "w") as f:
            f.write("".join(lines))
        subprocess.check_call(["chmod", "-R", "a+rX", root])
        os.chmod(script, 0o755)
        return script

    # Timing one process

    def data_file(self, content):
        fd, path = tempfile.mkstemp(dir=self.datadir)
        os.write(fd, content)
        os.close(fd)
        os.chown(path, self.vdsm_uid.pw_uid, self.vdsm_uid.pw_gid)
        return path

    def time_process(self, argv, options, content, path):
        """(wall, CPU) seconds the process took; the data file is
        restored first.  The CPU time (user + system of the process) is
        what other tenants of a busy machine disturb least."""
        with open(path, "wb") as f:
            f.write(content)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, **options)
        _, err = p.communicate()
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (argv, p.returncode,
                                                       err.decode()))
        cpu = (after.ru_utime + after.ru_stime
               - before.ru_utime - before.ru_stime)
        return elapsed, cpu

    def time_hook(self, hook, data, vm_id=None, custom=None, runs=None,
                  pause=0, baseline=None):
        """Timing of hook's script and of a bare interpreter, run
        alternately the same way, on the same data (pause seconds before
        each run of the hook): Timing of wall and CPU medians.  baseline:
        another script of the same hook, run in the same turns."""
        runs = runs or self.args.runs
        kind = vdsm_module.HOOKS[hook][0]
        if kind == vdsm_module.JSON:
            content = json.dumps(data).encode()
        else:
            content = (data or "").encode()
        path = self.data_file(content)
        try:
            options = self.vdsm.popen_options(hook, path, vm_id=vm_id,
                                              custom=custom)
            [script] = self.vdsm.scripts(hook)
            hook_times, bare_times, base_times = [], [], []
            self.time_process([script], options, content, path)   # warm
            if baseline:
                self.time_process([baseline], options, content, path)
            for _ in range(runs):
                time.sleep(pause)
                hook_times.append(
                    self.time_process([script], options, content, path))
                if baseline:
                    time.sleep(pause)
                    base_times.append(self.time_process(
                        [baseline], options, content, path))
                bare_times.append(
                    self.time_process(BARE, options, content, path))
        finally:
            os.unlink(path)
        return Timing(median(t[0] for t in hook_times),
                      median(t[0] for t in bare_times),
                      median(t[1] for t in hook_times),
                      median(t[1] for t in bare_times),
                      median(t[0] for t in base_times) if base_times
                      else None,
                      median(t[1] for t in base_times) if base_times
                      else None)

    # (1) stats on N container VMs

    def start_vms(self, count):
        def start(_):
            vm = domains.container_vm("docker", images.IMAGE)
            result = self.vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                                   custom=vm.custom)
            return vm, result.data
        missing = count - len(self.vms)
        if missing <= 0:
            return
        with concurrent.futures.ThreadPoolExecutor(START_WORKERS) as pool:
            for started in pool.map(start, range(missing)):
                self.vms.append(started)

    def docker_stats(self, vms):
        names = ["ovirt-vm-" + vm.id for vm, _ in vms]
        times = []
        for _ in range(self.args.docker_runs):
            started = time.perf_counter()
            subprocess.check_call(["docker", "stats", "--no-stream"] + names,
                                  stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
        return median(times)

    def bench_stats(self):
        """The hook at each size twice: "before", with no watcher running
        (the hook reads every container's state, cgroup and counters
        itself, as before statsnap.py), and "after", with the watcher
        running and its snapshot fresh (the hook reads one file)."""
        rows = []
        for n in self.args.sizes:
            self.start_vms(n)
            vms = self.vms[:n]
            data = [vdsmstats.vm_stats(vm.id, name=vm.name) for vm, _ in vms]
            data += [vdsmstats.vm_stats(domains.VM({}).id) for _ in range(n)]
            # A first call takes each VM's first CPU sample; then, as when
            # Vdsm polls every 15 s, every call replaces the samples (they
            # are kept only when taken more than 1 s apart: samples.py).
            self.vdsm.run("after_get_all_vm_stats", data)
            before = self.time_hook("after_get_all_vm_stats", data,
                                    pause=1.05)
            watcher = self.inst.start_watcher()
            try:
                self.wait_snapshot([vm.id for vm, _ in vms])
                timing = self.time_hook("after_get_all_vm_stats", data,
                                        pause=1.05, baseline=self.baseline)
            finally:
                self.inst.stop_watcher(watcher)
            docker = self.docker_stats(vms)
            rows.append((n, timing, docker, before))
            print("  %3d container VMs + %3d others: hook %s (before: %s%s), "
                  "docker stats %s, python3 -c pass %s" % (
                      n, n, ms(timing.hook), ms(before.hook),
                      "; %s: %s" % (self.args.baseline, ms(timing.base))
                      if timing.base is not None else "", ms(docker),
                      ms(timing.bare)), flush=True)
        self.results["stats"] = rows

    def wait_snapshot(self, vm_ids, timeout=60):
        """Until the watcher's snapshot has every one of vm_ids."""
        path = os.path.join(self.inst.state_dir, "stats.snapshot")
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(path) as f:
                    found = json.load(f)["vms"]
                if all(vm_id in found for vm_id in vm_ids):
                    return
            except (IOError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the watcher's snapshot lacks VMs after %ds"
                           % timeout)

    # (2) every hook on a VM that is not a container

    def bench_plain(self):
        vm = domains.VM({"someOtherProperty": "value"})
        stats = [vdsmstats.vm_stats(vm.id)]
        others = [vdsmstats.vm_stats(domains.VM({}).id) for _ in range(10)]
        cases = [
            ("before_vm_start", vm.xml), ("before_vm_destroy", None),
            ("after_vm_destroy", vm.xml), ("before_vm_migrate_source",
                                           vm.xml),
            ("before_vm_hibernate", vm.xml), ("after_vm_pause", vm.xml),
            ("after_vm_cont", vm.xml), ("after_get_vm_stats", stats),
            ("after_get_all_vm_stats", stats + others),
        ]
        rows = []
        for hook, data in cases:
            rows.append((hook, self.time_hook(hook, data, vm_id=vm.id,
                                              custom=vm.custom)))
        # Host-level hooks: not about a VM, listed for their cost.
        for hook, data in (("after_get_stats", vdsmstats.host_stats()),
                           ("after_get_caps", vdsmstats.host_caps())):
            rows.append((hook + " (host)", self.time_hook(hook, data)))
        self.results["plain"] = rows

    # (3) before_vm_start until the container runs

    def bench_start(self):
        """before_vm_start until the container runs, through the helper
        service (as the RPM sets a host up) and through sudo (the
        fallback): with no volume, with two (one blank raw disk formatted
        on the first start, then mounted), and a configured application
        (containerEnv, containerCommand and a host secret); each
        alternating with "docker run -d" of the same image and
        configuration in the same loop, its baseline."""
        disks = self.volume_disks()
        self.inst.run_cli("secret", "set", BENCH_SECRET,
                          input=b"APP_PASSWORD=bench-password\n")
        cases = [("helper service", "no volume"),
                 ("helper service", "2 volumes"),
                 ("helper service", "configured app"),
                 ("sudo", "no volume"), ("sudo", "2 volumes"),
                 ("sudo", "configured app")]
        times = dict((case, []) for case in cases)
        runs = dict((case, []) for case in cases)
        helperd = self.inst.start_helperd()
        try:
            for case in cases:
                transport, variant = case
                if transport == "sudo" and helperd is not None:
                    self.inst.stop_helperd(helperd)
                    helperd = None
                self.one_start(variant, disks)     # warm
                for _ in range(self.args.start_runs):
                    times[case].append(self.one_start(variant, disks))
                    argv = ["docker", "run", "-d"] + (
                        APP_DOCKER_RUN if variant == "configured app"
                        else [images.IMAGE])
                    started = time.perf_counter()
                    cid = subprocess.check_output(argv).decode().strip()
                    runs[case].append(time.perf_counter() - started)
                    subprocess.check_call(["docker", "rm", "-f", cid],
                                          stdout=subprocess.DEVNULL)
        finally:
            if helperd is not None:
                self.inst.stop_helperd(helperd)
        self.results["start"] = [(case, median(times[case]),
                                  median(runs[case])) for case in cases]

    def volume_disks(self):
        """Two raw disks on a file storage domain, for volumeMap."""
        self.storage = hoststorage.Storage()
        self.inst.configure(storage_roots=self.storage.root)
        return [domains.disk("vdb", self.storage.image()),
                domains.disk("vdc", self.storage.image())]

    def one_start(self, variant, disks):
        """Seconds before_vm_start took until the container ran (the VM
        is powered off again afterwards)."""
        if variant == "configured app":
            vm = domains.container_vm("docker", images.APP_IMAGE).edited(
                **APP_PROPERTIES)
        else:
            vm = domains.container_vm("docker", images.IMAGE)
        if variant == "2 volumes":
            vm = vm.edited(volumeMap="vdb:/data,vdc:/var/log/app")
            domains.add_disks(vm, *disks)
        self.extra_vms.append(vm)
        started = time.perf_counter()
        result = self.vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                               custom=vm.custom)
        elapsed = time.perf_counter() - started
        assert self.docker.containers.get(
            "ovirt-vm-" + vm.id).status == "running"
        self.power_off(vm, result.data)
        return elapsed

    # (4) a container's end until the placeholder is down

    def bench_exit(self):
        kinds = images.build_and_push_exiting(self.docker)
        self.watcher = self.inst.start_watcher()
        host = libvirt.detect_host()
        rows = []
        for engine, runs in (("docker", self.args.exit_runs),
                             ("podman", max(1, self.args.exit_runs // 2))):
            client = self.docker if engine == "docker" else self.podman
            ended, gone = [], []
            for i in range(runs):
                e, g = self.one_exit(engine, client, kinds["exit3"], host, i)
                ended.append(e)
                gone.append(g)
            rows.append((engine, median(ended), median(gone), max(ended)))
        self.results["exit"] = rows

    def one_exit(self, engine, client, image, host, i):
        vm = domains.container_vm(engine, image, base="no-nic-in.xml",
                                  memory_mib=64)
        self.extra_vms.append(vm)
        workdir = os.path.join(self.workdir, "%s-%d" % (engine, i))
        os.mkdir(workdir)
        os.chmod(workdir, 0o755)
        result = self.vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                               custom=vm.custom)
        from lxml import etree
        root = etree.fromstring(result.data.encode())
        libvirt.adjust(root, host, workdir)
        libvirt.create(root, workdir)
        libvirt.wait_running(vm.id)
        pid = libvirt.qemu_pid(vm.name)
        c = client.containers.get("ovirt-vm-" + vm.id)
        c.reload()
        c.exec_run(["touch", images.EXIT_TRIGGER])
        ended = None
        deadline = time.time() + 60
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            if ended is None and not procfs.alive(pid):
                ended = time.time()
            time.sleep(0.002)
        if ended is None:
            ended = time.time()
        while libvirt.virsh("domstate", vm.id, check=False)[0] == 0 \
                and time.time() < deadline:
            time.sleep(0.01)
        gone = time.time()
        finished = _epoch(client.api.inspect_container(c.id)["State"][
            "FinishedAt"])
        self.vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                      custom=vm.custom)
        return ended - finished, gone - finished

    # (6) per OCI runtime: start time and idle memory

    def bench_runtimes(self):
        every = ", ".join(RUNTIMES)
        self.inst.configure(
            docker_runtimes=every, podman_runtimes=every,
            podman_runtime_sockets=", ".join(
                "%s:%s" % item
                for item in sorted(PODMAN_RUNTIME_SOCKETS.items())))
        rows = []
        helperd = self.inst.start_helperd()
        try:
            for engine, client in (("docker", self.docker),
                                   ("podman", self.podman)):
                found = dict((runtime, ([], [], [])) for runtime in RUNTIMES)
                for runtime in RUNTIMES:
                    self.runtime_start(engine, client, runtime)   # warm
                # The runtimes in turn, so that what else the machine
                # does weighs on each alike.
                for _ in range(self.args.start_runs):
                    for runtime in RUNTIMES:
                        for values, value in zip(
                                found[runtime], self.runtime_start(
                                    engine, client, runtime, measure=True)):
                            values.append(value)
                for runtime in RUNTIMES:
                    starts, charges, psses = found[runtime]
                    rows.append((engine, runtime, median(starts),
                                 median(charges), median(psses)))
        finally:
            self.inst.stop_helperd(helperd)
            self.inst.configure()
        self.results["runtimes"] = rows

    def runtime_start(self, engine, client, runtime, measure=False):
        """(seconds before_vm_start took, the container's cgroup memory
        charge and its supervisor's tree's PSS in bytes after IDLE_SECONDS)
        of one VM of engine on runtime, powered off again."""
        vm = domains.container_vm(engine, images.IMAGE).edited(
            containerRuntime=runtime)
        self.extra_vms.append(vm)
        started = time.perf_counter()
        result = self.vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                               custom=vm.custom)
        took = time.perf_counter() - started
        charge = pss = None
        if measure:
            c = client.containers.get("ovirt-vm-" + vm.id)
            assert c.status == "running"
            assert self.inst.record(vm.id)["runtime"] == runtime
            time.sleep(IDLE_SECONDS)
            pid = c.attrs["State"]["Pid"]
            charge = _cgroup_memory(pid, c.id)
            pss = _tree_pss(_ppid(pid))
        self.power_off(vm, result.data)
        return took, charge, pss

    # Cleanup and report

    def power_off(self, vm, xml):
        self.vdsm.run("before_vm_destroy", None, vm_id=vm.id,
                      custom=vm.custom)
        self.vdsm.run("after_vm_destroy", xml, vm_id=vm.id, custom=vm.custom)

    def cleanup(self):
        if self.watcher is not None:
            self.inst.stop_watcher(self.watcher)

        def off(started):
            vm, xml = started
            try:
                self.power_off(vm, xml)
            except Exception as e:
                print("cleanup: power off %s failed: %s" % (vm.id, e))
        with concurrent.futures.ThreadPoolExecutor(START_WORKERS) as pool:
            list(pool.map(off, self.vms))
        ids = set(vm.id for vm, _ in self.vms) | set(
            vm.id for vm in self.extra_vms)
        for vm_id in ids:
            libvirt.virsh("destroy", vm_id, check=False)
        for client in (self.docker, self.podman):
            vmrun.remove_managed(client, ids)
        if self.storage is not None:
            self.storage.clean(self.inst.state_dir)
        self.inst.remove()
        subprocess.call(["rm", "-rf", self.workdir])

    def report(self):
        print()
        print("Monitoring benchmark (medians; ratios against baselines "
              "measured in this run)")
        rows = self.results.get("stats", [])
        if rows:
            base = rows[0][1]
            print()
            print("1. after_get_all_vm_stats, N container VMs + N others "
                  "(wall clock; CPU time in brackets); before: no watcher, "
                  "the hook reads each container itself")
            print("   %4s %10s %20s %13s %10s %12s %15s %15s %15s" % (
                "N", "before", "hook [CPU]", "docker stats", "python3",
                "docker/hook", "hook/py", "before/N=1", "hook/N=1"))
            for n, t, docker, b in rows:
                print("   %4d %10s %20s %13s %10s %11.1fx %6.2fx [%4.2fx] "
                      "%6.2fx [%4.2fx] %6.2fx [%4.2fx]" % (
                          n, ms(b.hook), "%s [%s]" % (ms(t.hook),
                                                      ms(t.hook_cpu)),
                          ms(docker), ms(t.bare),
                          docker / t.hook, t.hook / t.bare,
                          t.hook_cpu / t.bare_cpu,
                          b.hook / rows[0][3].hook,
                          b.hook_cpu / rows[0][3].hook_cpu,
                          t.hook / base.hook,
                          t.hook_cpu / base.hook_cpu))
            if base.base is not None:
                print()
                print("   the same hook of %s (--baseline), timed in the same "
                      "turns:" % self.args.baseline)
                print("   %4s %20s %15s %15s %15s" % (
                    "N", "baseline [CPU]", "baseline/py", "baseline/N=1",
                    "hook/baseline"))
                for n, t, docker, b in rows:
                    print("   %4d %20s %6.2fx [%4.2fx] %6.2fx [%4.2fx] "
                          "%6.2fx [%4.2fx]" % (
                              n, "%s [%s]" % (ms(t.base), ms(t.base_cpu)),
                              t.base / t.bare,
                              t.base_cpu / t.bare_cpu, t.base / base.base,
                              t.base_cpu / base.base_cpu, t.hook / t.base,
                              t.hook_cpu / t.base_cpu))
            last = rows[-1]
            if last[0] > rows[0][0]:
                extra = last[0] - rows[0][0]
                print("   per container VM + other VM beyond N=%d: hook "
                      "%.0f us [%.0f us CPU]%s" % (
                          rows[0][0],
                          (last[1].hook - base.hook) / extra * 1e6,
                          (last[1].hook_cpu - base.hook_cpu) / extra * 1e6,
                          "; %s %.0f us [%.0f us CPU]" % (
                              self.args.baseline,
                              (last[1].base - base.base) / extra * 1e6,
                              (last[1].base_cpu - base.base_cpu) / extra
                              * 1e6) if base.base is not None else ""))
            by_n = dict((r[0], r) for r in rows)
            if 50 in by_n:
                n, t, docker, _ = by_n[50]
                self.check("docker stats / hook at 50", docker / t.hook,
                           TARGETS["stats_vs_docker_at_50"], at_least=True)
                self.check("hook / python3 at 50", t.hook / t.bare,
                           TARGETS["stats_vs_bare_at_50"])
            if 100 in by_n:
                t = by_n[100][1]
                self.check("hook at 100 / hook at 1", t.hook / base.hook,
                           TARGETS["stats_100_vs_1"])
                self.check("hook at 100 / hook at 1, CPU time",
                           t.hook_cpu / base.hook_cpu,
                           TARGETS["stats_100_vs_1"])
        rows = self.results.get("plain", [])
        if rows:
            print()
            print("2. each hook on a VM that is not a container "
                  "(%d container VMs running)" % len(self.vms))
            print("   %-32s %10s %10s %8s %8s" % ("hook", "hook", "python3",
                                                  "ratio", "[CPU]"))
            for hook, t in rows:
                print("   %-32s %10s %10s %7.2fx [%5.2fx]" % (
                    hook, ms(t.hook), ms(t.bare), t.hook / t.bare,
                    t.hook_cpu / t.bare_cpu))
            worst = max((t.hook / t.bare, hook) for hook, t in rows
                        if "(host)" not in hook)
            self.check("worst VM hook / python3 (%s)" % worst[1], worst[0],
                       TARGETS["plain_vs_bare"])
        if "start" in self.results:
            print()
            print("3. before_vm_start until the container runs, against "
                  "docker run -d of the same image and configuration")
            print("   %-40s %10s %10s %7s" % ("", "hook", "docker run",
                                             "ratio"))
            for (transport, variant), hook, run in self.results["start"]:
                print("   %-40s %10s %10s %7.2fx" % (
                    "%s, %s" % (transport, variant), ms(hook), ms(run),
                    hook / run))
            rows = dict(((t, v), (hook, run))
                        for (t, v), hook, run in self.results["start"])
            for variant in ("no volume", "configured app"):
                hook, run = rows[("helper service", variant)]
                self.check("before_vm_start (helper service, %s) / docker "
                           "run -d" % variant, hook / run,
                           TARGETS["start_vs_docker_run"])
        rows = self.results.get("exit", [])
        if rows:
            print()
            print("4. container exit (engine's FinishedAt) -> placeholder "
                  "down")
            for engine, ended, gone, worst in rows:
                print("   %-7s qemu killed and ended %s (worst %s); libvirt "
                      "domain gone %s" % (engine, ms(ended), ms(worst),
                                          ms(gone)))
                self.check("%s exit -> qemu ended" % engine, ended,
                           TARGETS["exit_to_down"], unit="s")
            print("   (libvirt drops the domain once init has reaped the "
                  "qemu process; see the README)")

        rows = self.results.get("runtimes", [])
        if rows:
            print()
            print("6. OCI runtimes: before_vm_start until the container "
                  "runs (helper service), and an idle container's memory "
                  "(%d s after its start): its cgroup's charge, and the PSS "
                  "of its supervisor and everything under it; ratios "
                  "against runc on the same engine" % IDLE_SECONDS)
            print("   %-7s %-6s %10s %7s %10s %7s %10s %7s" % (
                "engine", "", "start", "/runc", "cgroup", "/runc", "PSS",
                "/runc"))
            base = dict(((e, ), (s, c, p)) for e, r, s, c, p in rows
                        if r == "runc")
            for engine, runtime, start, charge, pss in rows:
                s0, c0, p0 = base[(engine, )]
                print("   %-7s %-6s %10s %6.2fx %10s %6.2fx %10s %6.2fx" % (
                    engine, runtime, ms(start), start / s0, mib(charge),
                    charge / float(c0), mib(pss), pss / float(p0)))

    def check(self, what, value, target, at_least=False, unit="x"):
        ok = value >= target if at_least else value <= target
        print("   %s %s: %.2f%s (target %s %.1f%s)" % (
            "ok  " if ok else "MISS", what, value, unit,
            ">=" if at_least else "<=", target, unit))


def mib(size):
    return "%.1f MiB" % (size / 1048576.0)


def _ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _children(pid):
    """The pids whose parent is pid."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if _ppid(int(name)) == pid:
                    found.append(int(name))
            except (IOError, OSError, IndexError, ValueError):
                pass
    return found


def _tree_pss(pid):
    """The proportional set size (bytes) of pid and its descendants."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (IOError, OSError):
            continue
        todo.extend(_children(p))
    return total


def _cgroup_memory(pid, container_id):
    """The memory charge of the container's cgroup minus its inactive file
    cache (what the stats hooks count, vmstats.py), bytes."""
    from containerhooks import cgroups
    memory = cgroups.find(pid, container_id).memory()
    return memory.usage - memory.inactive_file


def _epoch(stamp):
    stamp = stamp.rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + \
        float("0." + (fraction or "0"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,100",
                        help="numbers of container VMs for (1)")
    parser.add_argument("--runs", type=int, default=7,
                        help="runs per hook measurement")
    parser.add_argument("--docker-runs", type=int, default=3)
    parser.add_argument("--start-runs", type=int, default=5)
    parser.add_argument("--exit-runs", type=int, default=5)
    parser.add_argument("--parts", default="1,2,3,4,6",
                        help="which measurements to make")
    parser.add_argument("--quick", action="store_true",
                        help="1 and 10 VMs, fewer runs (a smoke test)")
    parser.add_argument("--baseline", metavar="REF",
                        help="also time REF's stats hook in (1), e.g. main")
    parser.add_argument("--blank-gib", type=int, default=10,
                        help="size of the images of (5)")
    parser.add_argument("--blank-runs", type=int, default=3)
    parser.add_argument("--blank-dir", default="/var/tmp",
                        help="where the images of (5) are made")
    parser.add_argument("--blank-block", action="store_true",
                        help="(5) also reads the written image as a block "
                        "device")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.runs, args.docker_runs = "1,10", 3, 1
        args.start_runs, args.exit_runs = 2, 2
    args.sizes = [int(n) for n in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    if os.geteuid() != 0:
        sys.exit("dev/bench.py: run as root (make bench)")
    if "5" in parts:
        bench_blank(args)
        parts.discard("5")
        if not parts:
            return
    images.build_and_push(docker_client())
    images.build_and_push_app(docker_client())
    bench = Bench(args)
    try:
        if "1" in parts:
            print("1. stats hooks on container VMs (starting them through "
                  "before_vm_start)", flush=True)
            bench.bench_stats()
        if "2" in parts:
            print("2. hooks on a VM that is not a container", flush=True)
            bench.bench_plain()
        if "3" in parts:
            print("3. before_vm_start vs docker run -d", flush=True)
            bench.bench_start()
        if "4" in parts:
            print("4. container exit -> placeholder down", flush=True)
            bench.bench_exit()
        if "6" in parts:
            print("6. OCI runtimes: start and idle memory", flush=True)
            bench.bench_runtimes()
    finally:
        print("cleaning up", flush=True)
        bench.cleanup()
    bench.report()


# 5. The blank check

BLANK_KINDS = (
    # name, how the image is made (path, size in bytes)
    ("sparse", lambda path, size: subprocess.check_call(
        ["truncate", "-s", str(size), path])),
    ("fallocated", lambda path, size: subprocess.check_call(
        ["fallocate", "-l", str(size), path])),
    ("dd zeros", lambda path, size: subprocess.check_call(
        ["dd", "if=/dev/zero", "of=" + path, "bs=16M",
         "count=%d" % (size // (16 * 1024 * 1024)), "conv=fsync",
         "status=none"])),
)


class _Records(object):
    """The blank check's own log line: how much it read."""

    def __init__(self):
        import logging
        self.lines = []
        handler = logging.Handler()
        handler.emit = lambda record: self.lines.append(record.getMessage())
        logger = logging.getLogger("containerhooks.hostdisk")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _blank_check(path, block):
    """hostdisk.filesystem on path's image as the helper runs it
    (volumes._attach_one): locked, on a loop device, the image's
    descriptor for the reads; block: the loop device read whole, as a
    block device.  Seconds."""
    from containerhooks import disklock
    from containerhooks import hostdisk
    fd = os.open(path, os.O_RDONLY)
    device = None
    try:
        locked = disklock.lock("vda", fd)
        try:
            source = hostdisk.Source(disk="vda", kind="file", path=path,
                                     ino=os.fstat(fd).st_ino,
                                     size=os.fstat(fd).st_size)
            device = hostdisk.attach_loop(source, locked)
        finally:
            os.close(locked)
        began = time.monotonic()
        found = hostdisk.filesystem("vda", device,
                                    image_fd=None if block else fd,
                                    timeout=86400)
        took = time.monotonic() - began
        assert found is None, "%s: %s" % (path, found)
        return took
    finally:
        if device:
            hostdisk.detach_loop(device)
        os.close(fd)


def bench_blank(args):
    size = args.blank_gib * 1024 ** 3
    records = _Records()
    workdir = tempfile.mkdtemp(prefix="vhc-blank-", dir=args.blank_dir)
    rows = []
    try:
        for name, make in BLANK_KINDS:
            path = os.path.join(workdir, "disk.img")
            began = time.monotonic()
            make(path, size)
            os.sync()
            made = time.monotonic() - began
            blocks = os.stat(path).st_blocks * 512
            print("5. %s image of %d GiB (%d MiB allocated), made in %.1f s"
                  % (name, args.blank_gib, blocks // 2 ** 20, made),
                  flush=True)
            variants = [("file", False)]
            if args.blank_block and name == "dd zeros":
                variants.append(("block device", True))
            for how, block in variants:
                for run in range(args.blank_runs):
                    del records.lines[:]
                    took = _blank_check(path, block)
                    read = [l for l in records.lines if "blank check read"
                            in l]
                    rows.append((name, how, run + 1, took,
                                 read[0] if read else "?"))
                    print("   %s, %s, run %d: %.2f s (%s)" % rows[-1],
                          flush=True)
            os.unlink(path)
    finally:
        subprocess.call(["rm", "-rf", workdir])
    print()
    print("5. blank check of a %d GiB raw image in %s (hostdisk.filesystem: "
          "blkid, wipefs, then the reads)" % (args.blank_gib, args.blank_dir))
    for name, how, run, took, read in rows:
        print("   %-11s %-13s run %d %8.2f s   %s" % (name, how, run, took,
                                                      read))


def docker_client():
    import docker
    return docker.DockerClient(base_url="unix://" + DOCKER_SOCKET,
                               version="auto", timeout=300)


if __name__ == "__main__":
    main()
