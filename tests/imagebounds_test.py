"""What a VM's image, its registry and the host's own Docker client
configuration can do to the host, and the bounds that hold against them.

Images and registries are the VM owner's: their config (HEALTHCHECK,
VOLUME, USER), their output and their error messages are hostile input.
Every test starts VMs through the installed hooks (tests/vdsm.py) on the
real engines.
"""

import json
import os
import time
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


# The image's own config and output

HOSTILE_REPOSITORY = images.REGISTRY + "/vhc-tests/busybox-hostile"
FLOOD_LINES = 6000     # of 1000 characters: 6 MB of output
HOSTILE = {
    # Its HEALTHCHECK every second (each one a process the engine starts),
    # and VOLUMEs no volumeMap covers.
    "health": ["HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD true",
               'VOLUME ["/cache", "/data/db"]', "CMD " + images.COMMAND],
    # 6 MB to stdout, then a marker file, then the usual web server.
    "flood": ["CMD " + json.dumps([
        "/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do echo %s; "
        "i=$((i+1)); done; touch /tmp/flooded; exec %s" % (
            FLOOD_LINES, "x" * 999, " ".join(json.loads(images.COMMAND))
        )])],
}


@pytest.fixture(scope="module")
def hostile_images(docker_client, registry_image):
    """{kind: image} of HOSTILE, imported and pushed to the local registry."""
    api = docker_client.api
    rootfs = images.rootfs_tar()
    for kind, changes in sorted(HOSTILE.items()):
        api.import_image_from_data(rootfs, repository=HOSTILE_REPOSITORY,
                                   tag=kind, changes=changes)
        images.push(api, HOSTILE_REPOSITORY, kind)
    return dict((kind, "%s:%s" % (HOSTILE_REPOSITORY, kind))
                for kind in HOSTILE)


def test_healthcheck_interval_raised(vdsm, installation, engine,
                                     hostile_images):
    name, client = engine
    vm = domains.container_vm(name, hostile_images["health"])
    result = start(vdsm, vm)
    try:
        check = client.containers.get("ovirt-vm-" + vm.id).attrs["Config"][
            "Healthcheck"]
        assert check["Test"] == ["CMD-SHELL", "true"]
        assert check["Interval"] == 5 * 10 ** 9
    finally:
        power_off(vdsm, vm, result.data)
    assert "HEALTHCHECK every 1.000 s; raised to 5 s" in \
        installation.read_log()


def test_unmapped_image_volumes_reported(vdsm, installation, engine,
                                         hostile_images):
    name, client = engine
    vm = domains.container_vm(name, hostile_images["health"])
    result = start(vdsm, vm)
    try:
        rc, out, err = installation.run_cli("ps", "--json")
        assert rc == 0, err
        row = [r for r in json.loads(out) if r["vm_id"] == vm.id][0]
        assert row["unmapped_volumes"] == ["/cache", "/data/db"]
        rc, out, err = installation.run_cli("ps")
        line = [l for l in out.splitlines() if l.startswith(vm.id)][0]
        assert "lost at power off: /cache,/data/db" in line
    finally:
        power_off(vdsm, vm, result.data)
    assert "declares VOLUME /cache, /data/db, which no volumeMap disk " \
        "covers" in installation.read_log()


def test_volume_covered_by_a_disk_is_not_reported(vdsm, installation, engine,
                                                 hostile_images, storage):
    # volumeMap puts a VM disk at /data: the image's /data/db lives on it,
    # only /cache is lost at power off.
    name, client = engine
    vm = domains.add_disks(domains.VM({
        "containerType": name, "containerImage": hostile_images["health"],
        "volumeMap": "vda:/data"}), domains.disk("vda", storage.image()))
    result = start(vdsm, vm)
    try:
        rc, out, err = installation.run_cli("ps", "--json")
        row = [r for r in json.loads(out) if r["vm_id"] == vm.id][0]
        assert row["volumes"] == ["vda:/data"]
        assert row["unmapped_volumes"] == ["/cache"]
    finally:
        power_off(vdsm, vm, result.data)


