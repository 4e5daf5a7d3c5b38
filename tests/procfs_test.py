"""What /proc tells: a namespace's interface counters, qemu processes."""

import os
import signal
import subprocess
import sys

import pytest

import vmrun
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


def _process(fake_proc, pid, *args, **kwargs):
    """A fake /proc/<pid>: its command line, and a stat line whose start
    time is kwargs["start"] clock ticks after boot (BOOT)."""
    (fake_proc / str(pid)).mkdir()
    (fake_proc / str(pid) / "cmdline").write_bytes(
        b"\0".join(a.encode() for a in args) + b"\0")
    fields = ["S"] + ["0"] * 18 + [str(kwargs.get("start", 100))] + ["0"] * 10
    (fake_proc / str(pid) / "stat").write_text(
        "%d (a) b) %s\n" % (pid, " ".join(fields)))


BOOT = 1700000000


@pytest.fixture
def fake_libvirt(fake_proc, tmp_path, monkeypatch):
    """A fake /proc (booted at BOOT) and libvirt qemu run directory."""
    run = tmp_path / "libvirt"
    run.mkdir()
    monkeypatch.setattr(procfs, "QEMU_RUN", str(run))
    (fake_proc / "stat").write_text("cpu  1 2 3\nbtime %d\n" % BOOT)
    return run


def _pid_file(run, name, pid, written=BOOT + 2):
    path = run / (name + ".pid")
    path.write_text(str(pid))
    os.utime(str(path), (written, written))


VM = "6f1383a1-ea92-44bf-a721-082563ac560f"
OTHER = "11111111-ea92-44bf-a721-082563ac560f"


def test_find_qemu(fake_libvirt, fake_proc):
    _process(fake_proc, 100, "/usr/bin/qemu-system-x86_64", "-name",
             "guest=x", "-uuid", OTHER)
    _pid_file(fake_libvirt, "x", 100)
    _process(fake_proc, 102, "/usr/libexec/qemu-kvm", "-S", "-uuid",
             VM.upper(), "-smbios", "type=1")
    _pid_file(fake_libvirt, "vm", 102)

    assert procfs.find_qemu(VM) == 102
    assert procfs.find_qemu_process(VM).start == 100
    assert procfs.find_qemu("22222222-ea92-44bf-a721-082563ac560f") is None


@pytest.mark.parametrize("case", [
    # What a container's process can make of its command line: qemu of
    # VM, with no pid file of libvirt's naming it.
    "no pid file",
    # Not qemu, though it names the uuid (a virsh, a grep), in a pid file.
    "not qemu",
    # libvirt's pid file of another domain, whose pid a poser now has.
    "stale pid file",
    # A pid file that is not root's, or a symlink to one.
    "not root's",
    "symlink",
])
def test_poser_is_not_qemu(fake_libvirt, fake_proc, case):
    argv = ["/usr/bin/qemu-system-x86_64", "-uuid", VM]
    if case == "not qemu":
        argv[0] = "/usr/bin/virsh"
    # Started 60 s after boot; the file written 2 s after boot.
    _process(fake_proc, 200, *argv, start=60 * os.sysconf("SC_CLK_TCK"))
    if case == "no pid file":
        _process(fake_proc, 201, *argv)
    elif case == "not qemu":
        _pid_file(fake_libvirt, "vm", 200, written=BOOT + 61)
    elif case == "stale pid file":
        _pid_file(fake_libvirt, "vm", 200)
    elif case == "not root's":
        _pid_file(fake_libvirt, "vm", 200, written=BOOT + 61)
        os.chown(str(fake_libvirt / "vm.pid"), 36, 36)
    elif case == "symlink":
        _pid_file(fake_libvirt, "real", 200, written=BOOT + 61)
        os.rename(str(fake_libvirt / "real.pid"), str(fake_proc / "x.pid"))
        os.symlink(str(fake_proc / "x.pid"), str(fake_libvirt / "vm.pid"))

    assert procfs.find_qemu(VM) is None


def test_kill_rechecks_the_process():
    p = subprocess.Popen(["sleep", "60"])
    try:
        start = procfs.start_time(p.pid)
        # Same pid, another start time: a later process, never signalled.
        assert not procfs.kill(procfs.Process(p.pid, start + 1))
        assert p.poll() is None
        assert procfs.kill(procfs.Process(p.pid, start))
        assert p.wait(timeout=10) == -9
        assert not procfs.kill(procfs.Process(p.pid, start))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_kill_group_rechecks_the_leader():
    # A group leader with a child in its group: a stale Process (a later
    # start time) signals neither; the recorded one signals both.
    p = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"],
                         stdout=subprocess.PIPE, start_new_session=True)
    try:
        child = int(p.stdout.readline())
        start = procfs.start_time(p.pid)
        assert not procfs.kill_group(procfs.Process(p.pid, start + 1))
        assert p.poll() is None and procfs.alive(child)
        assert procfs.kill_group(procfs.Process(p.pid, start))
        assert p.wait(timeout=10) == -9
        vmrun.wait(lambda: not procfs.alive(child), 10,
                   "the end of the leader's child", interval=0.01)
        assert not procfs.kill_group(procfs.Process(p.pid, start))
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)    # whatever is left of it
        except OSError:
            pass
        p.wait()
        p.stdout.close()


def test_kill_group_of_no_leader_kills_the_process_alone():
    # This sleep is in pytest's process group: only it is signalled.
    p = subprocess.Popen(["sleep", "60"])
    try:
        assert os.getpgid(p.pid) != p.pid
        start = procfs.start_time(p.pid)
        assert not procfs.kill_group(procfs.Process(p.pid, start + 1))
        assert p.poll() is None
        assert procfs.kill_group(procfs.Process(p.pid, start))
        assert p.wait(timeout=10) == -9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_container_init_is_checked_against_the_cgroup():
    # This process is no container's: its cgroup names no container id.
    assert procfs.container_init(os.getpid(), "a" * 64) is None
    assert procfs.container_init(os.getpid(), None) is None
    assert procfs.container_init(None, "a" * 64) is None


def test_alive():
    assert procfs.alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()            # exited and reaped
    assert not procfs.alive(p.pid)
    assert not procfs.alive(None)
