"""The host configuration file, /etc/vdsm-hook-containers/containers.conf.

Everything an admin may tune lives in one ini section; nothing here can be
set from a VM's custom properties.  A missing file means the defaults.
"""

import collections
import os
import re

import six
from six.moves import configparser

from containerhooks import errors
from containerhooks import imagepolicy
from containerhooks import paths

SECTION = "containers"

ENGINES = ("docker", "podman")

# Capabilities every container keeps once Docker's default set is dropped:
# enough for images that start as root and switch to a service user
# (nginx, postgres, redis), nothing that reaches the host.
BASE_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "NET_BIND_SERVICE",
)

# Names an admin may add with extra_capabilities (Linux capability names).
# None of them reaches beyond the container's own namespaces, cgroup and
# files: SYS_NICE and SYS_RESOURCE let its processes raise their own
# priority and limits (the cgroup's memory, CPU and pids limits still
# hold).
KNOWN_CAPABILITIES = frozenset(BASE_CAPABILITIES + (
    "AUDIT_WRITE", "MKNOD", "NET_RAW", "SETFCAP", "SETPCAP", "SYS_CHROOT",
    "IPC_LOCK", "SYS_NICE", "SYS_RESOURCE", "LINUX_IMMUTABLE",
))

# Capabilities that make a container as good as root on the host (the
# container shares the host's kernel and, without a user namespace, its
# root user): extra_capabilities refuses them, with the reason.
REFUSED_CAPABILITIES = collections.OrderedDict([
    ("ALL", "it grants every capability, including all those below"),
    ("SYS_ADMIN", "it lets the container mount file systems, create "
     "namespaces and reach most of the kernel's administration: the classic "
     "way out of a container to the host"),
    ("SYS_MODULE", "it loads kernel modules: any code into the host's "
     "kernel"),
    ("SYS_RAWIO", "it gives raw I/O ports and device memory (iopl, "
     "/dev/mem): the host's hardware and memory"),
    ("DAC_READ_SEARCH", "with open_by_handle_at it opens any file of the "
     "host's file systems, outside the container's root (the 'shocker' "
     "escape)"),
    ("SYS_PTRACE", "ptrace reads and writes the memory of other processes "
     "and bypasses seccomp filters on older kernels"),
    ("SYS_BOOT", "kexec_load replaces the host's running kernel, and "
     "reboot() reaches the host"),
    ("NET_ADMIN", "it opens nf_tables and the other netlink subsystems, "
     "the way to host root of several kernel exploits (CVE-2022-1015, "
     "CVE-2023-32233), and lets the container change its MAC and addresses "
     "on the host's bridge"),
    ("MAC_ADMIN", "it changes the host's mandatory access control (SELinux, "
     "AppArmor) policy"),
    ("MAC_OVERRIDE", "it overrides the host's mandatory access control "
     "(SELinux, AppArmor)"),
    ("BPF", "it loads BPF programs and maps into the host's kernel"),
    ("PERFMON", "it opens perf events on the whole host and reads kernel "
     "addresses"),
    ("SYS_TIME", "the clock is not namespaced: it sets the host's clock for "
     "every VM, Vdsm and sanlock"),
    ("SYSLOG", "it reads and clears the host's kernel log, with kernel "
     "addresses"),
    ("AUDIT_CONTROL", "it changes or disables the host's audit rules"),
])

_DEFAULTS = collections.OrderedDict([
    ("engines", "docker, podman"),
    ("docker_socket", "/var/run/docker.sock"),
    ("podman_socket", "/run/podman/podman.sock"),
    ("api_timeout", "60"),
    ("pull_timeout", "600"),
    ("stop_timeout", "10"),
    ("pids_limit", "1024"),
    ("log_max_size", "10m"),
    ("log_max_files", "3"),
    ("writable_layer_size", "10g"),
    ("nofile", "8192"),
    ("nproc", "4096"),
    ("extra_capabilities", ""),
    ("init", "true"),
    ("placeholder_memory_mib", "16"),
    ("storage_roots", "/rhev/data-center"),
    ("blank_check_timeout", "120"),
    ("gc_grace", "300"),
    ("leftover_grace", "30"),
    ("allow_root_user", "false"),
    ("docker_auth_file", "/root/.docker/config.json"),
    ("podman_auth_file", "/etc/containers/auth.json"),
    ("allowed_images", ""),
    ("require_digest", "false"),
    ("pull_policy", "missing"),
    ("image_archive_max_size", "10g"),
    ("image_load_timeout", "600"),
    ("console_replay_lines", "50"),
    ("console_exec_shell", "false"),
    ("migration", "restart"),
    ("migration_wait", "60"),
    # OCI runtimes (_runtimes, runtimes.py).
    ("docker_runtimes", ""),
    ("docker_default_runtime", ""),
    ("podman_runtimes", ""),
    ("podman_default_runtime", ""),
    ("podman_runtime_sockets", ""),
])

