"""Engine's regexes say of every value what the hook says.

Engine checks a VM's custom properties against the regexes that
"vdsm-containers engine-config" prints (properties.engine_regexes), in Java:
Pattern.compile(regex).matcher(value).matches(), as Check.java does.  A
value must be refused when the admin saves the VM exactly when the hook
would refuse it at VM start before looking at the VM or the host
(properties.parse).  Checked with Python's re.fullmatch and with a real
Java, on:

- every value of the property tables (properties_test, imageref_test);
- every value of the hostile corpus (tests/data/hostile.json), for its
  property, the values only the VM refuses included (the regex accepts
  them: it cannot know the VM);
- generated values (hypothesis): thousands per property in Python, and a
  batch of a few thousand through one Java run (a Java start per value
  would take hours).
"""

import binascii
import collections
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from containerhooks import cli
from containerhooks import config
from containerhooks import imageref
from containerhooks import properties

import hostile_test
import imageref_test
import properties_test
from properties_test import hook_accepts, python_matches

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK_JAVA = os.path.join(HERE, "data", "engine_regex", "Check.java")
DROP_DOWN_JAVA = os.path.join(HERE, "data", "engine_regex", "DropDown.java")
README = os.path.join(os.path.dirname(HERE), "README.md")

# Engine keeps UserDefinedVMProperties in vdc_options.option_value and a
# VM's custom properties in vm_static.userdefined_properties, both
# character varying(4000) (packaging/dbscripts/create_tables.sql); VmBase
# refuses longer custom properties when a VM is saved (@Size(max =
# BusinessEntitiesDefinitions.GENERAL_MAX_SIZE), 4000).
ENGINE_MAX = 4000

# Python examples per property, and generated values per property in the
# Java batch.
PYTHON_EXAMPLES = 3000
JAVA_EXAMPLES = 1000


def engine_config_value():
    """The value for engine-config -s UserDefinedVMProperties=..., as
    "vdsm-containers engine-config" prints it."""
    return cli.engine_config_value()


def corpus_entries():
    """(property, value, refused_by) of every hostile corpus entry."""
    return [(e.property, hostile_test.resolve(e, hostile_test.PARSER_CANARY),
             e.refused_by) for e in hostile_test.CORPUS]


# Generated values: valid ones, nearly valid ones and any text.

def any_of(valid, chars, pieces):
    return st.one_of(st.text(), st.text(alphabet=chars), valid, valid,
                     hostile_test.mutated(valid, st.sampled_from(pieces)))


TYPES = any_of(
    st.sampled_from(["docker", "podman", "Docker", "dockerd", "dock", "lxc"]),
    u"dockerpman \n\x00|;,.*\u043e",
    ["d", "docker", "podman", " ", "\n", "\x00", ",", u"\u043e", "$"])

_HOSTS = st.sampled_from([
    None, None, "registry.example.com", "localhost", "Reg.Example.COM",
    "a-b.c", "127.0.0.1", "reg", "a." * 60 + "a", "-bad.com", "a..b",
    "[::1]"])
_PORTS = st.sampled_from([
    None, None, "1", "80", "08080", "5000", "65535", "65536", "70000",
    "99999", "0", "00", "00000", "123456", ""])
_IMAGE_COMPONENTS = st.sampled_from([
    "redis", "a", "b0", "a_b", "a__b", "a-b", "a--b", "a.b", "a." * 60 + "a",
    "x" * 100, "x" * 240, "a___b", "a..b", "A", "-a", "a-", ""])
_TAGS = st.sampled_from([None, None, "1", "latest", "_x", "V1.2-rc", "5000",
                         "t" * 128, "t" * 129, ".x", ""])
_DIGESTS = st.sampled_from([None, None, imageref_test.DIGEST,
                            imageref_test.DIGEST[:-1], "sha512:" + "ab" * 64])
VALID_IMAGES = st.builds(
    lambda host, port, path, tag, digest: (
        (host + (":" + port if port is not None else "") + "/"
         if host else "") + "/".join(path)
        + (":" + tag if tag is not None else "")
        + ("@" + digest if digest else "")),
    _HOSTS, _PORTS, st.lists(_IMAGE_COMPONENTS, min_size=1, max_size=4),
    _TAGS, _DIGESTS)
