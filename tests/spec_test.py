"""The container spec: the helper's arguments and the container's hardening.

The root helper gets the spec as command line arguments from the vdsm user
and must validate them again; how the container is confined comes from the
host configuration alone.
"""

import argparse

import pytest

from containerhooks import config
from containerhooks import errors
from containerhooks import helper
from containerhooks import imageref
from containerhooks import spec as specs

VM_ID = "6f1c3a2e-0d4b-4c55-9a1e-2b7d9c0e8f11"
DIGEST = "sha256:" + "0123456789abcdef" * 4

ARGS = dict(vm_id=VM_ID, vm_name="web-1", engine="docker", image="redis:7",
            memory_mib="512", vcpus="2", cpu_shares=None, nic=None,
            volume=None, app_env="", app_command="", app_entrypoint="",
            app_workdir="", app_user="", app_secrets="", app_health_cmd="",
            app_health_options="", fqdn=None)


def namespace(**changes):
    values = dict(ARGS)
    values.update(changes)
    return argparse.Namespace(**values)


def make_spec(**changes):
    values = dict(vm_id=VM_ID, vm_name="web-1", engine="docker",
                  image=imageref.parse("redis:7"), memory_mib=512, vcpus=2,
                  cpu_shares=None, nics=[], volumes=[])
    values.update(changes)
    return specs.ContainerSpec(**values)


@pytest.fixture
def conf(tmp_path):
    """The default configuration (no containers.conf)."""
    return config.load(str(tmp_path / "missing.conf"))


# from_args()

def test_from_args():
    spec = specs.from_args(namespace(vm_id=VM_ID.upper(), cpu_shares="1024"))
    assert spec == specs.ContainerSpec(
        vm_id=VM_ID, vm_name="web-1", engine="docker",
        image=imageref.parse("redis:7"), memory_mib=512, vcpus=2,
        cpu_shares=1024, nics=[], volumes=[])


@pytest.mark.parametrize("field, value, expected", [
    pytest.param("memory_mib", "1", 1, id="memory-min"),
    pytest.param("memory_mib", str(specs.MAX_MEMORY_MIB),
                 specs.MAX_MEMORY_MIB, id="memory-max"),
    pytest.param("vcpus", "1", 1, id="vcpus-min"),
    pytest.param("vcpus", "4096", 4096, id="vcpus-max"),
    pytest.param("cpu_shares", "2", 2, id="shares-min"),
    pytest.param("cpu_shares", "262144", 262144, id="shares-max"),
    pytest.param("vm_name", "a" * 64, "a" * 64, id="name-64"),
    pytest.param("vm_name", "-web", "-web", id="name-leading-dash"),
])
def test_from_args_limits(field, value, expected):
    assert getattr(specs.from_args(namespace(**{field: value})),
                   field) == expected


BAD_ARGS = [
    pytest.param("vm_id", "", id="uuid-empty"),
    pytest.param("vm_id", None, id="uuid-none"),
    pytest.param("vm_id", "not-a-uuid", id="uuid-word"),
    pytest.param("vm_id", VM_ID.replace("-", ""), id="uuid-no-dashes"),
    pytest.param("vm_id", VM_ID + "\n", id="uuid-newline"),
    pytest.param("vm_id", " " + VM_ID, id="uuid-space"),
    pytest.param("vm_id", VM_ID[:-1] + "g", id="uuid-not-hex"),
    pytest.param("vm_id", VM_ID + "/../../etc", id="uuid-path"),
    pytest.param("vm_name", "", id="name-empty"),
    pytest.param("vm_name", None, id="name-none"),
    pytest.param("vm_name", "a" * 65, id="name-65"),
    pytest.param("vm_name", "web server", id="name-space"),
    pytest.param("vm_name", "web/1", id="name-slash"),
    pytest.param("vm_name", "web\n", id="name-newline"),
    pytest.param("vm_name", "web;id", id="name-semicolon"),
    pytest.param("vm_name", u"w\u00e9b", id="name-accent"),
    pytest.param("memory_mib", "0", id="memory-0"),
    pytest.param("memory_mib", "-1", id="memory-negative"),
    pytest.param("memory_mib", str(specs.MAX_MEMORY_MIB + 1),
                 id="memory-too-big"),
    pytest.param("memory_mib", "abc", id="memory-word"),
    pytest.param("memory_mib", "1.5", id="memory-fraction"),
    pytest.param("memory_mib", "1e3", id="memory-exponent"),
    pytest.param("memory_mib", "0x10", id="memory-hex"),
    pytest.param("memory_mib", "", id="memory-empty"),
    pytest.param("memory_mib", None, id="memory-none"),
    pytest.param("vcpus", "0", id="vcpus-0"),
    pytest.param("vcpus", "4097", id="vcpus-too-many"),
    pytest.param("vcpus", "-2", id="vcpus-negative"),
    pytest.param("vcpus", "two", id="vcpus-word"),
    pytest.param("cpu_shares", "1", id="shares-1"),
    pytest.param("cpu_shares", "262145", id="shares-too-big"),
    pytest.param("cpu_shares", "x", id="shares-word"),
    pytest.param("cpu_shares", "", id="shares-empty"),
    pytest.param("image", "--privileged", id="image-option"),
    pytest.param("image", "Redis", id="image-uppercase"),
    pytest.param("image", "redis;id", id="image-shell"),
    pytest.param("image", "", id="image-empty"),
    pytest.param("fqdn", "-bad.example.com", id="fqdn-leading-dash"),
    pytest.param("fqdn", "a" * 64 + ".com", id="fqdn-label-too-long"),
]