# Python 3 would decode with the locale's encoding, which is ASCII when
# vdsm runs hooks in the C locale: one accented letter in a comment would
# crash every hook.  The file is UTF-8 (Python 2 reads bytes, never fails).
_READ_OPTIONS = {"encoding": "utf-8"} if six.PY3 else {}

Config = collections.namedtuple("Config", [
    "engines", "sockets", "api_timeout", "pull_timeout", "stop_timeout",
    "pids_limit", "log_max_size", "log_max_files", "writable_layer_size",
    "nofile", "nproc", "capabilities", "init",
    "placeholder_memory_mib", "storage_roots", "blank_check_timeout",
    "gc_grace", "leftover_grace", "allow_root_user", "auth_files",
    "allowed_images", "require_digest", "pull_policy",
    "image_archive_max_size", "image_load_timeout", "console_replay_lines",
    "console_exec_shell", "migration", "migration_wait", "path",
    "runtimes", "default_runtimes", "podman_runtime_sockets",
])


def load(path=None):
    """Read the configuration file (default paths.CONF_FILE)."""
    path = path or paths.CONF_FILE
    parser = configparser.RawConfigParser()
    try:
        read = parser.read(path, **_READ_OPTIONS)
    except configparser.Error as e:
        raise errors.ConfigError(path=path, reason=str(e).splitlines()[0])
    except UnicodeError as e:
        raise errors.ConfigError(path=path, reason="not UTF-8 text: %s" % e)
    values = dict(_DEFAULTS)
    if read and parser.has_section(SECTION):
        for key, value in parser.items(SECTION):
            if key not in _DEFAULTS:
                raise errors.ConfigError(
                    path=path, reason="unknown option %r" % key)
            values[key] = value.strip()
    return _build(values, path)


def _build(v, path):
    engines = tuple(_words(v["engines"]))
    for name in engines:
        if name not in ENGINES:
            raise errors.ConfigError(
                path=path, reason="engines: %r is not one of %s"
                % (name, ", ".join(ENGINES)))
    caps = list(BASE_CAPABILITIES)
    for cap in _words(v["extra_capabilities"]):
        cap = cap.upper()
        if cap.startswith("CAP_"):
            cap = cap[4:]
        if cap in REFUSED_CAPABILITIES:
            raise errors.ConfigError(
                path=path, reason="extra_capabilities: %s is refused: %s; "
                "remove it (run an image that needs it as a real VM)"
                % (cap, REFUSED_CAPABILITIES[cap]))
        if cap not in KNOWN_CAPABILITIES:
            raise errors.ConfigError(
                path=path, reason="extra_capabilities: unknown %r" % cap)
        if cap not in caps:
            caps.append(cap)
    return Config(
        engines=engines,
        sockets={"docker": v["docker_socket"], "podman": v["podman_socket"]},
        api_timeout=_int(v, "api_timeout", 1, 3600, path),
        pull_timeout=_int(v, "pull_timeout", 1, 86400, path),
        stop_timeout=_int(v, "stop_timeout", 0, 3600, path),
        pids_limit=_int(v, "pids_limit", 16, 1 << 22, path),
        log_max_size=_size(v, "log_max_size", 64 * 1024, path),
        log_max_files=_int(v, "log_max_files", 1, 100, path),
        writable_layer_size=_size(v, "writable_layer_size", 1 << 20, path),
        nofile=_int(v, "nofile", 64, 1 << 20, path),
        nproc=_int(v, "nproc", 16, 1 << 22, path),
        capabilities=tuple(caps),
        init=_bool(v, "init", path),
        placeholder_memory_mib=_int(v, "placeholder_memory_mib", 8, 1024,
                                    path),
        storage_roots=_roots(v, "storage_roots", path),
        blank_check_timeout=_int(v, "blank_check_timeout", 1, 86400, path),
        gc_grace=_int(v, "gc_grace", 0, 86400, path),
        leftover_grace=_int(v, "leftover_grace", 0, 86400, path),
        allow_root_user=_bool(v, "allow_root_user", path),
        auth_files={"docker": _file(v, "docker_auth_file", path),
                    "podman": _file(v, "podman_auth_file", path)},
        allowed_images=_parsed(v, "allowed_images",
                               imagepolicy.parse_patterns, path),
        require_digest=_bool(v, "require_digest", path),
        pull_policy=_parsed(v, "pull_policy", lambda value: imagepolicy
                            .parse_pull(value.lower()), path),
        image_archive_max_size=_bytes(v, "image_archive_max_size", 1 << 20,
                                      path),
        image_load_timeout=_int(v, "image_load_timeout", 1, 86400, path),
        console_replay_lines=_int(v, "console_replay_lines", 0, 1000, path),
        console_exec_shell=_bool(v, "console_exec_shell", path),
        migration=_choice(v, "migration", ("restart", "refuse"), path),
        migration_wait=_int(v, "migration_wait", 1, 3600, path),
        path=path,
        **_runtimes(v, path)
    )


