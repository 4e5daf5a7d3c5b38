"""runtimes.py: the runtime a VM may choose on a host, and the host's
proof of the runtime that runs (on a /proc of the test's own making; the
real engines and runtimes are lifecycle_test's)."""

import json
import os

import pytest

from containerhooks import config
from containerhooks import errors
from containerhooks import runtimes


def conf_of(tmp_path, text=""):
    path = tmp_path / "containers.conf"
    path.write_text(u"[containers]\n" + text)
    return config.load(str(path))


OFFERING = ("docker_runtimes = runc, runsc\n"
            "podman_runtimes = runc, crun, runsc\n"
            "podman_default_runtime = crun\n"
            "podman_runtime_sockets = crun:/run/p-crun.sock, "
            "runsc:/run/p-runsc.sock\n")


@pytest.mark.parametrize("engine, requested, name, socket", [
    pytest.param("docker", "", None, "/var/run/docker.sock",
                 id="docker-default"),
    pytest.param("docker", "runsc", "runsc", "/var/run/docker.sock",
                 id="docker-runsc"),
    pytest.param("podman", "", "crun", "/run/p-crun.sock",
                 id="podman-host-default"),
    pytest.param("podman", "runsc", "runsc", "/run/p-runsc.sock",
                 id="podman-runsc"),
    pytest.param("podman", "runc", "runc", "/run/podman/podman.sock",
                 id="podman-runc-on-the-default-socket"),
])
def test_choose(tmp_path, engine, requested, name, socket):
    choice = runtimes.choose(conf_of(tmp_path, OFFERING), engine, requested)
    assert (choice.name, choice.socket, choice.requested) == (
        name, socket, bool(requested))


def test_not_offered_refused_naming_what_is(tmp_path):
    conf = conf_of(tmp_path, OFFERING)
    with pytest.raises(errors.InvalidProperty) as e:
        runtimes.choose(conf, "docker", "crun")
    assert str(e.value) == (
        "Invalid custom property containerRuntime='crun': this host runs "
        "docker containers on runc, runsc only (docker_runtimes in %s); "
        "choose one of them, or leave containerRuntime unset for the "
        "host's default" % conf.path)


def test_nothing_offered_the_engines_default_only(tmp_path):
    # The default configuration: the engine's own default.  The hook lets
    # a named runtime through (it cannot ask the engine); the helper asks.
    conf = conf_of(tmp_path)
    choice = runtimes.choose(conf, "podman", "runc")
    assert choice.socket == "/run/podman/podman.sock"
    runtimes.check_default(conf, "podman", "runc", "runc")
    runtimes.check_default(conf, "podman", "runc", "/usr/bin/runc")
    with pytest.raises(errors.InvalidProperty) as e:
        runtimes.check_default(conf, "podman", "runsc", "crun")
    assert "on crun only" in str(e.value)


def test_create_options(tmp_path):
    conf = conf_of(tmp_path, OFFERING)
    assert runtimes.create_options(runtimes.choose(conf, "docker", "runsc"),
                                   "docker") == {"runtime": "runsc"}
    assert runtimes.create_options(runtimes.choose(conf, "docker", ""),
                                   "docker") == {}
    # Podman's compatible API ignores it: the socket chooses.
    assert runtimes.create_options(runtimes.choose(conf, "podman", "runsc"),
                                   "podman") == {}


def test_proof_refuses_another_runtime(tmp_path):
    conf = conf_of(tmp_path, "podman_runtimes = runc, runsc\n")
    choice = runtimes.choose(conf, "podman", "runsc")
    with pytest.raises(errors.RuntimeMismatch) as e:
        runtimes.check_proof(choice, "podman", "runc", "conmon (pid 7) runs "
                             "/usr/bin/runc")
    assert str(e.value).startswith(
        "Container engine podman at /run/podman/podman.sock ran the "
        "container on runc instead of runsc (conmon (pid 7) runs "
        "/usr/bin/runc); Podman's compatible API ignores")
    runtimes.check_proof(choice, "podman", "runsc", "")
    # The engine's default, not asked for: whatever the host shows.
    runtimes.check_proof(runtimes.choose(conf, "podman", ""), "podman",
                         "crun", "")


# The proof, on a /proc of the test's own.

class FakeHost(object):
    """A /proc with processes, and binary directories with runc, crun and
    runsc (distinct files)."""

    def __init__(self, root):
        self.root = root
        self.proc = root / "proc"
        self.proc.mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        for name in runtimes.KNOWN + ("conmon", "containerd-shim-runc-v2",
                                      "docker-init", "sleep"):
            f = self.bin / name
            f.write_text(u"binary of %s\n" % name)
            f.chmod(0o755)

    def process(self, pid, exe, ppid=1, cmdline=(), cwd=None):
        d = self.proc / str(pid)
        d.mkdir()
        os.symlink(str(exe), str(d / "exe"))
        (d / "stat").write_text(u"%d (a (b) c) S %d 1 1\n" % (pid, ppid))
        (d / "cmdline").write_bytes(b"".join(
            a.encode() + b"\0" for a in cmdline))
        if cwd is not None:
            os.symlink(str(cwd), str(d / "cwd"))


