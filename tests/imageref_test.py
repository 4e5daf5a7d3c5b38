"""Image references from the containerImage custom property.

The value is typed by an Engine user and ends up in a call to the container
engine: everything that is not an image reference must be refused, with a
message naming the property and the value.  The tables here are also used by
properties_test.py to check Engine's regex against the same values.
"""

import re

import pytest
from hypothesis import given, settings, strategies as st

from containerhooks import errors
from containerhooks import imageref
from containerhooks import properties

DIGEST = "sha256:" + "0123456789abcdef" * 4

# value, domain, path, tag, digest, repository, pull_tag
GOOD = [
    pytest.param("redis", None, "redis", None, None, "redis", "latest",
                 id="plain"),
    pytest.param("redis:7.2", None, "redis", "7.2", None, "redis", "7.2",
                 id="plain-tag"),
    pytest.param("library/redis", None, "library/redis", None, None,
                 "library/redis", "latest", id="library"),
    pytest.param("team/group/app:1.0", None, "team/group/app", "1.0", None,
                 "team/group/app", "1.0", id="nested-path"),
    pytest.param("my-org/my__app.v2", None, "my-org/my__app.v2", None, None,
                 "my-org/my__app.v2", "latest", id="separators"),
    pytest.param("a--b/c_d", None, "a--b/c_d", None, None, "a--b/c_d",
                 "latest", id="repeated-dashes"),
    pytest.param("0/1", None, "0/1", None, None, "0/1", "latest",
                 id="digits-only"),
    pytest.param("quay.io/prometheus/node-exporter:v1.7.0", "quay.io",
                 "prometheus/node-exporter", "v1.7.0", None,
                 "quay.io/prometheus/node-exporter", "v1.7.0",
                 id="registry"),
    pytest.param("registry.example.com:5000/team/app:1.2",
                 "registry.example.com:5000", "team/app", "1.2", None,
                 "registry.example.com:5000/team/app", "1.2",
                 id="registry-port"),
    pytest.param("registry:5000/app", "registry:5000", "app", None, None,
                 "registry:5000/app", "latest", id="short-host-port"),
    pytest.param("my-registry-1.example.com/x", "my-registry-1.example.com",
                 "x", None, None, "my-registry-1.example.com/x", "latest",
                 id="registry-dashes"),
    pytest.param("192.168.1.10:5000/app", "192.168.1.10:5000", "app", None,
                 None, "192.168.1.10:5000/app", "latest", id="ip-port"),
    pytest.param("127.0.0.1/app:1", "127.0.0.1", "app", "1", None,
                 "127.0.0.1/app", "1", id="ip"),
    pytest.param("1.2.3.4:65535/a", "1.2.3.4:65535", "a", None, None,
                 "1.2.3.4:65535/a", "latest", id="port-max"),
    pytest.param("localhost/app", "localhost", "app", None, None,
                 "localhost/app", "latest", id="localhost"),
    pytest.param("localhost:5000/app:dev", "localhost:5000", "app", "dev",
                 None, "localhost:5000/app", "dev", id="localhost-port"),
    # As Docker reads them: an image called localhost, tagged 5000.
    pytest.param("localhost", None, "localhost", None, None, "localhost",
                 "latest", id="localhost-alone"),
    pytest.param("localhost:5000", None, "localhost", "5000", None,
                 "localhost", "5000", id="localhost-tag"),
    pytest.param("Registry.Example.COM/app", "Registry.Example.COM", "app",
                 None, None, "Registry.Example.COM/app", "latest",
                 id="uppercase-registry"),
    # Uppercase cannot be a path, so Docker takes it for a registry host.
    pytest.param("MyRegistry/app", "MyRegistry", "app", None, None,
                 "MyRegistry/app", "latest", id="uppercase-host-no-dot"),
    pytest.param("app:1.2.3-rc.1", None, "app", "1.2.3-rc.1", None, "app",
                 "1.2.3-rc.1", id="tag-dots-dashes"),
    pytest.param("app:_private", None, "app", "_private", None, "app",
                 "_private", id="tag-underscore"),
    pytest.param("app:V1_Final", None, "app", "V1_Final", None, "app",
                 "V1_Final", id="tag-uppercase"),
    pytest.param("app:" + "t" * 128, None, "app", "t" * 128, None, "app",
                 "t" * 128, id="tag-128"),
    pytest.param("app@" + DIGEST, None, "app", None, DIGEST, "app", DIGEST,
                 id="digest"),
    pytest.param("app:1.0@" + DIGEST, None, "app", "1.0", DIGEST, "app",
                 DIGEST, id="tag-and-digest"),
    pytest.param("registry.example.com:5000/team/app:1.0@" + DIGEST,
                 "registry.example.com:5000", "team/app", "1.0", DIGEST,
                 "registry.example.com:5000/team/app", DIGEST,
                 id="everything"),
    pytest.param("a" * 255, None, "a" * 255, None, None, "a" * 255,
                 "latest", id="name-255"),
    pytest.param("registry.example.com/" + "a" * 234, "registry.example.com",
                 "a" * 234, None, None, "registry.example.com/" + "a" * 234,
                 "latest", id="name-with-host-255"),
    pytest.param("reg:5000/" + "a" * 246, "reg:5000", "a" * 246, None, None,
                 "reg:5000/" + "a" * 246, "latest", id="name-with-port-255"),
    pytest.param("a" * 255 + "@" + DIGEST, None, "a" * 255, None, DIGEST,
                 "a" * 255, DIGEST, id="name-255-digest"),
    pytest.param("a" * 255 + ":" + "t" * 128 + "@" + DIGEST, None, "a" * 255,
                 "t" * 128, DIGEST, "a" * 255, DIGEST, id="longest-455"),
    # Many repetitions of a group: Java's matcher recurses on each.
    pytest.param("a." * 127 + "a", None, "a." * 127 + "a", None, None,
                 "a." * 127 + "a", "latest", id="separators-127"),
    pytest.param("a/" * 127 + "a", None, "a/" * 127 + "a", None, None,
                 "a/" * 127 + "a", "latest", id="components-128"),
    pytest.param("a." * 100 + "a:5000/b", "a." * 100 + "a:5000", "b", None,
                 None, "a." * 100 + "a:5000/b", "latest",
                 id="host-labels-101"),
    pytest.param("registry:1/app", "registry:1", "app", None, None,
                 "registry:1/app", "latest", id="port-1"),
    pytest.param("registry:08080/app", "registry:08080", "app", None, None,
                 "registry:08080/app", "latest", id="port-leading-zero"),
    # No "/": a name and a tag, however much they look like host and port.
    pytest.param("localhost:0", None, "localhost", "0", None, "localhost",
                 "0", id="localhost-tag-0"),
    pytest.param("registry.example.com:99999", None, "registry.example.com",
                 "99999", None, "registry.example.com", "99999",
                 id="host-like-name-tag"),
]

