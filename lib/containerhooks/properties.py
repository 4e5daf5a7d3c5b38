"""The VM custom properties this package reads, and their validation.

An Engine user sets them per VM; they reach the hook as environment
variables (every Vdsm version) and under <ovirt-vm:custom> in the domain XML
metadata (Vdsm 4.2+).  Both sources give the same result; a property present
in both with different values is refused.

Values are hostile input.  Each is matched against a strict grammar before
anything uses it, is never passed through a shell, and can never name a
host path, a privilege or a device.
"""

import collections
import re

import six

from containerhooks import errors
from containerhooks import imageref
from containerhooks import spec as specs

CONTAINER_TYPE = "containerType"
CONTAINER_IMAGE = "containerImage"
VOLUME_MAP = "volumeMap"
CONTAINER_IP = "containerIP"
CONTAINER_ENV = "containerEnv"
CONTAINER_COMMAND = "containerCommand"
CONTAINER_ENTRYPOINT = "containerEntrypoint"
CONTAINER_WORKDIR = "containerWorkdir"
CONTAINER_USER = "containerUser"
CONTAINER_SECRETS = "containerSecrets"
# When a start pulls the VM's image (imagepolicy.PULL_POLICIES), overriding
# the host's pull_policy; the helper applies it (issue 10).
CONTAINER_PULL = "containerPull"
# The container's health check (issue 13): the probe's command, replacing
# the image's HEALTHCHECK (or "none", disabling it), and its timing.
CONTAINER_HEALTH_CMD = "containerHealthCmd"
CONTAINER_HEALTH_OPTIONS = "containerHealthOptions"
# The OCI runtime the container runs on (runtimes.KNOWN), among those the
# host offers (issue 14).
CONTAINER_RUNTIME = "containerRuntime"
NAMES = (CONTAINER_TYPE, CONTAINER_IMAGE, VOLUME_MAP, CONTAINER_IP,
         CONTAINER_ENV, CONTAINER_COMMAND, CONTAINER_ENTRYPOINT,
         CONTAINER_WORKDIR, CONTAINER_USER, CONTAINER_SECRETS,
         CONTAINER_PULL, CONTAINER_HEALTH_CMD, CONTAINER_HEALTH_OPTIONS,
         CONTAINER_RUNTIME)

MAX_VOLUME_MAP = 4096
MAX_VOLUMES = 16
MAX_PATH = 1024

# containerEnv: the whole value, its variables, a name.
MAX_ENV = 2048
MAX_ENV_ITEMS = 64
MAX_ENV_KEY = 128
# containerCommand, containerEntrypoint and containerHealthCmd: the whole
# value, arguments.
MAX_ARGS_LENGTH = {"containerCommand": 1024, "containerEntrypoint": 512,
                   "containerHealthCmd": 512}
MAX_ARGS = 64
# containerUser: the kernel's uid_t and gid_t, as Docker and Podman take
# them (and as no user namespace maps beyond).
MAX_ID = 2 ** 31 - 1
# containerSecrets.
MAX_SECRETS = 16
MAX_SECRET_NAME = 64
MAX_SECRETS_LENGTH = MAX_SECRETS * (MAX_SECRET_NAME + 1) - 1

# parse(): the parsed values, and raw (name -> the value as given) of
# every property present, which the hook passes on to the root helper: it
# parses them again itself.
ContainerProperties = collections.namedtuple(
    "ContainerProperties", "engine, image, volumes, ips, env, command, "
    "entrypoint, workdir, user, secrets, health_cmd, health_options, raw")

# One entry of volumeMap: the VM disk's target name (vda) and the absolute
# path it is mounted at inside the container.
Volume = collections.namedtuple("Volume", "disk, path")

_DISK = r"(?:vd|sd|hd|xvd)[a-z]{1,3}"
_PATH_CHARS = r"[A-Za-z0-9._@+-]"
_PATH = r"(?:/" + _PATH_CHARS + r"+)+"
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = r"(?:" + _OCTET + r"\.){3}" + _OCTET
_IPV4_RE = re.compile(r"\A" + _IPV4 + r"\Z")
MAX_IPS_LENGTH = 16 * 16

_DISK_RE = re.compile(r"\A" + _DISK + r"\Z")
_PATH_RE = re.compile(r"\A" + _PATH + r"\Z")
_LABEL_RE = re.compile(r"\A" + _LABEL + r"\Z")

# Container paths a volume may never cover: the kernel's own file systems.
FORBIDDEN_PATHS = ("/proc", "/sys", "/dev")