@pytest.fixture
def host(tmp_path, monkeypatch):
    h = FakeHost(tmp_path)
    monkeypatch.setattr(runtimes, "PROC", str(h.proc))
    monkeypatch.setattr(runtimes, "BINARY_DIRS", (str(h.bin),))
    return h


def test_runsc_sandbox_is_the_containers_process(host):
    host.process(40, host.bin / "containerd-shim-runc-v2")
    host.process(41, host.bin / "runsc", ppid=40)
    assert runtimes.identify(41)[0] == "runsc"


def test_a_containers_own_runsc_is_not_gvisor(host, tmp_path):
    # The image's /usr/bin/runsc is another file: by inode, not by name.
    fake = tmp_path / "rootfs-usr-bin"
    fake.mkdir()
    (fake / "runsc").write_text(u"the tenant's\n")
    host.process(50, host.bin / "conmon", cmdline=[
        "/usr/bin/conmon", "-c", "x", "-r", str(host.bin / "runc")])
    host.process(51, fake / "runsc", ppid=50)
    assert runtimes.identify(51) == (
        "runc", "conmon (pid 50) runs %s" % (host.bin / "runc"))


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_conmon_names_the_runtime(host, runtime):
    host.process(60, host.bin / "conmon", cmdline=[
        "/usr/bin/conmon", "--api-version", "1", "-r",
        str(host.bin / runtime), "-b", "/x"])
    host.process(61, host.bin / "docker-init", ppid=60)
    assert runtimes.identify(61)[0] == runtime


@pytest.mark.parametrize("options, runtime", [
    pytest.param(None, "runc", id="no-options"),
    pytest.param({"root": "/run/docker/runtime-runc"}, "runc",
                 id="options-without-binary"),
    pytest.param({"binary_name": "crun"}, "crun", id="binary-by-name"),
    pytest.param({"binary_name": "BIN/crun"}, "crun", id="binary-by-path"),
    pytest.param({"binary_name": "WRAPPER"}, "runsc",
                 id="docker-runtime-args-wrapper"),
])
def test_docker_shim_names_the_runtime(host, tmp_path, options, runtime):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    wrapper = tmp_path / "runtimes-runsc"
    wrapper.write_text(u"#!/bin/sh\n%s --network=host $@\n"
                       % (host.bin / "runsc"))
    if options is not None:
        text = json.dumps(options).replace("BIN", str(host.bin)).replace(
            "WRAPPER", str(wrapper))
        (bundle / "options.json").write_text(text)
    host.process(70, host.bin / "containerd-shim-runc-v2", cwd=bundle)
    host.process(71, host.bin / "docker-init", ppid=70)
    assert runtimes.identify(71)[0] == runtime


def test_a_container_ended_at_once(host):
    # Docker reports no pid for a container that has ended; Podman (and
    # Docker for a moment) one that is gone.
    host.process(90, host.bin / "docker-init", ppid=1)
    assert not runtimes.ended(90)
    for pid in (None, 0, 91):
        assert runtimes.ended(pid)
        assert runtimes.identify(pid)[0] is None


@pytest.mark.parametrize("flags, network", [
    pytest.param(["--network=host"], "host", id="host"),
    pytest.param(["--network", "none"], "none", id="none-apart"),
    pytest.param(["-network=none"], "none", id="none-one-dash"),
    pytest.param([], "sandbox", id="gvisors-default"),
    pytest.param(["--log-fd=3"], "sandbox", id="other-flags"),
])
def test_sandbox_network(host, flags, network):
    # As Docker's and Podman's runsc sandboxes show it (/proc/PID/cmdline:
    # "runsc-sandbox --root=... --network=host --log-fd=3 boot --bundle=
    # ..."); boot's own flags are not runsc's.
    host.process(100, host.bin / "runsc", cmdline=[
        "runsc-sandbox", "--root=/run/x"] + flags + [
        "boot", "--bundle=/b", "--network=bogus"])
    assert runtimes.sandbox_network(100) == network
    bridges = ["ovirtmgmt"]
    if network == "none":
        with pytest.raises(errors.NetworkError) as e:
            runtimes.check_network("runsc", 100, bridges)
        assert str(e.value).startswith(
            "Cannot connect the container to bridge ovirtmgmt: its runtime "
            "runsc runs with --network=none")
    else:
        runtimes.check_network("runsc", 100, bridges)
    # No vNIC, or another runtime: nothing to check.
    runtimes.check_network("runsc", 100, [])
    runtimes.check_network("runc", 100, bridges)