# The application's arguments, checked again with the properties' parsers.
BAD_APP_ARGS = [
    pytest.param("app_env", "1A=x", id="env-key-digit"),
    pytest.param("app_env", "A=x;B=y", id="env-semicolon"),
    pytest.param("app_env", "A=1,A=2", id="env-key-twice"),
    pytest.param("app_command", "a  b", id="command-double-space"),
    pytest.param("app_command", "a%00b", id="command-nul-escape"),
    pytest.param("app_entrypoint", " /bin/sh", id="entrypoint-leading-space"),
    pytest.param("app_workdir", "../etc", id="workdir-relative"),
    pytest.param("app_workdir", "/proc/1", id="workdir-proc"),
    pytest.param("app_user", "root", id="user-name"),
    pytest.param("app_user", "01", id="user-leading-zero"),
    pytest.param("app_secrets", "../shadow", id="secrets-path"),
    pytest.param("app_secrets", "a,a", id="secrets-twice"),
    pytest.param("app_env", ["A=1"], id="env-list"),
    pytest.param("app_health_cmd", "true;reboot", id="health-cmd-semicolon"),
    pytest.param("app_health_cmd", "none ", id="health-cmd-none-space"),
    pytest.param("app_health_options", "interval=1", id="health-interval-1"),
    pytest.param("app_health_options", "interval=5,interval=5",
                 id="health-option-twice"),
]


@pytest.mark.parametrize("field, value", BAD_APP_ARGS)
def test_from_args_bad_application(field, value):
    with pytest.raises((errors.InvalidProperty, errors.InvalidDomain)):
        specs.from_args(namespace(**{field: value}))


@pytest.mark.parametrize("field, value", BAD_ARGS)
def test_from_args_bad(field, value):
    with pytest.raises(errors.Error) as e:
        specs.from_args(namespace(**{field: value}))
    expected = (errors.InvalidProperty if field == "image"
                else errors.InvalidDomain)
    assert type(e.value) is expected
    assert repr(value) in str(e.value)


# to_args() -> the helper's own parser -> from_args()

