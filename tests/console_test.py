"""The serial console of a container VM (console.py).

The unit tests make and remove the socket in private directories and
read the engines' multiplexed stream.  The integration tests run the real
flow on both engines: a VM with Engine's serial console device (tests/
domains.py add_serial_console) started through the installed hooks as
vdsm, its placeholder run by libvirt, the watcher as root; and a client
that connects as ovirt-vmconsole-host-shell does: as user ovirt-vmconsole,
after checking that it may read and write the socket, a plain AF_UNIX
stream whose bytes it copies both ways, its terminal in raw mode (Enter
is a CR).
"""

import grp
import json
import os
import pathlib
import shutil
import socket
import stat
import struct
import tempfile
import time

import pytest
from lxml import etree

import domains
import images
import libvirt
import vmconsole
import vmrun
from containerhooks import config
from containerhooks import console
from containerhooks import engine as engines
from containerhooks import paths
from containerhooks import state
from containerhooks import watcher as watchers
from vmrun import start

BASE = "no-nic-in.xml"
MEMORY_MIB = 64
VMCONSOLE_USER = vmconsole.USER
VM_ID = "3c0f1d2e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
SERVE_TIMEOUT = vmconsole.SERVE_TIMEOUT


# The engines' stream

def frame(kind, data):
    return struct.pack(">BxxxI", kind, len(data)) + data


@pytest.mark.parametrize("step", [
    pytest.param(1, id="byte-by-byte"),
    pytest.param(5, id="splits-headers"),
    pytest.param(10 ** 6, id="whole"),
])
def test_demux(step):
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"x" * 300) \
        + frame(1, b"")
    d = console.Demux()
    out = b"".join(d.feed(data[i:i + step])
                   for i in range(0, len(data), step))
    assert out == b"out\nerr\n" + b"x" * 300


def test_demux_passes_a_long_frame_on_as_it_comes():
    d = console.Demux()
    assert d.feed(frame(1, b"abcdef")[:10]) == b"ab"
    assert d.feed(b"cdef" + frame(2, b"!")) == b"cdef!"


def test_crlf():
    assert console.crlf(b"a\nb\n") == b"a\r\nb\r\n"


# The socket

@pytest.fixture
def dirs(monkeypatch):
    """A private state directory (root's) and console directory (as
    vdsmd makes it: vdsm's, 0775), on one file system; short paths, as a
    socket's path is at most 107 bytes."""
    top = tempfile.mkdtemp(prefix="vhc-con-", dir="/tmp")
    run = os.path.join(top, "run")
    os.mkdir(run)
    vmconsole = os.path.join(top, "vmconsole")
    os.mkdir(vmconsole)
    os.chmod(vmconsole, 0o775)
    monkeypatch.setattr(paths, "STATE_DIR", run)
    monkeypatch.setattr(paths, "VMCONSOLE_DIR", vmconsole)
    yield pathlib.Path(vmconsole)
    shutil.rmtree(top)


def _gid():
    return grp.getgrnam(VMCONSOLE_USER).gr_gid


def test_socket_root_group_vmconsole_0660(dirs):
    sock = console.make_socket(VM_ID, _gid())
    try:
        path = str(dirs / (VM_ID + ".sock"))
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert (st.st_uid, st.st_gid) == (0, _gid())
        assert stat.S_IMODE(st.st_mode) == 0o660
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.close()
        private = os.lstat(state.consoles_dir())
        assert stat.S_IMODE(private.st_mode) == 0o700
    finally:
        sock.close()
    console.remove_socket(VM_ID)
    assert os.listdir(str(dirs)) == []
    assert console.leftover_ids() == []


def test_socket_of_an_earlier_watcher_is_replaced(dirs):
    console.make_socket(VM_ID, _gid()).close()      # nobody listens now
    sock = console.make_socket(VM_ID, _gid())
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(dirs / (VM_ID + ".sock")))
        c.close()
    finally:
        sock.close()
        console.remove_socket(VM_ID)


@pytest.mark.parametrize("kind", ["file", "symlink", "socket"])
def test_foreign_file_is_never_replaced_nor_removed(dirs, tmp_path, kind):
    """What vdsm (the directory's owner) put there stays as it is: a
    file, a link to a file root would otherwise chown, a socket of
    someone else's."""
    path = dirs / (VM_ID + ".sock")
    target = tmp_path / "precious"
    target.write_text(u"keep me")
    os.chmod(str(target), 0o600)
    other = None
    if kind == "file":
        path.write_text(u"vdsm's")
    elif kind == "symlink":
        os.symlink(str(target), str(path))
    else:
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(path))
    before = os.lstat(str(path))
    with pytest.raises(console.Refused) as e:
        console.make_socket(VM_ID, _gid())
    assert "not a socket vdsm-hook-containers made" in str(e.value)
    console.remove_socket(VM_ID)
    after = os.lstat(str(path))
    assert (after.st_ino, after.st_mode, after.st_uid, after.st_gid) == \
        (before.st_ino, before.st_mode, before.st_uid, before.st_gid)
    st = os.stat(str(target))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    assert target.read_text() == u"keep me"
    if other is not None:
        other.close()


