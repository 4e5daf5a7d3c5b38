"""vdsm-containers, the installed admin command, run as root on a host."""

import json
import os
import subprocess

import docker
import pytest

import conftest
import images
from conftest import PRIVATE_PASSWORD


@pytest.fixture
def bridge():
    """A Linux bridge with no address, removed afterwards with the
    engines' networks on it."""
    name = "vhccli0"
    subprocess.check_call(["ip", "link", "add", name, "type", "bridge"])
    yield name
    for engine in ("docker", "podman"):
        for n in conftest._client(engine).networks.list(
                names=["ovirt-" + name]):
            n.remove()
    subprocess.call(["ip", "link", "del", name])


def test_setup_net_writes_shows_and_creates(installation, bridge):
    rc, out, err = installation.run_cli(
        "setup-net", bridge, "--subnet", "10.241.0.0/24", "--gateway",
        "10.241.0.1", "--ip-range", "10.241.0.64/26", "--create")
    assert rc == 0, err
    path = os.path.join(installation.networks_dir, bridge + ".conf")
    try:
        assert "wrote " + path in out
        for engine in ("docker", "podman"):
            nets = conftest._client(engine).networks.list(
                names=["ovirt-" + bridge])
            assert [n.attrs["Driver"] for n in nets] == ["macvlan"]

        rc, out, err = installation.run_cli("setup-net", "--json")
        assert rc == 0
        assert {"bridge": bridge, "subnet": "10.241.0.0/24",
                "gateway": "10.241.0.1",
                "ip_range": "10.241.0.64/26"} in json.loads(out)
        rc, out, _ = installation.run_cli("setup-net")
        assert bridge in out and "10.241.0.64/26" in out
    finally:
        os.unlink(path)


@pytest.mark.parametrize("args, message", [
    pytest.param(["--subnet", "10.0.0.0/24", "--gateway", "10.0.1.1",
                  "--ip-range", "10.0.0.64/26"],
                 "gateway 10.0.1.1 is not in subnet", id="gateway-outside"),
    pytest.param(["--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1",
                  "--ip-range", "10.0.1.0/26"],
                 "ip_range 10.0.1.0/26 is not inside subnet", id="range-out"),
    pytest.param(["--subnet", "10.0.0.1/24", "--gateway", "10.0.0.1",
                  "--ip-range", "10.0.0.64/26"],
                 "host bits set", id="host-bits"),
    pytest.param(["--subnet", "10.0.0.0/24"], "needs --gateway, --ip-range",
                 id="missing"),
])
def test_setup_net_refuses_bad_values(installation, args, message):
    rc, out, err = installation.run_cli("setup-net", "vhcbad0", *args)
    assert rc == 1
    assert message in err and err.count("\n") == 1
    assert not os.path.exists(os.path.join(installation.networks_dir,
                                           "vhcbad0.conf"))


def _tree(top):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(top)
                  for f in files)


@pytest.mark.parametrize("bridge", [
    pytest.param("../../escape", id="traversal"),
    pytest.param("/tmp/vhc-escape", id="absolute"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/b", id="slash"),
    pytest.param("br 0", id="space"),
    pytest.param("vhc-name-too-long", id="too-long"),
    pytest.param("", id="empty"),
])
def test_setup_net_refuses_a_bad_bridge_name(installation, bridge):
    # The bridge name becomes a file name in networks.d: anything that is
    # no Linux bridge name is refused before any path is made of it.
    before = _tree(installation.root)
    rc, out, err = installation.run_cli(
        "setup-net", bridge, "--subnet", "10.0.0.0/24", "--gateway",
        "10.0.0.1", "--ip-range", "10.0.0.64/26")
    assert rc == 1
    assert "is not a Linux bridge name" in err and err.count("\n") == 1
    assert _tree(installation.root) == before
    assert not os.path.exists("/tmp/vhc-escape.conf")


def test_not_root_is_one_clear_line(installation):
    rc, out, err = installation.run_cli(
        "setup-net", "vhcuser0", "--subnet", "10.0.0.0/24", "--gateway",
        "10.0.0.1", "--ip-range", "10.0.0.64/26", user="nobody")
    assert rc == 1
    assert "Traceback" not in err and err.count("\n") == 1
    assert "(run it as root)" in err


def test_version_is_the_rpm_version(installation):
    import re
    with open(os.path.join(conftest.TOP, "vdsm-hook-containers.spec")) as f:
        version = re.search(r"^Version:\s*(\S+)$", f.read(), re.M).group(1)
    rc, out, err = installation.run_cli("--version")
    assert rc == 0, err
    assert out.split() == ["vdsm-containers", version]


def test_ps_with_an_engine_down_lists_and_fails(fresh_conf, tmp_path):
    # An engine that does not answer: the VMs are still listed (state
    # unknown), the engine is named on stderr, and the exit code says the
    # list is incomplete.
    import uuid
    installation = fresh_conf
    installation.configure(podman_socket=str(tmp_path / "down.sock"))
    vm_id = str(uuid.uuid4())
    if not os.path.isdir(installation.state_dir):
        os.makedirs(installation.state_dir)
    path = os.path.join(installation.state_dir, vm_id + ".json")
    with open(path, "w") as f:
        json.dump({"vm_id": vm_id, "vm_name": "down-vm", "engine": "podman",
                   "image": "img", "container_name": "c"}, f)
    try:
        rc, out, err = installation.run_cli("ps", "--json")
    finally:
        os.unlink(path)
    assert rc == 1
    assert [r["state"] for r in json.loads(out)
            if r["vm_id"] == vm_id] == ["unknown (engine down)"]
    assert "podman is not reachable" in err and err.count("\n") == 1


def test_pull_shows_progress_and_digest(installation, engine, logins,
                                        private_registry):
    name, client = engine
    image = private_registry.image()
    images.remove_local(client, image)
    logins.login(name, private_registry.address,
                 *private_registry.credentials)

    rc, out, err = installation.run_cli("pull", "--engine", name, image)

    print("\n" + out)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    digest = private_registry.manifest_digest(
        "vhc-tests/busybox-httpd", "1", private_registry.credentials[0])
    assert lines[0] == "%s: pulling %s" % (name, image)
    assert lines[-1] == "%s: %s is %s@%s" % (
        name, image, image.rsplit(":", 1)[0], digest)
    # The engine's messages in between: at least the layer's.
    progress = lines[1:-1]
    assert progress and all(l.startswith(name + ": ") for l in progress)
    client.images.get(image)
    assert PRIVATE_PASSWORD not in out


def test_pull_refused_by_policy(fresh_conf, engine):
    name, client = engine
    images.remove_local(client)
    fresh_conf.configure(allowed_images="registry.example.com/*")

    rc, out, err = fresh_conf.run_cli("pull", images.IMAGE)

    assert rc == 1
    assert err.startswith("vdsm-containers: Image %s is refused by this "
                          "host's image policy (allowed_images in %s)"
                          % (images.IMAGE, fresh_conf.conf))
    with pytest.raises(docker.errors.NotFound):
        client.images.get(images.IMAGE)


def test_pull_without_credentials(installation, logins, private_registry):
    image = private_registry.image()

    rc, out, err = installation.run_cli("pull", image)

    # Each engine of engines= is tried and says why not.
    assert rc == 1
    for name in ("docker", "podman"):
        assert "vdsm-containers: %s: Image %s could not be pulled: registry " \
            "%s asks for credentials and this host has none for it in %s" % (
                name, image, private_registry.address,
                logins.path(name)) in err
