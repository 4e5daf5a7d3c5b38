"""The VM custom properties: where they come from and their validation.

Every value here is typed by an Engine user; the hook must refuse anything
it does not understand with a message naming the property and the value.
The tables here are also what engine_regex_test.py checks Engine's regexes
against (with Python's re and a real Java).
"""

import re

import pytest
from hypothesis import given, settings, strategies as st

from containerhooks import config
from containerhooks import errors
from containerhooks import imageref
from containerhooks import properties

import imageref_test

ENGINES = ("docker", "podman")


def assert_names(error, name, value):
    msg = str(error)
    assert name in msg
    assert repr(value) in msg


def assert_refused(parse, value, name, max_length):
    """parse(value) refuses it, naming the property and the value (its
    first 64 characters when longer than max_length); the error."""
    with pytest.raises(errors.InvalidProperty) as e:
        parse(value)
    assert e.value.name == name
    shown = value if len(value) <= max_length else value[:64] + "..."
    assert_names(e.value, name, shown)
    return e.value


# collect(): environment and domain XML metadata.

def test_collect_env_only():
    env = {"containerType": "docker", "containerImage": "redis",
           "PATH": "/usr/bin", "vmId": "x"}
    assert properties.collect(env, {}) == {
        "containerType": "docker", "containerImage": "redis"}


def test_collect_metadata_only():
    metadata = {"containerType": "podman", "volumeMap": "vda:/data",
                "other": "x"}
    assert properties.collect({}, metadata) == {
        "containerType": "podman", "volumeMap": "vda:/data"}


def test_collect_both_equal():
    raw = {"containerType": "docker", "containerImage": "redis:7"}
    assert properties.collect(dict(raw), dict(raw)) == raw


def test_collect_both_complement():
    env = {"containerType": "docker"}
    metadata = {"containerType": "docker", "containerImage": "redis"}
    assert properties.collect(env, metadata) == {
        "containerType": "docker", "containerImage": "redis"}


@pytest.mark.parametrize("name, env_value, xml_value", [
    pytest.param("containerType", "docker", "podman", id="type"),
    pytest.param("containerImage", "redis", "redis:7", id="image"),
    pytest.param("volumeMap", "vda:/data", "vda:/other", id="volumes"),
    pytest.param("containerImage", "redis", "", id="empty-in-xml"),
])
def test_collect_both_different(name, env_value, xml_value):
    with pytest.raises(errors.InvalidProperty) as e:
        properties.collect({name: env_value}, {name: xml_value})
    assert_names(e.value, name, env_value)
    assert repr(xml_value) in str(e.value)


def test_collect_nothing():
    assert properties.collect({"PATH": "/bin"}, {"foo": "bar"}) == {}


def test_may_be_container():
    assert properties.may_be_container({"containerType": "docker"}, b"")
    assert properties.may_be_container(
        {}, b"<ovirt-vm:containerType>docker</ovirt-vm:containerType>")
    assert not properties.may_be_container({"PATH": "/bin"}, b"<domain/>")


# parse(): the whole set.

def test_parse_not_a_container():
    assert properties.parse({}, ENGINES) is None


def test_parse_image_without_type_is_not_a_container():
    raw = {"containerImage": "redis", "volumeMap": "vda:/data"}
    assert properties.parse(raw, ENGINES) is None


def test_parse_good():
    raw = {"containerType": "podman",
           "containerImage": "registry.example.com:5000/team/app:1.2",
           "volumeMap": "vda:/data,vdb:logs"}
    props = properties.parse(raw, ENGINES)
    assert props.engine == "podman"
    assert props.image == imageref.parse(raw["containerImage"])
    assert props.volumes == [("vda", "/data"), ("vdb", "/logs")]


def test_parse_no_volume_map():
    props = properties.parse(
        {"containerType": "docker", "containerImage": "redis"}, ENGINES)
    assert props.volumes == []


GOOD_TYPES = ["docker", "podman"]

