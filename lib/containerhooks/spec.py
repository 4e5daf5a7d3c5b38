"""What container a VM becomes: the spec, its validation, its hardening.

The hook (running as vdsm) builds a ContainerSpec from the VM's properties
and domain XML and passes it to the root helper as arguments; the helper
parses and validates those arguments again with the same functions here,
because it must not trust its caller.  How the container is confined
(capabilities, limits, namespaces) is decided by the helper alone, from the
host configuration, never from anything the VM's owner controls.
"""

import collections
import re

import six

from containerhooks import errors
from containerhooks import imageref
from containerhooks import state

ContainerSpec = collections.namedtuple(
    "ContainerSpec",
    "vm_id, vm_name, engine, image, memory_mib, vcpus, cpu_shares, nics, "
    "volumes, app, fqdn, pull, watchdog, guest_agent, console, runtime")

# The application's configuration: the raw values of the VM's properties
# containerEnv, containerCommand, containerEntrypoint, containerWorkdir,
# containerUser, containerSecrets, containerHealthCmd and
# containerHealthOptions ("" when not set).  Raw, because the helper
# parses them again itself (appconfig.py, vm_healthcheck) -- and secrets
# are only names: their values never leave the host's root-only files.
AppConfig = collections.namedtuple(
    "AppConfig", "env, command, entrypoint, workdir, user, secrets, "
    "health_cmd, health_options")
AppConfig.__new__.__defaults__ = ("", "")
NO_APP = AppConfig(env="", command="", entrypoint="", workdir="", user="",
                   secrets="")
# fqdn: the hostname Engine's Initial Run sets (domxml cloud_init_fqdn),
# or None; see host_names.
# pull: the VM's containerPull (imagepolicy.PULL_POLICIES), "" when not
# set (the host's pull_policy then).
# watchdog: the action of the VM's watchdog device (health.ACTIONS), or
# None without one.
# guest_agent: whether the watcher serves the VM's oVirt guest agent
# channel (guestagent.py): the start hook moved the placeholder's away.
# console: whether the VM has Engine's serial console (domxml
# console_devices); its container then gets a terminal (console.py).
# runtime: the VM's containerRuntime (runtimes.KNOWN), "" when not set
# (the host's default then).
ContainerSpec.__new__.__defaults__ = (NO_APP, None, "", None, False, False,
                                      "")

# AppConfig field -> (helper option, VM property)
_APP_ARGS = collections.OrderedDict([
    ("env", "--env"), ("command", "--command"),
    ("entrypoint", "--entrypoint"), ("workdir", "--workdir"),
    ("user", "--user"), ("secrets", "--secrets"),
    ("health_cmd", "--health-cmd"), ("health_options", "--health-options"),
])

# A vNIC of the VM: the container gets an interface on the same bridge with
# Engine's MAC; ip is a fixed address the VM asked for, or None.
Nic = collections.namedtuple("Nic", "mac, bridge, ip")

# A VM disk mounted into the container: its target name (vda), the path in
# the container, "file" or "block", and the image or device Vdsm prepared.
VolumeSource = collections.namedtuple("VolumeSource",
                                      "disk, path, kind, source")

# A raw disk on a block storage domain, as Vdsm prepares it: the path it
# gives libvirt is <repository>/mnt/blockSD/<domain id>/images/<image id>/
# <volume id> (hsm.py prepareImage, blockSD.py getLinkBCImagePath), which
# leads to LV <volume id> of the volume group <domain id> (lvm.py lvPath,
# blockVolume.py getDevPath).
BlockVolumeIds = collections.namedtuple("BlockVolumeIds",
                                        "domain, image, volume")
BLOCK_VOLUME_PATH = "/mnt/blockSD/<domain id>/images/<image id>/<volume id>"

