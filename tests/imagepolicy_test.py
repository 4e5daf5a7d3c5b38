"""The host's image policy (imagepolicy.py): allowed_images,
require_digest, pull_policy.

The tables check the grammar and the decisions; the others start VMs
through the installed hooks on both engines and look at what the engine
pulled and runs, and run the root helper directly, as a caller that
skipped the hook's check would.
"""

import subprocess
import uuid

import pytest

from containerhooks import config
from containerhooks import errors
from containerhooks import imagepolicy
from containerhooks import imageref

import domains
import images
import registries
from vdsm import HookError
from vmrun import power_off, start_hook as start


@pytest.mark.parametrize("value, expected", [
    pytest.param("", (), id="empty"),
    pytest.param("registry.example.com/*", ("registry.example.com/*",),
                 id="registry"),
    pytest.param("127.0.0.1:5000/vhc-tests/*, docker.io/library/redis",
                 ("127.0.0.1:5000/vhc-tests/*", "docker.io/library/redis"),
                 id="two"),
    pytest.param("a.example/x a.example/x", ("a.example/x",), id="twice"),
])
def test_patterns(value, expected):
    assert imagepolicy.parse_patterns(value) == expected


@pytest.mark.parametrize("value", [
    pytest.param("*", id="star"),
    pytest.param("registry.example.com", id="no-path"),
    pytest.param("registry.example.*/app", id="star-in-registry"),
    pytest.param("*/library/redis", id="any-registry"),
    pytest.param("a.example//app", id="empty-component"),
    pytest.param("a.example/App", id="uppercase-path"),
    pytest.param("https://a.example/app", id="scheme"),
])
def test_bad_patterns(value):
    with pytest.raises(ValueError):
        imagepolicy.parse_patterns(value)


@pytest.mark.parametrize("image, name", [
    pytest.param("redis", "docker.io/library/redis", id="official"),
    pytest.param("team/app:1", "docker.io/team/app", id="hub-user"),
    pytest.param("index.docker.io/team/app", "docker.io/team/app",
                 id="hub-index"),
    pytest.param("Registry.Example.com:5000/a/b@sha256:" + "0" * 64,
                 "registry.example.com:5000/a/b", id="registry-case"),
])
def test_full_name(image, name):
    assert imagepolicy.full_name(imageref.parse(image)) == name


@pytest.mark.parametrize("pattern, name, expected", [
    pytest.param("registry.example.com/*", "registry.example.com/a/b/c",
                 True, id="star-spans-slashes"),
    pytest.param("registry.example.com/*", "registry.example.com.evil.io/a",
                 False, id="registry-suffix"),
    pytest.param("registry.example.com/*", "registry.example.com:5000/a",
                 False, id="other-port"),
    pytest.param("REGISTRY.example.com/team/*", "registry.example.com/team/a",
                 True, id="registry-case"),
    pytest.param("registry.example.com/team/*", "registry.example.com/teams",
                 False, id="prefix-not-component"),
    pytest.param("docker.io/library/redis", "docker.io/library/redis", True,
                 id="exact"),
    pytest.param("docker.io/library/redis", "docker.io/library/redis-x",
                 False, id="exact-longer"),
    pytest.param("a.example/app.v1", "a.example/appxv1", False,
                 id="dot-is-literal"),
])
def test_matches(pattern, name, expected):
    assert imagepolicy.matches(pattern, name) is expected


DIGEST = "@sha256:" + "a" * 64


def conf_of(tmp_path, **options):
    path = tmp_path / "containers.conf"
    path.write_text("[containers]\n" + "".join(
        "%s = %s\n" % item for item in options.items()))
    return config.load(str(path))


@pytest.mark.parametrize("options, image, refused", [
    pytest.param({}, "anything/at:all", None, id="default-off"),
    pytest.param({"allowed_images": "127.0.0.1:5000/vhc-tests/*"},
                 "127.0.0.1:5000/vhc-tests/a:1", None, id="allowed"),
    pytest.param({"allowed_images": "127.0.0.1:5000/vhc-tests/*"},
                 "127.0.0.1:5000/other/a:1", "allowed_images",
                 id="not-allowed"),
    pytest.param({"allowed_images": "docker.io/library/*"}, "redis",
                 None, id="official-short-name"),
    pytest.param({"require_digest": "true"}, "r.example/a:1",
                 "require_digest = true", id="tag-refused"),
    pytest.param({"require_digest": "true"}, "r.example/a:1" + DIGEST,
                 None, id="digest"),
    pytest.param({"require_digest": "true", "allowed_images": "q.example/*"},
                 "r.example/a" + DIGEST, "allowed_images",
                 id="digest-not-allowed"),
])
def test_check(tmp_path, options, image, refused):
    conf = conf_of(tmp_path, **options)
    if refused is None:
        imagepolicy.check(imageref.parse(image), conf)
        return
    with pytest.raises(errors.ImageRefused) as e:
        imagepolicy.check(imageref.parse(image), conf)
    assert "(%s in %s)" % (refused, conf.path) in str(e.value)