BAD_TYPES = [
    pytest.param("", id="empty"),
    pytest.param("Docker", id="uppercase"),
    pytest.param("lxc", id="unknown"),
    pytest.param("dock", id="prefix"),
    pytest.param("dockerd", id="longer"),
    pytest.param("docker ", id="trailing-space"),
    pytest.param(" docker", id="leading-space"),
    pytest.param("docker\n", id="newline"),
    pytest.param("docker\x00", id="nul"),
    pytest.param("docker;podman", id="semicolon"),
    pytest.param("docker|podman", id="alternation"),
    pytest.param("docker,podman", id="list"),
    pytest.param(".*", id="regex"),
    pytest.param(u"d\u043ecker", id="cyrillic-o"),
]


@pytest.mark.parametrize("engine", GOOD_TYPES)
def test_parse_type_good(engine):
    raw = {"containerType": engine, "containerImage": "redis"}
    assert properties.parse(raw, ENGINES).engine == engine


@pytest.mark.parametrize("engine", BAD_TYPES)
def test_parse_type_bad(engine):
    raw = {"containerType": engine, "containerImage": "redis"}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert_names(e.value, "containerType", engine)


def test_parse_engine_not_on_host():
    raw = {"containerType": "podman", "containerImage": "redis"}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ("docker",))
    assert_names(e.value, "containerType", "podman")
    assert "docker only" in str(e.value)


def test_parse_no_engine_on_host():
    raw = {"containerType": "docker", "containerImage": "redis"}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ())
    assert_names(e.value, "containerType", "docker")
    assert "engines=" in str(e.value)


def test_parse_image_missing():
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse({"containerType": "docker"}, ENGINES)
    assert_names(e.value, "containerImage", "")


def test_parse_image_bad():
    raw = {"containerType": "docker", "containerImage": "--privileged"}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert_names(e.value, "containerImage", "--privileged")


def test_parse_volume_map_bad():
    raw = {"containerType": "docker", "containerImage": "redis",
           "volumeMap": "vda:/proc"}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert_names(e.value, "volumeMap", "vda:/proc")


# parse_volume_map().

_DISKS16 = ["vd" + c for c in "abcdefghijklmnop"]

# The longest volumeMap with the most path components: the Java regex
# engine used to overflow its stack on it.
_DEEP = ",".join("%s:/%s%s" % (d, d, "/a" * 120) for d in _DISKS16)
# Long paths that share all but their last component: the most work for
# the regex's check that no path lies under another.
_SHARED = ",".join("%s:%s/x%d" % (d, "/a" * 118, i)
                   for i, d in enumerate(_DISKS16))


