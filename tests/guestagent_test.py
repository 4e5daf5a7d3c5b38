"""Engine's Shutdown and Reboot of a container VM (guestagent.py).

Vdsm talks to the oVirt guest agent over the unix socket of the VM's
ovirt-guest-agent.0 channel; for a container VM the exit watcher serves
it.  Vdsm's side is tests/vdsm.py GuestAgent (guestagent.py message by
message, connecting as the vdsm user) and PowerDown (vm.py and
vmpowerdown.py: the QEMU guest agent tried for real through libvirt, the
exit reason Vdsm sets, how the domain's end becomes the VM's exit).

The unit tests run the server in this process on a private channels
directory; the integration tests run the real flow on both engines:
before_vm_start through the installed hooks as vdsm, the placeholder run
by libvirt, the watcher as root, an image that records the signal it was
stopped with (its STOPSIGNAL is SIGUSR1, not the engines' SIGTERM).
"""

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest
from lxml import etree

import domains
import images
import lan as lanmod
import libvirt
import vdsm as vdsm_module
import vmrun
from containerhooks import config
from containerhooks import exits
from containerhooks import guestagent
from containerhooks import paths
from containerhooks import spec as specs
from containerhooks import state
from containerhooks import vmstart

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VM_ID = "3c0a3f5e-7d2b-4a1e-9c55-0b6f1e2d4a77"
MAC = "00:1a:4a:16:01:61"


# The protocol

@pytest.mark.parametrize("line, expected", [
    pytest.param(b'{"__name__": "refresh", "apiVersion": 3}',
                 ("refresh", {"apiVersion": 3}), id="refresh"),
    pytest.param(b'{"reboot": "False", "__name__": "shutdown", '
                 b'"timeout": 30, "message": "System going down"}',
                 ("shutdown", {"reboot": "False", "timeout": 30,
                               "message": "System going down"}),
                 id="shutdown"),
    pytest.param(b'{"__name__": "x\xff"}', (u"x\ufffd", {}),
                 id="bad-utf8-replaced"),
])
def test_decode(line, expected):
    assert guestagent.decode(line) == expected


@pytest.mark.parametrize("line", [
    pytest.param(b"not json", id="garbage"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b'{"name": "shutdown"}', id="no-name"),
    pytest.param(b'{"__name__": 7}', id="name-not-text"),
    pytest.param(b"\x00\x01\x02", id="binary"),
    pytest.param(b"[" * 100000, id="deep"),
])
def test_decode_refuses(line):
    with pytest.raises(ValueError):
        guestagent.decode(line)