@pytest.mark.parametrize("options, refused", [
    pytest.param({}, None, id="default-off"),
    pytest.param({"pull_policy": "never"}, None, id="pull-policy-never"),
    pytest.param({"require_digest": "true"}, "require_digest = true",
                 id="require-digest"),
    pytest.param({"allowed_images": "docker.io/*"}, "allowed_images",
                 id="allowed-images"),
])
def test_check_disk_image(tmp_path, options, refused):
    # containerImage=disk:vdb: from no registry, pinned by nothing.
    conf = conf_of(tmp_path, **options)
    image = imageref.DiskImage(disk="vdb")
    if refused is None:
        imagepolicy.check(image, conf)
        return
    with pytest.raises(errors.ImageRefused) as e:
        imagepolicy.check(image, conf)
    assert str(e.value).startswith("Image disk:vdb is refused by this "
                                   "host's image policy (%s in %s): an image "
                                   "from a VM disk" % (refused, conf.path))


@pytest.mark.parametrize("policy, image, present, pull", [
    pytest.param("missing", "a/b:1", False, True, id="missing-absent"),
    pytest.param("missing", "a/b:1", True, False, id="missing-present"),
    pytest.param("always", "a/b:1", True, True, id="always-present"),
    pytest.param("always", "a/b:1", False, True, id="always-absent"),
    pytest.param("always", "a/b" + DIGEST, True, False,
                 id="always-digest-present"),
    pytest.param("never", "a/b:1", True, False, id="never-present"),
])
def test_must_pull(policy, image, present, pull):
    assert imagepolicy.must_pull(policy, "x", imageref.parse(image), present,
                                 "docker") is pull


def test_never_refuses_absent():
    with pytest.raises(errors.ImageAbsent) as e:
        imagepolicy.must_pull("never", "pull_policy in /c", imageref.parse(
            "a/b:1"), False, "podman")
    assert str(e.value) == (
        "Image a/b:1 is not on this host and the pull policy is never "
        "(pull_policy in /c): pre-pull it on this host with 'vdsm-containers "
        "pull --engine podman a/b:1', or let the start pull it")


@pytest.mark.parametrize("text", [
    pytest.param("pull_policy = sometimes", id="bad-pull-policy"),
    pytest.param("allowed_images = *", id="bad-pattern"),
    pytest.param("require_digest = maybe", id="bad-bool"),
])
def test_bad_config(tmp_path, text):
    path = tmp_path / "containers.conf"
    path.write_text("[containers]\n%s\n" % text)
    with pytest.raises(errors.ConfigError) as e:
        config.load(str(path))
    assert text.split()[0] in str(e.value)


# Through the hooks

def refusal(vdsm, vm):
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    power_off(vdsm, vm, e.value.result.data)
    err = e.value.err.decode("utf-8")
    assert err.count("\n") == 1
    return err.strip()


def has_image(client, image):
    import docker
    try:
        client.images.get(image)
        return True
    except docker.errors.NotFound:
        return False


def test_not_allowed_refused_before_pulling(vdsm, fresh_conf, engine):
    name, client = engine
    images.remove_local(client)
    fresh_conf.configure(allowed_images="registry.example.com/*")
    vm = domains.container_vm(name, images.IMAGE)

    err = refusal(vdsm, vm)

    assert err == (
        "Image %s is refused by this host's image policy (allowed_images in "
        "%s): %s matches none of registry.example.com/*; use an allowed "
        "image, or ask the host's admin to allow it"
        % (images.IMAGE, fresh_conf.conf, images.REPOSITORY))
    assert not has_image(client, images.IMAGE)