_NAME_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
_HOSTNAME_RE = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_MAC_RE = re.compile(r"\A[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
_BRIDGE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\Z")
_IPV4_RE = re.compile(r"\A(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.)"
                      r"{3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z")
_NUMBER_RE = re.compile(r"\A[0-9]{1,19}\Z")
MAX_NICS = 16
MAX_VOLUMES = 16

MAX_MEMORY_MIB = 64 * 1024 * 1024       # 64 TiB, beyond any host
MAX_VCPUS = 4096


def from_domain(dom, props, nics=(), volumes=()):
    """Build the spec of the container standing for dom.

    A domain that is a placeholder already (Vdsm restoring a saved one)
    carries the VM's real size in the package's metadata: use that, not
    the placeholder's.
    """
    meta = dom.container_meta()
    memory_kib = meta.memory_kib if meta else dom.memory_kib()
    return ContainerSpec(
        vm_id=vm_id(dom.uuid),
        vm_name=safe_name(dom.name),
        engine=props.engine,
        image=props.image,
        memory_mib=max(1, memory_kib // 1024),
        vcpus=meta.vcpus if meta else dom.vcpus(),
        cpu_shares=dom.cpu_shares(),
        nics=list(nics),
        volumes=list(volumes),
        app=app_config(props.raw),
        fqdn=dom.cloud_init_fqdn(),
        pull=pull_of(props.raw),
        watchdog=dom.watchdog_action(),
        console=bool(dom.console_devices()) or bool(meta and meta.console),
        runtime=runtime_of(props.raw),
    )


def runtime_of(raw):
    """The VM's containerRuntime of raw (name -> raw value), "" if not
    set."""
    from containerhooks import properties
    value = raw.get(properties.CONTAINER_RUNTIME)
    return "" if value is None else properties.parse_runtime(value)


def runtime_from_args(ns):
    """The helper's --runtime, checked again with containerRuntime's
    parser."""
    from containerhooks import properties
    value = getattr(ns, "runtime", None)
    if value is None:
        return ""
    _text("runtime", value)
    return properties.parse_runtime(value)


def pull_of(raw):
    """The VM's containerPull of raw (name -> raw value), "" if not set."""
    from containerhooks import properties
    value = raw.get(properties.CONTAINER_PULL)
    return "" if value is None else properties.parse_pull(value)


def app_config(raw):
    """The AppConfig of the VM properties raw (a dict name -> raw value)."""
    from containerhooks import properties
    return AppConfig(
        env=raw.get(properties.CONTAINER_ENV, ""),
        command=raw.get(properties.CONTAINER_COMMAND, ""),
        entrypoint=raw.get(properties.CONTAINER_ENTRYPOINT, ""),
        workdir=raw.get(properties.CONTAINER_WORKDIR, ""),
        user=raw.get(properties.CONTAINER_USER, ""),
        secrets=raw.get(properties.CONTAINER_SECRETS, ""),
        health_cmd=raw.get(properties.CONTAINER_HEALTH_CMD, ""),
        health_options=raw.get(properties.CONTAINER_HEALTH_OPTIONS, ""))


def to_args(spec):
    """The helper's command line for starting spec.

    Always "--option=value": a VM may be named "-web", and argparse reads a
    separate "-web" argument as an option, not as the value of --vm-name.
    """
    args = ["--vm-id=" + spec.vm_id, "--vm-name=" + spec.vm_name,
            "--engine=" + spec.engine, "--image=" + str(spec.image),
            "--memory-mib=" + str(spec.memory_mib),
            "--vcpus=" + str(spec.vcpus)]
    if spec.cpu_shares is not None:
        args.append("--cpu-shares=" + str(spec.cpu_shares))
    for nic in spec.nics:
        args.append("--nic=" + ",".join(
            [nic.mac, nic.bridge] + ([nic.ip] if nic.ip else [])))
    for v in spec.volumes:
        args.append("--volume=" + ",".join((v.disk, v.path, v.kind,
                                             v.source)))
    if isinstance(spec.image, imageref.DiskImage):
        args.append("--image-source=%s,%s" % (spec.image.kind,
                                              spec.image.source))
    for field, option in _APP_ARGS.items():
        value = getattr(spec.app, field)
        if value:
            args.append(option + "=" + value)
    if spec.fqdn:
        args.append("--fqdn=" + spec.fqdn)
    if spec.pull:
        args.append("--pull=" + spec.pull)
    if spec.watchdog:
        args.append("--watchdog=" + spec.watchdog)
    if spec.console:
        args.append("--console")
    if spec.guest_agent:
        args.append("--guest-agent")
    if spec.runtime:
        args.append("--runtime=" + spec.runtime)
    return args


def add_app_arguments(parser):
    """The helper's options for AppConfig, the FQDN and the image disk
    (see to_args)."""
    parser.add_argument("--image-source",
                        help="KIND,SOURCE of the disk of --image=disk:...")
    for field, option in _APP_ARGS.items():
        # dest: "command" is the helper's subcommand already.
        parser.add_argument(option, dest="app_" + field, default="")
    parser.add_argument("--fqdn", help="the Initial Run's FQDN")
    parser.add_argument("--watchdog",
                        help="the action of the VM's watchdog device")
    parser.add_argument("--runtime", help="the VM's containerRuntime")
    parser.add_argument("--console", action="store_true",
                        help="the VM has Engine's serial console")
    parser.add_argument("--guest-agent", action="store_true",
                        help="serve the VM's oVirt guest agent channel")


def from_args(ns):
    """The spec from the helper's parsed arguments, validated again."""
    volumes = _limited("volumes", [volume(v) for v in ns.volume or ()],
                       MAX_VOLUMES)
    return ContainerSpec(
        vm_id=vm_id(ns.vm_id),
        vm_name=vm_name(ns.vm_name),
        engine=ns.engine,
        image=image_from_args(ns.image, getattr(ns, "image_source", None),
                              volumes),
        memory_mib=number("memory", ns.memory_mib, 1, MAX_MEMORY_MIB),
        vcpus=number("vcpus", ns.vcpus, 1, MAX_VCPUS),
        cpu_shares=None if ns.cpu_shares is None
        else number("cpu shares", ns.cpu_shares, 2, 262144),
        nics=_limited("NICs", [nic(v) for v in ns.nic or ()], MAX_NICS),
        volumes=volumes,
        app=app_from_args(ns),
        fqdn=None if ns.fqdn is None else fqdn(ns.fqdn),
        pull=pull_from_args(ns),
        watchdog=watchdog_from_args(ns),
        console=bool(getattr(ns, "console", False)),
        guest_agent=bool(getattr(ns, "guest_agent", False)),
        runtime=runtime_from_args(ns),
    )


def watchdog_from_args(ns):
    value = getattr(ns, "watchdog", None)
    if value is None:
        return None
    from containerhooks import health
    _text("watchdog", value)
    if value not in health.ACTIONS:
        raise errors.InvalidDomain(reason="watchdog action %r is none of %s"
                                   % (value, ", ".join(health.ACTIONS)))
    return value


def image_from_args(value, source, volumes):
    """The helper's --image (and --image-source, KIND,SOURCE, for an
    image disk), checked again with containerImage's parser: an ImageRef,
    or a DiskImage with its disk's kind and source (syntax only, as a
    volume's; hostdisk.open_image_source checks it on the host)."""
    from containerhooks import properties
    _text("image", value)
    image = properties.parse_image(value)
    if not isinstance(image, imageref.DiskImage):
        if source is not None:
            raise errors.InvalidDomain(reason="--image-source is for an "
                                       "image disk (disk:...) only")
        return image
    properties.check_image_disk(image, volumes)
    if source is None:
        raise errors.InvalidDomain(reason="--image=%s needs --image-source"
                                   % (image,))
    _text("image source", source)
    kind, _, path = source.partition(",")
    if kind not in ("file", "block") or not path.startswith("/") \
            or "\0" in path:
        raise errors.InvalidDomain(reason="bad image source %r: expected "
                                   "file|block,SOURCE" % (source,))
    return image._replace(kind=kind, source=path)


def pull_from_args(ns):
    """The helper's --pull, checked again with containerPull's parser."""
    from containerhooks import properties
    value = getattr(ns, "pull", None)
    if value is None:
        return ""
    _text("pull", value)
    return properties.parse_pull(value)


def app_from_args(ns):
    """The AppConfig of the helper's arguments, each checked again with
    its property's parser."""
    from containerhooks import properties
    app = AppConfig(*[getattr(ns, "app_" + field) for field in _APP_ARGS])
    for field in _APP_ARGS:
        _text(field, getattr(app, field))
    properties.parse_env(app.env)
    properties.parse_args(app.command, properties.CONTAINER_COMMAND)
    properties.parse_args(app.entrypoint, properties.CONTAINER_ENTRYPOINT)
    properties.parse_workdir(app.workdir)
    properties.parse_user(app.user)
    properties.parse_secret_names(app.secrets)
    properties.parse_health_cmd(app.health_cmd)
    properties.parse_health_options(app.health_options)
    return app


def nic(value):
    """Parse a --nic argument: MAC,BRIDGE[,IP]."""
    _text("NIC", value)
    parts = value.split(",")
    if len(parts) not in (2, 3) or not _MAC_RE.match(parts[0].lower()) \
            or not is_bridge(parts[1]) \
            or len(parts) == 3 and not _IPV4_RE.match(parts[2]):
        raise errors.InvalidDomain(reason="bad NIC %r: expected "
                                   "MAC,BRIDGE[,IPv4]" % (value,))
    mac = parts[0].lower()
    # A multicast (broadcast) or all-zero MAC is no interface's address:
    # Engine never assigns one, libvirt and the kernel refuse it.
    if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
        raise errors.InvalidDomain(reason="bad NIC %r: %s is not a unicast "
                                   "MAC address" % (value, mac))
    return Nic(mac=mac, bridge=parts[1],
               ip=parts[2] if len(parts) == 3 else None)


def is_bridge(name):
    """Whether name can be a Linux bridge's name (at most 15 characters,
    none of them '/', whitespace or ':'; never '.' or '..')."""
    return bool(_BRIDGE_RE.match(name or "")) and name not in (".", "..")


def is_mac(value):
    """Whether value is a unicast MAC address an interface can have (what
    nic() accepts)."""
    mac = (value or "").lower()
    return bool(_MAC_RE.match(mac)) and not int(mac[:2], 16) & 1 \
        and mac != "00:00:00:00:00:00"


def volume(value):
    """Parse a --volume argument: DISK,PATH,KIND,SOURCE (syntax only; the
    helper's volumes module checks the source against the host)."""
    from containerhooks import properties
    _text("volume", value)
    parts = value.split(",", 3)
    if len(parts) != 4 or parts[2] not in ("file", "block"):
        raise errors.InvalidDomain(reason="bad volume %r: expected "
                                   "DISK,PATH,file|block,SOURCE" % (value,))
    disk, path, kind, source = parts
    parsed = properties.parse_volume_map(disk + ":" + path)[0]
    if not source.startswith("/") or "\0" in source:
        raise errors.InvalidDomain(reason="bad volume source %r" % source)
    return VolumeSource(disk=parsed.disk, path=parsed.path, kind=kind,
                        source=source)


def block_volume_ids(source, roots):
    """The ids in source if it is a block volume path under one of roots
    (see BlockVolumeIds), else None."""
    for root in roots:
        prefix = root + "/mnt/blockSD/"
        if not source.startswith(prefix):
            continue
        parts = source[len(prefix):].split("/")
        if len(parts) == 4 and parts[1] == "images" and all(
                state.UUID_RE.match(parts[i]) for i in (0, 2, 3)):
            return BlockVolumeIds(domain=parts[0], image=parts[2],
                                  volume=parts[3])
    return None


def _text(what, value):
    # argparse hands "--nic=--" over as a list, not as a string.
    if not isinstance(value, six.string_types):
        raise errors.InvalidDomain(reason="bad %s argument %r" % (what, value))


def _limited(what, items, most):
    if len(items) > most:
        raise errors.InvalidDomain(reason="more than %d %s" % (most, what))
    return items


def vm_id(value):
    if not state.is_id(value):
        raise errors.InvalidDomain(reason="VM id %r is not a UUID"
                                   % (value,))
    return value.lower()


def vm_name(value):
    if not _NAME_RE.match(value or ""):
        raise errors.InvalidDomain(reason="VM name %r is not 1-64 letters, "
                                   "digits or _.-" % (value,))
    return value


def safe_name(name):
    """The VM name reduced to what labels and hostnames may carry."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name or "")[:64]
    return cleaned or "vm"


def hostname(spec):
    """The container's hostname: the VM name when it is a valid one."""
    return _vm_hostname(spec.vm_name)


def _vm_hostname(vm_name):
    name = (vm_name or "").replace("_", "-")
    return name if _HOSTNAME_RE.match(name) else None


# Linux's longest hostname and NIS domain name: sethostname(2) and
# setdomainname(2) refuse more than __NEW_UTS_LEN (include/uapi/linux/
# utsname.h) with EINVAL, and so the container's start fails on both
# engines ("runc create failed: ... sethostname: invalid argument").
HOST_NAME_MAX = 64
# The longest name DNS carries (RFC 1035 2.3.4, in its dotted form).
FQDN_MAX = 253

HostNames = collections.namedtuple("HostNames", "hostname, domainname")


def is_fqdn(value):
    """Whether value is a host name in RFC 1123's syntax (2.1), dotted:
    labels of 1-63 ASCII letters, digits and '-', none starting or ending
    with '-', at most FQDN_MAX characters in all, and a last label that is
    not all digits (RFC 3696 2: a name is never mistaken for an IPv4
    address).  One label alone ("web") is a host name too."""
    if not isinstance(value, six.string_types) or len(value) > FQDN_MAX:
        return False
    labels = value.split(".")
    if not all(_HOSTNAME_RE.match(label) for label in labels):
        return False
    return len(labels) == 1 or not labels[-1].isdigit()


def as_fqdn(text):
    """The FQDN that text (an Initial Run hostname) stands for, or None if
    it is none (is_fqdn).

    Engine's VM dialog allows '_' in a hostname and fills it in from the
    VM's name (frontend .../uicommonweb/validation/HostnameValidation.java:
    [-_.0-9a-zA-Z], at most 255): '_' becomes '-' as in a VM name used as
    the hostname (hostname()), and one final dot (the absolute form,
    "web.example.com.") is dropped."""
    if not isinstance(text, six.string_types):
        return None
    name = text.replace("_", "-")
    if name.endswith("."):
        name = name[:-1]
    return str(name) if is_fqdn(name) else None


def fqdn(value):
    """Parse a --fqdn argument: an FQDN exactly as as_fqdn() writes it."""
    _text("FQDN", value)
    if not is_fqdn(value):
        raise errors.InvalidDomain(
            reason="FQDN %r is not a host name: labels of 1-63 letters, "
            "digits or '-' separated by '.', %d characters at most"
            % (value, FQDN_MAX))
    return str(value)


def host_names(vm_name, fqdn=None):
    """The container's HostNames (hostname, domainname) for a VM named
    vm_name whose Initial Run sets fqdn (as_fqdn's, or None).

    - No FQDN: the VM's name as the hostname when it is a valid one
      (hostname()), else None (the engine's default: the container id's
      first 12 digits); no domain name.
    - An FQDN of at most HOST_NAME_MAX characters: it is the hostname,
      with no domain name.
    - A longer FQDN: its first label is the hostname, the rest the domain
      name (None when that is longer than HOST_NAME_MAX too).

    Measured on Docker 20.10 and Podman 4.3 (tests/spec_test.py): a
    hostname with dots is the kernel's hostname (uname -n) and
    /etc/hostname as given, so `hostname` prints the FQDN and `hostname
    -d` its domain on both, with "<ip> <fqdn> ..." in /etc/hosts.  A
    domain name is the kernel's NIS domain name (/proc/sys/kernel/
    domainname) and adds "<ip> <hostname>.<domain> <hostname>" to
    /etc/hosts on Docker only: Podman 4.3's compatible API drops
    Domainname (inspect shows it empty, the kernel's stays "(none)").  So
    `hostname` prints the FQDN on both engines whenever Linux can hold it,
    and the first label on both when it cannot; only then does Docker
    also know the domain (`hostname -f`), Podman not.  What Engine shows
    (guestFQDN, vmstats.py) is the FQDN either way: the state record
    keeps it (its "fqdn").
    """
    if fqdn is None:
        return HostNames(_vm_hostname(vm_name), None)
    if len(fqdn) <= HOST_NAME_MAX:
        return HostNames(fqdn, None)
    first, _, rest = fqdn.partition(".")
    return HostNames(first, rest if len(rest) <= HOST_NAME_MAX else None)


def number(what, value, low, high):
    # Decimal ASCII digits only, as the hook writes them: int() alone also
    # takes " 64\n", "6_4", "+64" and other scripts' digits ("\uff16\uff14").
    n = int(value) if isinstance(value, six.string_types) \
        and _NUMBER_RE.match(value) else None
    if n is None or not low <= n <= high:
        raise errors.InvalidDomain(reason="%s %r is not a whole number from "
                                   "%d to %d" % (what, value, low, high))
    return n


# Labels that mark a container as ours, and the VM it stands for.
LABEL_MANAGED = "org.ovirt.vdsm-hook-containers"
LABEL_VM_ID = "org.ovirt.vm.id"
LABEL_VM_NAME = "org.ovirt.vm.name"


def container_name(vm_id):
    """The container of a VM is named after the VM id, unique on a host."""
    return "ovirt-vm-" + vm_id


def labels(spec):
    return {
        LABEL_MANAGED: "1",
        LABEL_VM_ID: spec.vm_id,
        LABEL_VM_NAME: spec.vm_name,
    }


def container_options(spec, conf, host_cpus):
    """Keyword arguments for containers.create(): limits and hardening.

    - memory: the VM's memory, with no swap beyond it;
    - CPU: the VM's vCPUs as a CFS quota (at most the host's CPUs) and
      Engine's CPU shares (<cputune><shares>) as the relative weight;
    - confinement: never privileged, every capability dropped but
      config.BASE_CAPABILITIES (+ extra_capabilities), no-new-privileges,
      a pids limit, explicit nofile/nproc ulimits, private IPC, an init
      process that reaps zombies and forwards signals, no host namespaces;
    - no restart policy: Engine decides restarts (HA), not the engine;
    - bounded output: the json-file log driver with log_max_size and
      log_max_files (the engine's own logging setup when log_max_size is
      empty); the writable layer's size (writable_layer_size) is
      engine.create's, as only some storage drivers take it.

    These are HostConfig options; the network (network.py) and the volumes
    (volumes.py) add their own.
    """
    memory = spec.memory_mib * 1024 * 1024
    options = dict(
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=int(min(spec.vcpus, host_cpus) * 10 ** 9),
        privileged=False,
        cap_drop=["ALL"],
        cap_add=list(conf.capabilities),
        security_opt=["no-new-privileges"],
        pids_limit=conf.pids_limit,
        ulimits=[
            {"name": "nofile", "soft": conf.nofile, "hard": conf.nofile},
            {"name": "nproc", "soft": conf.nproc, "hard": conf.nproc},
        ],
        ipc_mode="private",
        init=conf.init,
        restart_policy={"Name": "no"},
    )
    if spec.cpu_shares is not None:
        options["cpu_shares"] = spec.cpu_shares
    if conf.log_max_size:
        # Podman takes "json-file" as its k8s-file driver, honours max-size
        # (conmon's log-size-max) and ignores max-file.
        options["log_config"] = {"type": "json-file", "config": {
            "max-size": conf.log_max_size,
            "max-file": str(conf.log_max_files)}}
    return options


# The shortest interval between two runs of an image's HEALTHCHECK: every
# run is a process started in the container by the engine (runc exec), paid
# by the host's engine daemon, not by the container's CPU quota.
HEALTHCHECK_MIN_INTERVAL = 5    # seconds
_NS = 10 ** 9


def vm_healthcheck(app):
    """The create() healthcheck of app's containerHealthCmd: None when not
    set (the image's HEALTHCHECK then, see bounded_healthcheck), Docker's
    {"test": ["NONE"]} for "none", else the command (exec'd, no shell)
    timed by containerHealthOptions, Docker's defaults for the options
    not given (interval and timeout 30 s, 3 retries, no start period).

    Every field is given, none left to the engine: the image's own
    HEALTHCHECK timing was written for the image's command, and Docker
    and Podman would each fill a zero their own way."""
    from containerhooks import health
    from containerhooks import properties
    command = properties.parse_health_cmd(app.health_cmd)
    if command is None:
        return None
    if not command:
        return {"test": ["NONE"]}
    options = properties.parse_health_options(app.health_options) \
        or properties.HealthOptions(None, None, None, None)

    def given(value, default):
        return default if value is None else value
    return {"test": ["CMD"] + command,
            "interval": int(given(options.interval,
                                  health.DEFAULT_INTERVAL) * _NS),
            "timeout": int(given(options.timeout,
                                 health.DEFAULT_TIMEOUT) * _NS),
            "retries": given(options.retries, health.DEFAULT_RETRIES),
            "start_period": given(options.start_period, 0) * _NS}


def bounded_healthcheck(image_config, app=NO_APP):
    """The create() healthcheck for a container whose config (the
    engine's inspect "Config") is image_config: None to keep the check it
    has, or its test with the VM's containerHealthOptions applied (when
    no containerHealthCmd replaced the image's check) and the interval
    raised to the floor.

    An interval of 0 is the engine's default (30 s): within bounds.  The
    same floor holds for the start interval of Docker 25+ and Podman 5
    (HEALTHCHECK --start-interval, the check's period during its start
    period, down to 1 ms); its key, "start_interval", is there only when
    it must be raised (Engine.create sends it, docker-py cannot)."""
    check = (image_config or {}).get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    fields = (("interval", "Interval"), ("timeout", "Timeout"),
              ("retries", "Retries"), ("start_period", "StartPeriod"))
    current = dict((key, check.get(name) or 0) for key, name in fields)
    wanted = dict(current)
    start_interval = check.get("StartInterval") or 0
    if 0 < start_interval < HEALTHCHECK_MIN_INTERVAL * _NS:
        wanted["start_interval"] = HEALTHCHECK_MIN_INTERVAL * _NS
    if not app.health_cmd:
        from containerhooks import properties
        options = properties.parse_health_options(app.health_options)
        for key, value in (options._asdict().items() if options else ()):
            if value is not None:
                wanted[key] = value if key == "retries" else value * _NS
    if 0 < wanted["interval"] < HEALTHCHECK_MIN_INTERVAL * _NS:
        wanted["interval"] = HEALTHCHECK_MIN_INTERVAL * _NS
    if wanted == current:
        return None
    # Zeros: the engine's defaults (Docker merges field by field).
    return dict(wanted, test=list(test))


def unmapped_volumes(image_config, volumes):
    """The image's VOLUME paths that no volumeMap entry covers (sorted).

    The engine gives each an anonymous volume, removed with the container
    at every power off: whatever the image keeps there is lost.  A
    volumeMap path covers a declared path it equals or contains."""
    declared = (image_config or {}).get("Volumes") or {}
    mapped = [v.path.rstrip("/") or "/" for v in volumes]
    lost = []
    for path in declared:
        norm = "/" + "/".join(p for p in path.split("/") if p)
        if not any(norm == m or norm.startswith(m + "/") for m in mapped):
            lost.append(norm)
    return sorted(set(lost))
