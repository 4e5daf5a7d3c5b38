"""A container's cgroup, found from its first process and read.

cgroup v1 on this machine's kernel, with real containers of both engines
(cgroupfs driver, cpu and cpuacct mounted apart, plus an empty v2
hierarchy: a hybrid host), cross-checked against the engine's own stats
API.  cgroup v2 and the systemd driver's layouts cannot be had here: they
are trees laid out as the kernel documents them
(Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/cpuacct.rst and
memory.rst), with /proc/self/mountinfo and /proc/<pid>/cgroup to match.
"""

import os

import pytest

from containerhooks import cgroups
from containerhooks import errors

ID = "f" * 12 + "0123456789abcdef" * 3 + "0" * 4
OTHER = "e" * 64
PID = 4242
MIB = 1024 * 1024

V2_MOUNTINFO = ("25 1 0:23 / {root}/sys/fs/cgroup rw,nosuid,nodev,noexec,"
                "relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,"
                "memory_recursiveprot\n")
V1_MOUNTINFO = (
    "25 1 0:23 / {root}/sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:24 / {root}/sys/fs/cgroup/systemd rw,nosuid shared:5 - cgroup "
    "cgroup rw,xattr,name=systemd\n"
    "27 25 0:25 / {root}/sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:6 - "
    "cgroup cgroup rw,cpu,cpuacct\n"
    "28 25 0:26 / {root}/sys/fs/cgroup/memory rw,nosuid shared:7 - cgroup "
    "cgroup rw,memory\n")

# cgroup-v2.rst: flat keyed files, usec and bytes.
V2_FILES = {
    "cpu.stat": "usage_usec 2500000\nuser_usec 1500000\nsystem_usec "
                "1000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "memory.current": "%d\n" % (50 * MIB),
    "memory.max": "%d\n" % (256 * MIB),
    "memory.stat": "anon %d\nfile %d\nkernel 1048576\nshmem 0\n"
                   "inactive_anon 0\nactive_anon %d\ninactive_file %d\n"
                   "active_file %d\nunevictable 0\n"
                   % (40 * MIB, 10 * MIB, 40 * MIB, 8 * MIB, 2 * MIB),
}
# cpuacct.rst: USER_HZ ticks; memory.rst: hierarchical totals.
V1_CPU_FILES = {
    "cpuacct.stat": "user 150\nsystem 100\n",
    "cpuacct.usage": "2500000000\n",
}
V1_MEMORY_FILES = {
    "memory.usage_in_bytes": "%d\n" % (50 * MIB),
    "memory.limit_in_bytes": "%d\n" % (256 * MIB),
    "memory.stat": "cache %d\nrss %d\ninactive_file %d\n"
                   "hierarchical_memory_limit %d\ntotal_cache %d\n"
                   "total_rss %d\ntotal_inactive_file %d\n"
                   "total_active_file %d\n"
                   % (10 * MIB, 40 * MIB, 8 * MIB, 256 * MIB, 10 * MIB,
                      40 * MIB, 8 * MIB, 2 * MIB),
}


def _write(path, content):
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(content)


def _files(directory, files):
    for name, content in files.items():
        _write(os.path.join(directory, name), content)


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    """A /proc of our own: tests write mountinfo and <pid>/cgroup."""
    root = str(tmp_path)
    monkeypatch.setattr(cgroups, "PROC", os.path.join(root, "proc"))
    return root


def v2_tree(root, path, proc_line=None):
    _write(os.path.join(root, "proc", "self", "mountinfo"),
           V2_MOUNTINFO.format(root=root))
    _write(os.path.join(root, "proc", str(PID), "cgroup"),
           proc_line or "0::%s\n" % path)
    _files(root + "/sys/fs/cgroup" + path, V2_FILES)


V2_LAYOUTS = [
    pytest.param("/docker/" + ID, id="docker-cgroupfs"),
    pytest.param("/system.slice/docker-%s.scope" % ID, id="docker-systemd"),
    pytest.param("/libpod_parent/libpod-" + ID, id="podman-cgroupfs"),
    pytest.param("/machine.slice/libpod-%s.scope/container" % ID,
                 id="podman-systemd-split"),
]


@pytest.mark.parametrize("path", V2_LAYOUTS)
def test_v2(fake_proc, path):
    v2_tree(fake_proc, path)

    cgroup = cgroups.find(PID, ID)

    assert cgroup.version == 2
    assert cgroup.cpu() == cgroups.Cpu(user_ns=1500 * 10 ** 6,
                                       system_ns=1000 * 10 ** 6)
    assert cgroup.memory() == cgroups.Memory(usage=50 * MIB,
                                             inactive_file=8 * MIB)


def v1_tree(root, path, extra_lines=""):
    _write(os.path.join(root, "proc", "self", "mountinfo"),
           V1_MOUNTINFO.format(root=root))
    _write(os.path.join(root, "proc", str(PID), "cgroup"),
           "4:memory:%s\n3:cpu,cpuacct:%s\n1:name=systemd:%s\n%s"
           % (path, path, path, extra_lines))
    _files(root + "/sys/fs/cgroup/cpu,cpuacct" + path, V1_CPU_FILES)
    _files(root + "/sys/fs/cgroup/memory" + path, V1_MEMORY_FILES)