def engine_regexes(engines):
    """The regexes for Engine's UserDefinedVMProperties, by property name.

    Each accepts exactly the values the hook's parsers accept for that
    property on its own (parse, imageref.parse, parse_volume_map,
    parse_ips), "" included where it means "none": an admin learns of a
    bad value when saving the VM, not when starting it.  Left to the hook
    at VM start is only what needs the VM or the host:

    - containerType: whether this host runs that engine (the regex allows
      every engine the package knows; engines= in containers.conf may
      allow fewer);
    - volumeMap: whether the VM has a disk of that name, and whether it can
      be mounted: a hard disk (not a CD-ROM or a LUN), not shareable,
      attached read-write, on file or block storage, with an image, raw,
      on a VirtIO or VirtIO-SCSI bus (vmstart._volumes); the helper checks
      its source again on the host (volumes.py);
    - containerIP: whether the VM has a vNIC for every entry
      (vmstart._nics), and whether each address is in its bridge's
      container range, not the gateway nor the range's first address, and
      not used by another container VM on the host (network.py);
    - containerUser: whether uid or gid 0 may run (allow_root_user in
      containers.conf);
    - containerSecrets: whether the host has a secret of each name.

    (collect also refuses a property Vdsm passes with different values in
    the environment and the domain XML: no value an admin types does.)

    Engine matches with Java (Pattern.matcher(value).matches()), whose
    matcher recurses once per repetition of a group, and overflowed its
    stack on a long value.  So every regex bounds the length first, and no
    group repeats more than about a hundred times: 16 volumeMap entries (a
    path is one run of characters checked by lookaheads, not a group per
    component), 128 components or separators in an image name of 255
    characters, none in containerIP (one lookahead checks its entries),
    MAX_ENV_ITEMS in containerEnv, MAX_ARGS in containerCommand,
    containerEntrypoint and containerHealthCmd, MAX_SECRETS in
    containerSecrets, the four options in containerHealthOptions, none in
    containerWorkdir and containerUser; free text is one run of a
    character class, its escapes checked by one lookahead.  Java and
    Python disagree on line terminators ("." and "$") and see lone
    surrogates differently unless told: see _RAW_CLASS.
    tests/engine_regex_test.py runs them in Java with half the default
    stack.
    """
    return collections.OrderedDict([
        (CONTAINER_TYPE, _engine_type(engines)),
        (CONTAINER_IMAGE, _engine_image()),
        (VOLUME_MAP, _engine_volume_map()),
        (CONTAINER_IP, _engine_ips()),
        (CONTAINER_ENV, _engine_env()),
        (CONTAINER_COMMAND, _engine_args(CONTAINER_COMMAND)),
        (CONTAINER_ENTRYPOINT, _engine_args(CONTAINER_ENTRYPOINT)),
        (CONTAINER_WORKDIR, _engine_workdir()),
        (CONTAINER_USER, _engine_user()),
        (CONTAINER_SECRETS, _engine_secrets()),
        (CONTAINER_PULL, _engine_pull()),
        (CONTAINER_HEALTH_CMD, _engine_args(CONTAINER_HEALTH_CMD)),
        (CONTAINER_HEALTH_OPTIONS, _engine_health_options()),
        (CONTAINER_RUNTIME, _engine_runtime()),
    ])


def _engine_type(engines):
    """"^(docker|podman)$": the one form for which Engine's VM dialog
    offers a drop-down of the values instead of a text field
    (frontend/.../models/vms/key_value/KeyValueModel.java
    setKeyValueString: it finds \\^\\((([a-zA-Z0-9_]+[|]+)*)[a-zA-Z0-9_]+\\)\\$
    in the regex, cuts "^(" and ")$" and splits the rest on "|")."""
    return "^(%s)$" % "|".join(engines)


# Registry ports imageref.parse refuses: 0 (with any leading zeros) and
# 65536-99999 (its grammar allows 5 digits at most).
_BAD_PORT = (r"(?:0+|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}"
             r"|6[6-9][0-9]{3}|[7-9][0-9]{4})")


def _engine_image():
    """parse_image: "disk:" and a disk name (a value starting "disk:" is
    never a reference), or imageref.PATTERN with the checks imageref.parse
    makes after it:

    - 1 to MAX_LENGTH characters;
    - a repository name (all before the tag's ":" or the digest's "@") of
      MAX_NAME characters at most: its end is the first "@", the first
      ":" with no "/" after it (a port's ":" always has one), or the end;
    - a port in 1-65535: in a value of the grammar, a ":" before the
      first "/" followed by digits and "/" can only be the port's.
    """
    return ("^(?:%s%s|(?!%s)(?=.{1,%d}$)(?=.{0,%d}(?:[:@][^/]*)?$)"
            "(?![^/]*:%s/)%s)$"
            % (re.escape(imageref.DISK_PREFIX), _DISK,
               re.escape(imageref.DISK_PREFIX), imageref.MAX_LENGTH,
               imageref.MAX_NAME, _BAD_PORT, imageref.PATTERN))