def _longest(length):
    """16 volumes of about the same length, length characters in all."""
    heads = ["%s:/%s/" % (d, d) for d in _DISKS16]
    fill = length - len(",".join(heads))
    return ",".join(head + "a" * (fill // 16 + (i < fill % 16))
                    for i, head in enumerate(heads))


_LONGEST = _longest(properties.MAX_VOLUME_MAP)


def _volumes_of(value):
    return [tuple(item.split(":")) for item in value.split(",")]


GOOD_VOLUME_MAPS = [
    pytest.param("vda:/data", [("vda", "/data")], id="one"),
    pytest.param("vda:/data,vdb:/var/log/app",
                 [("vda", "/data"), ("vdb", "/var/log/app")], id="two"),
    pytest.param("vda:data", [("vda", "/data")], id="label"),
    pytest.param("vda:data,vdb:/var/log/app",
                 [("vda", "/data"), ("vdb", "/var/log/app")],
                 id="label-and-path"),
    pytest.param("vda:my_data-1.d", [("vda", "/my_data-1.d")],
                 id="label-chars"),
    pytest.param("sdb:/srv/www", [("sdb", "/srv/www")], id="sd"),
    pytest.param("hdc:/x", [("hdc", "/x")], id="hd"),
    pytest.param("xvdaa:/x", [("xvdaa", "/x")], id="xvd"),
    pytest.param("vdzzz:/x", [("vdzzz", "/x")], id="disk-3-letters"),
    pytest.param("vda:/opt/app-1.2/data_dir@v+x",
                 [("vda", "/opt/app-1.2/data_dir@v+x")], id="path-chars"),
    pytest.param("vda:/srv/..hidden/a..b",
                 [("vda", "/srv/..hidden/a..b")], id="dots-in-names"),
    pytest.param("vda:/proc2,vdb:/device,vdc:/system",
                 [("vda", "/proc2"), ("vdb", "/device"), ("vdc", "/system")],
                 id="near-forbidden"),
    pytest.param("vda:/data,vdb:/data2",
                 [("vda", "/data"), ("vdb", "/data2")], id="common-prefix"),
    pytest.param("vdb:/b,vda:/a", [("vdb", "/b"), ("vda", "/a")],
                 id="order-kept"),
    pytest.param(",".join("%s:/d%d" % (d, i) for i, d in enumerate(_DISKS16)),
                 [(d, "/d%d" % i) for i, d in enumerate(_DISKS16)],
                 id="16-volumes"),
    pytest.param("vda:" + "l" * 64, [("vda", "/" + "l" * 64)],
                 id="label-64"),
    pytest.param("vda:/" + "a" * 1023, [("vda", "/" + "a" * 1023)],
                 id="path-1024"),
    pytest.param(_DEEP, [(d, "/%s%s" % (d, "/a" * 120)) for d in _DISKS16],
                 id="deep-paths-%d" % len(_DEEP)),
    pytest.param(_SHARED, [(d, "%s/x%d" % ("/a" * 118, i))
                           for i, d in enumerate(_DISKS16)],
                 id="shared-prefixes-%d" % len(_SHARED)),
    pytest.param(_LONGEST, _volumes_of(_LONGEST), id="longest-4096"),
    pytest.param("vda:" + "/a" * 512, [("vda", "/a" * 512)],
                 id="path-1024-deep"),
    pytest.param("vda:/a/proc,vdb:/x/dev/y,vdc:/sys2/sys",
                 [("vda", "/a/proc"), ("vdb", "/x/dev/y"),
                  ("vdc", "/sys2/sys")], id="kernel-names-deeper"),
    pytest.param("vda:/...,vdb:/.x/..y/y..,vdc:x..",
                 [("vda", "/..."), ("vdb", "/.x/..y/y.."), ("vdc", "/x..")],
                 id="dots-not-components"),
    pytest.param("vda:/a,vdaa:/b,xvda:/c,sda:/d",
                 [("vda", "/a"), ("vdaa", "/b"), ("xvda", "/c"),
                  ("sda", "/d")], id="disk-names-alike"),
    pytest.param("vda:/a/b,vdb:/a/c,vdc:/a/bc,vdd:/a/b-c",
                 [("vda", "/a/b"), ("vdb", "/a/c"), ("vdc", "/a/bc"),
                  ("vdd", "/a/b-c")], id="siblings"),
    pytest.param("vda:/ab,vdb:/a,vdc:a.b,vdd:/ab.c/d",
                 [("vda", "/ab"), ("vdb", "/a"), ("vdc", "/a.b"),
                  ("vdd", "/ab.c/d")], id="prefix-not-parent"),
    pytest.param("vda:_", [("vda", "/_")], id="label-underscore"),
]

BAD_VOLUME_MAPS = [
    pytest.param("vda:data/x", id="relative-path"),
    pytest.param("vda:./data", id="relative-dot"),
    pytest.param("vda:../etc", id="relative-dotdot"),
    pytest.param("vda:..", id="dotdot-label"),
    pytest.param("vda:/data/../etc", id="dotdot-inside"),
    pytest.param("vda:/..", id="dotdot-root"),
    pytest.param("vda:/data/..", id="dotdot-end"),
    pytest.param("vda:/./data", id="dot-component"),
    pytest.param("vda:/data/.", id="dot-end"),
    pytest.param("vda:/", id="root"),
    pytest.param("vda://", id="double-slash-root"),
    pytest.param("vda://data", id="double-slash"),
    pytest.param("vda:/data//x", id="empty-component"),
    pytest.param("vda:/data/", id="trailing-slash"),
    pytest.param("vda:/proc", id="proc"),
    pytest.param("vda:proc", id="proc-label"),
    pytest.param("vda:/proc/sys", id="under-proc"),
    pytest.param("vda:/sys", id="sys"),
    pytest.param("vda:/sys/x", id="under-sys"),
    pytest.param("vda:/dev", id="dev"),
    pytest.param("vda:dev", id="dev-label"),
    pytest.param("vda:/dev/sda", id="under-dev"),
    pytest.param("vda:/a,vda:/b", id="disk-twice"),
    pytest.param("vda:/data,vdb:/data", id="same-path"),
    pytest.param("vda:data,vdb:/data", id="same-path-label"),
    pytest.param("vda:/data,vdb:/data/logs", id="nested"),
    pytest.param("vda:/data/logs,vdb:/data", id="nested-reversed"),
    pytest.param("vd:/x", id="disk-no-letter"),
    pytest.param("vda1:/x", id="disk-partition"),
    pytest.param("VDA:/x", id="disk-uppercase"),
    pytest.param("vdabcd:/x", id="disk-4-letters"),
    pytest.param("nvme0n1:/x", id="disk-nvme"),
    pytest.param("/dev/vda:/x", id="disk-host-path"),
    pytest.param("/etc:/x", id="host-path"),
    pytest.param(":/data", id="no-disk"),
    pytest.param("vda:/data,", id="trailing-comma"),
    pytest.param(",vda:/data", id="leading-comma"),
    pytest.param("vda:/a,,vdb:/b", id="empty-entry"),
    pytest.param(",", id="comma"),
    pytest.param(",,,", id="commas-only"),
    pytest.param("vda:", id="no-path"),
    pytest.param("vda", id="disk-only"),
    pytest.param("vda/data", id="no-colon"),
    pytest.param(",".join("%s:/d%d" % (d, i)
                          for i, d in enumerate(_DISKS16 + ["vdq"])),
                 id="17-volumes"),
    pytest.param(",".join("%s:/%s%s" % (d, d, "/a" * 126)
                          for d in _DISKS16), id="too-long-4111"),
    pytest.param("vda:" + "/a" * 10000, id="too-long-20004"),
    pytest.param("vda:/" + "a" * 1024, id="path-1025"),
    pytest.param("vda:" + "l" * 65, id="label-65"),
    pytest.param("vda: /data", id="space-before-path"),
    pytest.param(" vda:/data", id="leading-space"),
    pytest.param("vda:/data ", id="trailing-space"),
    pytest.param("vda:/my data", id="space-in-path"),
    pytest.param("vda:/data, vdb:/x", id="space-after-comma"),
    pytest.param("vda:/data;rm -rf /", id="semicolon"),
    pytest.param("vda:/$(id)", id="command-substitution"),
    pytest.param("vda:/`id`", id="backticks"),
    pytest.param("vda:/data\n", id="newline"),
    pytest.param("vda:/data\x00", id="nul"),
    pytest.param(u"vda:/d\u0430ta", id="cyrillic-a"),
    pytest.param(u"vda:/\uff44ata", id="fullwidth"),
    pytest.param("vda:/data:ro", id="mount-options"),
    pytest.param("vda:/host:/data", id="host-bind"),
    pytest.param("vda:/data:/data:rw,z", id="bind-and-options"),
    pytest.param("vda:~/data", id="tilde"),
    pytest.param("vda:/data*", id="glob"),
    pytest.param(_longest(properties.MAX_VOLUME_MAP + 1), id="longest-4097"),
    pytest.param("vda:" + "/a" * 511 + "/ab", id="path-1025-deep"),
    pytest.param("vda:/a,vdb:/b,vda:/c", id="disk-twice-apart"),
    pytest.param("vda:/a,vdb:/b,vdc:/c,vdd:/b", id="same-path-apart"),
    pytest.param("vda:/a/b/c,vdb:/x,vdc:/a/b", id="nested-apart"),
    pytest.param("vda:/a,vdb:/x,vdc:/a/b/c", id="nested-apart-reversed"),
    pytest.param("vdb:/data/x,vda:data", id="nested-under-label"),
    pytest.param("vda:data,vdb:/data/x", id="label-over-nested"),
    pytest.param("vda:data,vdb:data", id="same-label"),
    pytest.param("vda:/x,vdb:/proc", id="proc-second"),
    pytest.param("vda:/x,vdb:sys", id="sys-label-second"),
    pytest.param("vda:/x,vdb:/", id="root-second"),
    pytest.param("vda:/x,vdb:/a/", id="trailing-slash-second"),
    pytest.param("vda:/a/../b,vdb:/c", id="dotdot-first"),
    pytest.param("vda:/x,vdb:/a/.", id="dot-end-second"),
    pytest.param("vda:/x:y", id="colon-in-path"),
    pytest.param("vda:/x,vdb", id="second-disk-only"),
    pytest.param("vda:/x,vdb:", id="second-no-path"),
    pytest.param("vda:/x,", id="trailing-comma-after-path"),
    pytest.param("vda:-x", id="label-leading-dash"),
    pytest.param("vda:.x", id="label-leading-dot"),
    pytest.param("vda:a@b", id="label-at"),
]


def values_of(table):
    return [p.values[0] for p in table]


@pytest.mark.parametrize("value, expected", GOOD_VOLUME_MAPS)
def test_volume_map_good(value, expected):
    volumes = properties.parse_volume_map(value)
    assert volumes == [properties.Volume(disk, path)
                       for disk, path in expected]
    assert all(isinstance(v, properties.Volume) for v in volumes)


def test_volume_map_empty():
    assert properties.parse_volume_map("") == []


@pytest.mark.parametrize("value", BAD_VOLUME_MAPS)
def test_volume_map_bad(value):
    e = assert_refused(properties.parse_volume_map, value, "volumeMap",
                       properties.MAX_VOLUME_MAP)
    assert "\n" not in str(e) and "\x00" not in str(e)


# parse_ips().

GOOD_IPS = [
    pytest.param("192.0.2.10", ["192.0.2.10"], id="one"),
    pytest.param("0.0.0.0", ["0.0.0.0"], id="zeros"),
    pytest.param("255.255.255.255", ["255.255.255.255"], id="max"),
    pytest.param("10.0.0.1,10.0.0.2", ["10.0.0.1", "10.0.0.2"], id="two"),
    pytest.param("192.0.2.10,,10.0.0.7", ["192.0.2.10", "", "10.0.0.7"],
                 id="gap"),
    pytest.param(",192.0.2.11", ["", "192.0.2.11"], id="second-only"),
    pytest.param("192.0.2.10,", ["192.0.2.10", ""], id="trailing-comma"),
    pytest.param(",,,,192.0.2.10", ["", "", "", "", "192.0.2.10"],
                 id="fifth"),
    pytest.param("1.22.199.249,250.9.0.100", ["1.22.199.249", "250.9.0.100"],
                 id="octet-forms"),
    pytest.param("," * 249 + "1.2.3.4", [""] * 249 + ["1.2.3.4"],
                 id="length-256-empties"),
    pytest.param("1.2.3.4," * 32, ["1.2.3.4"] * 32 + [""],
                 id="length-256-addresses"),
]

BAD_IPS = [
    pytest.param(",", id="comma"),
    pytest.param(",,", id="commas"),
    pytest.param(" ", id="space"),
    pytest.param("256.1.1.1", id="octet-256"),
    pytest.param("1.2.3.300", id="last-octet-300"),
    pytest.param("192.0.2", id="three-octets"),
    pytest.param("192.0.2.10.1", id="five-octets"),
    pytest.param("1.2.3.4.", id="trailing-dot"),
    pytest.param(".1.2.3.4", id="leading-dot"),
    pytest.param("1..2.3", id="empty-octet"),
    pytest.param("010.0.2.10", id="leading-zero"),
    pytest.param("1.2.3.04", id="leading-zero-last"),
    pytest.param("1.2.3.00", id="double-zero"),
    pytest.param("::1", id="ipv6"),
    pytest.param("192.0.2.10/24", id="cidr"),
    pytest.param("192.0.2.10:80", id="port"),
    pytest.param("0x7f.0.0.1", id="hex"),
    pytest.param("3221225994", id="one-number"),
    pytest.param("-1.2.3.4", id="negative"),
    pytest.param("1,2,3,4", id="digits"),
    pytest.param(" 192.0.2.10", id="leading-space"),
    pytest.param("192.0.2.10 ", id="trailing-space"),
    pytest.param("192.0.2.10, 192.0.2.11", id="space-after-comma"),
    pytest.param("192.0.2.10;192.0.2.11", id="semicolon"),
    pytest.param("192.0.2.10,x", id="second-not-address"),
    pytest.param("192.0.2.10,,1.2.3", id="third-short"),
    pytest.param("192.0.2.10\n", id="newline"),
    pytest.param("\n192.0.2.10", id="leading-newline"),
    pytest.param("192.0.2.10\x00", id="nul"),
    pytest.param(u"\uff11.2.3.4", id="fullwidth-digit"),
    pytest.param(u"1.2.3.\u0664", id="arabic-indic-digit"),
    pytest.param("," * 250 + "1.2.3.4", id="length-257"),
    pytest.param("1.2.3.4," * 32 + "1", id="length-257-addresses"),
]


@pytest.mark.parametrize("value, expected", GOOD_IPS)
def test_ips_good(value, expected):
    assert properties.parse_ips(value) == expected


def test_ips_empty():
    assert properties.parse_ips("") == []


@pytest.mark.parametrize("value", BAD_IPS)
def test_ips_bad(value):
    assert_refused(properties.parse_ips, value, "containerIP",
                   properties.MAX_IPS_LENGTH)


# The tables, for engine_regex_test.py: Engine's regexes must say of every
# value what the hook says.

def table_values():
    """(property, value, accepted by the hook) for every table here."""
    values = []
    values += [("containerType", v, True) for v in GOOD_TYPES]
    values += [("containerType", v, False)
               for v in values_of(BAD_TYPES)]
    values += [("containerImage", v, True)
               for v in imageref_test.good_values()]
    values += [("containerImage", v, False)
               for v in imageref_test.bad_values()]
    values += [("volumeMap", v, True)
               for v in [""] + values_of(GOOD_VOLUME_MAPS)]
    values += [("volumeMap", v, False)
               for v in values_of(BAD_VOLUME_MAPS)]
    values += [("containerIP", v, True)
               for v in [""] + values_of(GOOD_IPS)]
    values += [("containerIP", v, False)
               for v in values_of(BAD_IPS)]
    values += [("containerPull", v, True) for v in GOOD_PULLS]
    values += [("containerPull", v, False) for v in BAD_PULLS]
    return values


# containerPull (issue 10): the values of imagepolicy.PULL_POLICIES only.
GOOD_PULLS = ["missing", "always", "never"]
BAD_PULLS = ["", "Always", "sometimes", " never", "never\n", "always|never",
             "missing,always", u"\u0430lways"]


@pytest.mark.parametrize("value", GOOD_PULLS)
def test_pull(value):
    assert properties.parse_pull(value) == value


@pytest.mark.parametrize("value", BAD_PULLS)
def test_bad_pull(value):
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse_pull(value)
    assert str(e.value).startswith("Invalid custom property containerPull=")
    assert str(e.value).endswith("expected one of missing, always, never")


def hook_accepts(name, value):
    """Whether properties.parse accepts value for name, the other
    properties being valid: the hook's verdict before it looks at the VM
    or the host."""
    raw = {"containerType": "docker", "containerImage": "redis"}
    raw[name] = value
    try:
        properties.parse(raw, ENGINES)
        return True
    except errors.InvalidProperty as e:
        assert e.name == name
        return False


def test_tables_are_what_the_hook_says():
    for name, value, good in table_values():
        assert hook_accepts(name, value) == good, (name, value[:80])


def python_matches(name, value):
    # Java's matches() must match the whole value, like re.fullmatch.
    regex = properties.engine_regexes(config.ENGINES)[name]
    return re.fullmatch(regex, value) is not None


# Arbitrary text: nothing but the package's errors, and whatever is
# accepted is safe to mount.

_VOLUME_PIECES = st.lists(st.sampled_from([
    "vda", "vdb", "sdc", "xvdaa", "nvme0", ":", ",", "/", "//", "data", "a",
    "logs", ".", "..", "proc", "sys", "dev", "/proc", "/sys/", "/dev",
    "_x", "@", "+", "-", " ", "\n", "\x00", u"\u0430", "l" * 64, "/a" * 300,
]), max_size=14).map("".join)

_VOLUME_CHARS = u"vdsahxz:,/.proc_@+- \n\x00\u0430"

# Lists of disk:target entries, many of them valid or nearly.
_TARGETS = st.one_of(
    st.lists(st.sampled_from([
        "data", "a", "x_y", "@b", "proc", "sys", "dev", "..", ".", "", " ",
    ]), min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(["data", "logs", "proc", "dev", ".x", "..", "a b", ""]),
)
_VOLUME_ENTRIES = st.lists(st.tuples(
    st.sampled_from(["vda", "vdb", "vdc", "sdb", "xvdaa", "hdz", "nvme0"]),
    _TARGETS,
).map(":".join), min_size=1, max_size=5).map(",".join)


def check_accepted_volumes(value, volumes):
    assert len(volumes) <= properties.MAX_VOLUMES
    assert len(set(v.disk for v in volumes)) == len(volumes)
    for v in volumes:
        assert v.path.startswith("/")
        parts = v.path.split("/")[1:]
        assert all(parts), v.path
        assert "." not in parts and ".." not in parts
        for forbidden in ("/proc", "/sys", "/dev"):
            assert v.path != forbidden
            assert not v.path.startswith(forbidden + "/")
        for other in volumes:
            if other is not v:
                assert not (other.path + "/").startswith(v.path + "/")
    assert python_matches("volumeMap", value)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=_VOLUME_CHARS), _VOLUME_PIECES,
                 _VOLUME_ENTRIES))
