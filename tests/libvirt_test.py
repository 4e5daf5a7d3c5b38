"""Every golden placeholder XML, run by the host's real libvirt and qemu.

The goldens (tests/data/<case>-out.xml, see placeholder_test.py) must be
domains that libvirt defines and starts, whose NICs stay down, and whose
guest costs next to nothing.  libvirt.adjust() first replaces what only
exists on an oVirt host (see tests/libvirt.py).  Each test prints the qemu
process's RSS and CPU use (run pytest with -s to see them).

Needs root, libvirtd answering at qemu:///system, qemu-img and ip (see
dev/services).
"""

import os

import pytest
from lxml import etree

import libvirt
from libvirt import virsh
from placeholder_test import CONTAINER_CASES

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# Every golden of placeholder_test, the Vdsm 4.4/4.5-shaped ones included
# (a list of its own here had missed them).
CASES = CONTAINER_CASES

# The placeholder's guest must sleep: a guest spinning in its firmware or
# kernel shows as a whole CPU here.
MAX_CPU_SHARE = 0.5
CPU_SAMPLE_SECONDS = 3.0


@pytest.fixture(scope="module")
def bridge(libvirt_host):
    """A Linux bridge standing in for ovirtmgmt and the VMs' networks."""
    try:
        with libvirt.bridge() as name:
            yield name
    except libvirt.HostError as e:   # raised before the yield only
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def domains():
    """Defined domains (by uuid), destroyed and undefined after the test."""
    defined = []
    yield defined
    for uuid in defined:
        # Fails harmlessly when the domain did not start.
        virsh("destroy", uuid, check=False)
        # --nvram: a UEFI domain's varstore goes too.
        virsh("undefine", "--nvram", uuid)


@pytest.mark.parametrize("case", CASES)
def test_placeholder_runs(case, libvirt_host, bridge, nwfilter, qemu_workdir,
                          domains):
    with open(os.path.join(DATA, case + "-out.xml"), "rb") as f:
        root = etree.fromstring(f.read())
    name, uuid = root.findtext("name"), root.findtext("uuid")
    if libvirt.exists(uuid):
        pytest.fail("a domain with uuid %s exists already" % uuid)
    libvirt.adjust(root, libvirt_host, qemu_workdir, bridge)
    path = libvirt.write_xml(root, qemu_workdir)

    virsh("define", path)
    domains.append(uuid)
    virsh("start", uuid)
    libvirt.wait_running(uuid)
    pid = libvirt.qemu_pid(name)

    for nic in root.iterfind("devices/interface"):
        mac = nic.find("mac").get("address")
        _, out, _ = virsh("domif-getlink", uuid, mac)
        assert out.split()[-1] == "down", out

    booted = libvirt.wait_idle_kernel(uuid)
    cpu = libvirt.cpu_share(pid, CPU_SAMPLE_SECONDS)
    rss = libvirt.rss_kib(pid)
    print("\n%s (%s): idle kernel halted %.1f s after start; qemu RSS "
          "%.1f MiB, CPU %.1f%% of one CPU over %.1f s"
          % (case, "kvm" if libvirt_host.kvm else "tcg", booted,
             rss / 1024.0, cpu.share * 100, cpu.seconds))
    assert cpu.share < MAX_CPU_SHARE