def _engine_volume_map():
    """parse_volume_map as one regex: "", or 1 to MAX_VOLUMES entries.

    An entry is disk ":" target; the target is a label (a directory at the
    container's root) or "/" and a path.  Group 3 holds the path without
    its "/", the same text for the label "data" and the path "/data", so
    that later entries can be compared with it by backreference:

    - no later entry names the same disk (group 1);
    - no later entry's path equals this one or lies under it;
    - this path lies under no later entry's path: group 2 tries every
      prefix of it that ends before a "/".

    Together they refuse every pair of overlapping paths, as _check_unique.
    A path is one run of characters, its components checked by lookaheads:
    none empty, "." or "..", at most MAX_PATH characters with the "/", and
    not FORBIDDEN_PATHS or under them.  In a value that has the entries'
    form, "," only separates entries and ",<letters>:" only starts one.
    """
    kernel = "|".join(re.escape(p.lstrip("/")) for p in FORBIDDEN_PATHS)
    entry = (
        r"(" + _DISK + r")(?!.*,\1:)"
        r":(?:/(?=[^,]{1,%d}(?:,|$))(?!(?:[^,]*/)?\.{0,2}(?:/|,|$))"
        r"|(?=" + _LABEL + r"(?:,|$)))"
        r"(?!(?:" + kernel + r")(?:/|,|$))"
        r"(?!([^,]+)/.*,[a-z]+:/?\2(?:,|$))"
        r"([A-Za-z0-9._@+/-]+)"
        r"(?!.*,[a-z]+:/?\3(?:/|,|$))") % (MAX_PATH - 1)
    return "^(?=.{0,%d}$)(?!,)(?:(?:^|,)%s){0,%d}$" % (
        MAX_VOLUME_MAP, entry, MAX_VOLUMES)


# The percent-escaped properties, for Java's Pattern and Python's re alike:
# the characters refused raw (_REFUSED_RAW, ";" as \x3b: Engine splits the
# definitions on ";" first), and no "%" that does not start an escape
# (every "%" in a value starts one: the two hex digits after it are never
# a "%").  Java's "." stops at line terminators (\n \r \u0085 \u2028
# \u2029) and its "$" matches before a last one, where Python's stop at
# "\n" only: the lookaheads that use them may judge a value with such a
# character differently, but the part that consumes the value refuses it
# with an explicit class, in both.  In Java, a lone surrogate is a code
# point of its own (matched by \ud800-\udfff), a pair one code point
# above U+FFFF, as in Python's str.
_RAW_CLASS = r"\x00-\x1f\x7f-\x9f\x3b\u2028\u2029\ud800-\udfff"
_ESCAPES = r"(?!.*%(?!0[1-9A-Fa-f]|[1-7][0-9A-Fa-f]))"


def _engine_env():
    """parse_env: "", or up to MAX_ENV_ITEMS items KEY=VALUE; a name
    (group 1) appears at no later item's start (",KEY="; a raw "," only
    separates items)."""
    item = (r"([A-Za-z_][A-Za-z0-9_]{0,%d})(?!.*,\1=)=[^,%s]*"
            % (MAX_ENV_KEY - 1, _RAW_CLASS))
    return r"^(?=.{0,%d}$)%s(?!,)(?:(?:^|,)%s){0,%d}$" % (
        MAX_ENV, _ESCAPES, item, MAX_ENV_ITEMS)


def _engine_args(name):
    """parse_args: "", or up to MAX_ARGS arguments separated by single
    spaces (\x20: a regex that ends in a space would not survive a copy
    and paste)."""
    arg = r"[^\x20%s]+" % _RAW_CLASS
    return r"^(?=.{0,%d}$)%s(?:%s(?:\x20%s){0,%d})?$" % (
        MAX_ARGS_LENGTH[name], _ESCAPES, arg, arg, MAX_ARGS - 1)


def _engine_workdir():
    """parse_workdir: "", or an absolute path as _container_path takes
    it: one run of characters (not a group per component), checked by
    lookaheads for empty, "." and ".." components and the kernel's
    paths."""
    kernel = "|".join(re.escape(p) for p in FORBIDDEN_PATHS)
    return (r"^(?:(?=/[A-Za-z0-9._@+/-]{1,%d}$)(?!.*/\.{0,2}(?:/|$))"
            r"(?!(?:%s)(?:/|$))/[A-Za-z0-9._@+/-]+)?$"
            % (MAX_PATH - 1, kernel))


def _decimal_up_to(n):
    """A regex of the decimal numbers 0 to n (n > 9), without leading
    zeros: fewer digits than n, or as many and not above it."""
    digits = str(n)
    return "(?:0|[1-9][0-9]{0,%d}|%s)" % (len(digits) - 2,
                                          _digits_up_to(digits, "1"))


def _digits_up_to(digits, low):
    """len(digits) digits, the first at least low, not above digits."""
    def digit_range(a, b):
        return a if a == b else "[%s-%s]" % (a, b)
    first, rest = digits[0], len(digits) - 1
    if not rest:
        return digit_range(low, first)
    alternatives = []
    if first > low:
        alternatives.append(digit_range(low, chr(ord(first) - 1))
                            + "[0-9]" + ("{%d}" % rest if rest > 1 else ""))
    alternatives.append(first + _digits_up_to(digits[1:], "0"))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:%s)" % "|".join(alternatives)