def test_volume_map_any_text(value):
    try:
        volumes = properties.parse_volume_map(value)
    except errors.Error as e:
        assert "volumeMap" in str(e)
        assert not python_matches("volumeMap", value)
        return
    if value:
        check_accepted_volumes(value, volumes)
    else:
        assert volumes == []
        assert python_matches("volumeMap", value)


_TEXT_OR_GOOD = st.one_of(
    st.text(),
    st.sampled_from(["docker", "podman", "redis", "vda:/data", "--rm"]),
    _VOLUME_PIECES, _VOLUME_ENTRIES)

# Arbitrary keys and values, and the three properties with values that are
# often valid.
_RAW = st.builds(
    lambda other, props: dict(other, **props),
    st.dictionaries(st.text(max_size=8), _TEXT_OR_GOOD, max_size=3),
    st.fixed_dictionaries({}, optional={
        "containerType": st.one_of(st.sampled_from(ENGINES + ("lxc",)),
                                   st.text()),
        "containerImage": st.one_of(
            st.sampled_from(imageref_test.good_values()),
            imageref_test._REF_PIECES, st.text()),
        "volumeMap": st.one_of(_VOLUME_ENTRIES, st.just(""), st.text()),
    }))


@settings(max_examples=3000, deadline=None)
@given(_RAW)
def test_parse_any_text(raw):
    try:
        props = properties.parse(raw, ENGINES)
    except errors.Error as e:
        assert isinstance(e, errors.InvalidProperty)
        assert e.name in properties.NAMES and e.name in str(e)
        return
    if props is None:
        assert "containerType" not in raw
        return
    assert props.engine in ENGINES
    assert str(props.image) == raw["containerImage"]
    if raw.get("volumeMap"):
        check_accepted_volumes(raw["volumeMap"], props.volumes)


@settings(max_examples=2000, deadline=None)
@given(st.dictionaries(st.sampled_from(properties.NAMES), _TEXT_OR_GOOD),
       st.dictionaries(st.sampled_from(properties.NAMES), _TEXT_OR_GOOD))
def test_collect_any_text(env, metadata):
    try:
        raw = properties.collect(env, metadata)
    except errors.InvalidProperty as e:
        assert e.name in env and e.name in metadata
        return
    for name, value in raw.items():
        assert value in (env.get(name), metadata.get(name))
