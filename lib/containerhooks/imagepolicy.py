"""The host's image policy: which images may run here, and when to pull.

Set by the host's admin in containers.conf, never by a VM:

- allowed_images: patterns of the repositories whose images may run
  ("registry.example.com/*, docker.io/library/redis"); empty: any.  A
  pattern is a registry, written out ("docker.io" for Docker Hub), and a
  repository path in which "*" stands for any characters, "/" included.
  The registry is compared whole, never by pattern: "registry.example.com"
  never matches "registry.example.com.evil.example".  An image is
  compared by its full name, as the engines pull it: "redis" is
  "docker.io/library/redis", "team/app" is "docker.io/team/app".
- require_digest: only references pinned by digest ("...@sha256:<64 hex
  digits>"), so what runs cannot change under a VM when a tag moves.
- pull_policy: when the helper pulls: "missing" (the image is not on the
  host), "always" (at every start: restarting the VM updates it; a
  reference pinned by digest that is here already is not pulled again:
  its content cannot have changed), "never" (refuse a start whose image is
  not on the host; pre-pull with "vdsm-containers pull").  A VM's
  containerPull property overrides it for that VM.

The hook checks the policy to refuse early, and the root helper checks it
again before it pulls or starts anything (it trusts no caller).
"""

import re

from containerhooks import errors

PULL_POLICIES = ("missing", "always", "never")
DEFAULT_PULL = "missing"

DOCKER_HUB = "docker.io"

# A pattern: a registry (domain[:port], as imageref's grammar), "/", a
# path of lowercase repository characters and "*".
_PATTERN_RE = re.compile(
    r"\A((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(?::[0-9]{1,5})?)/([a-z0-9._/*-]{1,255})\Z")


def parse_patterns(value):
    """The patterns of an allowed_images value (comma or space separated),
    in order; ValueError with the reason for one that is not a pattern."""
    patterns = []
    for word in value.replace(",", " ").split():
        m = _PATTERN_RE.match(word)
        if m is None or "//" in m.group(2) or m.group(2).startswith("/"):
            raise ValueError(
                "%r is not REGISTRY/PATH, such as registry.example.com/* or "
                "docker.io/library/redis (a registry written out, then a "
                "lowercase path where * stands for anything)" % word)
        if word not in patterns:
            patterns.append(word)
    return tuple(patterns)


def parse_pull(value):
    """A pull policy (one of PULL_POLICIES), or ValueError."""
    if value not in PULL_POLICIES:
        raise ValueError("expected one of %s, got %r"
                         % (", ".join(PULL_POLICIES), value))
    return value


def full_name(ref):
    """The repository of ref (imageref.ImageRef) as the engines pull it:
    registry written out, Docker Hub's official images under library/."""
    domain = ref.domain
    path = ref.path
    if domain is None or domain in ("index.docker.io", "docker.io"):
        domain = DOCKER_HUB
        if "/" not in path:
            path = "library/" + path
    return domain.lower() + "/" + path


def matches(pattern, name):
    """Whether the full name name is matched by pattern."""
    registry, _, path = pattern.partition("/")
    name_registry, _, name_path = name.partition("/")
    if registry.lower() != name_registry:
        return False
    regex = ".*".join(re.escape(part) for part in path.split("*"))
    return re.match(r"\A" + regex + r"\Z", name_path) is not None


def check(ref, conf):
    """Refuse ref (ImageRefused) if conf's policy does not allow it.

    An image from a VM disk (imageref.DiskImage, containerImage=disk:...)
    comes from no registry and is pinned by nothing: a host that sets
    require_digest or allowed_images refuses it."""
    from containerhooks import imageref
    if isinstance(ref, imageref.DiskImage):
        if conf.require_digest or conf.allowed_images:
            raise errors.ImageRefused(
                image=str(ref), conf=conf.path,
                setting="require_digest = true" if conf.require_digest
                else "allowed_images", reason="an image from a VM disk is "
                "not from an allowed registry nor pinned by digest; run an "
                "allowed image from a registry, or ask the host's admin to "
                "lift the policy")
        return
    if conf.require_digest and not ref.digest:
        raise errors.ImageRefused(
            image=str(ref), setting="require_digest = true", conf=conf.path,
            reason="only references pinned by digest may run here; set "
            "containerImage to %s@sha256:<digest> ('vdsm-containers pull "
            "%s' on a host prints the digest)" % (ref.repository, ref))
    if conf.allowed_images:
        name = full_name(ref)
        if not any(matches(p, name) for p in conf.allowed_images):
            raise errors.ImageRefused(
                image=str(ref), setting="allowed_images", conf=conf.path,
                reason="%s matches none of %s; use an allowed image, or ask "
                "the host's admin to allow it" % (
                    name, ", ".join(conf.allowed_images)))


def must_pull(policy, source, ref, present, engine):
    """Whether to pull ref under policy (one of PULL_POLICIES, set by
    source: what to name in a refusal) when present says whether the
    engine has it; ImageAbsent for "never" and an absent image."""
    if policy == "never":
        if not present:
            raise errors.ImageAbsent(image=str(ref), source=source,
                                     engine=engine)
        return False
    if policy == "always":
        return not (present and ref.digest)
    return not present
