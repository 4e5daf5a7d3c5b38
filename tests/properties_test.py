"""The VM custom properties: where they come from and their validation.

Every value here is typed by an Engine user; the hook must refuse anything
it does not understand with a message naming the property and the value.
The tables here are also what engine_regex_test.py checks Engine's regexes
against (with Python's re and a real Java).
"""

import collections
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


# containerImage=disk:<target>: the image archive on a VM disk.

GOOD_DISK_IMAGES = ["disk:vdb", "disk:vda", "disk:sdb", "disk:hdc",
                    "disk:xvda", "disk:vdzzz"]

BAD_DISK_IMAGES = [
    pytest.param("disk:", id="no-disk"),
    pytest.param("disk:vd", id="short"),
    pytest.param("disk:vdabcd", id="long"),
    pytest.param("disk:VDB", id="uppercase"),
    pytest.param("disk:nvme0n1", id="nvme"),
    pytest.param("disk:/dev/vdb", id="device-path"),
    pytest.param("disk:latest", id="tag-like"),
    pytest.param("disk:vdb:1", id="with-tag"),
    pytest.param("disk:vdb,vdc", id="two-disks"),
    pytest.param("disk:vdb ", id="trailing-space"),
    pytest.param("disk:vdb\n", id="newline"),
    pytest.param("disk: vdb", id="space"),
    pytest.param("disk:vdb@sha256:" + "a" * 64, id="with-digest"),
]


@pytest.mark.parametrize("value", GOOD_DISK_IMAGES)
def test_parse_disk_image(value):
    raw = {"containerType": "docker", "containerImage": value}
    props = properties.parse(raw, ENGINES)
    assert props.image == imageref.DiskImage(disk=value[len("disk:"):])
    assert str(props.image) == value


@pytest.mark.parametrize("value", BAD_DISK_IMAGES)
def test_parse_disk_image_bad(value):
    raw = {"containerType": "docker", "containerImage": value}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert_names(e.value, "containerImage", value)
    assert "not a VM disk name" in str(e.value)


@pytest.mark.parametrize("value, image", [
    pytest.param("disk", imageref.ImageRef(None, "disk", None, None),
                 id="bare-name"),
    pytest.param("docker.io/library/disk:vdb",
                 imageref.ImageRef("docker.io", "library/disk", "vdb", None),
                 id="with-registry"),
    pytest.param("library/disk:vdb",
                 imageref.ImageRef(None, "library/disk", "vdb", None),
                 id="library-path"),
    pytest.param("a/disk:vdb", imageref.ImageRef(None, "a/disk", "vdb", None),
                 id="disk-as-component"),
])
def test_image_named_disk_is_a_reference(value, image):
    # Only a value starting with "disk:" is the disk form.
    raw = {"containerType": "docker", "containerImage": value}
    assert properties.parse(raw, ENGINES).image == image


@pytest.mark.parametrize("volume_map", [
    pytest.param("vdb:/data", id="alone"),
    pytest.param("vda:/a,vdb:/b", id="second"),
    pytest.param("vdb:data", id="label-form"),
])
def test_parse_disk_image_also_a_volume_refused(volume_map):
    raw = {"containerType": "docker", "containerImage": "disk:vdb",
           "volumeMap": volume_map}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert_names(e.value, "containerImage", "disk:vdb")
    assert "disk vdb is in volumeMap too" in str(e.value)


def test_parse_disk_image_with_other_volumes():
    raw = {"containerType": "docker", "containerImage": "disk:vdb",
           "volumeMap": "vda:/data,vdc:/logs"}
    props = properties.parse(raw, ENGINES)
    assert props.image.disk == "vdb"
    assert [v.disk for v in props.volumes] == ["vda", "vdc"]


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


# The application's properties.

def test_parse_application_properties():
    raw = {"containerType": "docker", "containerImage": "postgres:16",
           "containerEnv": "POSTGRES_USER=app,POSTGRES_DB=sales",
           "containerCommand": "postgres -c max_connections=200",
           "containerEntrypoint": "docker-entrypoint.sh",
           "containerWorkdir": "/var/lib/postgresql",
           "containerUser": "999:999",
           "containerSecrets": "pg-password"}
    props = properties.parse(dict(raw, other="x"), ENGINES)
    assert props.env == [("POSTGRES_USER", "app"), ("POSTGRES_DB", "sales")]
    assert props.command == ["postgres", "-c", "max_connections=200"]
    assert props.entrypoint == ["docker-entrypoint.sh"]
    assert props.workdir == "/var/lib/postgresql"
    assert props.user == (999, 999)
    assert props.secrets == ["pg-password"]
    # The raw values of every property present, for the root helper.
    assert props.raw == raw


def test_parse_application_properties_not_set():
    raw = {"containerType": "docker", "containerImage": "redis"}
    props = properties.parse(raw, ENGINES)
    assert (props.env, props.command, props.entrypoint, props.workdir,
            props.user, props.secrets) == ([], None, None, None, None, [])
    assert props.raw == raw
    # "" is "not set" for all but the drop-downs (containerType,
    # containerPull, containerRuntime: Engine's list form cannot offer "").
    empty = dict((name, "") for name in properties.NAMES[2:]
                 if name not in (properties.CONTAINER_PULL,
                                 properties.CONTAINER_RUNTIME))
    props = properties.parse(dict(raw, **empty), ENGINES)
    assert (props.env, props.command, props.entrypoint, props.workdir,
            props.user, props.secrets) == ([], None, None, None, None, [])
    assert props.raw == dict(raw, **empty)


