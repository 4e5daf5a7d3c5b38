"""The helper service (containerhooks/helperd.py) with real engines.

The service runs as root, as its systemd unit does, from an installation
that has NO sudoers rule: a hook that succeeds can only have gone through
the service.  The hooks run as the vdsm user, as Vdsm runs them.
"""

import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

import domains
import images
import install
import vdsm as vdsm_module
import vmrun
from vdsm import HookError
from vmrun import power_off

@pytest.fixture(scope="module")
def bare(services):
    """An installation without the sudoers rule."""
    inst = install.Installation().install(sudo=False)
    yield inst
    inst.remove()


@pytest.fixture
def helperd(bare):
    proc = bare.start_helperd()
    yield proc
    bare.stop_helperd(proc)


@pytest.fixture
def hooks(bare, registry_image):
    """Vdsm running the bare installation's hooks as vdsm; every container
    of the VMs started through it is removed afterwards."""
    if not install.vdsm_user_exists():
        pytest.fail("no vdsm user: run dev/setup", pytrace=False)
    runner = vdsm_module.Vdsm(bare.hooks_dir, user="vdsm")
    runner.vms = []
    yield runner
    import docker
    for name, sock in (("docker", "/var/run/docker.sock"),
                       ("podman", "/run/podman/podman.sock")):
        client = docker.DockerClient(base_url="unix://" + sock,
                                     version="auto", timeout=60)
        vmrun.remove_managed(client, runner.vms)


def start(hooks, vm):
    hooks.vms.append(vm.id)     # removed after the test if still there
    return vmrun.start_hook(hooks, vm)


def served(bare, vm_id):
    """The helper commands the service ran for vm_id, from its log."""
    return re.findall(r"containerhooks\.helperd DEBUG pid \d+ \(uid (\d+)\) "
                      r"asks: \['(\w+)', '--vm-id(?:=|', ')%s" % vm_id,
                      bare.read_log())


