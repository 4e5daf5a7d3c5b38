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

from containerhooks import errors
from containerhooks import imageref

CONTAINER_TYPE = "containerType"
CONTAINER_IMAGE = "containerImage"
VOLUME_MAP = "volumeMap"
CONTAINER_IP = "containerIP"
# When a start pulls the VM's image (imagepolicy.PULL_POLICIES), overriding
# the host's pull_policy; the helper applies it (issue 10).
CONTAINER_PULL = "containerPull"
NAMES = (CONTAINER_TYPE, CONTAINER_IMAGE, VOLUME_MAP, CONTAINER_IP,
         CONTAINER_PULL)

MAX_VOLUME_MAP = 4096
MAX_VOLUMES = 16
MAX_PATH = 1024

ContainerProperties = collections.namedtuple(
    "ContainerProperties", "engine, image, volumes, ips")

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
      not used by another container VM on the host (network.py).

    (collect also refuses a property Vdsm passes with different values in
    the environment and the domain XML: no value an admin types does.)

    Engine matches with Java (Pattern.matcher(value).matches()), whose
    matcher recurses once per repetition of a group, and overflowed its
    stack on a long value.  So every regex bounds the length first, and no
    group repeats more than about a hundred times: 16 volumeMap entries (a
    path is one run of characters checked by lookaheads, not a group per
    component), 128 components or separators in an image name of 255
    characters, none in containerIP (one lookahead checks its entries).
    tests/engine_regex_test.py runs them in Java with half the default
    stack.
    """
    return collections.OrderedDict([
        (CONTAINER_TYPE, "^(?:%s)$" % "|".join(engines)),
        (CONTAINER_IMAGE, _engine_image()),
        (VOLUME_MAP, _engine_volume_map()),
        (CONTAINER_IP, _engine_ips()),
        (CONTAINER_PULL, _engine_pull()),
    ])


# Registry ports imageref.parse refuses: 0 (with any leading zeros) and
# 65536-99999 (its grammar allows 5 digits at most).
_BAD_PORT = (r"(?:0+|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}"
             r"|6[6-9][0-9]{3}|[7-9][0-9]{4})")


def _engine_image():
    """imageref.PATTERN with the checks imageref.parse makes after it.

    - 1 to MAX_LENGTH characters;
    - a repository name (all before the tag's ":" or the digest's "@") of
      MAX_NAME characters at most: its end is the first "@", the first
      ":" with no "/" after it (a port's ":" always has one), or the end;
    - a port in 1-65535: in a value of the grammar, a ":" before the
      first "/" followed by digits and "/" can only be the port's.
    """
    return ("^(?=.{1,%d}$)(?=.{0,%d}(?:[:@][^/]*)?$)(?![^/]*:%s/)%s$"
            % (imageref.MAX_LENGTH, imageref.MAX_NAME, _BAD_PORT,
               imageref.PATTERN))


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


def _engine_pull():
    """parse_pull as one regex, in the one form Engine's VM dialog shows as
    a drop-down of the values (^(a|b|c)$)."""
    from containerhooks import imagepolicy
    return "^(%s)$" % "|".join(imagepolicy.PULL_POLICIES)


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
    image = imageref.parse(raw.get(CONTAINER_IMAGE, ""), CONTAINER_IMAGE)
    volumes = parse_volume_map(raw.get(VOLUME_MAP, ""))
    ips = parse_ips(raw.get(CONTAINER_IP, ""))
    if CONTAINER_PULL in raw:
        parse_pull(raw[CONTAINER_PULL])     # spec.pull_of keeps it
    return ContainerProperties(engine=engine, image=image, volumes=volumes,
                               ips=ips)


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
        volumes.append(Volume(disk=disk, path=_container_path(value, target)))
    if len(volumes) > MAX_VOLUMES:
        _bad_volume(value, "more than %d volumes" % MAX_VOLUMES)
    _check_unique(value, volumes)
    return volumes


def _container_path(value, target):
    if _LABEL_RE.match(target):
        target = "/" + target
    if len(target) > MAX_PATH or not _PATH_RE.match(target):
        _bad_volume(value, "%r is not an absolute container path made of "
                    "letters, digits and ._@+-" % target[:64])
    parts = target.split("/")[1:]
    if any(p in (".", "..") for p in parts):
        _bad_volume(value, "%r contains '.' or '..'" % target)
    for forbidden in FORBIDDEN_PATHS:
        if target == forbidden or target.startswith(forbidden + "/"):
            _bad_volume(value, "%r is under %s, which belongs to the kernel"
                        % (target, forbidden))
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
    raise errors.InvalidProperty(name=VOLUME_MAP, value=value, reason=reason)