@pytest.mark.parametrize("path", [
    pytest.param("/docker/" + ID, id="docker-cgroupfs"),
    pytest.param("/system.slice/docker-%s.scope" % ID, id="docker-systemd"),
    pytest.param("/machine.slice/libpod-%s.scope" % ID, id="podman-systemd"),
])
def test_v1_systemd_and_cgroupfs(fake_proc, path):
    v1_tree(fake_proc, path)

    cgroup = cgroups.find(PID, ID)

    assert cgroup.version == 1
    tick = 10 ** 9 // os.sysconf("SC_CLK_TCK")
    assert cgroup.cpu() == cgroups.Cpu(user_ns=150 * tick,
                                       system_ns=100 * tick)
    assert cgroup.memory() == cgroups.Memory(usage=50 * MIB,
                                             inactive_file=8 * MIB)


def test_hybrid_host_reads_v1(fake_proc):
    # v1 controllers plus an empty v2 hierarchy ("0::" line), as systemd
    # in hybrid mode and this project's CI machine run.
    path = "/docker/" + ID
    v1_tree(fake_proc, path, extra_lines="0::%s\n" % path)

    assert cgroups.find(PID, ID).version == 1


def test_mount_of_a_subtree(fake_proc):
    # Inside a container (or a cgroup namespace) the hierarchy is mounted
    # from a subtree: mountinfo's root field is not "/".
    _write(os.path.join(fake_proc, "proc", "self", "mountinfo"),
           "25 1 0:23 /outer {root}/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
           .format(root=fake_proc))
    _write(os.path.join(fake_proc, "proc", str(PID), "cgroup"),
           "0::/outer/docker/%s\n" % ID)
    _files(fake_proc + "/sys/fs/cgroup/docker/" + ID, V2_FILES)

    assert cgroups.find(PID, ID).memory().usage == 50 * MIB


def test_mount_point_with_a_space(fake_proc):
    # mountinfo escapes a space as \040.
    _write(os.path.join(fake_proc, "proc", "self", "mountinfo"),
           "25 1 0:23 / {root}/cgroup\\040v2 rw - cgroup2 cgroup2 rw\n"
           .format(root=fake_proc))
    _write(os.path.join(fake_proc, "proc", str(PID), "cgroup"),
           "0::/docker/%s\n" % ID)
    _files(fake_proc + "/cgroup v2/docker/" + ID, V2_FILES)

    assert cgroups.find(PID, ID).cpu().user_ns == 1500 * 10 ** 6


def test_pid_of_another_process_refused(fake_proc):
    # The container ended and the kernel gave its pid to someone else.
    v2_tree(fake_proc, "/docker/" + OTHER)

    with pytest.raises(errors.CGroupError) as e:
        cgroups.find(PID, ID)
    assert "not the container's" in str(e.value)


def test_process_gone(fake_proc):
    v2_tree(fake_proc, "/docker/" + ID)

    with pytest.raises(errors.CGroupError) as e:
        cgroups.find(PID + 1, ID)
    assert "the process is gone" in str(e.value)


def test_nothing_recorded(fake_proc):
    with pytest.raises(errors.CGroupError):
        cgroups.find(None, ID)


# Real containers, cgroup v1

@pytest.fixture
def busy_container(engine):
    """A container of engine (not a VM's) that can be told to burn CPU."""
    import docker
    import images
    name, client = engine
    c = client.containers.run(
        images.ensure_local(client), detach=True, name="vhc-cgroups-test-%d" % os.getpid(),
        mem_limit=128 * MIB,
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
                 docker.types.Ulimit(name="nproc", soft=1024, hard=1024)])
    try:
        c.reload()
        yield c
    finally:
        c.remove(force=True)


def test_real_container_matches_engine_stats(busy_container):
    c = busy_container
    cgroup = cgroups.find(c.attrs["State"]["Pid"], c.id)
    before = cgroup.cpu()
    rc, _ = c.exec_run(["sh", "-c", "i=0; while [ $i -lt 200000 ]; do "
                        "i=$((i+1)); done"])
    assert rc == 0

    ours_cpu = cgroup.cpu()
    ours_memory = cgroup.memory()
    engine_stats = c.stats(stream=False)
    after = cgroup.cpu()

    burnt = (ours_cpu.user_ns + ours_cpu.system_ns
             - before.user_ns - before.system_ns)
    assert burnt > 0.1 * 10 ** 9
    total = engine_stats["cpu_stats"]["cpu_usage"]["total_usage"]
    # The engine reads cpuacct.usage (ns); we read the user and system
    # split (ticks): the same time, to a few ticks.
    low = ours_cpu.user_ns + ours_cpu.system_ns
    high = after.user_ns + after.system_ns
    slack = 0.05 * total + 5 * 10 ** 7
    assert low - slack <= total <= high + slack
    usage = engine_stats["memory_stats"]["usage"]
    assert abs(usage - ours_memory.usage) < 4 * MIB


def test_real_container_wrong_id_refused(busy_container):
    with pytest.raises(errors.CGroupError):
        cgroups.find(busy_container.attrs["State"]["Pid"], OTHER)