BAD = [
    pytest.param("", id="empty"),
    pytest.param("Redis", id="uppercase-name"),
    pytest.param("library/Redis", id="uppercase-path"),
    pytest.param("registry.example.com/Team/app", id="uppercase-after-host"),
    pytest.param("-redis", id="leading-dash"),
    pytest.param("--privileged", id="privileged-flag"),
    pytest.param("--privileged=true", id="privileged-flag-value"),
    pytest.param("-v/:/host", id="volume-flag"),
    pytest.param("redis latest", id="space"),
    pytest.param(" redis", id="leading-space"),
    pytest.param("redis ", id="trailing-space"),
    pytest.param("redis\t", id="tab"),
    pytest.param("redis;rm -rf /", id="semicolon"),
    pytest.param("redis;", id="trailing-semicolon"),
    pytest.param("$(reboot)", id="command-substitution"),
    pytest.param("redis$(id)", id="command-substitution-suffix"),
    pytest.param("${IFS}redis", id="variable"),
    pytest.param("`id`", id="backticks"),
    pytest.param("redis`id`", id="backticks-suffix"),
    pytest.param("redis|nc", id="pipe"),
    pytest.param("redis&&id", id="and"),
    pytest.param("redis&", id="background"),
    pytest.param("redis>/etc/passwd", id="redirect"),
    pytest.param("redis'", id="quote"),
    pytest.param('redis"', id="double-quote"),
    pytest.param("redis\n", id="trailing-newline"),
    pytest.param("redis\nlatest", id="newline"),
    pytest.param("redis\r", id="carriage-return"),
    pytest.param("redis\x00", id="nul"),
    pytest.param("red\x00is", id="nul-inside"),
    pytest.param("\x1b[31mredis", id="escape-sequence"),
    pytest.param("redis\x7f", id="del"),
    pytest.param("redis\x0b", id="vertical-tab"),
    pytest.param("../redis", id="dotdot-prefix"),
    pytest.param("a/../b", id="dotdot-component"),
    pytest.param("a/./b", id="dot-component"),
    pytest.param("./redis", id="dot-prefix"),
    pytest.param("a..b", id="double-dot"),
    pytest.param("a//b", id="empty-component"),
    pytest.param("/redis", id="leading-slash"),
    pytest.param("redis/", id="trailing-slash"),
    pytest.param("a___b", id="triple-underscore"),
    pytest.param("a_.b", id="mixed-separators"),
    pytest.param("a-", id="trailing-dash"),
    pytest.param("a.", id="trailing-dot"),
    pytest.param("_a", id="leading-underscore"),
    pytest.param("http://redis", id="http"),
    pytest.param("https://registry.example.com/app", id="https"),
    pytest.param("docker://redis", id="docker-scheme"),
    pytest.param("redis:", id="trailing-colon"),
    pytest.param("redis@", id="trailing-at"),
    pytest.param("redis:@" + DIGEST, id="empty-tag-digest"),
    pytest.param("redis:latest:latest", id="two-tags"),
    pytest.param("redis@@" + DIGEST, id="double-at"),
    pytest.param("redis:.x", id="tag-leading-dot"),
    pytest.param("redis:-x", id="tag-leading-dash"),
    pytest.param("redis:a/b", id="tag-slash"),
    pytest.param("redis:" + "t" * 129, id="tag-129"),
    pytest.param("redis@" + DIGEST[:-1], id="digest-63"),
    pytest.param("redis@" + DIGEST + "0", id="digest-65"),
    pytest.param("redis@sha256:" + "A" * 64, id="digest-uppercase"),
    pytest.param("redis@sha256:" + "g" * 64, id="digest-not-hex"),
    pytest.param("redis@sha512:" + "ab" * 64, id="digest-sha512"),
    pytest.param("redis@md5:" + "ab" * 16, id="digest-md5"),
    pytest.param("redis@" + DIGEST[7:], id="digest-no-algorithm"),
    pytest.param("redis@sha256", id="digest-no-hex"),
    pytest.param("a" * 256, id="name-256"),
    pytest.param("registry.example.com/" + "a" * 240, id="name-with-host-261"),
    pytest.param("a" * 513, id="value-513"),
    pytest.param("a." * 20000 + "a", id="value-40001"),
    pytest.param(u"\u0430pp", id="cyrillic-a"),
    pytest.param(u"registry.ex\u0430mple.com/app", id="cyrillic-in-host"),
    pytest.param(u"\uff52\uff45\uff44\uff49\uff53", id="fullwidth"),
    pytest.param(u"redis:\uff11", id="fullwidth-digit-tag"),
    pytest.param(u"r\u00e9dis", id="accent"),
    pytest.param(u"redis\u200b", id="zero-width-space"),
    pytest.param(u"redis\u2028", id="line-separator"),
    pytest.param(u"\u212adis", id="kelvin-sign"),
    pytest.param("registry.example.com:65536/app", id="port-65536"),
    pytest.param("registry:99999/app", id="port-99999"),
    pytest.param("registry:0/app", id="port-0"),
    pytest.param("registry:123456/app", id="port-6-digits"),
    pytest.param("registry.example.com:/app", id="port-empty"),
    pytest.param("-registry.example.com/app", id="host-leading-dash"),
    pytest.param("registry-.example.com/app", id="host-trailing-dash"),
    pytest.param("registry..example.com/app", id="host-empty-label"),
    pytest.param("[::1]:5000/app", id="ipv6-host"),
    pytest.param("registry:00/app", id="port-00"),
    pytest.param("registry:00000/app", id="port-00000"),
    pytest.param("registry:70000/app", id="port-70000"),
    pytest.param("registry:065535/app", id="port-6-digits-leading-zero"),
    pytest.param("a" * 256 + "@" + DIGEST, id="name-256-digest"),
    pytest.param("a" * 256 + ":t", id="name-256-tag"),
    pytest.param("reg:5000/" + "a" * 247, id="name-with-port-256"),
    pytest.param("a/" * 128 + "a", id="components-257"),
    pytest.param("Registry:5000", id="uppercase-name-tag"),
    pytest.param("registry:5000/app:", id="port-and-empty-tag"),
]