def test_helper_checks_again(fresh_conf, engine):
    # A caller that skips the hook's check: the helper refuses by itself.
    name, client = engine
    images.remove_local(client)
    fresh_conf.configure(allowed_images="registry.example.com/*")
    vm_id = str(uuid.uuid4())

    p = subprocess.run(
        [fresh_conf.helper, "start", "--vm-id=" + vm_id, "--vm-name=x",
         "--engine=" + name, "--image=" + images.IMAGE, "--memory-mib=64",
         "--vcpus=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=120)

    assert p.returncode == 1
    assert p.stderr.decode().startswith(
        "Image %s is refused by this host's image policy (allowed_images"
        % images.IMAGE)
    assert not has_image(client, images.IMAGE)
    assert [n for n in fresh_conf.state_files() if vm_id in n] == []


def test_require_digest(vdsm, fresh_conf, engine):
    name, client = engine
    fresh_conf.configure(require_digest="true",
                         allowed_images="127.0.0.1:5000/vhc-tests/*")
    err = refusal(vdsm, domains.container_vm(name, images.IMAGE))
    assert "(require_digest = true in %s): only references pinned by " \
        "digest may run here" % fresh_conf.conf in err

    digest = registries.manifest_digest(
        images.REGISTRY, "vhc-tests/busybox-httpd", images.TAG)
    pinned = images.REPOSITORY + "@" + digest
    vm = domains.container_vm(name, pinned)
    result = start(vdsm, vm)
    try:
        c = client.containers.get("ovirt-vm-" + vm.id)
        assert c.status == "running"
    finally:
        power_off(vdsm, vm, result.data)


def test_pull_never(vdsm, fresh_conf, engine):
    name, client = engine
    images.remove_local(client)
    fresh_conf.configure(pull_policy="never")
    vm = domains.container_vm(name, images.IMAGE)

    err = refusal(vdsm, vm)

    assert err == (
        "Image %s is not on this host and the pull policy is never "
        "(pull_policy in %s): pre-pull it on this host with 'vdsm-containers "
        "pull --engine %s %s', or let the start pull it"
        % (images.IMAGE, fresh_conf.conf, name, images.IMAGE))
    assert not has_image(client, images.IMAGE)

    images.ensure_local(client)
    result = start(vdsm, vm)
    try:
        assert client.containers.get("ovirt-vm-" + vm.id).status == "running"
        assert "vm_id=%s pulling" % vm.id not in fresh_conf.read_log()
    finally:
        power_off(vdsm, vm, result.data)


@pytest.mark.parametrize("policy", ["missing", "always"])
def test_tag_moved(vdsm, fresh_conf, engine, docker_client, policy):
    # A team publishes release 2 under the same tag: "always" runs it at
    # the next start, "missing" keeps running the release the host has.
    name, client = engine
    first, ran_first = publish_and_start(vdsm, fresh_conf, client, name,
                                         docker_client, 1, policy)
    second, ran_second = publish_and_start(vdsm, fresh_conf, client, name,
                                           docker_client, 2, policy,
                                           host_has=ran_first)
    assert ran_first == first != second
    assert ran_second == (second if policy == "always" else first)


def image_id(value):
    return value.split(":", 1)[-1]


def publish_and_start(vdsm, conf, client, name, docker_client, release,
                      policy, host_has=None):
    """Push release as images.MOVING_IMAGE (through Docker), start a VM of
    it under policy and power it off; return (the image id published, the
    image id its container ran).  Release 1 is on no engine before the
    start; before release 2's, the host has host_has under the tag."""
    published = image_id(images.push_moving(docker_client, release))
    if release == 1:
        images.remove_local(client, images.MOVING_IMAGE)
    elif name == "docker":
        # The push moved Docker's own tag: back to what this host ran.
        client.images.get(host_has).tag(images.MOVING_REPOSITORY, "1")
    conf.configure(pull_policy=policy)
    vm = domains.container_vm(name, images.MOVING_IMAGE)
    result = start(vdsm, vm)
    try:
        ran = client.containers.get("ovirt-vm-" + vm.id).attrs["Image"]
    finally:
        power_off(vdsm, vm, result.data)
    return published, image_id(ran)


@pytest.mark.parametrize("host, vm, pulled", [
    pytest.param("never", "always", True, id="vm-always-on-never-host"),
    pytest.param("never", "missing", True, id="vm-missing-on-never-host"),
])
def test_container_pull_overrides_the_host(vdsm, fresh_conf, engine, host,
                                           vm, pulled):
    name, client = engine
    images.remove_local(client)
    fresh_conf.configure(pull_policy=host)
    machine = domains.container_vm(name, images.IMAGE)
    machine = machine.edited(containerPull=vm)

    result = start(vdsm, machine)

    try:
        assert client.containers.get("ovirt-vm-" + machine.id).status == \
            "running"
        assert ("vm_id=%s pulling %s with %s (pull policy %s)" % (
            machine.id, images.IMAGE, name, vm)
            in fresh_conf.read_log()) is pulled
    finally:
        power_off(vdsm, machine, result.data)


def test_container_pull_never_names_the_property(vdsm, fresh_conf, engine):
    name, client = engine
    images.remove_local(client)
    machine = domains.container_vm(name, images.IMAGE).edited(
        containerPull="never")

    err = refusal(vdsm, machine)

    assert "the pull policy is never (containerPull=never)" in err
    assert not has_image(client, images.IMAGE)


@pytest.mark.parametrize("value", ["sometimes", "", "Always", "never\n"])
def test_helper_checks_pull_again(fresh_conf, value):
    p = subprocess.run(
        [fresh_conf.helper, "start", "--vm-id=" + str(uuid.uuid4()),
         "--vm-name=x", "--engine=docker", "--image=" + images.IMAGE,
         "--memory-mib=64", "--vcpus=1", "--pull=" + value],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 1
    assert p.stderr.decode().startswith(
        "Invalid custom property containerPull=%r" % value)