@pytest.mark.parametrize("spec", [
    pytest.param(make_spec(), id="plain"),
    pytest.param(make_spec(cpu_shares=1024), id="cpu-shares"),
    pytest.param(make_spec(vm_name="-web"), id="name-leading-dash"),
    pytest.param(make_spec(vm_name="--privileged"), id="name-like-option"),
    pytest.param(make_spec(vm_name="web.example.com"), id="name-dots"),
    pytest.param(make_spec(vm_name="-1"), id="name-negative-number"),
    pytest.param(make_spec(nics=[
        specs.Nic(mac="00:1a:4a:16:01:51", bridge="ovirtmgmt", ip=None),
        specs.Nic(mac="00:1a:4a:16:01:52", bridge="br-data",
                  ip="192.0.2.10")]), id="nics"),
    pytest.param(make_spec(volumes=[
        specs.VolumeSource(disk="vda", path="/data", kind="file",
                           source="/rhev/data-center/mnt/srv:_e,x/a/b")]),
        id="volume-source-with-colon-and-comma"),
    pytest.param(make_spec(engine="podman", image=imageref.parse(
        "registry.example.com:5000/team/app:1.0@" + DIGEST)),
        id="podman-digest"),
    pytest.param(make_spec(memory_mib=specs.MAX_MEMORY_MIB,
                           vcpus=specs.MAX_VCPUS, cpu_shares=2), id="limits"),
    pytest.param(make_spec(app=specs.AppConfig(
        env=u"A=1,B=x%2Cy z,C=\u00fc=%25", command="--help -x%20y",
        entrypoint="-/bin/sh -c", workdir="/srv/app", user="1000:1000",
        secrets="db,api.key")), id="application"),
    pytest.param(make_spec(app=specs.NO_APP._replace(command="--rm")),
                 id="command-like-option"),
    pytest.param(make_spec(app=specs.NO_APP._replace(
        health_cmd="/bin/sh -c test%20-e%20/ok",
        health_options="interval=10,retries=2")), id="health-check"),
    pytest.param(make_spec(app=specs.NO_APP._replace(health_cmd="none")),
                 id="health-none"),
    pytest.param(make_spec(fqdn="db.example.com"), id="fqdn"),
])
def test_args_round_trip(spec):
    args = helper._parser().parse_args(["start"] + specs.to_args(spec))
    assert specs.from_args(args) == spec


def test_safe_name():
    assert specs.safe_name("my vm/1") == "my_vm_1"
    assert specs.safe_name(u"w\u00e9b") == "w_b"
    assert specs.safe_name("") == "vm"
    assert specs.safe_name(None) == "vm"
    assert specs.safe_name("a" * 100) == "a" * 64
    # Whatever the VM is called, the helper accepts the result.
    assert specs.vm_name(specs.safe_name("$(reboot)\n" * 10))


# container_options()

def test_options_hardening(conf):
    options = specs.container_options(make_spec(), conf, host_cpus=8)
    assert options["privileged"] is False
    assert options["cap_drop"] == ["ALL"]
    assert options["cap_add"] == list(config.BASE_CAPABILITIES)
    assert "no-new-privileges" in options["security_opt"]
    assert options["pids_limit"] == conf.pids_limit == 1024
    assert sorted(options["ulimits"], key=lambda u: u["name"]) == [
        {"name": "nofile", "soft": 8192, "hard": 8192},
        {"name": "nproc", "soft": 4096, "hard": 4096},
    ]
    # The network is the engine adapter's: "none" without vNICs.
    assert "network_mode" not in options
    assert options["ipc_mode"] == "private"
    assert options["init"] is True
    assert options["restart_policy"] == {"Name": "no"}
    assert options["mem_limit"] == options["memswap_limit"] == 512 * 2**20
    # Nothing that reaches the host: no mounts, devices or host namespaces.
    assert not set(options) & {
        "volumes", "mounts", "devices", "device_cgroup_rules", "pid_mode",
        "userns_mode", "uts_mode", "cgroupns", "volumes_from", "sysctls",
        "security_opt_unconfined", "runtime", "network", "extra_hosts"}


def test_options_from_config(tmp_path):
    path = tmp_path / "containers.conf"
    path.write_text(u"[containers]\nextra_capabilities = NET_RAW, "
                    u"CAP_SYS_NICE\npids_limit = 64\nnofile = 100\n"
                    u"nproc = 50\ninit = no\n")
    conf = config.load(str(path))
    options = specs.container_options(make_spec(), conf, host_cpus=8)
    assert options["cap_add"] == list(config.BASE_CAPABILITIES) + [
        "NET_RAW", "SYS_NICE"]
    assert options["cap_drop"] == ["ALL"]
    assert options["pids_limit"] == 64
    assert {u["name"]: (u["soft"], u["hard"])
            for u in options["ulimits"]} == {"nofile": (100, 100),
                                             "nproc": (50, 50)}
    assert options["init"] is False