def _engine_user():
    """parse_user: "", UID or UID:GID, each 0 to MAX_ID."""
    n = _decimal_up_to(MAX_ID)
    return r"^(?:%s(?::%s)?)?$" % (n, n)


def _engine_secrets():
    """parse_secret_names: "", or up to MAX_SECRETS names; a name (group
    1) is not listed again later."""
    return (r"^(?=.{0,%d}$)(?!,)(?:(?:^|,)([A-Za-z0-9][A-Za-z0-9_.-]{0,%d})"
            r"(?!.*,\1(?:,|$))){0,%d}$"
            % (MAX_SECRETS_LENGTH, MAX_SECRET_NAME - 1, MAX_SECRETS))


def _engine_ips():
    """parse_ips as one regex: "", or entries that are empty or an IPv4
    address, at least one not empty, MAX_IPS_LENGTH characters at most.

    The entries are checked by one lookahead (no entry, at the start or
    after a ",", fails to be an address or nothing before the next "," or
    the end), not by a group repeated per entry: a value may have up to
    255 of them.
    """
    return ("^(?:(?=.{1,%d}$)(?=.*[0-9])(?!(?:.*,)?(?!(?:%s)?(?:,|$)))"
            "[0-9.,]+)?$" % (MAX_IPS_LENGTH, _IPV4))


def _decimal_between(low, high):
    """A regex of the decimal numbers low to high (low < 10 <= high),
    without leading zeros: one digit from low, fewer digits than high, or
    as many and not above it."""
    assert 0 <= low < 10 <= high
    digits = str(high)
    alternatives = ["[%d-9]" % low]
    if len(digits) > 2:
        alternatives.append("[1-9][0-9]{1,%d}" % (len(digits) - 2)
                            if len(digits) > 3 else "[1-9][0-9]")
    alternatives.append(_digits_up_to(digits, "1"))
    return "(?:%s)" % "|".join(alternatives)


def _engine_health_options():
    """parse_health_options: "", or up to one of each option NAME=SECONDS
    separated by ","; no option is given again later (",NAME=": a ","
    only separates options)."""
    items = "|".join(
        r"%s=%s(?!.*,%s=)" % (name, _decimal_between(low, high), name)
        for name, (low, high) in HEALTH_OPTIONS.items())
    return r"^(?!,)(?:(?:^|,)(?:%s)){0,%d}$" % (items, len(HEALTH_OPTIONS))


def _engine_pull():
    """parse_pull as one regex, in the one form Engine's VM dialog shows as
    a drop-down of the values (^(a|b|c)$)."""
    from containerhooks import imagepolicy
    return "^(%s)$" % "|".join(imagepolicy.PULL_POLICIES)


def _engine_runtime():
    """parse_runtime as one regex, a drop-down (^(a|b|c)$) of every
    runtime the package knows: the same on every host.  Which of them a
    host offers is its containers.conf's, checked at start
    (runtimes.check_allowed)."""
    from containerhooks import runtimes
    return "^(%s)$" % "|".join(runtimes.KNOWN)


def parse_runtime(value):
    """Parse containerRuntime: runc, crun or runsc (runtimes.KNOWN);
    anything else is refused, "" too (a VM that leaves the runtime to the
    host does not set it)."""
    from containerhooks import runtimes

    def refuse(reason):
        _refuse(CONTAINER_RUNTIME, _shown(value, 64), reason)
    return runtimes.parse(value, refuse)


def parse_pull(value):
    """Parse containerPull: "missing", "always" or "never" (imagepolicy.py
    says what each does); anything else is refused, "" too (a VM that
    leaves the choice to the host's pull_policy does not set it)."""
    from containerhooks import imagepolicy
    try:
        return imagepolicy.parse_pull(value)
    except ValueError:
        raise errors.InvalidProperty(
            name=CONTAINER_PULL, value=value[:64], reason="expected one of "
            "%s" % ", ".join(imagepolicy.PULL_POLICIES))


# containerHealthCmd: the value that disables the image's HEALTHCHECK (in
# any case: "NONE" is how the engines write it).
HEALTH_CMD_NONE = "none"


def parse_health_cmd(value):
    """Parse containerHealthCmd: the health check's program and its
    arguments, as containerCommand (parse_args) -> [arg, ...]; [] for
    "none" (no check at all, whatever the image says); None when "" (the
    image's HEALTHCHECK, if it has one).

    No shell: the engine (or the watcher) execs the list in the
    container; a check that needs one says so (/bin/sh -c ...)."""
    args = parse_args(value, CONTAINER_HEALTH_CMD)
    if args is not None and len(args) == 1 \
            and args[0].lower() == HEALTH_CMD_NONE:
        return []
    return args