def test_no_group_no_console(monkeypatch):
    monkeypatch.setattr(paths, "VMCONSOLE_GROUP", "vhc-no-such-group")
    with pytest.raises(console.Refused) as e:
        console.console_gid()
    assert "no group vhc-no-such-group" in str(e.value)


def _record(**kw):
    fields = dict(vm_id=VM_ID, vm_name="web", engine="docker",
                  container_id="c" * 64, pid=1234, console=True, tty=True)
    fields.update(kw)
    return state.Record(**fields)


def test_server_follows_the_records(dirs):
    """Served once the record says the container runs, closed and removed
    when the record goes or says stopping; a VM without the console is
    never served."""
    state.ensure_dir()
    other = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    state.write(other, _record(vm_id=other, console=False))
    server = console.Server(state.read, None, None, None)
    path = str(dirs / (VM_ID + ".sock"))
    state.write(VM_ID, _record(pid=None))
    server.sync()
    assert not os.path.exists(path)
    state.write(VM_ID, _record())
    server.sync()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert os.listdir(str(dirs)) == [VM_ID + ".sock"]
    state.write(VM_ID, _record(stopping=True))
    server.sync()
    assert os.listdir(str(dirs)) == []
    state.write(VM_ID, _record())
    server.sync()
    state.remove(VM_ID)
    server.sync()
    assert os.listdir(str(dirs)) == []
    assert console.leftover_ids() == []


# The whole flow, on both engines

@pytest.fixture
def console_vm(engine, installation, libvirt_host, qemu_workdir,
               console_image):
    """Makes VMs of engine with Engine's serial console; whatever a test
    leaves of them (domain, container, state) is removed afterwards."""
    name, client = engine
    made = []

    def make(image=console_image):
        vm = domains.add_serial_console(domains.container_vm(
            name, image, base=BASE, memory_mib=MEMORY_MIB))
        made.append(vm)
        return vm
    yield make
    vmrun.discard(client, installation, made)
    for vm in made:
        # The watcher closes a console within a second of its record's end.
        path = socket_of(installation, vm)
        vmrun.wait(lambda: not os.path.lexists(path), 2,
                   "the end of " + path)


def socket_of(installation, vm):
    return os.path.join(installation.vmconsole_dir, vm.id + ".sock")


def power_off(vdsm, vm):
    """Engine's Power Off (vmrun.destroy), which no hook fails."""
    before, after = vmrun.destroy(vdsm, vm)
    assert before.errors == [] and after.errors == []


def test_console(vdsm, installation, engine, watcher, console_vm,
                 libvirt_host, qemu_workdir):
    """Engine's serial console on a container VM: the placeholder's console
    is a pty, the watcher serves the socket (root, group ovirt-vmconsole,
    0660) to a client as ovirt-vmconsole-host-shell, which sees what the
    application printed before, types into it and sees its answer; one
    connection at a time; Power Off removes the socket."""
    name, client = engine
    vm = console_vm()
    started = time.time()
    live = etree.fromstring(start(vdsm, vm, libvirt_host, qemu_workdir)
                            .encode("utf-8"))
    for tag in ("console", "serial"):
        devices = live.findall("devices/" + tag)
        assert [d.get("type") for d in devices] == ["pty"], tag
        assert "ovirt-vmconsole" not in etree.tostring(devices[0]).decode()

    c = client.containers.get("ovirt-vm-" + vm.id)
    assert c.attrs["Config"]["Tty"] and c.attrs["Config"]["OpenStdin"]
    path = socket_of(installation, vm)
    vmconsole.wait_served(path)
    served = time.time() - started
    print("console %s: served %.2f s after Engine's Run (the hook, the "
          "domain's start)" % (name, served))
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
        (0, _gid(), 0o660)

    # What the application printed before anyone connected, then live.
    deadline = time.time() + 10
    while images.CONSOLE_READY.encode() not in c.logs():
        assert time.time() < deadline, c.logs()
        time.sleep(0.05)
    con = vmconsole.Client(path)
    try:
        con.expect(b"[the last lines of the container's output]")
        con.expect(images.CONSOLE_READY.encode())
        con.expect(b"what you type goes to it")
        typed = time.time()
        con.send(b"hello console\r")
        con.expect(b"you said <hello console>")
        print("console %s: answer %.3f s after typing" % (
            name, time.time() - typed))

        # One connection at a time, as qemu's socket.
        second = vmconsole.Client(path)
        second.expect(b"in use by another connection")
        assert second.ended() == 0
        con.send(b"still here\r")
        con.expect(b"you said <still here>")
    except AssertionError:
        print("\n".join(l for l in installation.read_log().splitlines()
                        if "console" in l or "Traceback" in l or "Error" in l))
        raise
    finally:
        con.close()

    # A client that is not in group ovirt-vmconsole may not.
    assert vmconsole.Client(path, user="vdsm").ended() == 3

    power_off(vdsm, vm)
    assert not os.path.lexists(path)
    assert vmrun.containers_of(client, vm) == []