def _runtimes(v, path):
    """The OCI runtimes VMs may choose per engine (runtimes.py): the
    Config fields runtimes ({engine: names}), default_runtimes ({engine:
    name or ""}) and podman_runtime_sockets ({name: socket})."""
    from containerhooks import runtimes as known
    offered = {}
    defaults = {}
    for engine in ENGINES:
        key = engine + "_runtimes"
        names = []
        for name in _words(v[key]):
            if name not in known.KNOWN:
                raise errors.ConfigError(
                    path=path, reason="%s: %r is not one of %s"
                    % (key, name, ", ".join(known.KNOWN)))
            if name not in names:
                names.append(name)
        offered[engine] = tuple(names)
        default = v[engine + "_default_runtime"]
        if default and default not in names:
            raise errors.ConfigError(
                path=path, reason="%s_default_runtime: %r is not in %s (%s)"
                % (engine, default, key, ", ".join(names) or "empty"))
        defaults[engine] = default
    sockets = {}
    for item in _words(v["podman_runtime_sockets"]):
        name, sep, socket = item.partition(":")
        if not sep or name not in known.KNOWN:
            raise errors.ConfigError(
                path=path, reason="podman_runtime_sockets: expected "
                "RUNTIME:SOCKET items (RUNTIME one of %s), got %r"
                % (", ".join(known.KNOWN), item))
        sockets[name] = _file({"podman_runtime_sockets": socket},
                              "podman_runtime_sockets", path)
    return {"runtimes": offered, "default_runtimes": defaults,
            "podman_runtime_sockets": sockets}


def _words(value):
    return [w for w in value.replace(",", " ").split() if w]


def _parsed(values, key, parse, path):
    """parse(value) of key; its ValueError as the ConfigError."""
    try:
        return parse(values[key])
    except ValueError as e:
        raise errors.ConfigError(path=path, reason="%s: %s" % (key, e))


def _file(values, key, path):
    """An absolute, normalized file path."""
    value = values[key]
    if not value.startswith("/") or value.startswith("//") \
            or os.path.normpath(value) != value or value == "/":
        raise errors.ConfigError(
            path=path, reason="%s: %r is not an absolute, normalized file "
            "path" % (key, value))
    return value


def _roots(values, key, path):
    """Absolute, normalized directories (never "/" itself)."""
    roots = []
    for root in _words(values[key]):
        if not root.startswith("/") or root.strip("/") == "" \
                or os.path.normpath(root) != root.rstrip("/") \
                or root.startswith("//"):
            raise errors.ConfigError(
                path=path, reason="%s: %r is not an absolute, normalized "
                "directory other than /" % (key, root))
        roots.append(root.rstrip("/"))
    return tuple(roots)


_SIZE_RE = re.compile(r"\A([0-9]{1,12})([kmg]?)\Z")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(values, key, low, path):
    """A size as the engines take it ("10m", "512k", "2g"; bytes without a
    unit), or "" for none; at least low bytes."""
    value = values[key].lower()
    if not value:
        return ""
    m = _SIZE_RE.match(value)
    if not m or int(m.group(1)) * _UNITS[m.group(2)] < low:
        raise errors.ConfigError(
            path=path, reason="%s: expected a size of at least %d KiB such as "
            "512k, 10m or 2g, or nothing, got %r" % (key, low // 1024,
                                                     values[key]))
    return value


def _bytes(values, key, low, path):
    """A size as _size takes it, required, in bytes."""
    if not values[key]:
        raise errors.ConfigError(path=path, reason="%s: a size is required"
                                 % key)
    value = _size(values, key, low, path)
    m = _SIZE_RE.match(value)
    return int(m.group(1)) * _UNITS[m.group(2)]


def _int(values, key, low, high, path):
    try:
        n = int(values[key])
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        raise errors.ConfigError(
            path=path, reason="%s: expected a whole number from %d to %d, "
            "got %r" % (key, low, high, values[key]))
    return n


def _choice(values, key, choices, path):
    value = values[key].lower()
    if value not in choices:
        raise errors.ConfigError(
            path=path, reason="%s: expected %s, got %r" % (
                key, " or ".join(choices), values[key]))
    return value


def _bool(values, key, path):
    value = values[key].lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise errors.ConfigError(
        path=path, reason="%s: expected true or false, got %r"
        % (key, values[key]))