def _log_bytes(container):
    """Bytes the engine keeps of container's output, rotated files too."""
    path = container.attrs["LogPath"]
    d, base = os.path.split(path)
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)
               if n.startswith(base))


def test_output_is_bounded(vdsm, fresh_conf, engine, hostile_images):
    name, client = engine
    fresh_conf.configure(log_max_size="1m", log_max_files=2)
    vm = domains.container_vm(name, hostile_images["flood"])
    result = start(vdsm, vm)
    try:
        c = client.containers.get("ovirt-vm-" + vm.id)
        deadline = time.time() + 120
        while c.exec_run(["cat", "/tmp/flooded"])[0] != 0:
            assert time.time() < deadline, "the flood never ended"
            time.sleep(0.5)
        kept = _log_bytes(c)
        print("\n%s kept %d bytes of %d MB of output" % (
            name, kept, FLOOD_LINES // 1000))
        # json-file: at most 2 files of 1 MiB (and one record more);
        # Podman's k8s-file: one file, truncated at 1 MiB.
        assert kept <= 2 * 1024 * 1024 + 4096
    finally:
        power_off(vdsm, vm, result.data)


def test_writable_layer_bound_where_the_storage_allows(vdsm, installation,
                                                      engine):
    # This machine's engines keep their layers on ext4 (no project
    # quotas): both refuse a size, and the container starts unbounded,
    # with a warning.  On overlay over XFS with pquota the size holds.
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    try:
        c = client.containers.get("ovirt-vm-" + vm.id)
        assert c.status == "running"
    finally:
        power_off(vdsm, vm, result.data)
    warning = [l for l in installation.read_log().splitlines()
               if "%s cannot bound the writable layer of ovirt-vm-%s "
               "(writable_layer_size): " % (name, vm.id) in l]
    assert len(warning) == 1
    assert "--storage-opt is supported only for overlay over xfs with " \
        "'pquota' mount option" in warning[0]


# pids_limit against the host's pid_max

def _capacity():
    """What check assumes: the host's memory over 256 MiB per VM."""
    with open("/proc/meminfo") as f:
        kib = int([l for l in f if l.startswith("MemTotal:")][0].split()[1])
    return kib // 1024 // 256


def _pids_row(installation):
    rc, out, err = installation.run_cli("check", "--json")
    rows = [r for r in json.loads(out) if r["check"] == "pids"]
    assert len(rows) == 1, out
    return rows[0]


def test_check_warns_when_pids_limit_overcommits_pid_max(fresh_conf):
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    vms = _capacity()
    over = pid_max // vms + 1
    if over > 1 << 22:
        pytest.fail("pid_max %d cannot be over-committed by pids_limit on "
                    "this host" % pid_max, pytrace=False)
    fresh_conf.configure(pids_limit=over)
    row = _pids_row(fresh_conf)
    print("\n" + row["detail"])
    assert row["ok"] and row["warn"]
    assert "pid_max %d" % pid_max in row["detail"]
    assert "lower pids_limit" in row["detail"]
    rc, out, err = fresh_conf.run_cli("check")
    assert [l for l in out.splitlines() if l.startswith("WARN pids")]

    under = pid_max // vms
    if under >= 16:
        fresh_conf.configure(pids_limit=under)
        row = _pids_row(fresh_conf)
        assert row["ok"] and not row["warn"], row


def test_check_warns_when_pids_limit_is_too_low_for_runsc(fresh_conf):
    # gVisor's sandbox counts its own host threads against pids_limit.
    fresh_conf.configure(pids_limit=64, podman_runtimes="runc, runsc",
                         podman_runtime_sockets="runsc:/run/x.sock")
    row = _pids_row(fresh_conf)
    assert row["ok"] and row["warn"], row
    assert "runsc is offered" in row["detail"]
    assert "raise pids_limit to 128 or more" in row["detail"]
    # Not offered, or a limit with room: no such warning.
    for options in ({"pids_limit": 64},
                    {"pids_limit": 128, "docker_runtimes": "runsc"}):
        fresh_conf.configure(**options)
        assert "runsc" not in _pids_row(fresh_conf)["detail"], options