@pytest.mark.parametrize("name, value", [
    pytest.param("containerEnv", "A=1", id="env"),
    pytest.param("containerCommand", "sleep 1", id="command"),
    pytest.param("containerEntrypoint", "/bin/app", id="entrypoint"),
    pytest.param("containerWorkdir", "/srv", id="workdir"),
    pytest.param("containerUser", "1000", id="user"),
    pytest.param("containerSecrets", "db", id="secrets"),
])
def test_collect_application_properties(name, value):
    assert properties.collect({name: value}, {}) == {name: value}
    assert properties.collect({}, {name: value}) == {name: value}
    assert properties.collect({name: value}, {name: value}) == {name: value}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.collect({name: value}, {name: value + "0"})
    assert_names(e.value, name, value)


# parse_env().

_ENV64 = ",".join("V%d=%d" % (i, i) for i in range(64))
_ENV_LONGEST = "K=" + "x" * (properties.MAX_ENV - 2)
_KEY128 = "K" * 128
# 64 variables at the length cap, each value all escapes.
_ENV_FULL = ",".join("V%02d=%s" % (i, "%2C" * 5 + "x" * (12 + (i < 1)))
                     for i in range(64))

GOOD_ENVS = [
    pytest.param("POSTGRES_USER=app,POSTGRES_DB=sales",
                 [("POSTGRES_USER", "app"), ("POSTGRES_DB", "sales")],
                 id="postgres"),
    pytest.param("POSTGRES_USER=app,POSTGRES_DB=sales,"
                 "GREETING=Hello%2C world,TZ=Europe/Berlin",
                 [("POSTGRES_USER", "app"), ("POSTGRES_DB", "sales"),
                  ("GREETING", "Hello, world"), ("TZ", "Europe/Berlin")],
                 id="readme-example"),
    pytest.param("A=", [("A", "")], id="empty-value"),
    pytest.param("A=,B=2", [("A", ""), ("B", "2")], id="empty-then-more"),
    pytest.param("_=x", [("_", "x")], id="underscore-name"),
    pytest.param("_1a=x", [("_1a", "x")], id="name-chars"),
    pytest.param("a=1,A=2", [("a", "1"), ("A", "2")], id="case-differs"),
    pytest.param("A=1,AB=2,B=3", [("A", "1"), ("AB", "2"), ("B", "3")],
                 id="name-prefix"),
    pytest.param("AB=1,A=2", [("AB", "1"), ("A", "2")], id="name-suffix"),
    pytest.param("A=b=c", [("A", "b=c")], id="equals-in-value"),
    pytest.param("A==", [("A", "=")], id="equals-value"),
    pytest.param("A= x  y ", [("A", " x  y ")], id="spaces"),
    pytest.param("A=%25", [("A", "%")], id="percent"),
    pytest.param("A=100%25", [("A", "100%")], id="percent-after"),
    pytest.param("A=%2525", [("A", "%25")], id="percent-not-twice"),
    pytest.param("A=%2C%2c", [("A", ",,")], id="comma-either-case"),
    pytest.param("A=%3B", [("A", ";")], id="semicolon"),
    pytest.param("A=line1%0Aline2", [("A", "line1\nline2")], id="newline"),
    pytest.param("A=%01%7F%7e", [("A", "\x01\x7f~")], id="ascii-ends"),
    pytest.param("A=%41%3d%20", [("A", "A= ")], id="any-ascii"),
    pytest.param(u"A=h\u00e9llo w\u00f6rld \u2713",
                 [("A", u"h\u00e9llo w\u00f6rld \u2713")], id="unicode"),
    pytest.param(u"A=\U0001f600", [("A", u"\U0001f600")], id="astral"),
    pytest.param(u"A=\u00a0\u200b\ufeff", [("A", u"\u00a0\u200b\ufeff")],
                 id="unicode-spaces"),
    pytest.param(u"A=\u00a0\u00ff\u0100", [("A", u"\u00a0\u00ff\u0100")],
                 id="after-c1"),
    pytest.param("A=$(id) `id` |&<>'\"\\*?~#!",
                 [("A", "$(id) `id` |&<>'\"\\*?~#!")], id="shell-chars"),
    pytest.param("A=--privileged", [("A", "--privileged")], id="option"),
    pytest.param(_ENV64, [("V%d" % i, str(i)) for i in range(64)],
                 id="64-variables"),
    pytest.param(_KEY128 + "=x", [(_KEY128, "x")], id="name-128"),
    pytest.param(_ENV_LONGEST, [("K", "x" * (properties.MAX_ENV - 2))],
                 id="length-2048"),
    pytest.param(_ENV_FULL, [("V%02d" % i, "," * 5 + "x" * (12 + (i < 1)))
                             for i in range(64)],
                 id="64-escaped-%d" % len(_ENV_FULL)),
]

