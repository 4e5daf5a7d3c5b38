"""Image references, by the grammar of the distribution project.

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := domain-component ["." domain-component]* [":" port]
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := alphanumeric [separator alphanumeric]*
    alphanumeric     := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag        := /[\\w][\\w.-]{0,127}/
    digest     := algorithm ":" hex (sha256: 64 lowercase hex digits)

(github.com/distribution/reference, regexp.go).  The first component is a
registry host only if it has a "." or a ":" or is "localhost", as Docker
decides.  The same regular expressions, in a form Java accepts, make the
Engine's custom property regex (see properties.engine_regexes), so Engine
and the hook accept the same values.
"""

import collections
import re

from containerhooks import errors

MAX_NAME = 255
MAX_LENGTH = 512

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*" \
    + r"(?::[0-9]{1,5})?"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _PATH_COMPONENT \
    + r"(?:/" + _PATH_COMPONENT + r")*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"

# The whole reference, anchored, with groups for name, tag and digest.
PATTERN = r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?"
_REFERENCE_RE = re.compile(r"\A" + PATTERN + r"\Z")

ImageRef = collections.namedtuple(
    "ImageRef", "domain, path, tag, digest")


def _str(ref):
    name = ref.path if ref.domain is None else ref.domain + "/" + ref.path
    if ref.tag:
        name += ":" + ref.tag
    if ref.digest:
        name += "@" + ref.digest
    return name


ImageRef.__str__ = _str
ImageRef.repository = property(
    lambda ref: ref.path if ref.domain is None
    else ref.domain + "/" + ref.path)
# What to ask the engine for: the digest if pinned, else the tag.
ImageRef.pull_tag = property(
    lambda ref: ref.digest or ref.tag or "latest")


# containerImage=disk:<target>: the image is the archive on the VM's disk
# <target> (imagearchive.py), not a registry's.  kind and source: the
# disk's, from the domain XML (as a volume's, spec.VolumeSource), once the
# hook has found it; None before.
DiskImage = collections.namedtuple("DiskImage", "disk, kind, source")
DiskImage.__new__.__defaults__ = (None, None)
DISK_PREFIX = "disk:"
DiskImage.__str__ = lambda image: DISK_PREFIX + image.disk


def parse(value, name="containerImage"):
    """Parse an image reference or raise InvalidProperty."""
    if not value:
        raise errors.InvalidProperty(
            name=name, value=value, reason="an image reference is required, "
            "for example registry.example.com:5000/team/app:1.2")
    if len(value) > MAX_LENGTH:
        raise errors.InvalidProperty(
            name=name, value=value[:64] + "...",
            reason="longer than %d characters" % MAX_LENGTH)
    m = _REFERENCE_RE.match(value)
    if m is None:
        raise errors.InvalidProperty(
            name=name, value=value, reason="not a valid image reference; "
            "expected [registry[:port]/]path[:tag][@sha256:<64 hex digits>] "
            "with a lowercase path")
    fullname, tag, digest = m.groups()
    if len(fullname) > MAX_NAME:
        raise errors.InvalidProperty(
            name=name, value=value,
            reason="repository name longer than %d characters" % MAX_NAME)
    domain, path = _split_domain(fullname)
    if domain is not None and ":" in domain:
        port = int(domain.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise errors.InvalidProperty(
                name=name, value=value,
                reason="registry port %d out of range" % port)
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(fullname):
    first, sep, rest = fullname.partition("/")
    # Uppercase can only be a registry host: the path is lowercase.
    if sep and ("." in first or ":" in first or first == "localhost"
                or first != first.lower()):
        return first, rest
    return None, fullname
