#!/usr/bin/python3
"""make demo: one container VM's life, end to end, told step by step.

What Engine and Vdsm do on an oVirt host, done here for real: the package
is installed the way the RPM lays it out (tests/install.py), the hooks run
exactly as Vdsm runs them, as user vdsm (tests/vdsm.py), the placeholder
runs in the host's libvirt (tests/libvirt.py), the container in Docker or
Podman.  The VM is a realistic Vdsm domain XML (tests/data/no-nic-in.xml)
whose custom properties ask for a configured application: the test
application image (tests/images.py APP_SCRIPT), which like postgres refuses
to start without a password variable and an argument, gets an environment
variable (containerEnv), its argument (containerCommand) and its password
from a host secret (containerSecrets, vdsm-containers secret set).  Its
health check (containerHealthCmd) is the VM's watchdog: the demo makes the
application ill and shows the watchdog's reset restart the container while
the VM stays Up, as Engine's stats show it; then the admin opens the VM's
serial console, as ovirt-vmconsole does, and types into it.

    dev/demo.py [--engine docker|podman]     (as root, daemons up)

Everything it creates is removed again, also when a step fails; a failure
exits 1 with what went wrong.
"""

import argparse
import contextlib
import grp
import hashlib
import os
import sys
import time
import traceback

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
sys.path.insert(0, os.path.join(TOP, "lib"))

import docker  # noqa: E402
from lxml import etree  # noqa: E402

import domains  # noqa: E402
import images  # noqa: E402
import install  # noqa: E402
import libvirt  # noqa: E402  (tests/libvirt.py)
import vdsm as vdsm_module  # noqa: E402
import vdsmstats  # noqa: E402
import vmconsole  # noqa: E402
from containerhooks import config  # noqa: E402
from containerhooks import domxml  # noqa: E402

BASE = "no-nic-in.xml"
SECRET = "demo-db"
PASSWORD = "correct horse battery staple"
MIB = 1024 * 1024
# Capability names by bit (linux/capability.h): what the kernel enforces
# is the same for both engines, their inspect output is not.
CAPS = """CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID
SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW
IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT
SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM
BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE""".split()


# The VM's own health check (containerHealthCmd, no shell of the package's:
# the VM owner writes the sh -c): unhealthy while /tmp/sick exists.
SICK = "/tmp/sick"
HEALTH_CMD = "/bin/sh -c !%20cat%20" + SICK + "%202>/dev/null"
HEALTH_OPTIONS = "interval=5,timeout=3,retries=1"


class DemoError(Exception):
    """A step of the story did not happen as it should."""


def say(text=""):
    print(text, flush=True)


def client_of(engine, socket):
    try:
        client = docker.DockerClient(base_url="unix://" + socket,
                                     version="auto", timeout=120)
        client.ping()
        return client
    except Exception as e:
        raise DemoError("%s does not answer at %s (start the daemons: "
                        "dev/services start): %s" % (engine, socket, e))


def hook(vdsm, name, vm, data):
    """Run one hook as Vdsm does; say how it went."""
    start = time.time()
    try:
        result = vdsm.run(name, data, vm_id=vm.id, custom=vm.custom)
    except vdsm_module.HookError as e:
        raise DemoError("%s failed; Engine would show: %s"
                        % (name, e.exit_message))
    if result.errors:
        raise DemoError("%s failed: %s" % (name, result.errors[-1]))
    say("   Vdsm ran %s as user vdsm: exit 0 in %.1f s"
        % (name, time.time() - start))
    return result


def containers(client, vm):
    return client.containers.list(
        all=True, filters={"label": "org.ovirt.vm.id=" + vm.id})


def leftovers(client, inst, vm):
    found = ["container " + c.name for c in containers(client, vm)]
    found += ["state file " + n for n in inst.state_files()
              if n.startswith(vm.id)]
    if libvirt.exists(vm.id):
        found.append("domain " + vm.id)
    return found


def stats(vdsm, vm):
    """The VM's entry of getAllVmStats after the stats hook, as Engine
    reads it."""
    data = vdsm.run("after_get_all_vm_stats", [vdsmstats.vm_stats(
        vm.id, name=vm.name, memory_mib=vm.memory_mib)]).data
    return data[0]