BAD_ENVS = [
    pytest.param("KEY", id="no-equals"),
    pytest.param("A=1,KEY", id="second-no-equals"),
    pytest.param("=value", id="no-name"),
    pytest.param("1A=x", id="name-digit-first"),
    pytest.param("A-B=x", id="name-dash"),
    pytest.param("A.B=x", id="name-dot"),
    pytest.param("A B=x", id="name-space"),
    pytest.param(" A=x", id="leading-space"),
    pytest.param("A =x", id="space-before-equals"),
    pytest.param(u"\u0410=x", id="name-cyrillic"),
    pytest.param(u"A\u200b=x", id="name-zero-width"),
    pytest.param("A%41=x", id="name-escaped"),
    pytest.param("A=1,A=2", id="name-twice"),
    pytest.param("A=1,B=2,A=3", id="name-twice-apart"),
    pytest.param("AB=1,B=2,AB=", id="name-twice-empty"),
    pytest.param(",A=1", id="leading-comma"),
    pytest.param("A=1,", id="trailing-comma"),
    pytest.param("A=1,,B=2", id="empty-item"),
    pytest.param(",", id="comma"),
    pytest.param("A=x,y", id="raw-comma"),
    pytest.param("A=%", id="percent-alone"),
    pytest.param("A=100%", id="percent-at-end"),
    pytest.param("A=%2", id="percent-one-digit"),
    pytest.param("A=%zz", id="percent-not-hex"),
    pytest.param("A=%%41", id="percent-percent"),
    pytest.param("A=% 1", id="percent-space"),
    pytest.param(u"A=%\uff11\uff11", id="percent-fullwidth-digits"),
    pytest.param("A=%00", id="escaped-nul"),
    pytest.param("A=%80", id="escaped-80"),
    pytest.param("A=%ff", id="escaped-ff"),
    pytest.param("A=%C3%A9", id="escaped-utf8"),
    pytest.param("A=x;y", id="semicolon"),
    pytest.param("A=x;B=y", id="semicolon-property"),
    pytest.param("A=x\ny", id="newline"),
    pytest.param("A=x\r", id="carriage-return"),
    pytest.param("A=\t", id="tab"),
    pytest.param("A=\x00", id="nul"),
    pytest.param("A=\x1b[31m", id="escape-sequence"),
    pytest.param("A=\x7f", id="del"),
    pytest.param(u"A=\x80", id="c1-first"),
    pytest.param(u"A=\x85", id="next-line"),
    pytest.param(u"A=\x9f", id="c1-last"),
    pytest.param(u"A=\u2028", id="line-separator"),
    pytest.param(u"A=\u2029", id="paragraph-separator"),
    pytest.param(u"A=\ud800", id="lone-high-surrogate"),
    pytest.param(u"A=\udc80", id="surrogate-escape"),
    pytest.param(u"A=\udfff", id="lone-low-surrogate"),
    pytest.param(_ENV64 + ",V64=x", id="65-variables"),
    pytest.param("K" * 129 + "=x", id="name-129"),
    pytest.param(_ENV_LONGEST + "x", id="length-2049"),
    pytest.param(_ENV_LONGEST[:-1] + "\n", id="length-2048-newline"),
    pytest.param("K=" + "x" * 100000, id="length-100002"),
    pytest.param(_ENV_FULL[:-3] + "%", id="64-escaped-bad-end"),
]


@pytest.mark.parametrize("value, expected", GOOD_ENVS)
def test_env_good(value, expected):
    assert properties.parse_env(value) == expected


def test_env_empty():
    assert properties.parse_env("") == []


@pytest.mark.parametrize("value", BAD_ENVS)
def test_env_bad(value):
    e = assert_refused(properties.parse_env, value, "containerEnv",
                       properties.MAX_ENV)
    assert len(str(e).splitlines()) == 1 and str(e).isprintable()


@pytest.mark.parametrize("name, value, reason", [
    pytest.param("containerEnv", "A=100%", "write %25 for a percent sign",
                 id="env-percent"),
    pytest.param("containerEnv", "A=x,y", "variable 2, 'y', has no '='",
                 id="env-raw-comma"),
    pytest.param("containerEnv", "A=x,y", "%2C for a comma", id="env-comma"),
    pytest.param("containerEnv", "A=1,B=2,A=3", "variable A is given twice",
                 id="env-twice"),
    pytest.param("containerEnv", "A=x;y", "write %3B for a semicolon",
                 id="env-semicolon"),
    pytest.param("containerEnv", "A=1,B=x\ny", "character 8 (U+000A) must "
                 "be escaped: write %0A for a newline", id="env-newline"),
    pytest.param("containerEnv", u"A=\x85", "U+0085) is not allowed",
                 id="env-c1"),
    pytest.param("containerEnv", "A=%C3%A9", "variable A: '%C3' is not an "
                 "ASCII character", id="env-utf8-escape"),
    pytest.param("containerEnv", "1A=x", "'1A' is not a variable name",
                 id="env-name"),
    pytest.param("containerEnv", u"A=\udc80", "not text", id="env-surrogate"),
    pytest.param("containerCommand", "echo  x", "argument 2 is empty",
                 id="command-double-space"),
    pytest.param("containerCommand", "echo a%b", "argument 2: '%b' is not a "
                 "percent escape: write %25 for a percent sign",
                 id="command-percent"),
    pytest.param("containerCommand", "x" * 1025, "longer than 1024",
                 id="command-long"),
    pytest.param("containerEntrypoint", "x" * 513, "longer than 512",
                 id="entrypoint-long"),
    pytest.param("containerWorkdir", "srv/app", "not an absolute path",
                 id="workdir-relative"),
    pytest.param("containerWorkdir", "/proc/self", "belongs to the kernel",
                 id="workdir-proc"),
    pytest.param("containerUser", "postgres", "user names are refused",
                 id="user-name"),
    pytest.param("containerUser", "1000:2147483648", "2147483648 is more "
                 "than 2147483647", id="user-big"),
    pytest.param("containerSecrets", "db,api,db", "secret db is listed twice",
                 id="secrets-twice"),
    pytest.param("containerSecrets", "db,../x", "'../x' is not a secret "
                 "name", id="secrets-path"),
])
def test_refusal_says_what_to_do(name, value, reason):
    raw = {"containerType": "docker", "containerImage": "redis", name: value}
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse(raw, ENGINES)
    assert e.value.name == name
    assert reason in str(e.value)