# containerHealthOptions: name -> (least, most), whole seconds but retries.
# The interval's floor is the one every HEALTHCHECK gets
# (spec.HEALTHCHECK_MIN_INTERVAL): each run is a process the engine starts.
HEALTH_OPTIONS = collections.OrderedDict([
    ("interval", (specs.HEALTHCHECK_MIN_INTERVAL, 3600)),
    ("timeout", (1, 300)),
    ("retries", (1, 100)),
    ("start-period", (0, 3600)),
])
_HEALTH_OPTION_RE = re.compile(r"\A(0|[1-9][0-9]{0,5})\Z")
MAX_HEALTH_OPTIONS = sum(len(n) + 2 + len(str(high))
                         for n, (_, high) in HEALTH_OPTIONS.items()) - 1

# The options given (None: the default: the image's, for its own check;
# Docker's for containerHealthCmd's, see spec.vm_healthcheck).
HealthOptions = collections.namedtuple(
    "HealthOptions", "interval, timeout, retries, start_period")


def parse_health_options(value):
    """Parse containerHealthOptions: "interval=10,retries=2" ->
    HealthOptions (None for an option not given), or None when "".

    Options, each at most once, in any order: interval (seconds between
    the end of a probe and the next), timeout (seconds a probe may take:
    longer is a failure), retries (failures in a row that make the
    container unhealthy), start-period (seconds after the start during
    which failures do not count), each NAME=NUMBER, separated by ",".
    They time containerHealthCmd's check, or the image's HEALTHCHECK."""
    if value == "":
        return None
    if len(value) > MAX_HEALTH_OPTIONS:
        _refuse(CONTAINER_HEALTH_OPTIONS, _shown(value, MAX_HEALTH_OPTIONS),
                "longer than %d characters" % MAX_HEALTH_OPTIONS)
    found = {}
    for i, item in enumerate(value.split(","), 1):
        name, sep, number = item.partition("=")
        if name not in HEALTH_OPTIONS or not sep:
            _refuse(CONTAINER_HEALTH_OPTIONS, value, "option %d, %r, is not "
                    "NAME=NUMBER with NAME one of %s; separate options with "
                    "a comma, for example interval=10,retries=2"
                    % (i, item[:64], ", ".join(HEALTH_OPTIONS)))
        if name in found:
            _refuse(CONTAINER_HEALTH_OPTIONS, value, "option %s is given "
                    "twice" % name)
        low, high = HEALTH_OPTIONS[name]
        match = _HEALTH_OPTION_RE.match(number)
        if not match or not low <= int(number) <= high:
            _refuse(CONTAINER_HEALTH_OPTIONS, value, "option %d, %r: "
                    "expected %s=NUMBER, a whole number from %d to %d%s, "
                    "without leading zeros or a unit"
                    % (i, item[:64], name, low, high,
                       "" if name == "retries" else " (seconds)"))
        found[name] = int(number)
    return HealthOptions(interval=found.get("interval"),
                         timeout=found.get("timeout"),
                         retries=found.get("retries"),
                         start_period=found.get("start-period"))


def may_be_container(env, domxml):
    """A cheap test, before parsing anything: can this VM be a container?"""
    return CONTAINER_TYPE in env or b"containerType" in domxml


def collect(env, metadata):
    """Merge the properties from the environment and the XML metadata."""
    raw = {}
    for name in NAMES:
        from_env = env.get(name)
        from_xml = metadata.get(name)
        if from_env is not None and from_xml is not None \
                and from_env != from_xml:
            raise errors.InvalidProperty(
                name=name, value=from_env, reason="the domain XML metadata "
                "says %r instead; Vdsm should pass the same value in both"
                % from_xml)
        value = from_env if from_env is not None else from_xml
        if value is not None:
            raw[name] = value
    return raw


def parse(raw, engines):
    """Validate the raw properties; None when the VM is not a container."""
    engine = raw.get(CONTAINER_TYPE)
    if engine is None:
        return None
    if engine not in engines:
        raise errors.InvalidProperty(
            name=CONTAINER_TYPE, value=engine[:64],
            reason="this host runs containers with %s only"
            % (" or ".join(engines) or "no engine (see engines= in "
               "containers.conf)"))
    image = parse_image(raw.get(CONTAINER_IMAGE, ""))
    volumes = parse_volume_map(raw.get(VOLUME_MAP, ""))
    check_image_disk(image, volumes)
    ips = parse_ips(raw.get(CONTAINER_IP, ""))
    if CONTAINER_PULL in raw:
        parse_pull(raw[CONTAINER_PULL])     # spec.pull_of keeps it
    if CONTAINER_RUNTIME in raw:
        parse_runtime(raw[CONTAINER_RUNTIME])   # spec.runtime_of keeps it
    return ContainerProperties(
        engine=engine, image=image, volumes=volumes, ips=ips,
        env=parse_env(raw.get(CONTAINER_ENV, "")),
        command=parse_args(raw.get(CONTAINER_COMMAND, ""), CONTAINER_COMMAND),
        entrypoint=parse_args(raw.get(CONTAINER_ENTRYPOINT, ""),
                              CONTAINER_ENTRYPOINT),
        workdir=parse_workdir(raw.get(CONTAINER_WORKDIR, "")),
        user=parse_user(raw.get(CONTAINER_USER, "")),
        secrets=parse_secret_names(raw.get(CONTAINER_SECRETS, "")),
        health_cmd=parse_health_cmd(raw.get(CONTAINER_HEALTH_CMD, "")),
        health_options=parse_health_options(
            raw.get(CONTAINER_HEALTH_OPTIONS, "")),
        raw=dict((name, raw[name]) for name in NAMES if name in raw))