IMAGES = st.one_of(
    any_of(VALID_IMAGES, u"abz09AZ.-_:/@ \n\x00;$`\u0430",
           ["a", "/", ":", "@", ".", "-", "_", "5000", "99999", " ", "\n",
            "x" * 200, u"\u0430"]),
    imageref_test._REF_PIECES)

_VALID_DISKS = st.sampled_from(["vda", "vdb", "vdc", "vdd", "sdb", "hdc",
                                "xvda", "vdaa", "vdzzz"])
_DISKS = st.one_of(_VALID_DISKS, st.sampled_from(
    ["vd", "vdabcd", "VDA", "nvme0n1", "/dev/vda", ""]))
# Few components, so that paths are often equal or nested.
_PATH_COMPONENTS = st.sampled_from([
    "a", "b", "data", "x_y", "@b", "v+1", "a-b", "...", ".x", "a..", "proc",
    "sys", "dev", "proc2", "a" * 200, "a" * 64, "l" * 65, ".", "..", "",
    " ", ":", "~"])
_PATHS = st.lists(_PATH_COMPONENTS, min_size=1, max_size=4).map("/".join)
_TARGETS = st.one_of(
    _PATHS.map(lambda p: "/" + p), _PATHS.map(lambda p: "/" + p), _PATHS,
    st.sampled_from(["/" + "a/" * 511 + "a", "/" + "a/" * 511 + "ab",
                     "/" + "a" * 1023, "/" + "a" * 1024, "/", ""]))
# Valid paths only: whether a value passes is then mostly whether two of
# its paths overlap.
_VALID_PATHS = st.lists(st.sampled_from(
    ["a", "b", "data", "x_y", "@b", "v+1", "a-b", "...", ".x", "a..", "proc2",
     "Proc", "a" * 120]), min_size=1, max_size=3).map("/".join)
_VALID_TARGETS = st.one_of(_VALID_PATHS.map(lambda p: "/" + p),
                           st.sampled_from(["a", "b", "data", "x_y", "a.."]))
VALID_VOLUME_MAPS = st.one_of(
    st.lists(st.tuples(_VALID_DISKS, _VALID_TARGETS),
             unique_by=lambda t: t[0], min_size=1, max_size=9),
    st.lists(st.tuples(_VALID_DISKS, _TARGETS), unique_by=lambda t: t[0],
             min_size=1, max_size=9),
    st.lists(st.tuples(_DISKS, _TARGETS), max_size=18),
).map(lambda entries: ",".join(map(":".join, entries)))
VOLUME_MAPS = any_of(
    VALID_VOLUME_MAPS, u"vdsahxz:,/.proc_@+- \n\x00~*$;\u0430",
    ["vda", ":", ",", "/", "//", ".", "..", "/proc", " ", "\n", "\x00",
     "a" * 300, u"\u0430", "vdb:/a"])

_OCTETS = st.sampled_from(["0", "1", "9", "10", "99", "100", "199", "249",
                           "250", "255", "256", "300", "01", "00", "1000"])
_ADDRESSES = st.one_of(
    st.lists(_OCTETS, min_size=4, max_size=4),
    st.lists(_OCTETS, min_size=3, max_size=5)).map(".".join)
_VALID_ADDRESSES = st.tuples(*[st.integers(0, 255)] * 4).map(
    lambda octets: "%d.%d.%d.%d" % octets)
VALID_IPS = st.one_of(
    st.lists(st.one_of(st.just(""), _VALID_ADDRESSES, _VALID_ADDRESSES),
             max_size=40).map(",".join),
    st.lists(st.one_of(st.just(""), _ADDRESSES, _ADDRESSES),
             max_size=40).map(",".join),
    st.builds(lambda n, ip: "," * n + ip, st.integers(230, 260), _ADDRESSES),
    st.builds(lambda n, ip: (ip + ",") * n, st.integers(15, 40), _ADDRESSES))
