"""The VM custom properties: where they come from, their validation, and
the regexes Engine checks them with.

Every value here is typed by an Engine user; the hook must refuse anything
it does not understand with a message naming the property and the value.
Engine matches values against the regexes of properties.engine_regexes
with Java (Pattern.matcher(value).matches()), so they are checked with
Python's re and with a real Java too.
"""

import binascii
import os
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from containerhooks import config
from containerhooks import errors
from containerhooks import imageref
from containerhooks import properties

import imageref_test

ENGINES = ("docker", "podman")

CHECK_JAVA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "data", "engine_regex", "Check.java")


def assert_names(error, name, value):
    msg = str(error)
    assert name in msg
    assert repr(value) in msg


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
    with pytest.raises(errors.InvalidProperty) as e:
        properties.parse_volume_map(value)
    assert e.value.name == "volumeMap"
    shown = value if len(value) <= properties.MAX_VOLUME_MAP \
        else value[:64] + "..."
    assert_names(e.value, "volumeMap", shown)
    assert "\n" not in str(e.value) and "\x00" not in str(e.value)


# Engine's regexes: every value the hook accepts must pass, and most it
# refuses should be refused already when the admin saves the VM.

def engine_config_value():
    """The value for engine-config -s UserDefinedVMProperties=..."""
    regexes = properties.engine_regexes(config.ENGINES)
    return ";".join("%s=%s" % item for item in regexes.items())


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
               for v in values_of(GOOD_VOLUME_MAPS)]
    values += [("volumeMap", v, False)
               for v in values_of(BAD_VOLUME_MAPS)]
    return values


def test_tables_are_what_the_hook_says():
    def accepts(name, value):
        try:
            properties.parse(
                {"containerType": "docker", "containerImage": "redis",
                 name: value}, ENGINES)
            return True
        except errors.InvalidProperty:
            return False
    for name, value, good in table_values():
        assert accepts(name, value) == good, (name, value)


def python_matches(name, value):
    # Java's matches() must match the whole value, like re.fullmatch.
    regex = properties.engine_regexes(config.ENGINES)[name]
    return re.fullmatch(regex, value) is not None


@pytest.fixture(scope="module")
def java_results(tmp_path_factory):
    """What Java's Pattern says of every table value, as Engine does it."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed; Engine checks custom properties "
                    "with Java regexes and this test needs a real Java 17+: "
                    "apt-get install default-jre-headless")
    tmp = tmp_path_factory.mktemp("engine_regex")
    shutil.copy(CHECK_JAVA, str(tmp))
    definitions = tmp / "definitions"
    definitions.write_text(engine_config_value() + "\n", encoding="utf-8")
    values = table_values()
    lines = tmp / "values"
    lines.write_text("".join(
        "%s\t%s\n" % (name, binascii.hexlify(value.encode("utf-8"))
                      .decode("ascii"))
        for name, value, _ in values), encoding="utf-8")
    out = subprocess.check_output(
        [java, "Check.java", str(definitions), str(lines)], cwd=str(tmp),
        timeout=300).decode("utf-8").splitlines()
    assert len(out) == len(values)
    return {(name, value): result
            for (name, value, _), result in zip(values, out)}


def test_engine_regexes_have_no_semicolon():
    # Engine splits UserDefinedVMProperties on ";" before anything else.
    for regex in properties.engine_regexes(config.ENGINES).values():
        assert ";" not in regex


def test_engine_regex_type_per_host():
    regexes = properties.engine_regexes(("podman",))
    assert re.fullmatch(regexes["containerType"], "podman")
    assert not re.fullmatch(regexes["containerType"], "docker")


@pytest.mark.parametrize("name, value", [
    pytest.param(name, value, id="%s-%d" % (name, i))
    for i, (name, value, good) in enumerate(table_values()) if good
])
def test_engine_regex_accepts_good(name, value, java_results):
    assert python_matches(name, value)
    assert java_results[(name, value)] == "match"


def test_java_agrees_with_python(java_results):
    for name, value, _ in table_values():
        expected = "match" if python_matches(name, value) else "nomatch"
        assert java_results[(name, value)] == expected, (name, value[:80])


# What Engine lets through and the hook refuses at VM start: lengths and
# ports the regex does not count, paths it cannot judge, and relations
# between volumes.  A change to the regexes or to the hook shows up here.
REGEX_ACCEPTS_HOOK_REJECTS = {
    ("containerImage", "a" * 256),
    ("containerImage", "registry.example.com/" + "a" * 240),
    ("containerImage", "registry.example.com:65536/app"),
    ("containerImage", "registry:99999/app"),
    ("containerImage", "registry:0/app"),
    ("volumeMap", "vda:/data/../etc"),
    ("volumeMap", "vda:/.."),
    ("volumeMap", "vda:/data/.."),
    ("volumeMap", "vda:/./data"),
    ("volumeMap", "vda:/data/."),
    ("volumeMap", "vda:/proc"),
    ("volumeMap", "vda:proc"),
    ("volumeMap", "vda:/proc/sys"),
    ("volumeMap", "vda:/sys"),
    ("volumeMap", "vda:/sys/x"),
    ("volumeMap", "vda:/dev"),
    ("volumeMap", "vda:dev"),
    ("volumeMap", "vda:/dev/sda"),
    ("volumeMap", "vda:/a,vda:/b"),
    ("volumeMap", "vda:/data,vdb:/data"),
    ("volumeMap", "vda:data,vdb:/data"),
    ("volumeMap", "vda:/data,vdb:/data/logs"),
    ("volumeMap", "vda:/data/logs,vdb:/data"),
    ("volumeMap", "vda:/" + "a" * 1024),
}


def test_engine_regex_rejects_most_bad(java_results):
    accepted = {(name, value) for name, value, good in table_values()
                if not good and python_matches(name, value)}
    assert accepted == REGEX_ACCEPTS_HOOK_REJECTS
    for key in REGEX_ACCEPTS_HOOK_REJECTS:
        assert java_results[key] == "match"


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
        return
    if value:
        check_accepted_volumes(value, volumes)
    else:
        assert volumes == []


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