@pytest.mark.parametrize("vcpus, host_cpus, nano_cpus", [
    pytest.param(2, 8, 2 * 10**9, id="below-host"),
    pytest.param(8, 8, 8 * 10**9, id="equal-host"),
    pytest.param(16, 4, 4 * 10**9, id="capped-at-host"),
    pytest.param(1, 1, 10**9, id="one"),
])
def test_options_nano_cpus(conf, vcpus, host_cpus, nano_cpus):
    options = specs.container_options(make_spec(vcpus=vcpus), conf,
                                      host_cpus=host_cpus)
    assert options["nano_cpus"] == nano_cpus
    assert isinstance(options["nano_cpus"], int)


def test_options_cpu_shares(conf):
    assert "cpu_shares" not in specs.container_options(make_spec(), conf, 8)
    options = specs.container_options(make_spec(cpu_shares=512), conf, 8)
    assert options["cpu_shares"] == 512


@pytest.mark.parametrize("name, hostname", [
    pytest.param("web-1", "web-1", id="plain"),
    pytest.param("web_1", "web-1", id="underscore"),
    pytest.param("1web", "1web", id="leading-digit"),
    pytest.param("a" * 63, "a" * 63, id="63"),
    pytest.param("a" * 64, None, id="64"),
    pytest.param("web.example.com", None, id="dots"),
    pytest.param("-web", None, id="leading-dash"),
    pytest.param("web-", None, id="trailing-dash"),
    pytest.param("_web", None, id="leading-underscore"),
])
def test_options_hostname(conf, name, hostname):
    assert specs.hostname(make_spec(vm_name=name)) == hostname


# The container's hostname and domain name (Initial Run FQDN)

FQDN_64 = "a" * 31 + "." + "b" * 20 + ".example.com"
FQDN_73 = "a" * 40 + "." + "b" * 20 + ".example.com"


@pytest.mark.parametrize("value, valid", [
    pytest.param("web", True, id="one-label"),
    pytest.param("web.example.com", True, id="fqdn"),
    pytest.param("1web.2.example.com", True, id="leading-digits"),
    pytest.param("x.example.c0m", True, id="digit-in-last-label"),
    pytest.param("a" * 63 + ".com", True, id="label-63"),
    pytest.param("a" * 64 + ".com", False, id="label-64"),
    pytest.param(".".join(["a" * 63] * 3 + ["b" * 61]), True, id="253"),
    pytest.param(".".join(["a" * 63] * 3 + ["b" * 62]), False, id="254"),
    pytest.param("", False, id="empty"),
    pytest.param("web.", False, id="final-dot"),
    pytest.param("web_1.example.com", False, id="underscore"),
    pytest.param("-web.example.com", False, id="leading-dash"),
    pytest.param("web.example-", False, id="trailing-dash"),
    pytest.param("web..com", False, id="empty-label"),
    pytest.param("192.168.1.10", False, id="ipv4"),
    pytest.param("123", True, id="digits-one-label"),
    pytest.param("w\u00e9b.example.com", False, id="non-ascii"),
    pytest.param("web.example.com\n", False, id="newline"),
    pytest.param(None, False, id="none"),
    pytest.param(["web"], False, id="list"),
])
def test_is_fqdn(value, valid):
    assert specs.is_fqdn(value) is valid
    # The helper's --fqdn= takes exactly these.
    if valid:
        assert specs.fqdn(value) == value
    else:
        with pytest.raises(errors.InvalidDomain) as e:
            specs.fqdn(value)
        assert "is not a host name" in str(e.value) or \
            "bad FQDN argument" in str(e.value)


@pytest.mark.parametrize("text, fqdn", [
    pytest.param("web.example.com", "web.example.com", id="as-is"),
    pytest.param("Web_1.Example.com", "Web-1.Example.com", id="underscore"),
    pytest.param("web.example.com.", "web.example.com", id="final-dot"),
    pytest.param("web.example.com..", None, id="two-final-dots"),
    pytest.param(" web.example.com", None, id="space"),
    pytest.param("_web.example.com", None, id="leading-underscore"),
    pytest.param(".", None, id="dot"),
    pytest.param(42, None, id="number"),
])
def test_as_fqdn(text, fqdn):
    assert specs.as_fqdn(text) == fqdn
    if fqdn is not None:
        assert specs.is_fqdn(fqdn)