IPS = any_of(VALID_IPS, u"0123456789.,: /x\n\x00\uff11",
             ["1", "255", "256", ".", ",", " ", "\n", "/24", u"\uff11"])

# The percent-escaped properties: pieces of free text, valid or not, and
# the characters where Java and Python differ (line terminators, lone
# surrogates, astral characters).
_VALID_PIECES = ["x", "Yz", "%25", "%2C", "%2c", "%3B", "%0A", "%7e", "%7F",
                 "%01", "%20", "=", ",", " ", "-", "$(id)", u"\u00e9",
                 u"\u00a0", u"\U0001f600", "y" * 100]
_BAD_PIECES = ["%", "%2", "%zz", "%%", "%00", "%80", "%FF", "%C3%A9", ";",
               "\n", "\r", "\t", "\x00", "\x1b", "\x7f", u"\x85", u"\x9f",
               u"\u2028", u"\u2029", u"\ud800", u"\udc80", u"\udfff",
               u"\uff05"]


def _free_text(commas, spaces, bad=True, max_size=6):
    pieces = [p for p in _VALID_PIECES
              if (commas or p != ",") and (spaces or p != " ")]
    return st.lists(st.sampled_from(pieces + (_BAD_PIECES if bad else [])),
                    max_size=max_size).map("".join)