# The values alone, for tables of other tests.
GOOD_VALUES = [pytest.param(p.values[0], id=p.id) for p in GOOD]


def good_values():
    return [p.values[0] for p in GOOD]


def bad_values():
    return [p.values[0] for p in BAD]


def shown(value, limit):
    """The value as an error message shows it: long ones are cut."""
    return value if len(value) <= limit else value[:64] + "..."


def assert_names(error, name, value, limit):
    msg = str(error)
    assert name in msg
    assert repr(shown(value, limit)) in msg
    # One line: the message becomes the VM's exit message in Engine.
    assert "\n" not in msg and "\x00" not in msg


@pytest.mark.parametrize(
    "value, domain, path, tag, digest, repository, pull_tag", GOOD)
def test_good(value, domain, path, tag, digest, repository, pull_tag):
    ref = imageref.parse(value)
    assert ref == (domain, path, tag, digest)
    assert ref.domain == domain
    assert ref.path == path
    assert ref.tag == tag
    assert ref.digest == digest
    assert ref.repository == repository
    assert ref.pull_tag == pull_tag
    assert str(ref) == value


@pytest.mark.parametrize("value", BAD)
def test_bad(value):
    with pytest.raises(errors.InvalidProperty) as e:
        imageref.parse(value)
    assert e.value.name == "containerImage"
    assert_names(e.value, "containerImage", value, imageref.MAX_LENGTH)