def parse_image(value):
    """Parse containerImage: an image reference (imageref.ImageRef), or
    "disk:<target>" (imageref.DiskImage): the image archive on the VM's
    disk <target> (vdb), for hosts that reach no registry.

    A value starting with "disk:" is always the disk form (an image
    named "disk" in a registry is written with its registry or library
    path: docker.io/library/disk:1)."""
    if isinstance(value, six.string_types) \
            and value.startswith(imageref.DISK_PREFIX):
        disk = value[len(imageref.DISK_PREFIX):]
        if not _DISK_RE.match(disk):
            _refuse(CONTAINER_IMAGE, _shown(value, imageref.MAX_LENGTH),
                    "%r is not a VM disk name "
                    "such as vdb or sdb: write disk:<disk>, the disk "
                    "holding the image archive" % disk[:64])
        return imageref.DiskImage(disk=str(disk))
    return imageref.parse(value, CONTAINER_IMAGE)


def check_image_disk(image, volumes):
    """Refuse a disk that is both the image (containerImage=disk:...) and
    a volume: the archive is read before the container exists, a volume
    is the container's file system."""
    if not isinstance(image, imageref.DiskImage):
        return
    for v in volumes:
        if v.disk == image.disk:
            _refuse(CONTAINER_IMAGE, str(image), "disk %s is in volumeMap "
                    "too (%s:%s); a disk holds either the image archive or "
                    "a volume: remove it from volumeMap, or name another "
                    "disk" % (v.disk, v.disk, v.path))


def parse_ips(value):
    """Parse containerIP: fixed IPv4 addresses for the vNICs, in order.

    "192.0.2.10" fixes the first vNIC's address; "192.0.2.10,,10.0.0.7"
    the first and the third; an empty entry leaves that vNIC's address to
    the host's range.  Whether an address fits the bridge's subnet is
    checked on the host (network.py).
    """
    if value == "":
        return []
    if len(value) > MAX_IPS_LENGTH:
        raise errors.InvalidProperty(
            name=CONTAINER_IP, value=value[:64] + "...",
            reason="longer than %d characters" % MAX_IPS_LENGTH)
    ips = value.split(",")
    for ip in ips:
        if ip and not _IPV4_RE.match(ip):
            raise errors.InvalidProperty(
                name=CONTAINER_IP, value=value,
                reason="%r is not an IPv4 address such as 192.0.2.10" % ip)
    if not any(ips):
        raise errors.InvalidProperty(name=CONTAINER_IP, value=value,
                                     reason="no address given")
    return ips


def parse_volume_map(value):
    """Parse volumeMap: "vda:/data,vdb:/var/log/app" -> [Volume, ...].

    The older label form "vda:data" (from the first container support's
    documentation) means the same as "vda:/data": the label names a
    directory at the root of the container.
    """
    if value == "":
        return []
    if len(value) > MAX_VOLUME_MAP:
        _bad_volume(value[:64] + "...",
                    "longer than %d characters" % MAX_VOLUME_MAP)
    volumes = []
    for item in value.split(","):
        disk, sep, target = item.partition(":")
        if not sep:
            _bad_volume(value, "entry %r is not <disk>:<container path>, "
                        "for example vda:/data" % item)
        if not _DISK_RE.match(disk):
            _bad_volume(value, "%r is not a VM disk name such as vda or sdb"
                        % disk)
        if _LABEL_RE.match(target):
            target = "/" + target
        volumes.append(Volume(disk=disk,
                              path=_container_path(VOLUME_MAP, value, target)))
    if len(volumes) > MAX_VOLUMES:
        _bad_volume(value, "more than %d volumes" % MAX_VOLUMES)
    _check_unique(value, volumes)
    return volumes


def _container_path(name, value, target):
    """target, an absolute container path, checked for property name."""
    if len(target) > MAX_PATH or not _PATH_RE.match(target):
        _refuse(name, value, "%r is not an absolute container path made of "
                "letters, digits and ._@+-" % target[:64])
    parts = target.split("/")[1:]
    if any(p in (".", "..") for p in parts):
        _refuse(name, value, "%r contains '.' or '..'" % target)
    for forbidden in FORBIDDEN_PATHS:
        if target == forbidden or target.startswith(forbidden + "/"):
            _refuse(name, value, "%r is under %s, which belongs to the "
                    "kernel" % (target, forbidden))
    return target


