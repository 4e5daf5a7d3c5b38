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


def test_unexpected_error_is_one_line_and_logged(monkeypatch, capsys,
                                                 caplog):
    # The command's one error boundary: a bug is one line on stderr, exit
    # 1, and its traceback in the log, never on the admin's terminal.
    from containerhooks import cli

    def broken(args):
        raise KeyError("no-such-key")
    monkeypatch.setattr(cli, "engine_config", broken)
    rc = cli.main(["engine-config"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err == ("vdsm-containers: unexpected error: 'no-such-key' (the "
                   "traceback is in the host log)\n")
    [logged] = [r for r in caplog.records if r.exc_info]
    assert "engine-config failed" in logged.getMessage()
    assert logged.exc_info[0] is KeyError


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


# Secrets: "secret set" reads stdin, "list" shows names and keys; no value
# ever shows in an output, a message or the log.

CANARY = "S3cret-canary-value"


@pytest.fixture
def secrets_dir(installation):
    """The installation's secrets directory, removed after the test."""
    import shutil
    yield installation.secrets_dir
    shutil.rmtree(installation.secrets_dir, ignore_errors=True)


def _no_canary(installation, *outputs):
    for text in outputs + (installation.read_log(),):
        assert CANARY not in text


def test_secret_set_list_rm(installation, secrets_dir):
    from containerhooks import secrets
    variables = [
        ("POSTGRES_PASSWORD", CANARY + " with spaces=and equals # and hash"),
        ("UNICODE", u"p\u00e4ss \u65e5\u672c \U0001f511 " + CANARY),
        ("POSTGRES_USER", "app"),
    ]
    data = u"".join(u"%s=%s\n" % kv for kv in variables).encode("utf-8")
    rc, out, err = installation.run_cli("secret", "set", "pg", input=data)
    assert rc == 0, err
    path = os.path.join(secrets_dir, "pg.env")
    assert out == "wrote %s: POSTGRES_PASSWORD, UNICODE, POSTGRES_USER\n" \
        % path
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert os.stat(secrets_dir).st_mode & 0o7777 == 0o700
    # What the root helper will read.
    assert secrets.environment(["pg"], directory=secrets_dir) == variables

    installation.run_cli("secret", "set", "api", input=b"TOKEN=" +
                         CANARY.encode() + b"\n")
    rc, listed, err = installation.run_cli("secret", "list")
    assert rc == 0, err
    assert [l.split(None, 1) for l in listed.splitlines()] == [
        ["NAME", "KEYS"], ["api", "TOKEN"],
        ["pg", "POSTGRES_PASSWORD, UNICODE, POSTGRES_USER"]]
    rc, as_json, err = installation.run_cli("secret", "list", "--json")
    assert rc == 0, err
    assert [(s["name"], s["keys"]) for s in json.loads(as_json)] == [
        ("api", ["TOKEN"]),
        ("pg", ["POSTGRES_PASSWORD", "UNICODE", "POSTGRES_USER"])]

    rc, removed, err = installation.run_cli("secret", "rm", "pg")
    assert rc == 0, err
    assert not os.path.exists(path)
    rc, out, err = installation.run_cli("secret", "rm", "pg")
    assert rc == 1 and "there is no such secret" in err
    _no_canary(installation, out, listed, as_json, removed, err)


@pytest.mark.parametrize("args", [
    pytest.param(["pg", "POSTGRES_PASSWORD=" + CANARY], id="value-after"),
    pytest.param(["pg", "--password=" + CANARY], id="option-after"),
    pytest.param(["--password=" + CANARY, "pg"], id="option-before"),
    pytest.param(["pg", "--", CANARY], id="after-dashes"),
    pytest.param(["POSTGRES_PASSWORD=" + CANARY], id="value-as-name"),
    pytest.param(["pg=" + CANARY], id="name=value"),
])
def test_secret_set_never_takes_a_value_from_argv(installation, secrets_dir,
                                                  args):
    rc, out, err = installation.run_cli("secret", "set", *args,
                                        input=b"OTHER=1\n")
    assert rc in (1, 2)
    assert "standard input" in err and err.count("\n") == 1
    _no_canary(installation, out, err)
    assert not os.path.exists(secrets_dir) or os.listdir(secrets_dir) == []


def test_secret_set_refuses_a_bad_file_and_keeps_the_old(installation,
                                                         secrets_dir):
    rc, _, err = installation.run_cli("secret", "set", "pg",
                                      input=b"PW=old\n")
    assert rc == 0, err
    rc, out, err = installation.run_cli(
        "secret", "set", "pg", input=b"# db\nPW=" + CANARY.encode() +
        b"\nPW=" + CANARY.encode() + b"2\n")
    assert rc == 1
    assert err == "vdsm-containers: Secret pg (standard input): line 3 " \
        "sets PW again (line 2 set it first)\n"
    _no_canary(installation, out, err)
    with open(os.path.join(secrets_dir, "pg.env"), "rb") as f:
        assert f.read() == b"PW=old\n"
    assert os.listdir(secrets_dir) == ["pg.env"]


def test_secret_list_shows_an_unusable_file(installation, secrets_dir):
    installation.run_cli("secret", "set", "pg", input=b"PW=" +
                         CANARY.encode() + b"\n")
    path = os.path.join(secrets_dir, "pg.env")
    os.chmod(path, 0o644)
    rc, out, err = installation.run_cli("secret", "list")
    assert rc == 1
    assert "UNUSABLE" in out and "mode 0644): chmod 600 " + path in out
    rc, check, _ = installation.run_cli("check", "--json")
    [row] = [r for r in json.loads(check) if r["check"] == "secrets"]
    assert not row["ok"] and "mode 0644" in row["detail"]
    os.chmod(path, 0o600)
    rc, check, _ = installation.run_cli("check", "--json")
    [row] = [r for r in json.loads(check) if r["check"] == "secrets"]
    assert row["ok"] and row["detail"] == "1 in " + secrets_dir
    _no_canary(installation, out, err, check)


@pytest.mark.parametrize("args", [
    pytest.param(["set", "pg"], id="set"),
    pytest.param(["list"], id="list"),
    pytest.param(["rm", "pg"], id="rm"),
])
def test_secret_needs_root(installation, secrets_dir, args):
    rc, out, err = installation.run_cli("secret", *args, user="nobody",
                                        input=b"PW=x\n")
    assert rc == 1
    assert err == "vdsm-containers: 'vdsm-containers secret %s' must run " \
        "as root: secrets are root's files, and only root's are used\n" \
        % args[0]
    assert not os.path.exists(secrets_dir)
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
