"""What /proc tells: a namespace's interface counters, qemu processes."""

import os
import subprocess
import sys

import pytest

from containerhooks import procfs

# net/core/net-procfs.c dev_seq_show, as the kernel prints it.
NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0
  eth0: 9876543   54321    3    7    0     0          0        11  1234567   43210    2    5    0     0       0          0
"""


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    monkeypatch.setattr(procfs, "PROC", str(tmp_path))
    return tmp_path


def test_net_dev(fake_proc):
    (fake_proc / "42" / "net").mkdir(parents=True)
    (fake_proc / "42" / "net" / "dev").write_text(NET_DEV)

    counters = procfs.net_dev(42)

    assert counters["eth0"] == procfs.NetDev(
        rx_bytes=9876543, rx_errors=3, rx_dropped=7, tx_bytes=1234567,
        tx_errors=2, tx_dropped=5)
    assert counters["lo"].rx_bytes == 1200


def test_net_dev_of_this_process():
    counters = procfs.net_dev(os.getpid())
    assert "lo" in counters


def _cmdline(fake_proc, pid, *args):
    (fake_proc / str(pid)).mkdir()
    (fake_proc / str(pid) / "cmdline").write_bytes(
        b"\0".join(a.encode() for a in args) + b"\0")


def test_find_qemu(fake_proc):
    vm_id = "6f1383a1-ea92-44bf-a721-082563ac560f"
    _cmdline(fake_proc, 100, "/usr/bin/qemu-system-x86_64", "-name",
             "guest=x", "-uuid", "11111111-ea92-44bf-a721-082563ac560f")
    # Not qemu, though it names the uuid (a virsh, a grep).
    _cmdline(fake_proc, 101, "/usr/bin/virsh", "-uuid", vm_id)
    _cmdline(fake_proc, 102, "/usr/libexec/qemu-kvm", "-S", "-uuid",
             vm_id.upper(), "-smbios", "type=1")
    (fake_proc / "self").mkdir()

    assert procfs.find_qemu(vm_id) == 102
    assert procfs.find_qemu("22222222-ea92-44bf-a721-082563ac560f") is None


def test_alive():
    assert procfs.alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()            # exited and reaped
    assert not procfs.alive(p.pid)
    assert not procfs.alive(None)