@pytest.mark.parametrize("vm_name, fqdn, names", [
    # Without an Initial Run, as before: the VM name when it is a valid
    # hostname, else the engine's default.
    pytest.param("web_1", None, ("web-1", None), id="vm-name"),
    pytest.param("web.example.com", None, (None, None), id="vm-name-dots"),
    pytest.param("web", "web", ("web", None), id="one-label"),
    pytest.param("web_1", "db.example.com", ("db.example.com", None),
                 id="fqdn-wins"),
    pytest.param("web", FQDN_64, (FQDN_64, None), id="fqdn-64"),
    pytest.param("web", FQDN_73, ("a" * 40, "b" * 20 + ".example.com"),
                 id="fqdn-73"),
    pytest.param("web", "a" * 63 + "." + "b" * 63 + ".com",
                 ("a" * 63, None), id="domain-too-long"),
    pytest.param("web", "a" * 63 + "." + "b" * 60 + ".com",
                 ("a" * 63, "b" * 60 + ".com"), id="domain-64"),
])
def test_host_names(vm_name, fqdn, names):
    assert len(FQDN_64) == specs.HOST_NAME_MAX
    got = specs.host_names(vm_name, fqdn)
    assert got == names
    assert (got.hostname, got.domainname) == names
    for name in got:
        assert name is None or len(name) <= specs.HOST_NAME_MAX


