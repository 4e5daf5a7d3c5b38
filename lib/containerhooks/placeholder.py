"""Turn a VM's domain into the cheap placeholder libvirt runs for it.

The container does the VM's work; libvirt runs a placeholder domain so that
Vdsm and Engine keep seeing a VM with every device they know.  What changes
and why (README.md, "How it works", says what the placeholder keeps):

- Memory shrinks to a few MiB (config placeholder_memory_mib), spread over
  the NUMA cells so that <memory>, <currentMemory> and the cells agree;
  <maxMemory slots> stays, hugepage backing goes (a placeholder must not pin
  hugepages).
- One vCPU is online: <vcpu current='1'>, the maximum (and with it the
  topology, NUMA cpus and vcpupin) unchanged.
- The guest boots the package's idle kernel (idlekernel.py) by direct
  kernel boot, so qemu never boots whatever operating system is on the
  disks; UEFI firmware is replaced by the default BIOS for that.
- Every NIC stays (Engine and Vdsm need them) with its link down, no option
  ROM and no boot order: the placeholder never puts a frame with the
  container's MAC on the wire.
- A disk the container mounts (volumeMap) becomes <readonly/>: the host
  has a file system on it mounted, and qemu must never write to it.  Its
  source, alias and address stay, so Vdsm still finds and tears it down.
- Engine's serial console (a <console> and a <serial> of type "unix" bound
  at /var/run/ovirt-vmconsole-console/<vm id>.sock, domxml.console_devices)
  becomes a "pty": qemu no longer binds that path, and Vdsm, which
  prepares and removes the socket only for a unix console (virt/vmdevices/
  core.py console_path), leaves it to the package's watcher, which serves
  the container's console there (console.py).  Target, alias and address
  stay: Engine still sees its console device.
- The oVirt guest agent channel, where Engine put it where Vdsm connects
  (guestagent.socket_path), binds elsewhere (guestagent.placeholder_path):
  the watcher serves that path as the container's agent, so that Engine's
  Shutdown and Reboot reach the container (guestagent.py).
- Other disks, controllers, channels, graphics, the balloon, aliases, the
  ovirt-vm metadata, the domain type, name and uuid are left alone.
"""

from lxml import etree

from containerhooks import domxml
from containerhooks import paths

PLACEHOLDER_MIB_MIN = 8


def rewrite(dom, memory_mib, kernel=None, readonly_disks=()):
    """Rewrite dom (a domxml.Domain) in place into a placeholder.

    readonly_disks: the targets (vda) of the disks the container mounts.
    """
    kernel = kernel or paths.PLACEHOLDER_KERNEL
    _shrink_memory(dom.root, memory_mib)
    _one_vcpu(dom.root)
    _boot_idle_kernel(dom.root, kernel)
    for nic in dom.interfaces():
        _silence_nic(nic.element)
    for disk in dom.disks():
        if disk.target in readonly_disks and not disk.readonly:
            _make_readonly(disk.element)
    for device in dom.console_devices():
        _console_to_pty(device)


def move_agent_channel(dom, vm_id):
    """Bind the placeholder's oVirt guest agent channel away from the path
    Vdsm connects to; whether it was there (only then does the watcher
    serve it: a channel elsewhere is left to qemu, as Engine made it)."""
    from containerhooks import guestagent
    source = dom.channel_source(guestagent.CHANNEL)
    if source is None or source.get("path") != guestagent.socket_path(vm_id):
        return False
    source.set("path", guestagent.placeholder_path(vm_id))
    return True


def _shrink_memory(root, memory_mib):
    cells = root.findall("cpu/numa/cell")
    per_cell_mib = max(PLACEHOLDER_MIB_MIN,
                       -(-memory_mib // max(len(cells), 1)))
    for cell in cells:
        _set_size(cell, per_cell_mib * 1024, attr="memory")
    total_kib = per_cell_mib * 1024 * max(len(cells), 1)
    maximum = root.find("maxMemory")
    if maximum is not None and domxml.kib(maximum) < total_kib:
        total_kib = domxml.kib(maximum)
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is not None:
            _set_size(el, total_kib)
    backing = root.find("memoryBacking")
    if backing is not None:
        hugepages = backing.find("hugepages")
        if hugepages is not None:
            backing.remove(hugepages)
        if len(backing) == 0:
            root.remove(backing)


def _set_size(el, kib, attr=None):
    if attr is None:
        el.text = str(kib)
        el.set("unit", "KiB")
    else:
        el.set(attr, str(kib))
        el.set("unit", "KiB")


def _one_vcpu(root):
    vcpu = root.find("vcpu")
    if vcpu is None:
        return
    if int(vcpu.text) > 1:
        vcpu.set("current", "1")
    elif "current" in vcpu.attrib:
        del vcpu.attrib["current"]
    # With per-vCPU <vcpus>, libvirt wants their enabled count to match.
    vcpus = root.find("vcpus")
    if vcpus is not None:
        for v in vcpus.iterfind("vcpu"):
            first = v.get("id") == "0"
            v.set("enabled", "yes" if first else "no")
            v.set("hotpluggable", "no" if first else "yes")


def _boot_idle_kernel(root, kernel):
    os_el = root.find("os")
    if os_el is None:
        os_el = etree.SubElement(root, "os")
    # Direct kernel boot works with the BIOS; UEFI would want an EFI stub.
    if os_el.get("firmware"):
        del os_el.attrib["firmware"]
    for tag in ("loader", "nvram", "firmware", "kernel", "initrd", "cmdline",
                "dtb"):
        for el in os_el.findall(tag):
            os_el.remove(el)
    kernel_el = etree.Element("kernel")
    kernel_el.text = kernel
    type_el = os_el.find("type")
    if type_el is not None:
        type_el.addnext(kernel_el)
    else:
        os_el.insert(0, kernel_el)


def _silence_nic(nic):
    for tag in ("link", "rom", "boot"):
        for el in nic.findall(tag):
            nic.remove(el)
    etree.SubElement(nic, "link", state="down")
    etree.SubElement(nic, "rom", enabled="no")


def _make_readonly(disk):
    readonly = etree.Element("readonly")
    target = disk.find("target")
    if target is not None:
        # addnext() hands target's tail (the indentation) to the new
        # element: both keep it, so the XML stays indented as Vdsm's.
        tail = target.tail
        target.addnext(readonly)
        target.tail = readonly.tail = tail
    else:
        disk.append(readonly)


def _console_to_pty(device):
    device.set("type", "pty")
    for source in device.findall("source"):
        # The indentation before <source> goes to what follows it.
        previous = source.getprevious()
        if previous is not None:
            previous.tail = source.tail
        else:
            device.text = source.tail
        device.remove(source)