def test_foreign_file_at_the_socket_path(vdsm, installation, watcher,
                                         docker_client, console_image):
    """vdsm owns the console directory: a file there at the VM's socket
    name that the package did not make is neither replaced nor removed,
    the console is not served, and the log says why.  (The same on both
    engines: on Docker only; no domain, the hooks alone.)"""
    vm = domains.add_serial_console(domains.container_vm(
        "docker", console_image, base=BASE, memory_mib=MEMORY_MIB))
    path = socket_of(installation, vm)
    with open(path, "w") as f:
        f.write("vdsm's own file")
    os.chown(path, 36, -1)
    before = os.lstat(path)
    try:
        result = vmrun.start_hook(vdsm, vm)
        wanted = "vm_id=%s the serial console is not served: %s exists " \
            "and is not a socket vdsm-hook-containers made" % (vm.id, path)
        vmrun.wait(lambda: wanted in installation.read_log(), SERVE_TIMEOUT,
                   "the refusal in the log")
        for r in vmrun.power_off(vdsm, vm, result.data):
            assert r.errors == []
        after = os.lstat(path)
        assert (after.st_ino, after.st_uid, after.st_mode) == \
            (before.st_ino, before.st_uid, before.st_mode)
        with open(path) as f:
            assert f.read() == "vdsm's own file"
    finally:
        os.unlink(path)
        assert vmrun.remove_managed(docker_client, [vm.id]) == []


def test_exec_shell(vdsm, installation, fresh_conf, engine, watcher,
                    console_vm):
    """console_exec_shell: the container gets no terminal, and each
    connection a shell in the container (as the container's user), which
    ends with the connection.  (No domain: the hooks alone.)"""
    name, client = engine
    fresh_conf.configure(console_exec_shell="true")
    vm = console_vm()
    result = vmrun.start_hook(vdsm, vm)
    c = client.containers.get("ovirt-vm-" + vm.id)
    assert not c.attrs["Config"]["Tty"]
    path = socket_of(installation, vm)
    vmconsole.wait_served(path)
    con = vmconsole.Client(path)
    try:
        con.expect(b"a shell in the container")
        con.send(b"echo shell-$((6*7)) $(id -u)\r")
        con.expect(b"shell-42 0")
    finally:
        con.close()
    deadline = time.time() + 10
    while True:
        shells = [p for p in c.top()["Processes"] if p[-1] == "/bin/sh"]
        if not shells:
            break
        assert time.time() < deadline, "the shell still runs: %s" % shells
        time.sleep(0.1)
    for r in vmrun.power_off(vdsm, vm, result.data):
        assert r.errors == []
    assert not os.path.lexists(path)


def test_podman_attach_reinitialises_an_ended_container(
        vdsm, installation, exiting_images, podman_client, monkeypatch):
    """Why the console attaches only to a running container and the
    watcher takes a "created" container that ran for ended: Podman 4.3's
    compat API re-initialises an exited container on attach (exit code 0,
    state "created").  The watcher still takes it for ended, saying the
    exit code is unknown.  (No domain: the watcher's record of the end is
    what counts here.)"""
    vm = domains.add_serial_console(domains.container_vm(
        "podman", exiting_images["exit3"], base=BASE, memory_mib=MEMORY_MIB))
    result = None
    try:
        result = vmrun.start_hook(vdsm, vm)
        c = podman_client.containers.get("ovirt-vm-" + vm.id)
        c.exec_run(["touch", images.EXIT_TRIGGER])
        assert vmrun.wait_exited(c)["ExitCode"] == 3
        eng = engines.Engine.connect("podman", "/run/podman/podman.sock", 30)
        stream = eng.attach(c.id, stdin=False)
        stream.sock.close()
        c.reload()
        assert (c.attrs["State"]["Status"], c.attrs["State"]["ExitCode"]) \
            == ("created", 0)
        # The watcher's handling of the end, in this process (a watcher
        # that starts takes seconds; the code is the same).
        monkeypatch.setattr(paths, "STATE_DIR", installation.state_dir)
        watchers.Watcher(config.load(installation.conf)).container_ended(
            eng, vm.id, c.id)
        exit_file = os.path.join(installation.state_dir, vm.id + state.EXIT)
        with open(exit_file) as f:
            record = json.load(f)
        assert record["message"].startswith(
            "container exited (exit code unknown")
    finally:
        if result is not None:
            vmrun.power_off(vdsm, vm, result.data)
        vmrun.discard(podman_client, installation, [vm])