def test_bad_none():
    with pytest.raises(errors.InvalidProperty) as e:
        imageref.parse(None)
    assert "containerImage" in str(e.value)


def test_other_property_name():
    with pytest.raises(errors.InvalidProperty) as e:
        imageref.parse("Bad", name="otherImage")
    assert "otherImage='Bad'" in str(e.value)


# The reference grammar of github.com/distribution/reference (regexp.go and
# the 255 character name limit of reference.go), written out again in
# Python: Go's \w is ASCII, [[:xdigit:]] is [0-9A-Fa-f].
_D_ALNUM = r"[a-z0-9]+"
_D_SEPARATOR = r"(?:[._]|__|[-]+)"
_D_PATH_COMPONENT = _D_ALNUM + r"(?:" + _D_SEPARATOR + _D_ALNUM + r")*"
_D_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_D_HOST = (r"(?:" + _D_DOMAIN_COMPONENT + r"(?:\." + _D_DOMAIN_COMPONENT
           + r")*|\[[a-fA-F0-9:]+\])")
_D_NAME = (r"(?:" + _D_HOST + r"(?::[0-9]+)?/)?" + _D_PATH_COMPONENT
           + r"(?:/" + _D_PATH_COMPONENT + r")*")
_D_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_D_DIGEST = (r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
             r"[:][0-9A-Fa-f]{32,}")
_DISTRIBUTION_RE = re.compile(
    r"\A(" + _D_NAME + r")(?::" + _D_TAG + r")?(?:@" + _D_DIGEST + r")?\Z")


def distribution_accepts(value):
    m = _DISTRIBUTION_RE.match(value)
    return m is not None and len(m.group(1)) <= 255


# Values the distribution grammar accepts and the hook refuses on purpose:
# digests other than sha256 with 64 lowercase hex digits (what registries
# serve), ports outside 1-65535, and IPv6 registry hosts.
STRICTER_THAN_DISTRIBUTION = {
    "redis@" + DIGEST[:-1],
    "redis@" + DIGEST + "0",
    "redis@sha256:" + "A" * 64,
    "redis@sha512:" + "ab" * 64,
    "redis@md5:" + "ab" * 16,
    "registry.example.com:65536/app",
    "registry:99999/app",
    "registry:0/app",
    "registry:123456/app",
    "[::1]:5000/app",
    "registry:00/app",
    "registry:00000/app",
    "registry:70000/app",
    "registry:065535/app",
}


@pytest.mark.parametrize("value", GOOD_VALUES)
def test_good_by_distribution_grammar(value):
    assert distribution_accepts(value)


def test_bad_by_distribution_grammar():
    accepted = {v for v in bad_values() if distribution_accepts(v)}
    assert accepted == STRICTER_THAN_DISTRIBUTION


_REF_CHARS = u"abz09AZ.-_:/@ \n\x00;$`|&\u0430\uff52"

# Pieces of references, so that many generated values are valid or nearly
# (st.from_regex would do too, ten times slower).
_REF_PIECES = st.lists(st.sampled_from([
    "a", "b0", "redis", "Ex", "localhost", "example.com", ".", "_", "__", "-",
    "--", "/", "//", ":", "5000", "99999", "@", DIGEST, "sha512:", "t" * 128,
    "a" * 200, "..", " ", "\n", u"\u0430",
]), max_size=12).map("".join)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=_REF_CHARS), _REF_PIECES))
def test_parse_any_text(value):
    # Engine's regex says what the hook says.
    regex = properties.engine_regexes(("docker",))["containerImage"]
    try:
        ref = imageref.parse(value)
    except errors.Error as e:
        assert "containerImage" in str(e)
        assert not re.fullmatch(regex, value)
        return
    # Whatever the hook accepts is printed back unchanged, is short enough,
    # cannot pass for an option.
    assert str(ref) == value
    assert len(value) <= imageref.MAX_LENGTH
    assert len(ref.repository) <= imageref.MAX_NAME
    assert not value.startswith("-")
    assert re.fullmatch(regex, value)
    assert distribution_accepts(value)