def _run_names(client, **names):
    """What a container created with names (hostname=, domainname=) shows
    inside: (hostname's output, the kernel's NIS domain name)."""
    import uuid

    import docker

    import images
    image = images.ensure_local(client)
    c = client.containers.create(
        image, ["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
        name="vhc-hostname-test-" + uuid.uuid4().hex[:12],
        network_mode="none",
        # As the package's own containers do (see gc_test).
        ulimits=[docker.types.Ulimit(name=n, soft=1024, hard=1024)
                 for n in ("nofile", "nproc")], **names)
    try:
        c.start()
        assert c.wait(timeout=60)["StatusCode"] == 0
        return tuple(c.logs().decode("utf-8").splitlines())
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("vm_name, fqdn, hostname, domain", [
    pytest.param("web_1", None, "web-1", "(none)", id="vm-name"),
    pytest.param("web", "db.example.com", "db.example.com", "(none)",
                 id="fqdn"),
    pytest.param("web", FQDN_64, FQDN_64, "(none)", id="fqdn-64"),
    # Docker sets the domain name; Podman 4.3's compatible API drops it.
    pytest.param("web", FQDN_73, "a" * 40,
                 {"docker": "b" * 20 + ".example.com", "podman": "(none)"},
                 id="fqdn-73"),
])
def test_hostname_in_the_container(engine, vm_name, fqdn, hostname, domain):
    name, client = engine
    names = specs.host_names(vm_name, fqdn)
    got = _run_names(client, hostname=names.hostname,
                     domainname=names.domainname)
    if isinstance(domain, dict):
        domain = domain[name]
    assert got == (hostname, domain)


def test_fqdn_beyond_linux_limit_fails_the_start(engine):
    # Why host_names splits an FQDN longer than 64 characters: as the
    # hostname whole, the container does not start (sethostname: EINVAL).
    import docker
    name, client = engine
    assert len("x" + FQDN_64) == specs.HOST_NAME_MAX + 1
    with pytest.raises(docker.errors.APIError) as e:
        _run_names(client, hostname="x" + FQDN_64)
    assert "sethostname" in str(e.value)


def test_options_accepted_by_docker_sdk(conf):
    # What the SDK turns the options into, as the engine adapter does with
    # create_host_config (no daemon needed); an unknown option raises here.
    import docker
    options = specs.container_options(make_spec(cpu_shares=100), conf, 8)
    host = docker.types.HostConfig(version="1.41", network_mode="none",
                                   **options)
    assert not host.get("Privileged")  # the SDK leaves out False
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == list(config.BASE_CAPABILITIES)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 1024
    assert host["Memory"] == host["MemorySwap"] == 512 * 2**20
    assert host["NanoCpus"] == 2 * 10**9
    assert host["CpuShares"] == 100
    for key in ("Binds", "Mounts", "Devices", "PidMode", "UsernsMode",
                "UTSMode", "VolumesFrom"):
        assert key not in host


def test_labels_and_name():
    spec = make_spec()
    assert specs.labels(spec) == {
        "org.ovirt.vdsm-hook-containers": "1",
        "org.ovirt.vm.id": VM_ID,
        "org.ovirt.vm.name": "web-1",
    }
    assert specs.container_name(VM_ID) == "ovirt-vm-" + VM_ID


def test_options_bound_the_logs(tmp_path, conf):
    options = specs.container_options(make_spec(), conf, 8)
    assert options["log_config"] == {"type": "json-file", "config": {
        "max-size": "10m", "max-file": "3"}}
    path = tmp_path / "containers.conf"
    path.write_text(u"[containers]\nlog_max_size =\n")
    options = specs.container_options(make_spec(), config.load(str(path)), 8)
    assert "log_config" not in options     # the engine's own setup


S = 10 ** 9


@pytest.mark.parametrize("check, bounded", [
    pytest.param(None, None, id="none"),
    pytest.param({"Test": ["NONE"], "Interval": 1}, None, id="disabled"),
    pytest.param({"Test": [], "Interval": 1}, None, id="empty-test"),
    pytest.param({"Test": ["CMD", "true"]}, None, id="default-interval"),
    pytest.param({"Test": ["CMD", "true"], "Interval": 5 * S}, None,
                 id="at-floor"),
    pytest.param({"Test": ["CMD", "true"], "Interval": 30 * S}, None,
                 id="above-floor"),
    pytest.param({"Test": ["CMD-SHELL", "true"], "Interval": S,
                  "Timeout": S, "Retries": 1},
                 {"test": ["CMD-SHELL", "true"], "interval": 5 * S,
                  "timeout": S, "retries": 1, "start_period": 0},
                 id="1s"),
    pytest.param({"Test": ["CMD", "true"], "Interval": 1000000},
                 {"test": ["CMD", "true"], "interval": 5 * S, "timeout": 0,
                  "retries": 0, "start_period": 0}, id="1ms"),
    pytest.param({"Test": ["CMD", "true"], "Interval": 5 * S - 1},
                 {"test": ["CMD", "true"], "interval": 5 * S, "timeout": 0,
                  "retries": 0, "start_period": 0}, id="just-below"),
])
def test_bounded_healthcheck(check, bounded):
    assert specs.bounded_healthcheck({"Healthcheck": check}) == bounded


# Docker 25+ and Podman 5 run an image's check every StartInterval during
# its start period (HEALTHCHECK --start-interval, 1 ms at the least): the
# same floor holds for it.  The engines here (Docker 20.10, Podman 4.3)
# know no such field, so only this and the create body's test show it.
@pytest.mark.parametrize("check, bounded", [
    pytest.param({"Test": ["CMD", "true"], "Interval": 30 * S,
                  "StartPeriod": 86400 * S, "StartInterval": 1000000},
                 {"test": ["CMD", "true"], "interval": 30 * S, "timeout": 0,
                  "retries": 0, "start_period": 86400 * S,
                  "start_interval": 5 * S}, id="1ms-start-interval"),
    pytest.param({"Test": ["CMD", "true"], "Interval": S,
                  "StartInterval": 2 * S},
                 {"test": ["CMD", "true"], "interval": 5 * S, "timeout": 0,
                  "retries": 0, "start_period": 0,
                  "start_interval": 5 * S}, id="both-below"),
    pytest.param({"Test": ["CMD", "true"], "StartInterval": 5 * S}, None,
                 id="start-interval-at-floor"),
    pytest.param({"Test": ["CMD", "true"], "StartInterval": 0}, None,
                 id="start-interval-default"),
    pytest.param({"Test": ["NONE"], "StartInterval": 1}, None,
                 id="check-disabled"),
])
def test_bounded_healthcheck_start_interval(check, bounded):
    assert specs.bounded_healthcheck({"Healthcheck": check}) == bounded


_IMAGE_CHECK = {"Test": ["CMD-SHELL", "curl -f localhost"],
                "Interval": 20 * S, "Timeout": 4 * S, "Retries": 5,
                "StartPeriod": 10 * S}


@pytest.mark.parametrize("check, health_cmd, options, bounded", [
    pytest.param(_IMAGE_CHECK, "", "interval=7,retries=1",
                 {"test": ["CMD-SHELL", "curl -f localhost"],
                  "interval": 7 * S, "timeout": 4 * S, "retries": 1,
                  "start_period": 10 * S}, id="options-over-the-image's"),
    pytest.param(_IMAGE_CHECK, "", "interval=20,timeout=4", None,
                 id="options-as-the-image's"),
    pytest.param({"Test": ["CMD", "true"], "Interval": S}, "",
                 "start-period=60",
                 {"test": ["CMD", "true"], "interval": 5 * S, "timeout": 0,
                  "retries": 0, "start_period": 60 * S},
                 id="options-and-the-floor"),
    pytest.param({"Test": ["CMD", "true"]}, "", "timeout=3",
                 {"test": ["CMD", "true"], "interval": 0, "timeout": 3 * S,
                  "retries": 0, "start_period": 0},
                 id="options-default-interval"),
    pytest.param(None, "", "interval=10", None, id="options-no-check"),
    pytest.param({"Test": ["NONE"]}, "", "interval=10", None,
                 id="options-check-disabled"),
    # The VM's own check was given at create, timed already.
    pytest.param({"Test": ["CMD", "true"], "Interval": 10 * S}, "true",
                 "interval=10", None, id="vm-check"),
])
def test_bounded_healthcheck_with_options(check, health_cmd, options,
                                          bounded):
    app = specs.NO_APP._replace(health_cmd=health_cmd,
                                health_options=options)
    assert specs.bounded_healthcheck({"Healthcheck": check}, app) == bounded


@pytest.mark.parametrize("health_cmd, options, expected", [
    pytest.param("", "", None, id="not-set"),
    pytest.param("", "interval=10", None, id="options-alone"),
    pytest.param("none", "", {"test": ["NONE"]}, id="none"),
    pytest.param("NONE", "interval=10", {"test": ["NONE"]},
                 id="none-options-ignored"),
    pytest.param("pg_isready -U app", "",
                 {"test": ["CMD", "pg_isready", "-U", "app"],
                  "interval": 30 * S, "timeout": 30 * S, "retries": 3,
                  "start_period": 0}, id="docker-defaults"),
    pytest.param("/bin/sh -c test%20!%20-e%20/x", "retries=1,interval=5",
                 {"test": ["CMD", "/bin/sh", "-c", "test ! -e /x"],
                  "interval": 5 * S, "timeout": 30 * S, "retries": 1,
                  "start_period": 0}, id="explicit-shell"),
    pytest.param("true", "interval=3600,timeout=300,retries=100,"
                 "start-period=3600",
                 {"test": ["CMD", "true"], "interval": 3600 * S,
                  "timeout": 300 * S, "retries": 100,
                  "start_period": 3600 * S}, id="longest"),
])
def test_vm_healthcheck(health_cmd, options, expected):
    app = specs.NO_APP._replace(health_cmd=health_cmd,
                                health_options=options)
    assert specs.vm_healthcheck(app) == expected


def _vol(path):
    return specs.VolumeSource(disk="vda", path=path, kind="file",
                              source="/rhev/x")


@pytest.mark.parametrize("declared, mapped, lost", [
    pytest.param(None, [], [], id="none"),
    pytest.param({"/data": {}}, [], ["/data"], id="unmapped"),
    pytest.param({"/data": {}}, ["/data"], [], id="same"),
    pytest.param({"/data/db": {}}, ["/data"], [], id="under-a-mapped-one"),
    pytest.param({"/data": {}}, ["/data/db"], ["/data"], id="only-a-part"),
    pytest.param({"/data2": {}}, ["/data"], ["/data2"], id="prefix-no-dir"),
    pytest.param({"/data/": {}, "//cache": {}}, ["/data"], ["/cache"],
                 id="unnormalized"),
    pytest.param({"/b": {}, "/a": {}}, [], ["/a", "/b"], id="sorted"),
])
def test_unmapped_volumes(declared, mapped, lost):
    assert specs.unmapped_volumes({"Volumes": declared},
                                  [_vol(p) for p in mapped]) == lost