def ask(path, payload, user=None, group=None):
    """Send payload (bytes) to the service as user:group; its answer."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect(sys.argv[1])\n"
        "try:\n"
        "    s.sendall(sys.stdin.buffer.read())\n"
        "    s.shutdown(socket.SHUT_WR)\n"
        "except BrokenPipeError:\n"
        "    pass   # answered (refused) before reading it all\n"
        "out = b''\n"
        "while True:\n"
        "    d = s.recv(65536)\n"
        "    if not d: break\n"
        "    out += d\n"
        "sys.stdout.buffer.write(out)\n")
    kw = {}
    if user is not None:
        kw = dict(user=user, group=group, extra_groups=[])
    p = subprocess.run(["/usr/bin/python3", "-c", code, path], input=payload,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120, **kw)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode())


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_vm_lifecycle_through_the_service_alone(bare, helperd, hooks, name,
                                                podman_client, docker_client):
    client = docker_client if name == "docker" else podman_client
    vm = domains.container_vm(name, images.IMAGE)

    result = start(hooks, vm)
    c = client.containers.get("ovirt-vm-" + vm.id)
    assert c.status == "running"
    hooks.run("after_vm_pause", result.data, vm_id=vm.id)
    c.reload()
    assert c.status == "paused"
    hooks.run("after_vm_cont", result.data, vm_id=vm.id)
    c.reload()
    assert c.status == "running"
    power_off(hooks, vm, result.data)

    assert vmrun.containers_of(client, vm) == []
    assert not [n for n in os.listdir(bare.state_dir) if n.startswith(vm.id)]
    vdsm_uid = str(pwd.getpwnam("vdsm").pw_uid)
    # (Both destroy hooks stop: the second finds nothing, quietly.)
    assert served(bare, vm.id) == [(vdsm_uid, "start"), (vdsm_uid, "pause"),
                                   (vdsm_uid, "unpause"), (vdsm_uid, "stop"),
                                   (vdsm_uid, "stop")]


def test_without_service_or_sudoers_the_start_fails_clearly(bare, hooks):
    # The control for the test above: this installation has no sudoers
    # rule, so without the service the hook cannot reach the helper.
    vm = domains.container_vm("docker", images.IMAGE)
    with pytest.raises(HookError) as e:
        start(hooks, vm)
    assert "sudo refused to run" in e.value.err.decode()
    assert not [n for n in os.listdir(bare.state_dir) if n.startswith(vm.id)]


def test_socket_is_for_root_and_vdsm_group_only(bare, helperd):
    st = os.stat(bare.helper_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == 0
    assert st.st_gid == pwd.getpwnam("vdsm").pw_gid


def test_other_users_refused_even_with_the_group(bare, helperd):
    # nobody, given vdsm's group: the socket's mode lets it connect, the
    # peer credentials check refuses it.
    nobody = pwd.getpwnam("nobody").pw_uid
    gid = pwd.getpwnam("vdsm").pw_gid
    vm_id = "6f1b2c3d-0000-4000-8000-000000000001"
    answer = ask(bare.helper_socket, json.dumps({"argv": [
        "stop", "--vm-id", vm_id]}).encode(), user=nobody, group=gid)
    assert answer["rc"] == 1
    assert "serves root and vdsm only" in answer["err"]
    assert served(bare, vm_id) == []


@pytest.mark.parametrize("payload, message", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'["start"]', '"argv" list'),
    (b'{"argv": "start --vm-id x"}', '"argv" list'),
    (b'{"argv": ["stop", 1]}', '"argv" list'),
    (b'{"argv": ["--help"]}', ""),
    (b'{"argv": ["mount", "/etc"]}', "invalid choice"),
    (b'{"argv": ["stop", "--vm-id", "../../etc/passwd"]}', "vm"),
    (b'{"argv": ["start", "--vm-id=6f1b2c3d-0000-4000-8000-000000000002", '
     b'"--vm-name=x", "--engine=docker", "--image=busybox; rm -rf /", '
     b'"--memory-mib=64", "--vcpus=1"]}', "containerImage"),
], ids=["text", "binary", "list", "string-argv", "number-in-argv", "help",
        "unknown-command", "traversal", "shell-in-image"])
def test_bad_requests_answered_and_service_goes_on(bare, helperd, payload,
                                                   message):
    answer = ask(bare.helper_socket, payload)
    if message:
        assert answer["rc"] != 0
        assert message.lower() in (answer["err"] + answer["out"]).lower()
    else:
        assert answer["rc"] == 0 and "usage" in answer["out"]
    assert helperd.poll() is None
    # Still serving: a well-formed request gets the helper's answer.
    answer = ask(bare.helper_socket, json.dumps({"argv": [
        "stop", "--vm-id", "6f1b2c3d-0000-4000-8000-000000000003"]}).encode())
    assert answer["rc"] == 0, answer
    assert json.loads(answer["out"])["stopped"] is None


def test_oversized_request_refused(bare, helperd):
    answer = ask(bare.helper_socket,
                 b'{"argv": ["' + b"x" * (2 * 1024 * 1024) + b'"]}')
    assert answer["rc"] == 2 and "larger than" in answer["err"]


def test_stopped_service_removes_its_socket(bare):
    proc = bare.start_helperd()
    bare.stop_helperd(proc)
    assert proc.returncode == 0
    assert not os.path.exists(bare.helper_socket)


def test_stale_socket_falls_back_to_sudo(installation, vdsm, docker_client):
    # A socket file nobody listens on (a service killed with SIGKILL):
    # the hook goes through sudo, as if there were no service.
    if not os.path.isdir(installation.state_dir):
        os.makedirs(installation.state_dir, 0o755)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(installation.helper_socket)
    stale.close()
    try:
        vm = domains.container_vm("docker", images.IMAGE)
        result = vmrun.start_hook(vdsm, vm)
        assert docker_client.containers.get(
            "ovirt-vm-" + vm.id).status == "running"
        power_off(vdsm, vm, result.data)
        assert served(installation, vm.id) == []
    finally:
        os.unlink(installation.helper_socket)


def test_second_service_refuses_to_start(bare, helperd):
    p = subprocess.run([bare.helperd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 1
    assert b"another helper service" in p.stdout
    assert helperd.poll() is None
    assert os.path.exists(bare.helper_socket)


def test_sigterm_lets_a_start_in_progress_finish(bare, hooks, docker_client):
    proc = bare.start_helperd()
    vm = domains.container_vm("docker", images.IMAGE)
    outcome = {}

    def run():
        try:
            outcome["result"] = start(hooks, vm)
        except Exception as e:   # reported by the asserts below
            outcome["error"] = e
    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.time() + 60
        while not served(bare, vm.id) and time.time() < deadline:
            time.sleep(0.005)
        assert served(bare, vm.id), "the service never got the start"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert not os.path.exists(bare.helper_socket)
    finally:
        thread.join(120)
        bare.stop_helperd(proc)
    assert "error" not in outcome, outcome.get("error")
    assert docker_client.containers.get(
        "ovirt-vm-" + vm.id).status == "running"
    helperd = bare.start_helperd()
    try:
        power_off(hooks, vm, outcome["result"].data)
    finally:
        bare.stop_helperd(helperd)


def test_four_starts_at_once(bare, helperd, hooks, docker_client):
    vms = [domains.container_vm("docker", images.IMAGE) for _ in range(4)]
    results, errors = {}, []

    def run(vm):
        try:
            results[vm.id] = start(hooks, vm)
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=run, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    for vm in vms:
        assert docker_client.containers.get(
            "ovirt-vm-" + vm.id).status == "running"
        power_off(hooks, vm, results[vm.id].data)



def test_trickling_client_cut_off_at_the_deadline(bare, helperd):
    # One byte a second never lets a recv() wait 10 s: the deadline is the
    # whole request's, so the answer comes at REQUEST_TIMEOUT, while the
    # client is still sending.
    from containerhooks import helperd as service
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(bare.helper_socket)
    began = time.time()
    try:
        s.settimeout(1.0)
        answer = b""
        sending = True
        while time.time() < began + 3 * service.REQUEST_TIMEOUT:
            if sending:
                try:
                    s.send(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    sending = False     # the service stopped reading
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            answer += data
        took = time.time() - began
    finally:
        s.close()
    assert answer, "no answer within %ds" % (3 * service.REQUEST_TIMEOUT)
    reply = json.loads(answer.decode())
    assert reply["rc"] == 2
    assert "no complete request within" in reply["err"]
    assert service.REQUEST_TIMEOUT <= took < service.REQUEST_TIMEOUT + 3
    assert helperd.poll() is None


def test_busy_service_refuses_at_once(bare, helperd, hooks):
    # Every child busy (here: waiting for requests that never come): one
    # more request gets a clear refusal within seconds, not a place in the
    # listen queue until a child ends (Vdsm waits for a hook forever).
    from containerhooks import helperd as service
    vm = domains.container_vm("docker", images.IMAGE)
    idle = []
    try:
        for _ in range(service.MAX_CHILDREN):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(bare.helper_socket)
            idle.append(s)
        time.sleep(1.5)     # the service has accepted and forked them all
        began = time.time()
        with pytest.raises(HookError) as e:
            start(hooks, vm)
        hook_took = time.time() - began
        began = time.time()
        answer = ask(bare.helper_socket, json.dumps({"argv": [
            "stop", "--vm-id", "6f1b2c3d-0000-4000-8000-000000000004"]})
            .encode())
        took = time.time() - began
    finally:
        for s in idle:
            s.close()
    # What Engine shows: the service's own words.
    assert e.value.err.decode().startswith("containers-helperd: busy: all "
                                           "32 request slots are in use")
    assert hook_took < 5, "the hook was refused after %.1f s" % hook_took
    assert answer["rc"] != 0
    assert "busy" in answer["err"] and str(service.MAX_CHILDREN) in \
        answer["err"]
    assert took < 3, "refused after %.1f s" % took
    assert helperd.poll() is None
    # The idle clients gone, it serves again.
    deadline = time.time() + service.REQUEST_TIMEOUT + 5
    while True:
        answer = ask(bare.helper_socket, json.dumps({"argv": [
            "stop", "--vm-id", "6f1b2c3d-0000-4000-8000-000000000004"]})
            .encode())
        if answer["rc"] == 0 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert answer["rc"] == 0, answer