def _near(cap, n, item):
    """Values of n items (separated by one character) about cap
    characters long: item(i, size) makes item i of that size."""
    def build(total, count):
        fill = total - (count - 1)
        return [item(i, fill // count + (i < fill % count))
                for i in range(count)]
    return st.builds(build, st.integers(cap - 6, cap + 3),
                     st.integers(n - 2, n + 1))


_ENV_KEYS = st.sampled_from(["A", "B", "AB", "_", "a", "PATH", "K" * 128,
                             "K" * 129, "1A", "A-B", "", " A", u"\u0410",
                             "A%41"])
VALID_ENVS = st.one_of(
    st.lists(st.tuples(_ENV_KEYS, _free_text(False, True)),
             max_size=8).map(lambda kv: ",".join(map("=".join, kv))),
    st.lists(st.tuples(_ENV_KEYS, _free_text(False, True, False)),
             unique_by=lambda kv: kv[0], max_size=8).map(
                 lambda kv: ",".join(map("=".join, kv))),
    _near(properties.MAX_ENV, properties.MAX_ENV_ITEMS,
          lambda i, size: ("V%d=" % i + "%2C" * size)[:size]).map(",".join),
    _near(properties.MAX_ENV, 8,
          lambda i, size: ("V%d=" % i + "x" * size)[:size]).map(",".join))
ENVS = any_of(VALID_ENVS, u"AB_=x%2C,; \n\x00\x85\u2028\ud800",
              ["A=", "B=", "=", ",", "%", "%25", "%2C", ";", " ", "\n",
               u"\u2028", u"\udc80", "x" * 300])


def _args(cap):
    valid = st.one_of(
        st.lists(_free_text(True, False), max_size=8).map(" ".join),
        st.lists(_free_text(True, False, False), min_size=1,
                 max_size=8).map(" ".join),
        _near(cap, properties.MAX_ARGS,
              lambda i, size: ("%25" * size)[:size]).map(" ".join),
        _near(cap, 3, lambda i, size: "a" * size).map(" ".join))
    return any_of(valid, u"ab %25,;\n\t\x00\x85\u2029\ud83d",
                  ["a", " ", "  ", "%", "%20", ",", ";", "\n", u"\u2028",
                   u"\udcff", "x" * 600])


_WORKDIR_COMPONENTS = st.sampled_from(["a", "srv", "proc", "dev", "sys",
                                       "..", ".", "", ".x", "a" * 300, " "])
WORKDIRS = any_of(
    st.one_of(_TARGETS, _VALID_TARGETS,
              st.lists(_WORKDIR_COMPONENTS, min_size=1, max_size=5).map(
                  lambda parts: "/" + "/".join(parts)),
              st.integers(1020, 1028).map(lambda n: "/" + "a" * (n - 1)),
              st.integers(508, 514).map(lambda n: "/a" * n)),
    u"/a.sv-@+ \n\x00~%\u00e9",
    ["/", "//", ".", "..", "/proc", "/dev", "a", " ", "\n", u"\u2215"])

_IDS = st.one_of(
    st.integers(0, 1 << 32).map(str),
    st.sampled_from(["0", "00", "01", "1", "999", "2147483647", "2147483648",
                     "2147483639", "2147483650", "1999999999", "2200000000",
                     "4294967295", "99999999999", "-1", "+1", "", " 1",
                     "1e3", "0x10", u"\uff11", u"\u0661", "root", "app"]))
USERS = any_of(
    st.builds(lambda uid, gid: uid + (":" + gid if gid is not None else ""),
              _IDS, st.one_of(st.none(), _IDS)),
    u"0129:a \n\x00\uff11", ["0", "1", "9", ":", "2147483647", " ", "\n",
                              "-", "root"])

_SECRET_NAMES = st.sampled_from(["db", "DB", "db2", "d", "a.b", "a-b", "a_b",
                                 "0", "x" * 64, "x" * 65, "-a", ".a", "_a",
                                 "..", "", "a b", "a/b", u"\u0431"])
SECRETS = any_of(
    st.one_of(
        st.lists(_SECRET_NAMES, max_size=18).map(",".join),
        st.lists(_SECRET_NAMES, unique=True, max_size=18).map(",".join),
        _near(properties.MAX_SECRETS_LENGTH, properties.MAX_SECRETS,
              lambda i, size: ("%02d" % i + "s" * size)[:size]).map(
                  ",".join)),
    u"abAB01_.-, \n\x00;/", ["db", ",", ",,", "-", ".", "x" * 64, " ",
                              "\n", ";"])
PULLS = any_of(
    st.sampled_from(["missing", "always", "never", "Always", "nevermind",
                     "miss", ""]),
    u"missingalwaysnever \n\x00|;\u0430",
    ["missing", "always", "never", " ", "\n", "\x00", "|", u"\u0430"])

# containerHealthOptions: names and numbers near each bound.
_HEALTH_OPTION_NAMES = st.sampled_from(
    list(properties.HEALTH_OPTIONS) * 3
    + ["Interval", "start_period", "", "interval ", "retry", "x"])
_HEALTH_NUMBERS = st.one_of(
    st.sampled_from([str(n) for low, high in properties.HEALTH_OPTIONS.values()
                     for n in (low - 1, low, low + 1, high - 1, high,
                               high + 1)]),
    st.integers(0, 5000).map(str),
    st.sampled_from(["00", "05", "010", "-1", "+5", "10s", "1e3", "", " 5",
                     u"５", "9" * 20]))
HEALTH_OPTIONS = any_of(
    st.lists(st.tuples(_HEALTH_OPTION_NAMES, _HEALTH_NUMBERS),
             max_size=6).map(lambda items: ",".join(
                 "%s=%s" % item for item in items)),
    u"intervalstarpdy-=0159, \n\x00;",
    ["interval=", "timeout=", "retries=", "start-period=", "=", ",", "5",
     "3600", "0", " ", "\n", ";"])

# containerImage=disk:<target>, and what is nearly that.
DISK_IMAGES = st.one_of(
    _DISKS.map(lambda d: "disk:" + d),
    st.builds(lambda d, rest: "disk:" + d + rest, _VALID_DISKS,
              st.sampled_from([":1", ",vdc", " ", "\n", "@", "/x", ":",
                               ":latest"])),
    st.sampled_from(["disk", "disk:", "Disk:vdb", "disk:vdb", "disk::vdb",
                     "disk/vdb", "disk:vdb:vdb", "library/disk:vdb",
                     "disk.x:vdb"]))

RUNTIMES = any_of(
    st.sampled_from(["runc", "crun", "runsc", "Runc", "kata", "run", ""]),
    u"runcsk \n\x00|;\u0440/",
    ["runc", "crun", "runsc", " ", "\n", "\x00", "|", u"\u0440"])

GENERATED = {
    "containerRuntime": RUNTIMES,
    "containerPull": PULLS,
    "containerType": TYPES,
    "containerImage": st.one_of(IMAGES, DISK_IMAGES),
    "volumeMap": VOLUME_MAPS,
    "containerIP": IPS,
    "containerEnv": ENVS,
    "containerCommand": _args(
        properties.MAX_ARGS_LENGTH["containerCommand"]),
    "containerEntrypoint": _args(
        properties.MAX_ARGS_LENGTH["containerEntrypoint"]),
    "containerWorkdir": WORKDIRS,
    "containerUser": USERS,
    "containerSecrets": SECRETS,
    "containerHealthCmd": st.one_of(
        _args(properties.MAX_ARGS_LENGTH["containerHealthCmd"]),
        st.sampled_from(["none", "NONE", "none ", " none", "none x"])),
    "containerHealthOptions": HEALTH_OPTIONS,
}


# Two lone surrogates in a row, high then low, which Python keeps apart
# but UTF-16 (Java's strings) cannot: Java reads them as one character
# above U+FFFF, which Python's str (and so Vdsm's hook) would hold as one.
_SURROGATE_PAIR = re.compile(u"[\ud800-\udbff][\udc00-\udfff]")


def generate(name, n):
    """n values of GENERATED[name] (fewer if hypothesis runs out), none
    with a surrogate pair written as two lone surrogates."""
    values = []

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(GENERATED[name])
    def collect(value):
        if not _SURROGATE_PAIR.search(value):
            values.append(value)

    collect()
    return values


# Java, as Engine.

def find_java():
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed; Engine checks custom properties "
                    "with Java regexes and this test needs a real Java 17+: "
                    "apt-get install default-jre-headless")
    return java