def wait_stats(vdsm, vm, what, ready, timeout):
    deadline = time.time() + timeout
    while True:
        entry = stats(vdsm, vm)
        if ready(entry):
            return entry
        if time.time() > deadline:
            raise DemoError("no %s in the VM's stats after %d s: %s"
                            % (what, timeout, {k: entry.get(k) for k in (
                                "containerHealth", "watchdogEvent")}))
        time.sleep(0.5)


def health_flip(vdsm, vm, container):
    """The health check as the VM's watchdog: healthy, then sick, then
    the watchdog's action (reset: the container restarts, the VM stays
    Up), then healthy again."""
    say("\n5. The VM's health check is its watchdog (<watchdog "
        "action='reset'> in the domain XML)")
    check = container.attrs["Config"].get("Healthcheck") or {}
    say("   the engine runs the VM's containerHealthCmd: %s, every %d s"
        % (check.get("Test"), check.get("Interval", 0) // 10 ** 9))
    start = time.time()
    wait_stats(vdsm, vm, "healthy report",
               lambda e: e.get("containerHealth") == "healthy", 60)
    say("   Engine's stats: containerHealth = healthy (%.1f s after the "
        "start)" % (time.time() - start))
    started = container.attrs["State"]["StartedAt"]
    rc, _ = container.exec_run(
        ["sh", "-c", "echo demo: database unreachable > " + SICK])
    if rc != 0:
        raise DemoError("could not make the application sick (rc=%d)" % rc)
    sick = time.time()
    say("   the application falls ill: echo 'demo: database unreachable' "
        "> %s" % SICK)
    entry = wait_stats(vdsm, vm, "watchdog event",
                       lambda e: "watchdogEvent" in e, 60)
    event = entry["watchdogEvent"]
    say("   %.1f s later the stats carry watchdogEvent %s: Engine logs "
        "\"Watchdog event (%s) triggered on %s\""
        % (time.time() - sick, event, event["action"], vm.name))
    container.reload()
    if container.attrs["State"]["StartedAt"] == started:
        raise DemoError("the watchdog's reset did not restart the "
                        "container")
    say("   action reset: the container was restarted (started %s, "
        "before %s); the VM stayed Up" % (
            container.attrs["State"]["StartedAt"][:19], started[:19]))
    # The file is in the container's writable layer, which a restart
    # keeps: left there, the check would reset it again every 5 s.
    container.exec_run(["rm", "-f", SICK])
    wait_stats(vdsm, vm, "healthy report after the reset",
               lambda e: e.get("containerHealth") == "healthy", 60)
    say("   %s removed: containerHealth = healthy again" % SICK)


def serial_console(inst, vm, cleanup):
    """The admin opens the VM's serial console, as ovirt-vmconsole-host-
    shell connects to it, and types."""
    path = os.path.join(inst.vmconsole_dir, vm.id + ".sock")
    say("\n6. The admin opens the VM's serial console (Engine: Console > "
        "Serial Console; on the host ovirt-vmconsole-host-shell connects "
        "to %s as user ovirt-vmconsole)" % os.path.basename(path))
    vmconsole.wait_served(path)
    st = os.stat(path)
    say("   socket served by the watcher: mode %o, group %s"
        % (st.st_mode & 0o7777, grp.getgrgid(st.st_gid).gr_name))
    con = vmconsole.Client(path)
    cleanup.callback(con.close)
    con.expect(b"serving on port 8080")
    con.send(b"hello from the console\r")
    con.expect(b"hello from the console")
    con.close()
    say("   what the admin saw: the app's last lines (it started twice, "
        "the second time at the watchdog's reset), then the terminal "
        "echoing what was typed:")
    for line in con.out.decode("utf-8", "replace").splitlines():
        if line.strip():
            say("   | " + line.rstrip("\r"))


def demo(engine, cleanup):
    say("== vdsm-hook-containers: a container VM on %s ==" % engine)
    host = libvirt.detect_host()
    if not install.vdsm_user_exists():
        raise DemoError("no vdsm user: run make setup")
    images.build_and_push_app(client_of("docker", "/var/run/docker.sock"))
    say("setup: application image %s pushed to the local registry"
        % images.APP_IMAGE)
    inst = install.Installation()
    cleanup.callback(inst.remove)
    inst.install()
    say("setup: package installed as the RPM lays it out, in " + inst.root)
    helperd = inst.start_helperd()
    cleanup.callback(inst.stop_helperd, helperd)
    say("setup: helper service running as root (pid %d), as the RPM "
        "enables it" % helperd.pid)
    watcher = inst.start_watcher()
    cleanup.callback(inst.stop_watcher, watcher)
    say("setup: watcher running as root (pid %d): exits, health checks, "
        "the guest agent's socket" % watcher.pid)
    client = client_of(engine, config.load(inst.conf).sockets[engine])
    workdir = cleanup.enter_context(libvirt.workdir())
    vdsm = vdsm_module.Vdsm(inst.hooks_dir, user="vdsm")

    say("\n0. The admin stores the application's password on the host, "
        "from stdin:")
    say("   printf 'APP_PASSWORD=%%s\\n' \"$pw\" | vdsm-containers secret set "
        "%s" % SECRET)
    rc, out, err = inst.run_cli("secret", "set", SECRET, input=(
        "APP_PASSWORD=%s\n" % PASSWORD).encode("utf-8"))
    if rc != 0:
        raise DemoError("vdsm-containers secret set failed: " + err)
    rc, out, err = inst.run_cli("secret", "list")
    say("   vdsm-containers secret list (names and keys, never values):")
    for line in out.strip().splitlines():
        say("     " + line)

    vm = domains.container_vm(engine, images.APP_IMAGE, base=BASE).edited(
        containerEnv="APP_MODE=demo%2C end to end",
        containerCommand="Hello%20from%20oVirt", containerSecrets=SECRET,
        containerHealthCmd=HEALTH_CMD, containerHealthOptions=HEALTH_OPTIONS)
    cleanup.callback(lambda: [c.remove(force=True)
                              for c in containers(client, vm)])
    say("\n1. Engine starts VM %s (%s), made from tests/data/%s:"
        % (vm.name, vm.id, BASE))
    say("   %d MiB, custom properties %s" % (vm.memory_mib, " ".join(
        "%s=%s" % kv for kv in sorted(vm.custom.items()))))

    result = hook(vdsm, "before_vm_start", vm, vm.xml)
    dom = domxml.Domain.parse(result.data.encode("utf-8"))
    meta = dom.container_meta()
    vcpu = dom.root.find("vcpu")
    say("   it started the container and rewrote the XML into the "
        "placeholder: %d MiB, %s vCPU online, kernel %s"
        % (dom.memory_kib() // 1024, vcpu.get("current", vcpu.text),
           dom.root.findtext("os/kernel")))
    say("   the VM's real size is kept in its metadata: %d MiB, %d vCPU"
        % (meta.memory_kib // 1024, meta.vcpus))

    say("\n2. Vdsm gives the placeholder to libvirt: virsh create "
        "(transient), adjusted to this host (tests/libvirt.py adjust())")
    root = etree.fromstring(result.data.encode("utf-8"))
    libvirt.adjust(root, host, workdir)
    cleanup.callback(libvirt.virsh, "destroy", vm.id, check=False)
    libvirt.create(root, workdir)
    libvirt.wait_running(vm.id)
    booted = libvirt.wait_idle_kernel(vm.id)
    pid = libvirt.qemu_pid(vm.name)
    cpu = libvirt.cpu_share(pid, 2.0)
    say("   domain running (%s); its vCPU halted in the idle kernel %.1f s "
        "after start" % ("kvm" if host.kvm else "tcg", booted))
    say("   placeholder qemu pid %d: RSS %.1f MiB, CPU %.1f%% of one CPU "
        "over %.1f s" % (pid, libvirt.rss_kib(pid) / 1024.0,
                         cpu.share * 100, cpu.seconds))

    found = containers(client, vm)
    if not found:
        raise DemoError("before_vm_start succeeded but %s has no container "
                        "%s" % (engine, meta.name))
    container = found[0]
    hc = container.attrs["HostConfig"]
    say("\n3. The container does the VM's work: %s, %s, image %s"
        % (container.name, container.status, images.APP_IMAGE))
    config_ = container.attrs["Config"]
    say("   its command %s, its environment has %s"
        % (config_["Cmd"], ", ".join(
            e.split("=", 1)[0] for e in config_["Env"]
            if e.startswith("APP_"))))
    say("   limits from inspect: memory %d MiB (memory+swap %d MiB), CPUs "
        "%.1f, CPU shares %s, pids %s"
        % (hc["Memory"] // MIB, hc["MemorySwap"] // MIB,
           hc["NanoCpus"] / 1e9, hc["CpuShares"], hc["PidsLimit"]))
    say("   confinement: privileged %s, network %s, %s"
        % (hc["Privileged"], hc["NetworkMode"],
           ",".join(hc["SecurityOpt"] or [])))
    with open("/proc/%d/status" % container.attrs["State"]["Pid"]) as f:
        status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    eff = int(status["CapEff"], 16)
    say("   its first process keeps only %s"
        % ",".join(n for bit, n in enumerate(CAPS) if eff >> bit & 1))
    if hc["Memory"] != vm.memory_mib * MIB:
        raise DemoError("memory limit %d bytes, not the VM's %d MiB"
                        % (hc["Memory"], vm.memory_mib))

    say("\n4. Inside the container: wget -qO- http://127.0.0.1:8080/")
    deadline = time.time() + 10
    while True:
        rc, out = container.exec_run(
            ["wget", "-qO-", "http://127.0.0.1:8080/"])
        if rc == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    reply = out.decode("utf-8", "replace").strip()
    if rc != 0:
        raise DemoError("busybox httpd did not answer (rc=%d): %s"
                        % (rc, reply))
    say("   the application replied:")
    for line in reply.splitlines():
        say("     " + line)
    expected = "password_sha256=%s  -" % hashlib.sha256(
        PASSWORD.encode("utf-8")).hexdigest()
    if expected not in reply.splitlines():
        raise DemoError("the application did not get the secret's password")
    say("   (the password's hash: the secret reached the application; its "
        "value is in no XML, state file or log)")

    health_flip(vdsm, vm, container)
    serial_console(inst, vm, cleanup)

    say("\n7. Engine powers the VM off")
    hook(vdsm, "before_vm_destroy", vm, None)
    if containers(client, vm):
        raise DemoError("before_vm_destroy left the container")
    say("   the container is stopped and removed before Vdsm tears down "
        "the VM's storage")
    last_xml = libvirt.dumpxml(vm.id)
    libvirt.virsh("destroy", vm.id)
    say("   Vdsm kept the domain's last XML and destroyed it: virsh destroy")
    hook(vdsm, "after_vm_destroy", vm, last_xml)

    for path in inst.files_outside_secrets():
        with open(path, "rb") as f:
            if PASSWORD.encode("utf-8") in f.read():
                raise DemoError("the secret's value is in " + path)
    left = leftovers(client, inst, vm)
    if left:
        raise DemoError("left behind: " + ", ".join(left))
    console_path = os.path.join(inst.vmconsole_dir, vm.id + ".sock")
    if os.path.lexists(console_path):
        raise DemoError("the console socket outlived the VM: " +
                        console_path)
    say("   the console's socket is gone with the VM")
    say("\n8. Nothing left: no domain, no container %s, no state file"
        % meta.name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("docker", "podman"),
                        default="docker")
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as cleanup:
            demo(args.engine, cleanup)
    except Exception as e:
        # Ours, or a virsh command or check of tests/libvirt.py failing
        # (AssertionError), say enough; anything else gets its traceback.
        if not isinstance(e, (DemoError, libvirt.HostError, AssertionError)):
            traceback.print_exc()
        sys.stderr.write("\ndemo FAILED: %s\n" % e)
        return 1
    say("\ndemo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
