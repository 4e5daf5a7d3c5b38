"""What a VM's image, its registry and the host's own Docker client
configuration can do to the host, and the bounds that hold against them.

Images and registries are the VM owner's: their config (HEALTHCHECK,
VOLUME, USER), their output and their error messages are hostile input.
Every test starts VMs through the installed hooks (tests/vdsm.py) on the
real engines.
"""

import json
import os
import unicodedata

import pytest

import domains
import images
import registries
from vdsm import HookError
from vmrun import power_off, start_hook as start

from containerhooks import engine as engines


def assert_clean_line(text, most):
    """text is one printable line of at most most characters."""
    assert text.endswith("\n") and text.count("\n") == 1, repr(text[-200:])
    line = text[:-1]
    assert len(line) <= most, len(line)
    bad = sorted(set(c for c in line if unicodedata.category(c)[0] == "C"))
    assert not bad, "control or format characters: %r" % bad


# Registry error text

@pytest.mark.parametrize("body_size", [1024, 4 * 1024 * 1024],
                         ids=["1KiB", "4MiB"])
def test_registry_error_text_is_capped_and_clean(vdsm, installation,
                                                  registry_image, body_size):
    # Docker passes a registry's error message on (Podman refuses to speak
    # plain HTTP to a registry not marked insecure, so only Docker gets
    # this far): it reaches Engine as the VM's exit message.
    with registries.Hostile(body_size=body_size) as registry:
        vm = domains.container_vm("docker", registry.image())
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        assert len(registry.requests) > 1   # it got past /v2/
    err = e.value.err.decode("utf-8")
    print("\nexit message: %s" % e.value.exit_message[:400])
    assert_clean_line(err, 600)
    assert "EVIL" in err     # the registry's words, made harmless
    assert err.startswith("Image %s was not found in its registry: "
                          % registry.image())


@pytest.mark.parametrize("text", [
    u"\x1b[2J\x1b[31mred\x1b[0m",
    u"a\r\nb\nc\rd\te\x0bf\x0cg",
    u"nul\x00bell\x07bs\x08del\x7f",
    u"c1\x85\x9bcontrol",
    u"bidi\u202eoverride\u2066isolate\u200bzero-width",
    u"sep\u2028line\u2029para",
    u"x" * 100000,
    b"bytes \xff\xfe \x1b[1m not utf-8",
], ids=["ansi", "newlines", "c0", "c1", "bidi", "unicode-separators",
        "huge", "bytes"])
def test_reason_text_is_capped_and_clean(text):
    reason = engines.clean_text(text)
    assert_clean_line(reason + "\n", engines.MAX_REASON)
    assert "  " not in reason


# The Docker SDK's proxy injection

@pytest.fixture
def proxied_root(installation, tmp_path):
    """Vdsm running the hooks as root (so the helper runs directly, with
    the hook's environment) with a HOME whose ~/.docker/config.json sets
    proxies, as an admin's root account may have for the docker CLI."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    proxy = "http://proxy.invalid:3128"
    (home / ".docker" / "config.json").write_text(json.dumps({"proxies": {
        "default": {"httpProxy": proxy, "httpsProxy": proxy,
                    "ftpProxy": proxy, "noProxy": "localhost"}}}))
    import vdsm as vdsm_module
    return vdsm_module.Vdsm(installation.hooks_dir, user="root", base_env={
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
        "HOME": str(home)})


def test_no_proxy_settings_injected_into_the_container(proxied_root,
                                                       engine):
    # docker-py (4.0 and later) copies the proxies of the client's
    # config.json into every container it creates, unless told not to: a
    # tenant's container would learn, and use, the host's proxy.
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(proxied_root, vm)
    try:
        env = client.containers.get("ovirt-vm-" + vm.id).attrs["Config"][
            "Env"] or []
        leaked = [e for e in env if "proxy" in e.split("=", 1)[0].lower()]
        assert leaked == []
    finally:
        power_off(proxied_root, vm, result.data)