def _check_unique(value, volumes):
    disks = set()
    targets = []
    for v in volumes:
        if v.disk in disks:
            _bad_volume(value, "disk %s is listed twice" % v.disk)
        disks.add(v.disk)
        for other in targets:
            if v.path == other or v.path.startswith(other + "/") \
                    or other.startswith(v.path + "/"):
                _bad_volume(value, "paths %s and %s overlap"
                            % (other, v.path))
        targets.append(v.path)


def _bad_volume(value, reason):
    _refuse(VOLUME_MAP, value, reason)


def _refuse(name, value, reason):
    raise errors.InvalidProperty(name=name, value=value, reason=reason)


# The application's properties: environment, command, working directory,
# user, secrets.  All optional; "" means "not set".
#
# containerEnv, containerCommand and containerEntrypoint carry free text,
# in "percent escapes": %XX (two hex digits, 01 to 7F) is that ASCII
# character, any other "%" is refused; other characters are written as
# themselves, but those no value may hold raw: the C0 and C1 controls and
# DEL (they are not text, and a newline or an escape sequence would reach
# logs and exit messages), U+2028 and U+2029 (line separators), lone
# surrogates (what Python makes of bytes that are not UTF-8), and ";",
# which separates the properties in Engine (VmPropertiesUtils.java
# convertProperties splits a VM's properties on it).

_REFUSED_RAW = re.compile(u"[\x00-\x1f\x7f-\x9f;\u2028\u2029\ud800-\udfff]")
_HEX2 = re.compile(r"\A[0-9A-Fa-f]{2}")
ENV_KEY_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,%d}\Z"
                         % (MAX_ENV_KEY - 1))
_USER_RE = re.compile(r"\A(0|[1-9][0-9]{0,9})(?::(0|[1-9][0-9]{0,9}))?\Z")
SECRET_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}\Z"
                        % (MAX_SECRET_NAME - 1))

_ESCAPES_HELP = ("write %25 for a percent sign, %XX (two hex digits, 01 to "
                 "7F) for any ASCII character, non-ASCII characters as they "
                 "are")
# What to write instead of a raw character, where an escape exists.
_INSTEAD = {u"\n": "%0A for a newline", u"\t": "%09 for a tab",
            u"\r": "%0D for a carriage return", u";": "%3B for a semicolon"}


def _shown(value, maximum):
    return value if len(value) <= maximum else value[:64] + "..."


def _text(name, value, maximum):
    """value as text, checked for its length and raw characters."""
    if isinstance(value, bytes):   # Python 2's environment
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            _refuse(name, _shown(value, maximum), "not UTF-8 text")
    if len(value) > maximum:
        _refuse(name, _shown(value, maximum),
                "longer than %d characters" % maximum)
    bad = _REFUSED_RAW.search(value)
    if bad:
        c = bad.group()
        if u"\ud800" <= c <= u"\udfff":
            reason = ("character %d is not text (a byte that is not "
                      "UTF-8?)" % (bad.start() + 1))
        else:
            where = "character %d (U+%04X)" % (bad.start() + 1, ord(c))
            if ord(c) < 0x80:
                reason = "%s must be escaped: write %s" % (
                    where, _INSTEAD.get(c, "%%%02X" % ord(c)))
                if c == u";":
                    reason += " (Engine separates the properties with ;)"
            else:
                reason = ("%s is not allowed: a control or line separator "
                          "character" % where)
        _refuse(name, value, reason)
    return value


def _unescape(name, value, text, where):
    """text (a part of value) with its %XX escapes decoded."""
    parts = text.split(u"%")
    decoded = [parts[0]]
    for part in parts[1:]:
        code = part[:2]
        if not _HEX2.match(code):
            _refuse(name, value, "%s: %r is not a percent escape: %s"
                    % (where, u"%" + code, _ESCAPES_HELP))
        n = int(code, 16)
        if n == 0:
            _refuse(name, value, "%s: %%00 (NUL) cannot be passed to a "
                    "program" % where)
        if n > 0x7f:
            _refuse(name, value, "%s: %r is not an ASCII character: write "
                    "non-ASCII characters as they are (%s)"
                    % (where, u"%" + code, u"\u00e9, not %C3%A9"))
        decoded.append(six.unichr(n) + part[2:])
    return u"".join(decoded)


