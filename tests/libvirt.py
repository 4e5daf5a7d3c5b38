"""The host's real libvirt and qemu, for the tests and the demo.

Placeholder XMLs (the goldens, or what before_vm_start wrote) are run by
qemu:///system.  A few things in them only exist on an oVirt host (storage
under /rhev, the ovirtmgmt bridge, Vdsm's display network); adjust()
replaces exactly those, and nothing the placeholder decides.  Then the
qemu process is watched: its RSS, its CPU use, and whether its vCPU sleeps
in the idle kernel.

Plain functions and context managers, no pytest: the fixtures that use
them are in conftest.py and the test modules, and dev/demo.py uses them
too.  What the host lacks (root, libvirtd) raises HostError, which the
fixtures turn into a test failure, never a skip.

Note: this module shadows the libvirt Python binding for code that runs
with tests/ on sys.path; the tests use virsh, not the binding.
"""

import collections
import contextlib
import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time

from lxml import etree

from containerhooks import idlekernel

URI = "qemu:///system"
VIRSH = ["virsh", "-q", "-c", URI]
QEMU_RUN = "/run/libvirt/qemu"
QEMU_CONF = "/etc/libvirt/qemu.conf"
BRIDGE = "vhctest0"
NWFILTER = "vdsm-no-mac-spoofing"
DISK_SIZE = "16M"

# Vdsm defines this filter on every host ("vdsm-tool nwfilter"), from two
# filters that libvirt ships; Engine's vNIC profiles refer to it.
NWFILTER_XML = """<filter name='%s' chain='root'>
  <filterref filter='no-mac-spoofing'/>
  <filterref filter='no-arp-mac-spoofing'/>
</filter>
""" % NWFILTER


class HostError(Exception):
    """This host cannot run the domains (no root, libvirtd down...)."""


def run(cmd, check=True):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("%s failed (rc=%d): %s" % (
            " ".join(cmd), p.returncode, err.strip() or out.strip()))
    return p.returncode, out, err


def virsh(*args, **kwargs):
    return run(VIRSH + list(args), **kwargs)


# The host

# What this host's libvirt and qemu can do, for adjust().
Host = collections.namedtuple(
    "Host", "kvm, cpu_models, machines, smm, host_cpu, vhost_net, "
            "spice_tls, qemu_user")


def detect_host():
    """Return the Host; raise HostError when libvirt cannot be used."""
    if os.geteuid() != 0:
        raise HostError("needs root")
    rc, _, err = virsh("uri", check=False)
    if rc != 0:
        raise HostError("libvirtd does not answer at %s (dev/services "
                        "start): %s" % (URI, err.strip()))
    kvm = os.path.exists("/dev/kvm") and virsh(
        "domcapabilities", "--virttype", "kvm", check=False)[0] == 0
    virttype = "kvm" if kvm else "qemu"
    _, caps, _ = virsh("domcapabilities", "--virttype", virttype)
    caps = etree.fromstring(caps.encode("utf-8"))
    usable = set(m.text for m in caps.iterfind(
        "cpu/mode[@name='custom']/model[@usable='yes']"))
    emulator = caps.findtext("path")
    _, guests, _ = virsh("capabilities")
    guests = etree.fromstring(guests.encode("utf-8"))
    machines = set(m.text for m in guests.iterfind(
        "guest/arch[@name='x86_64']/machine"))
    return Host(kvm=kvm, cpu_models=usable, machines=machines,
                # Nested KVM (as on the CI machine) may lack SMM, or fail
                # to set the IA32_ARCH_CAPABILITIES MSR that "-cpu host"
                # exposes ("failed to set MSR 0x10a"): ask qemu itself.
                smm=not kvm or _qemu_starts(emulator, "-machine",
                                            "q35,smm=on"),
                host_cpu=not kvm or _qemu_starts(emulator, "-cpu", "host"),
                vhost_net=os.path.exists("/dev/vhost-net"),
                spice_tls=_qemu_conf_enables("spice_tls"),
                qemu_user=_qemu_user())


def _qemu_starts(emulator, *args):
    """Whether a stopped KVM guest with these qemu options comes up."""
    cmd = [emulator, "-accel", "kvm", "-display", "none", "-nodefaults",
           "-S", "-monitor", "stdio"] + list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.communicate(b"quit\n")
    return p.returncode == 0


def _qemu_conf_enables(key):
    try:
        with open(QEMU_CONF) as f:
            lines = f.read().splitlines()
    except IOError:
        return False
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip() == "1"
    return False