# parse_args(): containerCommand and containerEntrypoint.

_ARGS64 = " ".join("a%d" % i for i in range(64))
def _args_at(length, n):
    """n arguments of about the same length, length characters in all,
    made of escapes."""
    fill = length - (n - 1)
    sizes = [fill // n + (i < fill % n) for i in range(n)]
    return " ".join("%25" * (s // 3) + "z" * (s % 3) for s in sizes)


def _decoded_args(value):
    return [a.replace("%25", "%") for a in value.split(" ")]


_COMMAND_LONGEST = _args_at(properties.MAX_ARGS_LENGTH["containerCommand"],
                            64)
_ENTRYPOINT_LONGEST = _args_at(
    properties.MAX_ARGS_LENGTH["containerEntrypoint"], 64)

GOOD_ARGS = [
    pytest.param("postgres", ["postgres"], id="one"),
    pytest.param("postgres -c max_connections=200",
                 ["postgres", "-c", "max_connections=200"], id="options"),
    pytest.param("echo Hello%20world", ["echo", "Hello world"],
                 id="escaped-space"),
    pytest.param("echo a,b", ["echo", "a,b"], id="comma"),
    pytest.param("echo 100%25", ["echo", "100%"], id="percent"),
    pytest.param("echo %2525", ["echo", "%25"], id="percent-once"),
    pytest.param("echo x=%3B", ["echo", "x=;"], id="semicolon"),
    pytest.param("printf a%0Ab", ["printf", "a\nb"], id="newline"),
    pytest.param("%20", [" "], id="space-argument"),
    pytest.param("a %20 b", ["a", " ", "b"], id="space-between"),
    pytest.param("--privileged", ["--privileged"], id="option-first"),
    pytest.param(u"echo h\u00e9llo \u2713", ["echo", u"h\u00e9llo", u"\u2713"],
                 id="unicode"),
    pytest.param(u"echo \U0001f600", ["echo", u"\U0001f600"], id="astral"),
    pytest.param(u"echo a\u00a0b", ["echo", u"a\u00a0b"],
                 id="no-break-space"),
    pytest.param("sh -c $(id)|`id`&&'x'\"y\"\\",
                 ["sh", "-c", "$(id)|`id`&&'x'\"y\"\\"], id="shell-chars"),
    pytest.param(_ARGS64, _ARGS64.split(" "), id="64-arguments"),
    pytest.param("x" * 512, ["x" * 512], id="length-512"),
    pytest.param(_ENTRYPOINT_LONGEST, _decoded_args(_ENTRYPOINT_LONGEST),
                 id="64-escaped-512"),
]

# Good for containerCommand, too long for containerEntrypoint.
LONG_ARGS = [
    pytest.param("x" * 513, ["x" * 513], id="length-513"),
    pytest.param("x" * 1024, ["x" * 1024], id="length-1024"),
    pytest.param(_COMMAND_LONGEST, _decoded_args(_COMMAND_LONGEST),
                 id="64-escaped-1024"),
]

BAD_ARGS = [
    pytest.param(" ", id="space"),
    pytest.param(" echo", id="leading-space"),
    pytest.param("echo ", id="trailing-space"),
    pytest.param("echo  x", id="double-space"),
    pytest.param("echo\tx", id="tab"),
    pytest.param("echo\nx", id="newline"),
    pytest.param("echo\r", id="carriage-return"),
    pytest.param("echo;reboot", id="semicolon"),
    pytest.param("echo x;containerImage=evil", id="semicolon-property"),
    pytest.param("echo 100%", id="percent"),
    pytest.param("echo %", id="percent-alone"),
    pytest.param("echo %2", id="percent-one-digit"),
    pytest.param("echo %g0", id="percent-not-hex"),
    pytest.param("echo %00", id="escaped-nul"),
    pytest.param("echo %80", id="escaped-80"),
    pytest.param("echo %e2%9c%93", id="escaped-utf8"),
    pytest.param("echo \x00", id="nul"),
    pytest.param("echo \x1b]0;x\x07", id="terminal-title"),
    pytest.param("echo \x7f", id="del"),
    pytest.param(u"echo \x85", id="next-line"),
    pytest.param(u"echo \u2028x", id="line-separator"),
    pytest.param(u"echo \u2029", id="paragraph-separator"),
    pytest.param(u"echo \ud83d", id="lone-surrogate"),
    pytest.param(u"echo \udcff", id="surrogate-escape"),
    pytest.param(_ARGS64 + " x", id="65-arguments"),
    pytest.param("x" * 1025, id="length-1025"),
    pytest.param("x " * 600, id="length-1200-spaces"),
    pytest.param("x" * 100000, id="length-100000"),
    pytest.param(_COMMAND_LONGEST + "z", id="64-escaped-1025"),
]


@pytest.mark.parametrize("value, expected", GOOD_ARGS + LONG_ARGS)
def test_command_good(value, expected):
    assert properties.parse_args(value, "containerCommand") == expected


@pytest.mark.parametrize("value, expected", GOOD_ARGS)
def test_entrypoint_good(value, expected):
    assert properties.parse_args(value, "containerEntrypoint") == expected


@pytest.mark.parametrize("name", ["containerCommand", "containerEntrypoint"])
def test_args_empty(name):
    assert properties.parse_args("", name) is None


@pytest.mark.parametrize("value", BAD_ARGS)
def test_command_bad(value):
    assert_refused(lambda v: properties.parse_args(v, "containerCommand"),
                   value, "containerCommand", 1024)


@pytest.mark.parametrize("value", BAD_ARGS + [
    pytest.param(p.values[0], id=p.id) for p in LONG_ARGS])
def test_entrypoint_bad(value):
    assert_refused(lambda v: properties.parse_args(v, "containerEntrypoint"),
                   value, "containerEntrypoint", 512)


# parse_workdir().

GOOD_WORKDIRS = [
    pytest.param("/srv/app", id="path"),
    pytest.param("/a", id="short"),
    pytest.param("/var/lib/postgresql/data", id="deep"),
    pytest.param("/opt/app-1.2/x_y@v+z", id="path-chars"),
    pytest.param("/proc2", id="near-proc"),
    pytest.param("/srv/proc", id="proc-deeper"),
    pytest.param("/devices/sys", id="near-dev"),
    pytest.param("/.../.x/x..", id="dots-in-names"),
    pytest.param("/" + "a" * 1023, id="length-1024"),
    pytest.param("/a" * 512, id="length-1024-deep"),
]

BAD_WORKDIRS = [
    pytest.param("srv/app", id="relative"),
    pytest.param("data", id="label"),
    pytest.param("./app", id="dot-relative"),
    pytest.param("/", id="root"),
    pytest.param("//", id="double-slash-root"),
    pytest.param("//srv", id="double-slash"),
    pytest.param("/srv//app", id="empty-component"),
    pytest.param("/srv/", id="trailing-slash"),
    pytest.param("/./srv", id="dot"),
    pytest.param("/srv/.", id="dot-end"),
    pytest.param("/srv/../etc", id="dotdot"),
    pytest.param("/..", id="dotdot-root"),
    pytest.param("/proc", id="proc"),
    pytest.param("/proc/1/root", id="under-proc"),
    pytest.param("/sys", id="sys"),
    pytest.param("/dev", id="dev"),
    pytest.param("/dev/shm", id="under-dev"),
    pytest.param("/" + "a" * 1024, id="length-1025"),
    pytest.param("/a" * 512 + "b", id="length-1025-deep"),
    pytest.param("/a" * 50000, id="length-100000"),
    pytest.param("/my app", id="space"),
    pytest.param("/srv ", id="trailing-space"),
    pytest.param("/srv\n", id="newline"),
    pytest.param("/srv\x00", id="nul"),
    pytest.param("/srv;rm", id="semicolon"),
    pytest.param("~/app", id="tilde"),
    pytest.param("/srv:/x", id="colon"),
    pytest.param("/$HOME", id="variable"),
    pytest.param("/srv%20x", id="escape"),
    pytest.param(u"/caf\u00e9", id="unicode"),
    pytest.param(u"/\u2215etc", id="division-slash"),
    pytest.param("vda:/data", id="volume-form"),
]


@pytest.mark.parametrize("value", GOOD_WORKDIRS)
def test_workdir_good(value):
    assert properties.parse_workdir(value) == value


def test_workdir_empty():
    assert properties.parse_workdir("") is None


@pytest.mark.parametrize("value", BAD_WORKDIRS)
def test_workdir_bad(value):
    assert_refused(properties.parse_workdir, value, "containerWorkdir",
                   properties.MAX_PATH)


# parse_user().

GOOD_USERS = [
    pytest.param("1000", (1000, None), id="uid"),
    pytest.param("1000:1000", (1000, 1000), id="uid-gid"),
    pytest.param("999:5", (999, 5), id="postgres"),
    pytest.param("0", (0, None), id="root-uid"),
    pytest.param("0:0", (0, 0), id="root"),
    pytest.param("1000:0", (1000, 0), id="root-gid"),
    pytest.param("65534:65534", (65534, 65534), id="nobody"),
    pytest.param("999999999", (999999999, None), id="nine-digits"),
    pytest.param("1000000000", (1000000000, None), id="ten-digits"),
    pytest.param("2147483647", (2147483647, None), id="max"),
    pytest.param("2147483647:2147483647", (2147483647, 2147483647),
                 id="max-both"),
    pytest.param("2147483639:2099999999", (2147483639, 2099999999),
                 id="near-max"),
]

BAD_USERS = [
    pytest.param("root", id="root-name"),
    pytest.param("postgres", id="name"),
    pytest.param("1000:users", id="group-name"),
    pytest.param("app:1000", id="name-gid"),
    pytest.param("-1", id="negative"),
    pytest.param("+1", id="plus"),
    pytest.param("00", id="double-zero"),
    pytest.param("01000", id="leading-zero"),
    pytest.param("1000:01", id="gid-leading-zero"),
    pytest.param("2147483648", id="max-plus-one"),
    pytest.param("1000:2147483648", id="gid-max-plus-one"),
    pytest.param("2147483650", id="max-plus-three"),
    pytest.param("2200000000", id="above-max"),
    pytest.param("4294967295", id="uint32-max"),
    pytest.param("4294967296", id="uint32-wrap"),
    pytest.param("99999999999", id="eleven-digits"),
    pytest.param("9" * 5000, id="huge"),
    pytest.param("1000:", id="empty-gid"),
    pytest.param(":1000", id="empty-uid"),
    pytest.param(":", id="colon"),
    pytest.param("1000:1000:1000", id="three"),
    pytest.param("1000,1000", id="comma"),
    pytest.param(" 1000", id="leading-space"),
    pytest.param("1000 ", id="trailing-space"),
    pytest.param("1000\n", id="newline"),
    pytest.param("1000\x00", id="nul"),
    pytest.param("1e3", id="exponent"),
    pytest.param("0x10", id="hex"),
    pytest.param("1_000", id="underscore"),
    pytest.param(u"\uff11\uff10\uff10\uff10", id="fullwidth"),
    pytest.param(u"\u0661\u0660\u0660\u0660", id="arabic-indic"),
    pytest.param("1000;x", id="semicolon"),
]


@pytest.mark.parametrize("value, expected", GOOD_USERS)
def test_user_good(value, expected):
    assert properties.parse_user(value) == expected


def test_user_empty():
    assert properties.parse_user("") is None


@pytest.mark.parametrize("value", BAD_USERS)
def test_user_bad(value):
    assert_refused(properties.parse_user, value, "containerUser", 21)


# parse_secret_names().

_SECRETS16 = ["s%02d" % i for i in range(16)]
_SECRETS_LONGEST = ",".join("%02d%s" % (i, "x" * 62) for i in range(16))

GOOD_SECRETS = [
    pytest.param("db", ["db"], id="one"),
    pytest.param("pg-password,api.key", ["pg-password", "api.key"],
                 id="two"),
    pytest.param("a", ["a"], id="one-letter"),
    pytest.param("0", ["0"], id="digit"),
    pytest.param("A.b_c-d", ["A.b_c-d"], id="chars"),
    pytest.param("a..b", ["a..b"], id="dots-inside"),
    pytest.param("db,DB", ["db", "DB"], id="case-differs"),
    pytest.param("db,db2,d", ["db", "db2", "d"], id="prefixes"),
    pytest.param("db2,db", ["db2", "db"], id="suffix"),
    pytest.param("a" * 64, ["a" * 64], id="name-64"),
    pytest.param(",".join(_SECRETS16), _SECRETS16, id="16"),
    pytest.param(_SECRETS_LONGEST, _SECRETS_LONGEST.split(","),
                 id="longest-%d" % len(_SECRETS_LONGEST)),
]

BAD_SECRETS = [
    pytest.param(",", id="comma"),
    pytest.param("db,", id="trailing-comma"),
    pytest.param(",db", id="leading-comma"),
    pytest.param("db,,x", id="empty-name"),
    pytest.param("db,db", id="twice"),
    pytest.param("a,b,c,a", id="twice-apart"),
    pytest.param("-db", id="dash-first"),
    pytest.param(".db", id="dot-first"),
    pytest.param("_db", id="underscore-first"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("../etc/shadow", id="climb"),
    pytest.param("/etc/shadow", id="host-path"),
    pytest.param("db/x", id="slash"),
    pytest.param("db x", id="space"),
    pytest.param("db, x", id="space-after-comma"),
    pytest.param("db;x", id="semicolon"),
    pytest.param("db:x", id="colon"),
    pytest.param("db\n", id="newline"),
    pytest.param("db\x00", id="nul"),
    pytest.param("*", id="glob"),
    pytest.param("$(id)", id="substitution"),
    pytest.param(u"d\u0431", id="cyrillic"),
    pytest.param("PASSWORD=x", id="a-value"),
    pytest.param("a" * 65, id="name-65"),
    pytest.param(",".join(_SECRETS16 + ["s16"]), id="17"),
    pytest.param(_SECRETS_LONGEST + "x", id="longest-plus-one"),
    pytest.param("a," * 50000 + "a", id="length-100001"),
]


@pytest.mark.parametrize("value, expected", GOOD_SECRETS)
def test_secrets_good(value, expected):
    assert properties.parse_secret_names(value) == expected


def test_secrets_empty():
    assert properties.parse_secret_names("") == []


@pytest.mark.parametrize("value", BAD_SECRETS)
def test_secrets_bad(value):
    assert_refused(properties.parse_secret_names, value, "containerSecrets",
                   properties.MAX_SECRETS_LENGTH)


# containerHealthCmd: containerCommand's grammar (parse_args), 512
# characters; "none" (any case) disables the image's check.

_HEALTH_CMD_LONGEST = _args_at(
    properties.MAX_ARGS_LENGTH["containerHealthCmd"], 64)

GOOD_HEALTH_CMDS = [
    pytest.param("none", [], id="none"),
    pytest.param("NONE", [], id="none-upper"),
    pytest.param("None", [], id="none-title"),
    pytest.param("none x", ["none", "x"], id="program-none"),
    pytest.param("/none", ["/none"], id="path-none"),
    pytest.param("curl -fsS http://localhost:8080/health",
                 ["curl", "-fsS", "http://localhost:8080/health"],
                 id="curl"),
    pytest.param("pg_isready -U app", ["pg_isready", "-U", "app"],
                 id="pg-isready"),
    pytest.param("/bin/sh -c test%20!%20-e%20/tmp/sick%20||%20exit%201",
                 ["/bin/sh", "-c", "test ! -e /tmp/sick || exit 1"],
                 id="explicit-shell"),
    pytest.param(_HEALTH_CMD_LONGEST, _decoded_args(_HEALTH_CMD_LONGEST),
                 id="64-escaped-512"),
]

BAD_HEALTH_CMDS = BAD_ARGS + [
    pytest.param(p.values[0], id=p.id) for p in LONG_ARGS] + [
    pytest.param(" none", id="none-leading-space"),
    pytest.param("none ", id="none-trailing-space"),
    pytest.param("none;", id="none-semicolon"),
]


@pytest.mark.parametrize("value, expected", GOOD_HEALTH_CMDS)
def test_health_cmd_good(value, expected):
    assert properties.parse_health_cmd(value) == expected


def test_health_cmd_empty():
    assert properties.parse_health_cmd("") is None


@pytest.mark.parametrize("value", BAD_HEALTH_CMDS)
def test_health_cmd_bad(value):
    assert_refused(properties.parse_health_cmd, value, "containerHealthCmd",
                   512)


# containerHealthOptions.

HealthOptions = properties.HealthOptions
_HEALTH_OPTIONS_LONGEST = "interval=3600,timeout=300,retries=100," \
    "start-period=3600"

GOOD_HEALTH_OPTIONS = [
    pytest.param("interval=10", HealthOptions(10, None, None, None),
                 id="interval"),
    pytest.param("interval=5", HealthOptions(5, None, None, None),
                 id="interval-floor"),
    pytest.param("interval=3600", HealthOptions(3600, None, None, None),
                 id="interval-most"),
    pytest.param("timeout=1", HealthOptions(None, 1, None, None),
                 id="timeout-least"),
    pytest.param("timeout=300", HealthOptions(None, 300, None, None),
                 id="timeout-most"),
    pytest.param("retries=1", HealthOptions(None, None, 1, None),
                 id="retries-least"),
    pytest.param("retries=100", HealthOptions(None, None, 100, None),
                 id="retries-most"),
    pytest.param("start-period=0", HealthOptions(None, None, None, 0),
                 id="start-period-0"),
    pytest.param("start-period=3600", HealthOptions(None, None, None, 3600),
                 id="start-period-most"),
    pytest.param("retries=2,interval=10", HealthOptions(10, None, 2, None),
                 id="any-order"),
    pytest.param("interval=99,timeout=99,retries=99,start-period=999",
                 HealthOptions(99, 99, 99, 999), id="all"),
    pytest.param(_HEALTH_OPTIONS_LONGEST, HealthOptions(3600, 300, 100, 3600),
                 id="longest-%d" % len(_HEALTH_OPTIONS_LONGEST)),
]

BAD_HEALTH_OPTIONS = [
    pytest.param("interval=4", id="interval-below-floor"),
    pytest.param("interval=0", id="interval-0"),
    pytest.param("interval=3601", id="interval-above"),
    pytest.param("timeout=0", id="timeout-0"),
    pytest.param("timeout=301", id="timeout-above"),
    pytest.param("retries=0", id="retries-0"),
    pytest.param("retries=101", id="retries-above"),
    pytest.param("start-period=3601", id="start-period-above"),
    pytest.param("interval=05", id="leading-zero"),
    pytest.param("start-period=00", id="zero-zero"),
    pytest.param("interval=10s", id="unit"),
    pytest.param("interval=1m", id="minutes"),
    pytest.param("interval=-10", id="negative"),
    pytest.param("interval=+10", id="plus"),
    pytest.param("interval=1e3", id="exponent"),
    pytest.param("interval=10.5", id="fraction"),
    pytest.param(u"interval=１０", id="fullwidth-digits"),
    pytest.param("interval=", id="no-number"),
    pytest.param("interval", id="no-equals"),
    pytest.param("=10", id="no-name"),
    pytest.param("Interval=10", id="name-case"),
    pytest.param("start_period=10", id="underscore"),
    pytest.param("startperiod=10", id="no-dash"),
    pytest.param("health-interval=10", id="docker-flag"),
    pytest.param("--interval=10", id="option"),
    pytest.param("interval=10,interval=20", id="twice"),
    pytest.param("interval=10,retries=2,interval=10", id="twice-apart"),
    pytest.param(",interval=10", id="leading-comma"),
    pytest.param("interval=10,", id="trailing-comma"),
    pytest.param("interval=10,,retries=2", id="empty-option"),
    pytest.param(",", id="comma"),
    pytest.param("interval=10 retries=2", id="space-separated"),
    pytest.param("interval=10, retries=2", id="space-after-comma"),
    pytest.param("interval=10;retries=2", id="semicolon"),
    pytest.param(r"interval=10\n", id="backslash-n"),
    pytest.param("interval=10\n", id="newline"),
    pytest.param("interval=10\x00", id="nul"),
    pytest.param("interval=10,foo=1", id="unknown"),
    pytest.param("interval=99999999999999999999", id="huge"),
    pytest.param(_HEALTH_OPTIONS_LONGEST + "0", id="longest-plus-one"),
    pytest.param("interval=10," * 10000, id="length-120000"),
]


@pytest.mark.parametrize("value, expected", GOOD_HEALTH_OPTIONS)
def test_health_options_good(value, expected):
    assert properties.parse_health_options(value) == expected


def test_health_options_empty():
    assert properties.parse_health_options("") is None


@pytest.mark.parametrize("value", BAD_HEALTH_OPTIONS)
def test_health_options_bad(value):
    assert_refused(properties.parse_health_options, value,
                   "containerHealthOptions", properties.MAX_HEALTH_OPTIONS)


def test_health_options_longest_is_the_cap():
    assert len(_HEALTH_OPTIONS_LONGEST) == properties.MAX_HEALTH_OPTIONS


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
    values += [("containerImage", v, True) for v in GOOD_DISK_IMAGES]
    values += [("containerImage", v, False)
               for v in values_of(BAD_DISK_IMAGES)]
    values += [("volumeMap", v, True)
               for v in [""] + values_of(GOOD_VOLUME_MAPS)]
    values += [("volumeMap", v, False)
               for v in values_of(BAD_VOLUME_MAPS)]
    values += [("containerIP", v, True)
               for v in [""] + values_of(GOOD_IPS)]
    values += [("containerIP", v, False)
               for v in values_of(BAD_IPS)]
    for name, good, bad in [
            ("containerEnv", GOOD_ENVS, BAD_ENVS),
            ("containerCommand", GOOD_ARGS + LONG_ARGS, BAD_ARGS),
            ("containerEntrypoint", GOOD_ARGS, BAD_ARGS + LONG_ARGS),
            ("containerWorkdir", GOOD_WORKDIRS, BAD_WORKDIRS),
            ("containerUser", GOOD_USERS, BAD_USERS),
            ("containerSecrets", GOOD_SECRETS, BAD_SECRETS)]:
        values += [(name, v, True) for v in [""] + values_of(good)]
        values += [(name, v, False) for v in values_of(bad)]
    for name, good, bad in [
            ("containerHealthCmd", GOOD_HEALTH_CMDS, BAD_HEALTH_CMDS),
            ("containerHealthOptions", GOOD_HEALTH_OPTIONS,
             BAD_HEALTH_OPTIONS)]:
        values += [(name, v, True) for v in [""] + values_of(good)]
        values += [(name, v, False) for v in values_of(bad)]
    values += [("containerPull", v, True) for v in GOOD_PULLS]
    values += [("containerPull", v, False) for v in BAD_PULLS]
    values += [("containerRuntime", v, True) for v in GOOD_RUNTIMES]
    values += [("containerRuntime", v, False) for v in BAD_RUNTIMES]
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


# containerRuntime (issue 14): the runtimes the package knows, on every
# host alike; which of them a host offers is checked at start.
GOOD_RUNTIMES = ["runc", "crun", "runsc"]
BAD_RUNTIMES = ["", "Runc", "kata", "runsc ", "runc\n", "runc|crun",
                "runc,crun", "/usr/bin/runc", "io.containerd.runc.v2",
                u"\u0440unc", "runsc --network=host", "runc\x00"]


@pytest.mark.parametrize("value", GOOD_RUNTIMES)
def test_runtime(value):
    assert properties.parse_runtime(value) == value
    raw = {"containerType": "docker", "containerImage": "redis",
           "containerRuntime": value}
    assert properties.parse(raw, ENGINES).raw["containerRuntime"] == value


@pytest.mark.parametrize("value", BAD_RUNTIMES)
def test_bad_runtime(value):
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse_runtime(value)
    assert str(e.value).startswith(
        "Invalid custom property containerRuntime=")
    assert str(e.value).endswith("expected one of runc, crun, runsc")


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
            st.sampled_from(GOOD_DISK_IMAGES),
            imageref_test._REF_PIECES, st.text()),
        "volumeMap": st.one_of(_VOLUME_ENTRIES, st.just(""), st.text()),
    }))


def test_parse_any_text():
    outcomes = collections.Counter()

    @settings(max_examples=3000, deadline=None)
    @given(_RAW)
    def check(raw):
        try:
            props = properties.parse(raw, ENGINES)
        except errors.Error as e:
            assert isinstance(e, errors.InvalidProperty)
            assert e.name in properties.NAMES and e.name in str(e)
            outcomes["refused"] += 1
            return
        if props is None:
            assert "containerType" not in raw
            outcomes["plain"] += 1
            return
        outcomes["accepted"] += 1
        assert props.engine in ENGINES
        assert str(props.image) == raw["containerImage"]
        if raw.get("volumeMap"):
            check_accepted_volumes(raw["volumeMap"], props.volumes)

    check()
    print("properties.parse: %s" % dict(outcomes))
    # A parser refusing (or accepting) every container VM fails here.
    assert outcomes["accepted"] >= 30 and outcomes["refused"] >= 30, outcomes


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