def parse_env(value):
    """Parse containerEnv: "KEY=VALUE,KEY2=VALUE2" -> [(key, value), ...].

    Raw "," separates the variables, the first "=" of each ends its name;
    values are in percent escapes (%2C is a comma, %3B a semicolon).  A
    name given twice is refused (which one would the admin mean?).
    """
    value = _text(CONTAINER_ENV, value, MAX_ENV)
    if value == u"":
        return []
    items = value.split(u",")
    if len(items) > MAX_ENV_ITEMS:
        _refuse(CONTAINER_ENV, value, "more than %d variables"
                % MAX_ENV_ITEMS)
    env = []
    names = set()
    for i, item in enumerate(items, 1):
        key, sep, text = item.partition(u"=")
        if item == u"":
            _refuse(CONTAINER_ENV, value, "variable %d is empty (a comma "
                    "at the start or the end, or two in a row): separate "
                    "KEY=VALUE items with one comma, write %%2C for a comma "
                    "in a value" % i)
        if not sep:
            _refuse(CONTAINER_ENV, value, "variable %d, %r, has no '=': "
                    "write KEY=VALUE items separated by commas, and %%2C "
                    "for a comma in a value" % (i, item))
        if not ENV_KEY_RE.match(key):
            _refuse(CONTAINER_ENV, value, "variable %d: %r is not a "
                    "variable name: a letter or _, then up to %d letters, "
                    "digits or _" % (i, key[:64], MAX_ENV_KEY - 1))
        if key in names:
            _refuse(CONTAINER_ENV, value, "variable %s is given twice"
                    % key)
        names.add(key)
        env.append((str(key), _unescape(CONTAINER_ENV, value, text,
                                        "variable %s" % key)))
    return env


def parse_args(value, name):
    """Parse containerCommand or containerEntrypoint (name): the program
    and its arguments, separated by single spaces, in percent escapes (%20
    is a space within an argument) -> [arg, ...], or None when "".

    No shell ever sees them: they are the list Docker and Podman exec.
    """
    maximum = MAX_ARGS_LENGTH[name]
    value = _text(name, value, maximum)
    if value == u"":
        return None
    args = value.split(u" ")
    if u"" in args:
        _refuse(name, value, "argument %d is empty (a space at the start or "
                "the end, or two in a row): separate arguments with one "
                "space, write %%20 for a space within an argument"
                % (args.index(u"") + 1))
    if len(args) > MAX_ARGS:
        _refuse(name, value, "more than %d arguments" % MAX_ARGS)
    return [_unescape(name, value, arg, "argument %d" % i)
            for i, arg in enumerate(args, 1)]


def parse_workdir(value):
    """Parse containerWorkdir: an absolute container path, as a volumeMap
    path (not under /proc, /sys or /dev), or None when ""."""
    if value == "":
        return None
    if len(value) > MAX_PATH:
        _refuse(CONTAINER_WORKDIR, value[:64] + "...",
                "longer than %d characters" % MAX_PATH)
    if not value.startswith("/"):
        _refuse(CONTAINER_WORKDIR, value, "not an absolute path: write it "
                "from the container's root, for example /srv/app")
    return str(_container_path(CONTAINER_WORKDIR, value, value))


def parse_user(value):
    """Parse containerUser: "UID" or "UID:GID" -> (uid, gid or None), or
    None when "".

    Numbers only: a name would be looked up in the tenant's image, where
    any name may be uid 0.  Whether uid or gid 0 may run is the host's
    decision (allow_root_user in containers.conf), made at start.
    """
    if value == "":
        return None
    match = _USER_RE.match(value) if len(value) <= 21 else None
    if not match:
        _refuse(CONTAINER_USER, _shown(value, 21), "not UID or UID:GID in "
                "decimal, such as 1000 or 1000:1000, without leading zeros "
                "(user names are refused: the image decides what they "
                "mean)")
    uid, gid = match.groups()
    for n in (uid, gid):
        if n is not None and int(n) > MAX_ID:
            _refuse(CONTAINER_USER, value, "%s is more than %d, the largest "
                    "uid or gid" % (n, MAX_ID))
    return int(uid), (int(gid) if gid is not None else None)


def parse_secret_names(value):
    """Parse containerSecrets: "db,api-key" -> ["db", "api-key"].

    Names of files the host's admin keeps (secrets.py), never values: a
    custom property is logged in full by Engine and Vdsm.
    """
    if value == "":
        return []
    if len(value) > MAX_SECRETS_LENGTH:
        _refuse(CONTAINER_SECRETS, value[:64] + "...",
                "longer than %d characters" % MAX_SECRETS_LENGTH)
    names = value.split(",")
    for n in names:
        if not SECRET_NAME_RE.match(n):
            _refuse(CONTAINER_SECRETS, value, "%r is not a secret name: a "
                    "letter or digit, then up to %d letters, digits or "
                    "_.-; separate names with commas"
                    % (n, MAX_SECRET_NAME - 1))
    if len(set(names)) < len(names):
        _refuse(CONTAINER_SECRETS, value, "secret %s is listed twice"
                % [n for n in names if names.count(n) > 1][0])
    if len(names) > MAX_SECRETS:
        _refuse(CONTAINER_SECRETS, value, "more than %d secrets"
                % MAX_SECRETS)
    return [str(n) for n in names]
