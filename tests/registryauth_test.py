"""Private registries with the host's credentials (registryauth.py).

The unit tests read credentials files as the engines' login commands
write them.  The others pull from a real private registry (TLS with the
test's own CA, htpasswd: conftest private_registry) through the installed
hooks, on Docker and Podman, with the credentials the real "docker login"
and "podman login --authfile" stored (conftest logins); and look for the
password in every file the installation wrote.
"""

import base64
import json
import os

import pytest

from containerhooks import errors
from containerhooks import registryauth

import domains
import images
from conftest import PRIVATE_PASSWORD
from vdsm import HookError
from vmrun import power_off, start_hook as start


def write(tmp_path, data, mode=0o600, name="config.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.chmod(str(path), mode)
    return str(path)


def auth(user, password):
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# What the login commands write (docker login: "auths" keyed by the
# registry, Docker Hub as its v1 URL; podman login: the same format, and
# since Podman 4 per-namespace keys).
@pytest.mark.parametrize("data, expected", [
    pytest.param({}, [], id="empty"),
    pytest.param({"auths": {"registry.example.com:5000": {
        "auth": auth("u", "p")}}}, ["registry.example.com:5000"],
        id="docker-login"),
    pytest.param({"auths": {"https://index.docker.io/v1/": {
        "auth": auth("u", "p")}}}, ["docker.io"], id="docker-hub"),
    pytest.param({"auths": {"quay.io/team": {"auth": auth("u", "p")},
                            "quay.io": {"auth": auth("v", "q")}}},
                 ["quay.io"], id="podman-namespace"),
    pytest.param({"auths": {"a.example": {}}, "credHelpers": {
        "b.example": "ecr-login"}}, ["a.example", "b.example"],
        id="cred-helpers"),
    pytest.param({"credsStore": "pass"}, ["* (credsStore pass)"],
                 id="creds-store"),
])
def test_registries(tmp_path, data, expected):
    found = registryauth.read(write(tmp_path, data))
    assert registryauth.registries(found) == expected
    assert PRIVATE_PASSWORD not in repr(registryauth.registries(found))


def test_missing_file_means_no_credentials(tmp_path):
    assert registryauth.read(str(tmp_path / "none.json")) == {}


@pytest.mark.parametrize("mode, owner, message", [
    pytest.param(0o620, 0, "not a file only root can write", id="group-w"),
    pytest.param(0o602, 0, "not a file only root can write", id="other-w"),
    pytest.param(0o600, 36, "owner uid 36", id="vdsm-owned"),
])
def test_file_not_roots_refused(tmp_path, mode, owner, message):
    path = write(tmp_path, {"auths": {}}, mode=mode)
    os.chown(path, owner, -1)
    with pytest.raises(errors.CredentialsFileError) as e:
        registryauth.read(path, "docker_auth_file", "/etc/x.conf")
    assert message in str(e.value)
    assert "docker_auth_file in /etc/x.conf" in str(e.value)


@pytest.mark.parametrize("text, message", [
    pytest.param('{"auths": {"r": {"auth": "%s"' % PRIVATE_PASSWORD,
                 "not JSON", id="truncated"),
    pytest.param("[]", "not a JSON object", id="list"),
])
def test_bad_file_refused_without_quoting_it(tmp_path, text, message):
    with pytest.raises(errors.CredentialsFileError) as e:
        registryauth.read(write(tmp_path, text))
    assert message in str(e.value)
    assert PRIVATE_PASSWORD not in str(e.value)


@pytest.mark.parametrize("engine, path, expected", [
    pytest.param("docker", "/root/.docker/config.json",
                 "docker login r.example:5000", id="docker-default"),
    pytest.param("docker", "/etc/vhc/docker/config.json",
                 "docker --config /etc/vhc/docker login r.example:5000",
                 id="docker-config-dir"),
    pytest.param("podman", "/etc/containers/auth.json",
                 "podman login --authfile /etc/containers/auth.json "
                 "r.example:5000", id="podman"),
])
def test_login_command(engine, path, expected):
    assert registryauth.login_command(engine, "r.example:5000",
                                      path) == expected


# Through the hooks, from the private registry.

def files_with(root, secret):
    """The files under root whose bytes contain secret."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if secret.encode() in f.read():
                    found.append(path)
    return found


def secrets_in(installation, *texts):
    """Where the password (as is, or base64 in "user:password") shows:
    the installation's files (log, state, exit records, samples) and the
    texts given (a hook's stderr)."""
    user, password = "vhc-puller", PRIVATE_PASSWORD
    forms = (password, auth(user, password))
    return [f for form in forms for f in files_with(installation.root, form)] \
        + [t for t in texts for form in forms if form in t]


def test_pull_with_host_credentials(vdsm, installation, engine, logins,
                                    private_registry):
    name, client = engine
    image = private_registry.image()
    images.remove_local(client, image)
    logins.login(name, private_registry.address,
                 *private_registry.credentials)
    vm = domains.container_vm(name, image)

    result = start(vdsm, vm)

    try:
        c = client.containers.get("ovirt-vm-" + vm.id)
        assert c.status == "running"
        assert client.images.get(image).id == c.image.id
        assert "pull %s" % image in installation.read_log()
        # What runs is what the registry serves under the tag.
        assert installation.record(vm.id)["image_digest"] == \
            private_registry.manifest_digest(
                "vhc-tests/busybox-httpd", "1",
                private_registry.credentials[0])
    finally:
        power_off(vdsm, vm, result.data)
    assert secrets_in(installation) == []


@pytest.mark.parametrize("password, problem", [
    pytest.param(None, "asks for credentials and this host has none for it",
                 id="missing"),
    pytest.param("wrong-password", "refused the credentials this host has "
                 "for it", id="wrong"),
])
def test_start_refused_without_right_credentials(
        vdsm, installation, engine, logins, private_registry, password,
        problem):
    name, client = engine
    image = private_registry.image()
    images.remove_local(client, image)
    if password is not None:
        # The login commands check the password first: the file is
        # written as a login whose password changed since.
        logins.login(name, private_registry.address,
                     *private_registry.credentials)
        path = logins.path(name)
        with open(path) as f:
            data = json.load(f)
        data["auths"][private_registry.address]["auth"] = auth(
            private_registry.credentials[0], password)
        with open(path, "w") as f:
            json.dump(data, f)
    vm = domains.container_vm(name, image)

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    print("\n%s, %s credentials: %s" % (name, "wrong" if password
                                        else "no", err))
    assert err.count("\n") == 1
    fix = registryauth.login_command(name, private_registry.address,
                                     logins.path(name))
    assert err.startswith("Image %s could not be pulled: registry %s %s in "
                          "%s (" % (image, private_registry.address, problem,
                                    logins.path(name))), err
    assert "Log in to %s on this host%s: '%s'" % (
        private_registry.address, " again with the right user and password"
        if password else "", fix) in err
    assert e.value.result.data == vm.xml
    power_off(vdsm, vm, e.value.result.data)
    assert secrets_in(installation, err) == []
    if password is not None:
        assert password not in err


def test_check_names_registries_only(installation, logins, private_registry):
    logins.login("podman", private_registry.address,
                 *private_registry.credentials)

    rc, out, err = installation.run_cli("check", "--json")

    found = dict((r["check"], r) for r in json.loads(out))
    assert found["credentials podman"]["ok"]
    assert found["credentials podman"]["detail"] == "%s: %s" % (
        logins.podman, private_registry.address)
    assert found["credentials docker"]["detail"].startswith(
        "%s: none (public registries only; to add one: docker --config %s "
        "login REGISTRY)" % (logins.docker, os.path.dirname(logins.docker)))
    assert PRIVATE_PASSWORD not in out + err