def _qemu_user():
    """uid, gid of the user libvirt runs qemu as (Debian: libvirt-qemu)."""
    for name in ("libvirt-qemu", "qemu"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        try:
            gid = grp.getgrnam("kvm").gr_gid
        except KeyError:
            gid = user.pw_gid
        return user.pw_uid, gid
    raise HostError("no libvirt-qemu or qemu user on this host")


@contextlib.contextmanager
def bridge(name=BRIDGE):
    """A Linux bridge standing in for ovirtmgmt and the VMs' networks."""
    if os.path.exists("/sys/class/net/" + name):
        raise HostError("%s exists already; a previous run left it? "
                        "(ip link del %s)" % (name, name))
    run(["ip", "link", "add", "name", name, "type", "bridge"])
    try:
        run(["ip", "link", "set", name, "up"])
        yield name
    finally:
        run(["ip", "link", "del", name])


@contextlib.contextmanager
def nwfilter():
    """Vdsm's vdsm-no-mac-spoofing filter, defined as Vdsm defines it."""
    if virsh("nwfilter-dumpxml", NWFILTER, check=False)[0] == 0:
        # A real Vdsm host, or a run beside ours: use it, leave it.
        yield NWFILTER
        return
    with workdir() as tmp:
        path = os.path.join(tmp, "filter.xml")
        with open(path, "w") as f:
            f.write(NWFILTER_XML)
        virsh("nwfilter-define", path)
    try:
        yield NWFILTER
    finally:
        virsh("nwfilter-undefine", NWFILTER)


@contextlib.contextmanager
def workdir():
    """Disk images, sockets and the kernel, where qemu may read them.

    Not under /tmp/pytest-of-root or /root: those are 0700 and qemu does not
    run as root.
    """
    path = tempfile.mkdtemp(dir="/var/tmp", prefix="vhc-libvirt-")
    try:
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(path)


# The test-only adjustments

def adjust(root, host, workdir, bridge=None):
    """Make a placeholder runnable here; change nothing else.

    - type kvm -> qemu, only when /dev/kvm cannot be used;
    - a machine type this qemu lacks (Engine's pc-i440fx-rhel7.6.0,
      pc-q35-rhel8.6.0 exist only in RHEL's qemu) -> the upstream alias
      (pc, q35);
    - a custom CPU model this host cannot run (Engine's cluster CPU) ->
      host-passthrough (kvm) or maximum (TCG, which has no passthrough),
      same topology and NUMA; host-passthrough loses arch-capabilities
      where qemu cannot start "-cpu host" with it;
    - no SMM (<features><smm>, kept from secure boot) where KVM has none;
    - disks -> small images of the same format in workdir (block devices
      become files), readable and writable by qemu's group kvm as Vdsm's
      images are; cdroms lose their (oVirt ISO domain) source;
    - NIC bridges -> bridge (a domain with NICs needs one); vhost ->
      qemu's own virtio-net backend when the host has no /dev/vhost-net;
      <filterref> stays (nwfilter() defines Vdsm's filter);
    - graphics listening on Vdsm's display network (vdsm-ovirtmgmt, a
      libvirt network Vdsm defines) -> 127.0.0.1; spice TLS (tlsPort,
      secure channels) dropped when qemu.conf has no spice_tls (libvirt
      refuses a TLS port then);
    - unix sockets (guest agent channels, the serial console of
      ovirt-vmconsole) -> workdir/sockets, owned by qemu's user;
    - the kernel -> a fresh idlekernel image in workdir; a UEFI varstore,
      if any, -> workdir.
    """
    if not host.kvm:
        root.set("type", "qemu")

    os_type = root.find("os/type")
    machine = os_type.get("machine")
    if machine and machine not in host.machines:
        os_type.set("machine", "q35" if "q35" in machine else "pc")

    cpu = root.find("cpu")
    model = cpu.findtext("model")
    if model is not None and model not in host.cpu_models \
            or cpu.get("mode") == "host-passthrough" and not host.kvm:
        for el in cpu.findall("model") + cpu.findall("feature"):
            cpu.remove(el)
        cpu.set("mode", "host-passthrough" if host.kvm else "maximum")
        cpu.attrib.pop("match", None)
    if cpu.get("mode") == "host-passthrough" and not host.host_cpu:
        feature = etree.Element("feature", policy="disable",
                                name="arch-capabilities")
        topology = cpu.find("topology")
        if topology is not None:
            topology.addprevious(feature)
        else:
            cpu.insert(0, feature)

    smm = root.find("features/smm")
    if smm is not None and not host.smm:
        smm.getparent().remove(smm)

    uid, gid = host.qemu_user
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        if disk.get("device") == "cdrom":
            if source is not None:
                disk.remove(source)
            continue
        fmt = disk.find("driver").get("type")
        image = os.path.join(workdir, disk.find("target").get("dev") + "."
                             + fmt)
        run(["qemu-img", "create", "-q", "-f", fmt, image, DISK_SIZE])
        os.chown(image, 0, gid)
        os.chmod(image, 0o660)
        disk.set("type", "file")
        for attr in ("file", "dev"):
            source.attrib.pop(attr, None)
        source.set("file", image)

    for nic in root.iterfind("devices/interface"):
        if bridge is None:
            raise ValueError("the domain has NICs: adjust() needs a bridge")
        nic.find("source").set("bridge", bridge)
        driver = nic.find("driver")
        if driver is not None and driver.get("name") == "vhost" \
                and not host.vhost_net:
            driver.set("name", "qemu")

    for graphics in root.iterfind("devices/graphics"):
        for listen in graphics.findall("listen"):
            if listen.get("type") == "network":
                listen.attrib.pop("network")
                listen.set("type", "address")
                listen.set("address", "127.0.0.1")
        if graphics.get("type") == "spice" and not host.spice_tls:
            graphics.attrib.pop("tlsPort", None)
            for channel in graphics.findall("channel"):
                graphics.remove(channel)

    sockets = os.path.join(workdir, "sockets")
    os.mkdir(sockets)
    os.chown(sockets, uid, gid)
    os.chmod(sockets, 0o750)
    for dev in ("channel", "console", "serial"):
        for source in root.iterfind("devices/%s/source" % dev):
            if source.get("path"):
                name = os.path.basename(source.get("path"))
                source.set("path", os.path.join(sockets, name))

    kernel = os.path.join(workdir, "placeholder.elf")
    idlekernel.write(kernel)
    os.chmod(kernel, 0o644)
    root.find("os/kernel").text = kernel
    nvram = root.find("os/nvram")
    if nvram is not None:
        nvram.text = os.path.join(workdir, "VARS.fd")


# Domains

def write_xml(root, workdir, name="domain.xml"):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(etree.tostring(root))
    return path


def create(root, workdir):
    """Start root as a transient domain, as Vdsm does (createXML)."""
    virsh("create", write_xml(root, workdir))
    return root.findtext("uuid")


def exists(uuid):
    # domstate takes a uuid; domuuid takes only a name or an id (and so
    # would say "no such domain" for every uuid).
    return virsh("domstate", uuid, check=False)[0] == 0


def dumpxml(uuid):
    return virsh("dumpxml", uuid)[1]


def wait_running(uuid, timeout=30):
    deadline = time.time() + timeout
    state = None
    while time.time() < deadline:
        state = virsh("domstate", uuid)[1].strip()
        if state == "running":
            return
        time.sleep(0.2)
    raise AssertionError("domain %s is %r after %ds, not running"
                         % (uuid, state, timeout))


def wait_idle_kernel(uuid, timeout=60):
    """Wait until the vCPU halts inside the idle kernel; return the time.

    SeaBIOS runs first (seconds under nested KVM or TCG) and may spin; what
    must cost nothing is the state the placeholder then stays in for the
    VM's whole life: the vCPU in hlt, at an address inside idlekernel's
    image (not in the firmware, not in a guest OS from a disk).
    """
    start = time.time()
    image = (idlekernel.LOAD_ADDRESS,
             idlekernel.LOAD_ADDRESS + len(idlekernel.image()))
    regs = None
    while time.time() - start < timeout:
        _, regs, _ = virsh("qemu-monitor-command", uuid, "--hmp",
                           "info registers")
        ip = re.search(r"\b[ER]IP=([0-9a-f]+)", regs)
        halted = re.search(r"\bHLT=1\b", regs)
        if ip and halted and image[0] <= int(ip.group(1), 16) < image[1]:
            return time.time() - start
        time.sleep(0.2)
    raise AssertionError("the vCPU did not halt in the idle kernel within "
                         "%ds:\n%s" % (timeout, regs))


@contextlib.contextmanager
def lifecycle_events(uuid):
    """The domain's lifecycle events as libvirt reports them, while the
    block runs: a list of (event, detail) in virsh event's words
    ("Stopped", "Failed"), complete once the block is left."""
    events = []
    proc = subprocess.Popen(
        ["stdbuf", "-oL"] + VIRSH + ["event", "--domain", uuid, "--event",
                                     "lifecycle", "--loop"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.5)         # connected and registered

    def read():
        for line in proc.stdout:
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("event 'lifecycle'") and "': " in text:
                words = text.split("': ", 1)[1].split(" ", 1)
                events.append((words[0], words[1] if len(words) > 1
                               else ""))
    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield events
    finally:
        time.sleep(0.5)     # the last event on its way
        proc.terminate()
        proc.wait()
        reader.join(5)


# The qemu process

def qemu_pid(name):
    with open(os.path.join(QEMU_RUN, name + ".pid")) as f:
        return int(f.read().strip())


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # Fields after the command name, which may hold spaces: state is the
    # 3rd field, utime and stime the 14th and 15th.
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    return float(ticks) / os.sysconf("SC_CLK_TCK")


CpuSample = collections.namedtuple("CpuSample", "share, seconds")


def cpu_share(pid, seconds):
    """The share of one host CPU pid used over the next seconds."""
    before, start = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.time() - start
    return CpuSample(share=used / elapsed, seconds=elapsed)