def test_encode_is_one_line_vdsm_parses():
    data = guestagent.encode("host-name", {"name": "web\nx"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert guestagent.decode(data[:-1]) == ("host-name", {"name": "web\nx"})


@pytest.mark.parametrize("value, reboot", [
    pytest.param("True", True, id="vdsm-true"),
    pytest.param("False", False, id="vdsm-false"),
    pytest.param("true", True, id="lower"),
    pytest.param(True, True, id="bool"),
    pytest.param(None, False, id="missing"),
    pytest.param("yes", False, id="other"),
])
def test_is_reboot(value, reboot):
    args = {} if value is None else {"reboot": value}
    assert guestagent.is_reboot(args) is reboot


# The placeholder's channel (the start hook)

def _prepare(case="vdsm45-vmconsole-watchdog"):
    with open(os.path.join(DATA, case + "-in.xml"), "rb") as f:
        data = f.read()
    return data, vmstart.prepare({}, data, config.load("/nonexistent"),
                                 kernel="/k")


def _agent_source(xml):
    root = etree.fromstring(xml)
    for channel in root.iterfind("devices/channel"):
        if channel.find("target").get("name") == guestagent.CHANNEL:
            return channel.find("source")
    return None


def test_placeholder_channel_moves_off_vdsms_path():
    data, plan = _prepare()
    vm_id = plan.spec.vm_id
    before, after = _agent_source(data), _agent_source(plan.xml)
    assert before.get("path") == guestagent.socket_path(vm_id) == \
        "/var/lib/libvirt/qemu/channels/%s.ovirt-guest-agent.0" % vm_id
    assert after.get("path") == guestagent.placeholder_path(vm_id)
    assert after.get("mode") == "bind"
    assert plan.spec.guest_agent is True
    assert "--guest-agent" in specs.to_args(plan.spec)


def test_channel_elsewhere_is_left_to_qemu(monkeypatch):
    monkeypatch.setattr(paths, "VM_CHANNELS_DIR", "/somewhere/else")
    data, plan = _prepare()
    assert _agent_source(plan.xml).get("path") == \
        _agent_source(data).get("path")
    assert plan.spec.guest_agent is False
    assert "--guest-agent" not in specs.to_args(plan.spec)


def test_helper_arguments_carry_the_agent():
    from containerhooks import helper
    spec = specs.ContainerSpec(
        vm_id=VM_ID, vm_name="web", engine="docker", image="redis",
        memory_mib=256, vcpus=1, cpu_shares=None, nics=[], volumes=[],
        guest_agent=True)
    ns = helper._parser().parse_args(["start"] + specs.to_args(spec))
    assert specs.from_args(ns).guest_agent is True
    ns = helper._parser().parse_args(
        ["start"] + specs.to_args(spec._replace(guest_agent=False)))
    assert specs.from_args(ns).guest_agent is False


# The socket

@pytest.fixture
def channels(monkeypatch):
    """A state directory (root's) and a channels directory as Vdsm's RPM
    makes it (vdsm's, 0775), where the vdsm user can reach them."""
    top = tempfile.mkdtemp(prefix="vhc-agent-", dir="/var/tmp")
    os.chmod(top, 0o755)
    run, chan = os.path.join(top, "run"), os.path.join(top, "channels")
    os.mkdir(run, 0o755)
    os.mkdir(chan)
    os.chmod(chan, 0o775)
    vdsm = pwd.getpwnam("vdsm")
    os.chown(chan, vdsm.pw_uid, vdsm.pw_gid)
    monkeypatch.setattr(paths, "STATE_DIR", run)
    monkeypatch.setattr(paths, "VM_CHANNELS_DIR", chan)
    yield chan
    shutil.rmtree(top)


def _as_vdsm(*cmd):
    subprocess.check_call(["runuser", "-u", "vdsm", "--"] + list(cmd))


def test_socket_is_root_vdsm_group_0660(channels):
    path = guestagent.socket_path(VM_ID)
    gid = pwd.getpwnam("vdsm").pw_gid
    sock, ident = guestagent.make_socket(path, gid)
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
            (0, gid, 0o660)
        assert ident == (st.st_dev, st.st_ino)
    finally:
        sock.close()


@pytest.mark.parametrize("kind", ["file", "symlink", "vdsm-socket",
                                  "answering-root-socket"])
def test_socket_refuses_what_it_did_not_make(channels, kind):
    path = guestagent.socket_path(VM_ID)
    target = os.path.join(os.path.dirname(channels), "target")
    with open(target, "w") as f:
        f.write("keep")
    keep = None
    if kind == "file":
        _as_vdsm("touch", path)
    elif kind == "symlink":
        _as_vdsm("ln", "-s", target, path)
    elif kind == "vdsm-socket":
        _as_vdsm("python3", "-c", "import socket; socket.socket("
                 "socket.AF_UNIX).bind(%r)" % path)
    else:
        keep = socket.socket(socket.AF_UNIX)
        keep.bind(path)
        keep.listen(1)
    before = os.lstat(path)
    try:
        with pytest.raises(OSError) as e:
            guestagent.make_socket(path, 0)
        assert "did not make" in str(e.value)
        after = os.lstat(path)
        assert (after.st_ino, after.st_mode, after.st_uid) == \
            (before.st_ino, before.st_mode, before.st_uid)
        with open(target) as f:
            assert f.read() == "keep"
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    finally:
        if keep is not None:
            keep.close()


def test_socket_replaces_a_stale_one_of_its_own(channels):
    path = guestagent.socket_path(VM_ID)
    old = socket.socket(socket.AF_UNIX)
    old.bind(path)
    old.close()         # an earlier watcher's, nobody listening
    sock, ident = guestagent.make_socket(path, 0)
    try:
        assert ident == (os.lstat(path).st_dev, os.lstat(path).st_ino)
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(path)
        probe.close()
    finally:
        sock.close()


# The server, in this process

class _Engine(object):
    def __init__(self):
        self.done = []

    def stop(self, name, timeout):
        self.done.append(("stop", name, timeout))

    def exit_status(self, name):
        from containerhooks import engine
        stopped = any(what == "stop" for what, _, _ in self.done)
        return engine.ExitStatus(status="exited" if stopped else "running",
                                 exit_code=0, oom_killed=False, error=None,
                                 finished_at=None)


class _Health(object):
    def __init__(self):
        self.restarts = []

    def restart(self, vm_id, container_id, eng):
        self.restarts.append((vm_id, container_id))
        return True

    def forget_restart(self, vm_id):
        pass


class _Watcher(object):
    class conf(object):
        stop_timeout = 7

    def __init__(self):
        self.health = _Health()
        self.ended = []

    def container_ended(self, eng, vm_id, container_id):
        self.ended.append((vm_id, container_id))


def _record(**kw):
    fields = dict(
        vm_id=VM_ID, vm_name="web", engine="docker",
        image="127.0.0.1:5000/app:1", image_digest="sha256:" + "a" * 64,
        container_id="c" * 64, container_name="ovirt-vm-" + VM_ID,
        hostname="web", fqdn="web.example.com", memory_mib=64, pid=1,
        nics=[{"ifname": "eth0", "mac": MAC.upper(), "ip": "10.0.0.5",
               "network": "ovirt-br0"}],
        guest_agent=True, created=time.time())
    fields.update(kw)
    return state.Record(**fields)


@pytest.fixture
def server(channels):
    """The guest agent server of a fake watcher and engine, running in a
    thread of this process; its VM's state written."""
    state.write(VM_ID, _record())
    watcher = _Watcher()
    eng = _Engine()
    srv = guestagent.Server(watcher, state.read, lambda name: eng)
    srv.watcher, srv.engine = watcher, eng
    stopping = threading.Event()
    thread = threading.Thread(target=srv.run, args=(stopping,))
    thread.start()
    try:
        vmrun.wait(lambda: guestagent.served(VM_ID), 5, "the VM's socket",
                   interval=0.02)
        yield srv
    finally:
        stopping.set()
        thread.join(5)
    assert not thread.is_alive()
    assert not os.path.exists(guestagent.socket_path(VM_ID))


def _agent(vm_id=VM_ID):
    return vdsm_module.GuestAgent(guestagent.socket_path(vm_id)).start()


def test_vdsm_reads_the_guest_info(server):
    agent = _agent()
    agent.wait_for(lambda: agent.guest_status == "Up" and agent.received(
        "applications"), 5, "a heartbeat and the applications")
    info = agent.guest_info
    assert info["guestName"] == "web"
    assert info["guestFQDN"] == "web.example.com"
    assert info["netIfaces"] == [{"name": "eth0", "hw": MAC,
                                  "inet": ["10.0.0.5"], "inet6": []}]
    assert info["guestIPs"] == "10.0.0.5"
    assert info["appsList"] == ("127.0.0.1:5000/app:1",
                                "127.0.0.1:5000/app@sha256:" + "a" * 64)
    assert isinstance(info["memUsage"], int)
    assert agent.unknown == [] and agent.errors == []
    assert agent.is_responsive()
    agent.stop()


def test_hostile_lines_do_not_stop_the_server(server):
    agent = _agent()
    agent.wait_for(lambda: agent.received("heartbeat"), 5, "a heartbeat")
    for line in (b"garbage", b"[]", b'{"__name__": 5}', b"\xff\xfe\x00",
                 b"[" * 60000,
                 b'{"__name__": "login", "username": "u", "password": "p"}',
                 b'{"__name__": "' + b"x" * 1000 + b'"}', b""):
        agent.sock.sendall(line + b"\n")
    # Still answering on that connection.
    since = time.time()
    agent.forward("refresh", {"apiVersion": 3})
    agent.wait_for(lambda: agent.received("host-name", since), 5,
                   "the answer to refresh after bad lines")
    # A line longer than the bound closes that connection only.
    agent.sock.sendall(b"x" * (guestagent.MAX_LINE + 2))
    deadline = time.time() + 5
    while agent.read(0.5):
        assert time.time() < deadline, "the connection stays open"
    again = _agent()
    again.wait_for(lambda: again.received("heartbeat"), 5, "a heartbeat")
    assert server.watcher.ended == [] and server.engine.done == []
    again.stop()
    agent.stop()


def test_only_root_and_vdsm_are_served(server):
    # libvirt-qemu shares the socket's group (kvm) with vdsm on this
    # machine, as qemu and vdsm share one on a host.
    rc, sock = vdsm_module.connect_as("libvirt-qemu",
                                      guestagent.socket_path(VM_ID))
    assert rc == 0
    sock.settimeout(5)
    assert sock.recv(100) == b""        # closed, nothing said
    sock.close()


def test_shutdown_stops_and_takes_the_vm_down(server):
    agent = _agent()
    agent.wait_for(lambda: agent.received("heartbeat"), 5, "a heartbeat")
    agent.desktop_shutdown(30, "System going down", False)
    vmrun.wait(lambda: server.watcher.ended, 5, "the VM's end",
               interval=0.02)
    cid = "c" * 64
    assert server.engine.done == [("stop", cid, 7)]
    assert server.watcher.ended == [(VM_ID, cid)]
    assert server.watcher.health.restarts == []
    record = exits.read(VM_ID)
    assert record["message"] == guestagent.SHUTDOWN_MESSAGE + \
        " (exit code 0)"
    assert record["container_id"] == cid
    agent.stop()


def _settled(agent):
    """Wait for what a connection gets first: the agent's information
    when Vdsm connects, and again for Vdsm's refresh."""
    agent.wait_for(lambda: len(agent.received("network-interfaces")) == 2,
                   5, "the answer to refresh")


def test_reboot_restarts(server):
    agent = _agent()
    _settled(agent)
    agent.desktop_shutdown(30, "System going down", True)
    agent.wait_for(lambda: len(agent.received("network-interfaces")) == 3,
                   10, "everything again after the restart")
    assert server.watcher.health.restarts == [(VM_ID, "c" * 64)]
    assert server.engine.done == [] and server.watcher.ended == []
    assert exits.read(VM_ID) is None
    agent.stop()


def test_socket_goes_with_the_vm_and_comes_back(server):
    path = guestagent.socket_path(VM_ID)
    agent = _agent()
    agent.wait_for(lambda: agent.received("heartbeat"), 5, "a heartbeat")
    # Vdsm removes the socket when the VM ends (vm.py _cleanupGuestAgent);
    # a start of the same VM soon after needs it back.
    os.unlink(path)
    vmrun.wait(lambda: guestagent.served(VM_ID), 5, "the socket again",
               interval=0.02)
    state.remove(VM_ID)
    vmrun.wait(lambda: not os.path.exists(path), 5, "the socket's end",
               interval=0.02)
    agent.stop()


def test_a_vm_without_the_agent_is_not_served(server):
    other = "5b9f0b3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    state.write(other, _record(vm_id=other, guest_agent=False))
    time.sleep(5 * guestagent.SYNC_INTERVAL)
    assert not os.path.exists(guestagent.socket_path(other))
    assert server.serving() == [VM_ID]


# The real flow on both engines

BRIDGE = lanmod.BRIDGE
# A restart and a stop of the image: it ends on its STOPSIGNAL at once.
ACTION_TIMEOUT = 30


@pytest.fixture(scope="session")
def stop_image(docker_client, registry_image):
    return images.build_and_push_stopsignal(docker_client)


@pytest.fixture
def agent_vm(engine, installation, lan, nwfilter, libvirt_host,
             qemu_workdir, stop_image):
    """A container VM of the stop signal image with one vNIC, its channel
    sockets where the installation's Vdsm has them; whatever is left of it
    is removed afterwards."""
    name, client = engine
    vm = domains.container_vm(name, stop_image, base="no-nic-in.xml",
                              memory_mib=64)
    vm = domains.add_nics(vm, [(MAC, BRIDGE)])
    vm = domains.with_channels_dir(vm, installation.channels_dir)
    yield vm
    vmrun.discard(client, installation, [vm])


def _logs(c):
    return c.logs().decode("utf-8", "replace").splitlines()


def test_shutdown_and_reboot(vdsm, installation, engine, watcher, lan,
                             libvirt_host, qemu_workdir, agent_vm):
    import network_test
    from containerhooks import procfs
    name, client = engine
    vm = agent_vm
    last_xml = vmrun.start(vdsm, vm, libvirt_host, qemu_workdir,
                           bridge=BRIDGE)

    # Vdsm connects where Engine's XML says; qemu binds elsewhere.
    path = vdsm_module.channel_path(vm.engine_xml)
    assert path == os.path.join(installation.channels_dir,
                                vm.id + ".ovirt-guest-agent.0")
    live = vdsm_module.channel_path(last_xml)
    assert live.endswith(".ovirt-guest-agent.0" +
                         guestagent.PLACEHOLDER_SUFFIX)
    agent = vdsm_module.GuestAgent(path).start()
    assert agent.attempts == 1, "the socket was not there when Vdsm came"

    c = client.containers.get("ovirt-vm-" + vm.id)
    record = installation.record(vm.id)
    (mac, addresses), = [v for n, v in network_test.links(c).items()
                         if n != "lo"]
    ip = addresses[0].split("/")[0]
    agent.wait_for(lambda: agent.guest_status == "Up"
                   and agent.received("applications"), 10,
                   "a heartbeat and the applications")
    info = agent.guest_info
    assert info["guestName"] == record["hostname"]
    assert info["netIfaces"] == [{"name": record["nics"][0]["ifname"],
                                  "hw": MAC, "inet": [ip], "inet6": []}]
    assert info["guestIPs"] == ip
    repository = vm.custom["containerImage"].rsplit(":", 1)[0]
    assert info["appsList"] == (vm.custom["containerImage"],
                                repository + "@" + record["image_digest"])
    assert agent.unknown == [] and agent.errors == []

    # Lines no agent would take are dropped; the server goes on.
    agent.sock.sendall(b"garbage\n" + b"[" * 60000 + b"\n\xff\xfe\n")

    # Reboot: the container restarts, the VM stays Up.
    qemu = libvirt.qemu_pid(vm.name)
    started = c.attrs["State"]["StartedAt"]
    interfaces = len(agent.received("network-interfaces"))
    power = vdsm_module.PowerDown(vm.id, agent)
    begin = time.time()
    power.shutdown(reboot=True)
    agent.wait_for(lambda: len(agent.received("network-interfaces"))
                   > interfaces, ACTION_TIMEOUT, "the restarted container")
    c.reload()
    print("guest agent %s: reboot done in %.2f s (the QEMU guest agent "
          "refused first: %s)" % (name, time.time() - begin,
                                  power.qemu_ga[1]))
    assert c.status == "running"
    assert c.attrs["State"]["StartedAt"] != started
    assert _logs(c).count("stopped by SIGUSR1") == 1
    assert [v for n, v in network_test.links(c).items() if n != "lo"] == \
        [(MAC, addresses)]
    assert installation.record(vm.id)["pid"] == c.attrs["State"]["Pid"]
    assert procfs.alive(qemu) and libvirt.exists(vm.id)
    assert agent.guest_status == "Up" and agent.is_responsive()

    # Shutdown: the image's STOPSIGNAL, the placeholder down, Vdsm's exit
    # normal.
    with libvirt.lifecycle_events(vm.id) as events:
        begin = time.time()
        power.shutdown(reboot=False)
        vmrun.wait(lambda: not procfs.alive(qemu), ACTION_TIMEOUT,
              "the placeholder's end")
        down = time.time()
        vmrun.wait(lambda: not libvirt.exists(vm.id), 10, "the domain's end")
    c.reload()
    print("guest agent %s: placeholder down %.2f s after Shutdown; libvirt "
          "reported %s" % (name, down - begin, events))
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 0
    assert _logs(c).count("stopped by SIGUSR1") == 2
    assert "stopped by SIGTERM" not in _logs(c)
    exit_info = None
    for event, detail in events:
        exit_info = power.on_lifecycle(event, detail) or exit_info
    assert exit_info == {"exitCode": 0, "exitReason": 6,
                         "exitMessage": "Admin shut down from the engine"}

    # Vdsm saw its qemu end: after_vm_destroy, the VM Down as Vdsm says.
    vdsm.run("after_vm_destroy", last_xml, vm_id=vm.id, custom=vm.custom)
    stats = vmrun.down_stats(vdsm, vm, exit_code=0, exit_reason=6,
                             message=exit_info["exitMessage"])
    assert (stats["exitCode"], stats["exitMessage"]) == \
        (0, "Admin shut down from the engine")
    # Where Vdsm knows no reason (lost qemu), the record's message.
    stats = vmrun.down_stats(vdsm, vm)
    assert stats["exitMessage"] == guestagent.SHUTDOWN_MESSAGE + \
        " (exit code 0)"
    vmrun.wait(lambda: not os.path.exists(path), 5, "the socket's end")
    agent.stop()
    vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
    assert vmrun.containers_of(client, vm) == []