def java_matches(tmp, values):
    """What Java's Pattern says of (property, value) pairs, in one run."""
    java = find_java()
    shutil.copy(CHECK_JAVA, str(tmp))
    definitions = tmp / "definitions"
    definitions.write_text(engine_config_value() + "\n", encoding="utf-8")
    lines = tmp / "values"
    # As UTF-16 code units: lone surrogates (what Python makes of bytes
    # that are not UTF-8) reach Java as they are.
    lines.write_text(u"".join(
        u"%s\t%s\n" % (name, binascii.hexlify(
            value.encode("utf-16-be", "surrogatepass")).decode("ascii"))
        for name, value in values), encoding="utf-8")
    # Java's matcher recurses per repetition of a group; a JVM's threads
    # have 1 MiB of stack by default.  Half of it here, so that a regex that
    # comes near the limit on the longest values fails here first (the
    # tables' deepest values need about 250 KiB today).
    out = subprocess.check_output(
        [java, "-Xss512k", "Check.java", str(definitions), str(lines)],
        cwd=str(tmp), timeout=600).decode("utf-8").splitlines()
    assert len(out) == len(values)
    return out


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every value, by source: (property, value, hook, Python, Java)."""
    sources = {
        "tables": [(name, value) for name, value, _
                   in properties_test.table_values()],
        "corpus": [(name, value) for name, value, _ in corpus_entries()],
        "generated": [(name, value) for name in properties.NAMES
                      for value in generate(name, JAVA_EXAMPLES)],
    }
    every = [pair for pairs in sources.values() for pair in pairs]
    java = java_matches(tmp_path_factory.mktemp("engine_regex"), every)
    results = iter(java)
    checked = {}
    for source, pairs in sources.items():
        checked[source] = [
            (name, value, hook_accepts(name, value),
             python_matches(name, value), next(results))
            for name, value in pairs]
    with_counts = ", ".join("%s %d" % (source, len(rows))
                            for source, rows in checked.items())
    sys.stdout.write("\nengine regexes checked in Java and Python: %s\n"
                     % with_counts)
    return checked


def mismatches(rows):
    """The rows where Python or Java disagrees with the hook."""
    return [(name, value[:100] + ("..." if len(value) > 100 else ""),
             "hook " + ("accepts" if hook else "refuses"),
             "python " + ("match" if python else "nomatch"),
             "java " + java)
            for name, value, hook, python, java in rows
            if python != hook or java != ("match" if hook else "nomatch")]


@pytest.mark.parametrize("source", ["tables", "corpus", "generated"])
def test_regexes_say_what_the_hook_says(checked, source):
    rows = checked[source]
    assert rows
    assert mismatches(rows) == []
    # Both verdicts occur for every property, or the check proves little.
    for name in properties.NAMES:
        verdicts = set(hook for n, _, hook, _, _ in rows if n == name)
        assert verdicts == {True, False} or source == "corpus", name


def test_corpus_only_the_vm_refuses_passes(checked):
    # The corpus values the VM refuses (a disk or a vNIC it does not have)
    # pass Engine's regexes, as the hook's parsers; no other value does.
    by_vm = set((name, value) for name, value, refused_by
                in corpus_entries() if refused_by == "vm")
    assert by_vm
    assert set((name, value) for name, value, _, python, java
               in checked["corpus"] if python and java == "match") == by_vm


def test_java_never_fails(checked):
    # A StackOverflowError on a long value would be "error ..." here, and
    # a refusal of a good value in Engine.
    for rows in checked.values():
        assert not [value[:80] for _, value, _, _, java in rows
                    if java not in ("match", "nomatch")]


# Python alone, on many more values: hypothesis shrinks what it finds.

# containerHealthCmd's regex and parser are containerEntrypoint's (the
# same cap; "none" is one argument to both): the tables and the Java batch
# check it, a second 3000 examples here would check the same code again.
@pytest.mark.parametrize("name", [n for n in properties.NAMES
                                  if n != properties.CONTAINER_HEALTH_CMD])
def test_generated_python(name, capsys):
    seen = []

    @settings(max_examples=PYTHON_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(GENERATED[name])
    def check(value):
        accepted = hook_accepts(name, value)
        seen.append(accepted)
        assert python_matches(name, value) == accepted

    check()
    with capsys.disabled():
        sys.stdout.write("\n%s regex vs parser in Python: %d examples "
                         "(%d accepted)\n" % (name, len(seen), sum(seen)))
    assert len(seen) >= PYTHON_EXAMPLES


# The regexes themselves.

def test_engine_regexes_have_no_semicolon():
    # Engine splits UserDefinedVMProperties on ";" before anything else.
    for regex in properties.engine_regexes(config.ENGINES).values():
        assert ";" not in regex


# The VM dialog's drop-down.

def test_drop_downs(tmp_path):
    # Engine's VM dialog offers the values of a regex of the form
    # ^(a|b)$ in a list (KeyValueModel.setKeyValueString), run in Java here
    # on the CLI's line: containerType gets docker and podman,
    # containerPull its three policies, containerRuntime the runtimes the
    # package knows, every other property a text field.
    shutil.copy(DROP_DOWN_JAVA, str(tmp_path))
    definitions = tmp_path / "definitions"
    definitions.write_text(engine_config_value() + "\n", encoding="utf-8")
    out = subprocess.check_output(
        [find_java(), "DropDown.java", str(definitions)], cwd=str(tmp_path),
        timeout=300).decode("utf-8")
    fields = dict((line.split("\t")[0], line.split("\t")[1:])
                  for line in out.splitlines())
    assert list(fields) == list(properties.NAMES)
    assert fields.pop("containerType") == ["dropdown", "docker,podman"]
    assert fields.pop("containerPull") == ["dropdown",
                                           "missing,always,never"]
    assert fields.pop("containerRuntime") == ["dropdown", "runc,crun,runsc"]
    assert set(map(tuple, fields.values())) == {("text",)}


def test_engine_regex_type_per_host():
    regexes = properties.engine_regexes(("podman",))
    assert re.fullmatch(regexes["containerType"], "podman")
    assert not re.fullmatch(regexes["containerType"], "docker")


def test_engine_regexes_are_the_cli_value():
    # What Check.java is given is the CLI's value: the regexes, joined.
    assert engine_config_value() == ";".join(
        "%s=%s" % item
        for item in properties.engine_regexes(config.ENGINES).items())


def test_engine_config_value_fits(capsys):
    # Engine keeps it in vdc_options.option_value, varchar(4000), and an
    # admin may have to add the site's own properties to it.
    length = len(engine_config_value())
    with capsys.disabled():
        sys.stdout.write("\nengine-config UserDefinedVMProperties value: %d "
                         "characters (Engine keeps up to %d)\n"
                         % (length, ENGINE_MAX))
    assert length < ENGINE_MAX
    with open(README) as f:
        assert "line itself is %d characters" % length in f.read()


# The longest values, alone and together.

def longest_values():
    """The longest value each property accepts, by property.

    Each is as long as its grammar allows: containerImage is bounded by
    its parts (a repository name of 255 characters, a tag of 128, a
    digest), not by its 512; the others by their own caps."""
    image = ("a" * imageref.MAX_NAME + ":" + "t" * 128 + "@"
             + imageref_test.DIGEST)
    return collections.OrderedDict([
        ("containerType", max(config.ENGINES, key=len)),
        ("containerImage", image),
        ("volumeMap", properties_test._LONGEST),
        ("containerIP", "1.2.3.4," * (properties.MAX_IPS_LENGTH // 8)),
        ("containerEnv", properties_test._ENV_LONGEST),
        ("containerCommand", "x" * properties.MAX_ARGS_LENGTH[
            "containerCommand"]),
        ("containerEntrypoint", "x" * properties.MAX_ARGS_LENGTH[
            "containerEntrypoint"]),
        ("containerWorkdir", "/" + "a" * (properties.MAX_PATH - 1)),
        ("containerUser", "%d:%d" % (properties.MAX_ID, properties.MAX_ID)),
        ("containerSecrets", properties_test._SECRETS_LONGEST),
        ("containerPull", "missing"),
        ("containerHealthCmd", "x" * properties.MAX_ARGS_LENGTH[
            "containerHealthCmd"]),
        ("containerHealthOptions", properties_test._HEALTH_OPTIONS_LONGEST),
        ("containerRuntime", "runsc"),
    ])


def custom_properties(values):
    """A VM's custom properties as Engine stores them (CustomPropertiesUtils
    convertProperties: name=value joined by ";")."""
    return ";".join("%s=%s" % item for item in values.items())


# Sets of properties at their caps that fit in a VM's 4000 characters,
# and sets that do not; the README says the same.
FITS = [
    ("containerType", "containerImage", "containerEnv", "containerCommand",
     "containerUser"),
    ("containerType", "containerImage", "containerEnv", "containerEntrypoint",
     "containerUser"),
    ("containerType", "containerImage", "containerIP", "containerCommand",
     "containerEntrypoint", "containerUser", "containerSecrets"),
    ("containerType", "containerImage", "containerEnv", "containerUser",
     "containerHealthCmd", "containerHealthOptions"),
]
TOO_LONG = [
    ("volumeMap",),
    tuple(n for n in properties.NAMES if n != "volumeMap"),
    ("containerType", "containerImage", "containerEnv", "containerCommand",
     "containerWorkdir"),
]


def test_longest_values(capsys):
    longest = longest_values()
    assert list(longest) == list(properties.NAMES)
    for name, value in longest.items():
        assert hook_accepts(name, value), name
        assert python_matches(name, value), name
    whole = custom_properties(longest)
    lines = ["%-20s %5d" % (name, len(value))
             for name, value in longest.items()]
    lines.append("%-20s %5d" % ("all, name=value;...", len(whole)))
    for names in FITS + TOO_LONG:
        lines.append("%5d  %s" % (len(custom_properties(
            collections.OrderedDict((n, longest[n]) for n in names))),
            "+".join(names)))
    with capsys.disabled():
        sys.stdout.write("\nlongest values:\n%s\n" % "\n".join(lines))
    assert len(whole) > ENGINE_MAX
    for names in FITS:
        assert len(custom_properties(collections.OrderedDict(
            (n, longest[n]) for n in names))) <= ENGINE_MAX, names
    for names in TOO_LONG:
        assert len(custom_properties(collections.OrderedDict(
            (n, longest[n]) for n in names))) > ENGINE_MAX, names
    # The README's table has these figures.
    with open(README) as f:
        readme = f.read()
    for name, value in longest.items():
        assert "| `%s` | %d |" % (name, len(value)) in readme, name
    assert "%d characters" % len(whole) in readme