def test_no_supervisor_no_proof(host):
    host.process(80, host.bin / "sleep")
    host.process(81, host.bin / "docker-init", ppid=80)
    name, evidence = runtimes.identify(81)
    assert name is None and "no engine's supervisor" in evidence
    assert runtimes.identify(99)[0] is None      # gone


@pytest.mark.parametrize("controllers, problem", [
    pytest.param(None, False, id="no-unified"),
    pytest.param("", False, id="hybrid-without-controllers"),
    pytest.param("hugetlb\n", True, id="hybrid-with-hugetlb"),
])
def test_crun_problem(tmp_path, controllers, problem):
    if controllers is not None:
        (tmp_path / "unified").mkdir()
        (tmp_path / "unified" / "cgroup.controllers").write_text(
            u"" + controllers)
    found = runtimes.crun_problem(str(tmp_path))
    assert bool(found) == problem
    if problem:
        assert "hugetlb" in found and "hybrid" in found


# Before a migration's destination takes a VM: does its engine service
# run the VM's runtime, as the engine says (runtimes.check_served)?

class FakeEngine(object):
    def __init__(self, name, default="runc", paths=None):
        self.name = name
        self.socket = "/run/%s.sock" % name
        self._default = default
        self._paths = paths or {}

    def default_runtime(self):
        return self._default

    def runtime_paths(self):
        return self._paths


@pytest.mark.parametrize("eng, requested, refusal", [
    pytest.param(FakeEngine("podman", default="runsc"), "runsc", None,
                 id="podman-service-of-it"),
    pytest.param(FakeEngine("podman", default="/usr/bin/crun"), "crun",
                 None, id="podman-service-by-path"),
    pytest.param(FakeEngine("podman", default="runc"), "runsc",
                 "cannot run containers on runsc (the service runs runc); "
                 "run 'podman --runtime runsc system service'",
                 id="podman-another-service"),
    pytest.param(FakeEngine("podman", default="runc"), "", None,
                 id="podman-nothing-chosen"),
    pytest.param(FakeEngine("docker", paths={"runc": "runc",
                                             "runsc": "RUNSC"}),
                 "runsc", None, id="docker-declared"),
    pytest.param(FakeEngine("docker", paths={"runc": "runc"}), "runsc",
                 "cannot run containers on runsc (not declared in its "
                 "daemon.json 'runtimes')", id="docker-undeclared"),
    pytest.param(FakeEngine("docker", paths={"runsc": "/nowhere/runsc"}),
                 "runsc", "cannot run containers on runsc (its binary "
                 "/nowhere/runsc is missing)", id="docker-binary-missing"),
])
def test_check_served(host, tmp_path, eng, requested, refusal):
    conf = conf_of(tmp_path, "docker_runtimes = runc, runsc\n"
                   "podman_runtimes = runc, crun, runsc\n")
    eng._paths = dict((k, v.replace("RUNSC", str(host.bin / "runsc")))
                      for k, v in eng._paths.items())
    choice = runtimes.choose(conf, eng.name, requested)
    if refusal is None:
        runtimes.check_served(choice, eng)
        return
    with pytest.raises(errors.RuntimeUnavailable) as e:
        runtimes.check_served(choice, eng)
    assert str(e.value).startswith(
        "Container engine %s at %s %s" % (eng.name, eng.socket, refusal)), \
        str(e.value)


# The watcher's actions on a container go through its runtime's engine
# service: a Podman service restarts a container with its own runtime
# flags (measured: Podman's runc service restarting a container of the
# runsc service: "/usr/bin/runsc start ... failed: exit status 128").

class _Health(object):
    def __init__(self):
        self.restarted = []

    def restart(self, vm_id, container_id, eng):
        self.restarted.append((vm_id, container_id, eng))
        return False


class _Watcher(object):
    def __init__(self):
        self.health = _Health()


@pytest.mark.parametrize("runtime, connected", [
    pytest.param("runsc", ("podman", "runsc"), id="runsc-service"),
    pytest.param(None, ("podman",), id="default-service"),
])
def test_guest_agent_reboot_through_the_runtimes_service(runtime,
                                                         connected):
    from containerhooks import guestagent
    from containerhooks import state
    record = state.Record(engine="podman", runtime=runtime,
                          container_id="c" * 64, container_name="x")
    calls = []

    def connect(*args):
        calls.append(args)
        return "engine of %s" % (args,)
    # Server's actions only, without its sockets.
    srv = guestagent.Server.__new__(guestagent.Server)
    srv._read_state = lambda vm_id: record
    srv._connect = connect
    srv._watcher = _Watcher()
    srv.reboot("vm")
    assert calls == [connected]
    assert srv._watcher.health.restarted == [
        ("vm", "c" * 64, "engine of %s" % (connected,))]
