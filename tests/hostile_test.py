"""Hostile input: the custom properties and the root helper's arguments.

Every custom property value is typed by an Engine user, and the root helper
trusts nothing from its caller.  Three layers are checked here:

- a corpus of bad property values (tests/data/hostile.json), each refused
  by the parsers, by before_vm_start in-process, and by the real hook run
  as the vdsm user: one line naming the property, exit code 2, no
  container, no state file, no call of the helper, no canary file touched;
- the parsers on generated text (hypothesis, 10,000 examples each): they
  raise nothing but the package's own errors, with one printable line, and
  whatever they accept is in its canonical, harmless form;
- the installed helper through "sudo -n" as vdsm with hostile argv, and
  helper.main() in-process on generated argv with the engine stubbed out.
"""

import collections
import contextlib
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

from containerhooks import config
from containerhooks import errors
from containerhooks import helper
from containerhooks import hookenv
from containerhooks import imageref
from containerhooks import paths
from containerhooks import properties
from containerhooks import spec as specs
from containerhooks import vmstart

import domains
import images
import vmrun
from vdsm import HookError

CORPUS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "data", "hostile.json")
ENGINES = ("docker", "podman")

# The corpus names the canary directory @CANARY@; the parser-level tests
# put any plain absolute path there (no file is needed to parse a value).
CANARY_TOKEN = "@CANARY@"
PARSER_CANARY = "/var/tmp/vhc-canary-parser"

# The VM the corpus values are tried on: one disk (vda, qcow2) and one
# vNIC on ovirtmgmt, as the corpus' missing-disk and missing-nic values
# assume.  The other properties are valid, and the image is on the host:
# a value that got through would really start a container.
BASE = "plain-vm-in.xml"
GOOD = {"containerType": "docker", "containerImage": images.IMAGE}

REQUIRED_CATEGORIES = {
    "shell-metacharacters", "option-lookalike", "path-traversal",
    "host-path", "nul", "control-character", "long", "unicode-lookalike",
    "empty", "wrong-engine", "missing-disk",
}

Entry = collections.namedtuple(
    "Entry", "index, property, category, value, why, refused_by")


def _value(raw):
    if isinstance(raw, dict):
        return raw["before"] + raw["repeat"] * raw["times"] + raw["after"]
    return raw


def load_corpus():
    with io.open(CORPUS_FILE, encoding="utf-8") as f:
        doc = json.load(f)
    return [Entry(index=i, property=e["property"], category=e["category"],
                  value=_value(e["value"]), why=e["why"],
                  refused_by=e.get("refused_by", "parser"))
            for i, e in enumerate(doc["entries"])]


CORPUS = load_corpus()


def resolve(entry, canary):
    return entry.value.replace(CANARY_TOKEN, canary)


def entry_id(entry):
    return "%s-%03d-%s" % (entry.property, entry.index, entry.category)


def params(entries):
    return [pytest.param(e, id=entry_id(e)) for e in entries]


# Vdsm passes every custom property as an environment variable, and (4.2+)
# in the domain XML.  Neither can carry a NUL: execve() takes C strings
# (Python refuses with "embedded null byte"), and XML 1.0 has no U+0000,
# even as a character reference.  A value with a NUL can never reach a
# hook, so the hook-level run leaves out exactly those values (checked at
# the parser level only); test_nul_cannot_reach_a_hook shows both facts.
def travels(value):
    return "\0" not in value


HOOK_ENTRIES = [e for e in CORPUS if travels(e.value)]

# The other control characters XML 1.0 has no place for can still arrive
# in the environment (Vdsm before 4.2 passed properties there only): the
# hook-level run gives those to the hook in the environment alone.
_XML_TEXT = re.compile(u"\\A[\t\n\r\u0020-\ud7ff\ue000-\ufffd"
                       u"\U00010000-\U0010ffff]*\\Z")


def in_xml(value):
    return _XML_TEXT.match(value) is not None


def shown(value):
    """How a refusal may show value: whole, or cut to 64 characters."""
    return [value, value[:64] + "...", value[:64]]


def assert_refusal(error, name, value):
    """One printable line naming the property and showing the value."""
    msg = str(error)
    assert isinstance(error, errors.InvalidProperty), msg
    assert error.name == name, msg
    assert msg.startswith("Invalid custom property %s=" % name), msg
    assert any("%s=%r" % (name, v) in msg for v in shown(value)), msg
    # It becomes the VM's exit message in Engine: no line break, no
    # terminal escape or other raw control character from the value.
    assert len(msg.splitlines()) == 1 and msg.isprintable(), msg


# The corpus itself.

def test_corpus_covers_the_issue():
    assert len(CORPUS) >= 250
    counts = collections.Counter(e.property for e in CORPUS)
    assert set(counts) == set(properties.NAMES)
    categories = set(e.category for e in CORPUS)
    assert REQUIRED_CATEGORIES <= categories
    for name in properties.NAMES:
        assert any("\0" in e.value for e in CORPUS if e.property == name)
    keys = [(e.property, e.value) for e in CORPUS]
    assert len(set(keys)) == len(keys), "duplicate values"
    assert all(e.why.strip() for e in CORPUS)
    assert set(e.refused_by for e in CORPUS) == {"parser", "vm"}
    # Values the hook accepts are no hostile values: an empty value of an
    # optional property means "none", and is not in the corpus -- but for
    # the drop-downs, which have no "none" (containerPull).
    assert not [e for e in CORPUS if e.value == ""
                and e.property not in (properties.CONTAINER_TYPE,
                                       properties.CONTAINER_IMAGE,
                                       properties.CONTAINER_PULL,
                                       properties.CONTAINER_RUNTIME)]


def test_nul_cannot_reach_a_hook():
    with pytest.raises(ValueError):
        subprocess.Popen(["/bin/true"], env={"containerImage": "redis\0"})
    el = etree.Element("containerImage")
    with pytest.raises(ValueError):
        el.text = "redis\0"


# Parser level: the property grammar alone refuses these.

@pytest.mark.parametrize(
    "entry", params(e for e in CORPUS if e.refused_by == "parser"))
def test_parser_refuses(entry):
    value = resolve(entry, PARSER_CANARY)
    env = dict(GOOD, **{entry.property: value})
    raw = properties.collect(env, dict(env))
    with pytest.raises(errors.Error) as e:
        properties.parse(raw, ENGINES)
    assert_refusal(e.value, entry.property, value)


# The VM's domain XML refuses the rest: disks and vNICs it does not have.

@pytest.fixture(scope="module")
def default_conf(tmp_path_factory):
    """The default configuration (no containers.conf)."""
    return config.load(str(tmp_path_factory.mktemp("conf") / "none.conf"))


@pytest.mark.parametrize(
    "entry", params(e for e in CORPUS if e.refused_by == "vm"))
def test_vm_refuses(entry, default_conf):
    value = resolve(entry, PARSER_CANARY)
    raw = dict(GOOD, **{entry.property: value})
    # The grammar accepts it: only this VM makes it wrong.
    assert properties.parse(raw, ENGINES) is not None
    vm = domains.VM(raw, base=BASE)
    with pytest.raises(errors.Error) as e:
        vmstart.prepare(dict(raw), vm.xml.encode("utf-8"), default_conf)
    assert_refusal(e.value, entry.property, value)


# Hook level: the real before_vm_start, as Vdsm runs it, as user vdsm.

CANARY_FILES = {
    "passwd": b"root:x:0:0:canary:/root:/bin/sh\n",
    "shadow": b"root:$6$canary$:19000:0:99999:7:::\n",
    "docker.sock": b"not a socket\n",
    "image.tar": b"\0" * 10240,
    "dir/file": b"canary\n",
}
CANARY_DISK = "disk.img"


@pytest.fixture
def canary():
    """A directory of canary files whose path the corpus values name
    (@CANARY@): a blank raw disk image, files named like host secrets and
    sockets.  Everything is writable by anyone, so that a command slipped
    through as the vdsm user could change it; the tests check that nothing
    did."""
    d = tempfile.mkdtemp(prefix="vhc-canary-", dir="/var/tmp")
    for name, data in CANARY_FILES.items():
        path = os.path.join(d, name)
        if not os.path.isdir(os.path.dirname(path)):
            os.mkdir(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(d, CANARY_DISK), "wb") as f:
        f.truncate(8 * 1024 * 1024)
    for dirpath, dirnames, filenames in os.walk(d):
        os.chmod(dirpath, 0o777)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666)
    yield d
    shutil.rmtree(d)


def tree(path):
    """Everything about the files under path that a change would show."""
    result = {}
    if not os.path.exists(path):
        return result
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [""] + dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            result[os.path.relpath(p, path)] = (
                st_.st_mode, st_.st_uid, st_.st_gid, st_.st_size,
                st_.st_mtime_ns, st_.st_ctime_ns, digest)
    return result


def loops_of(path):
    """Loop devices backed by path (losetup -j)."""
    return subprocess.check_output(
        ["losetup", "-j", path]).decode("utf-8").strip()


def containers(clients):
    """Every container of every engine, (engine, id, name, labels).

    One listing call per engine (no inspect of each container, which
    another test run may remove in between)."""
    return set(
        (engine, c["Id"], c["Names"][0].lstrip("/"),
         tuple(sorted((c.get("Labels") or {}).items())))
        for engine, client in clients.items()
        for c in client.api.containers(all=True))


def new_containers(before, clients, ours):
    """Containers made since before, but those of other VMs.

    The host's engines are shared with other test runs; what their hooks
    start carries their own VM id (name ovirt-vm-<id> and label), and no
    corpus value can change the VM id of ours.  Anything else is new.
    """
    result = []
    for c in containers(clients) - before:
        vm_id = dict(c[3]).get("org.ovirt.vm.id")
        if vm_id and vm_id not in ours and c[2] == "ovirt-vm-" + vm_id:
            continue
        result.append(c)
    return sorted(result)


def remove_ours(clients, vm_ids):
    """Remove containers of these VMs (only if a test failed)."""
    for client in clients.values():
        vmrun.remove_managed(client, vm_ids)


@pytest.fixture
def clients(docker_client, podman_client):
    """Both engines' SDK clients, by name."""
    return {"docker": docker_client, "podman": podman_client}


def test_hook_refuses_corpus(vdsm, installation, clients, registry_image,
                             canary, capsys):
    before = containers(clients)
    state_before = tree(installation.state_dir)
    canary_before = tree(canary)
    log_start = len(installation.read_log())
    problems = []
    ran = []
    started = time.monotonic()
    for entry in HOOK_ENTRIES:
        value = resolve(entry, canary)
        if not in_xml(value):
            # Vdsm 4.2+ passes the leaves of <ovirt-vm:custom> as the
            # environment (tests/vdsm.py): a value XML cannot carry never
            # reaches a hook; properties_test.py covers the parser.
            continue
        vm = domains.VM(dict(GOOD, **{entry.property: value}), base=BASE)
        ran.append((entry, vm))
        where = "%s %r (%s)" % (entry_id(entry), value[:80], entry.why)
        try:
            vdsm.run("before_vm_start", vm.engine_xml, vm_id=vm.id)
        except HookError as e:
            problems += hook_refusal_problems(where, e, entry, value, vm)
        else:
            problems.append("%s: the VM started" % where)
    elapsed = time.monotonic() - started

    log = installation.read_log()[log_start:]
    ids = set(vm.id for _, vm in ran)
    for entry, vm in ran:
        # The hook logs "vm_id=<id> starting" before it calls the helper,
        # which logs every step with vm_id=<id>; a refusal names no id.
        if vm.id in log:
            problems.append("%s: the log mentions VM %s (helper called?)"
                            % (entry_id(entry), vm.id))
    new = new_containers(before, clients, ids)
    if new:
        problems.append("containers created: %s" % new)
        remove_ours(clients, ids)
    state_after = tree(installation.state_dir)
    if state_after != state_before:
        problems.append("state directory changed: %s" % sorted(
            set(state_after.items()) ^ set(state_before.items())))
    canary_after = tree(canary)
    if canary_after != canary_before:
        problems.append("canary files changed: %s" % sorted(
            set(canary_after.items()) ^ set(canary_before.items())))
    if loops_of(os.path.join(canary, CANARY_DISK)):
        problems.append("canary disk attached to a loop device")

    with capsys.disabled():   # the counts, for the reader of the run
        sys.stdout.write("\nhook level: %d of %d corpus values through "
                         "before_vm_start in %.1f s\n"
                         % (len(ran), len(CORPUS), elapsed))
    assert not problems, "\n".join(problems[:40])


def hook_refusal_problems(where, e, entry, value, vm):
    problems = []
    err = e.err.decode("utf-8", "replace")
    if e.result.scripts[-1].rc != 2:
        problems.append("%s: exit code %s" % (where, e.result.scripts[-1].rc))
    if not err.endswith("\n") or err.count("\n") != 1:
        problems.append("%s: stderr is not one line: %r" % (where, err))
    # The hook folds runs of white space of its message into one space.
    expected = ["%s=%r" % (entry.property, v) for v in shown(value)]
    folded = " ".join(err.split())
    if not folded.startswith("Invalid custom property %s=" % entry.property) \
            or not any(" ".join(x.split()) in folded for x in expected):
        problems.append("%s: unclear message %r" % (where, err[:300]))
    # Vdsm reads the file back in text mode (universal newlines): an
    # untouched "\r" comes back as "\n".
    if e.result.data != vm.xml.replace("\r\n", "\n").replace("\r", "\n"):
        problems.append("%s: the domain XML was changed" % where)
    return problems


def test_detectors_see_a_real_start(vdsm, installation, clients,
                                    registry_image):
    # What test_hook_refuses_corpus looks for does show when a VM starts:
    # its id in the log, a new container, a state file.
    vm = domains.container_vm("docker", images.IMAGE)
    before = containers(clients)
    state_before = tree(installation.state_dir)
    log_start = len(installation.read_log())
    result = vdsm.run("before_vm_start", vm.xml, vm_id=vm.id,
                      custom=vm.custom)
    try:
        assert "vm_id=%s starting" % vm.id \
            in installation.read_log()[log_start:]
        new = new_containers(before, clients, {vm.id})
        assert [c[2] for c in new] == ["ovirt-vm-" + vm.id]
        assert tree(installation.state_dir) != state_before
    finally:
        vdsm.run("before_vm_destroy", None, vm_id=vm.id, custom=vm.custom)
        vdsm.run("after_vm_destroy", result.data, vm_id=vm.id,
                 custom=vm.custom)
    assert new_containers(before, clients, {vm.id}) == []


# Generated input: the parsers raise nothing but the package's errors.
#
# Each test runs MAX_EXAMPLES examples and prints how many it ran and
# accepted.  The values: arbitrary text, text over the characters that
# matter, pieces of values, corpus values, and valid values built from the
# grammar, as they are or with a hostile piece put in, cut or replaced, so
# that the checks on what is accepted run often too.

# 4000 (and 1500 through the helper's whole argument parsing) keep CI
# within its 30 minutes; every run draws new examples (no example database:
# tests/conftest.py), so what the runs try adds up.
MAX_EXAMPLES = 4000
HELPER_EXAMPLES = 1500
DIGEST = "sha256:" + "0123456789abcdef" * 4

HOSTILE = collections.defaultdict(list)
for _e in CORPUS:
    HOSTILE[_e.property].append(resolve(_e, PARSER_CANARY))
ALL_HOSTILE = sorted(set(v for vs in HOSTILE.values() for v in vs))

SMALL_TOKENS = [",", ":", "/", "//", ".", "..", "@", "-", "--privileged",
                " ", "\t", "\n", "\x00", "\x1b", ";", "$(id)", "*", "~",
                "=", u"\u0430", u"\uff11", u"\u200b", u"\u2215", "A", "0"]
HOSTILE_PIECE = st.one_of(st.sampled_from(SMALL_TOKENS),
                          st.sampled_from(ALL_HOSTILE), st.text(max_size=3))


def mutated(valid, pieces=HOSTILE_PIECE):
    """valid with a piece (hostile by default) put in, or a part cut or
    replaced."""
    def apply(value, piece, i, j, how):
        i, j = sorted((i % (len(value) + 1), j % (len(value) + 1)))
        if how == "insert":
            return value[:i] + piece + value[i:]
        if how == "cut":
            return value[:i] + value[j:]
        return value[:i] + piece + value[j:]
    return st.builds(apply, valid, pieces,
                     st.integers(min_value=0, max_value=1 << 16),
                     st.integers(min_value=0, max_value=1 << 16),
                     st.sampled_from(["insert", "cut", "replace"]))


def generated(valid, chars, tokens, hostile, max_pieces=12):
    return st.one_of(
        st.text(), st.text(alphabet=chars),
        st.lists(st.sampled_from(tokens), max_size=max_pieces).map("".join),
        st.sampled_from(hostile), valid, valid, mutated(valid),
        mutated(valid))


class Count(object):
    """Calls of a hypothesis test body, for the printed report."""

    def __init__(self, name):
        self.name = name
        self.n = 0
        self.accepted = 0


def run_counted(check, count, capsys, least=MAX_EXAMPLES, share=100):
    """Run check (a hypothesis test counting into count); at least least
    examples ran, and each outcome, accepted and refused, came out of at
    least one in share of them: a parser that refused (or accepted)
    everything would pass every check made of one outcome alone."""
    started = time.monotonic()
    check()
    elapsed = time.monotonic() - started
    with capsys.disabled():   # the counts, for the reader of the run
        sys.stdout.write("\n%s: %d examples (%d accepted) in %.1f s\n"
                         % (count.name, count.n, count.accepted, elapsed))
    assert count.n >= least
    refused = count.n - count.accepted
    fair = max(1, count.n // share)
    assert count.accepted >= fair, "%s accepted only %d of %d" % (
        count.name, count.accepted, count.n)
    assert refused >= fair, "%s refused only %d of %d" % (
        count.name, refused, count.n)


@pytest.mark.parametrize("accepted, passes", [
    pytest.param(0, False, id="refused-all"),
    pytest.param(100, False, id="accepted-all"),
    pytest.param(1, True, id="both"),
])
def test_run_counted_needs_both_outcomes(capsys, accepted, passes):
    # The guard every fuzz test here goes through: a parser refusing (or
    # accepting) every generated value must fail the test.
    count = Count("stub")

    def check():
        count.n, count.accepted = 100, accepted

    if passes:
        run_counted(check, count, capsys, least=100)
    else:
        with pytest.raises(AssertionError):
            run_counted(check, count, capsys, least=100)


def fuzz(capsys, label, values, parse, error_name, check_accepted):
    """parse MAX_EXAMPLES generated values: each raises the package's own
    error (one printable line naming error_name) or gives a result that
    check_accepted(value, result) finds sound."""
    count = Count(label)

    @settings(max_examples=MAX_EXAMPLES, deadline=None)
    @given(values)
    def check(value):
        count.n += 1
        try:
            result = parse(value)
        except errors.Error as e:
            check_error(e, error_name)
            return
        count.accepted += 1
        check_accepted(value, result)

    # Both outcomes, each in at least one in 20 of the examples.
    run_counted(check, count, capsys, share=20)


def check_error(e, name=None):
    msg = str(e)
    assert len(msg.splitlines()) == 1 and msg.isprintable(), msg
    if name:
        assert name in msg, msg


# imageref.parse

_COMPONENT = st.sampled_from(["redis", "app", "a", "b0", "a_b", "a__b",
                              "a-b", "a--b", "a.b", "x" * 60])
VALID_IMAGES = st.builds(
    lambda domain, path, tag, digest: (
        (domain + "/" if domain else "") + "/".join(path)
        + (":" + tag if tag else "") + ("@" + digest if digest else "")),
    st.sampled_from([None, None, "registry.example.com", "localhost:5000",
                     "127.0.0.1:5000", "Reg.Example.COM:443", "localhost",
                     "a-b.c:65535"]),
    st.lists(_COMPONENT, min_size=1, max_size=5),
    st.sampled_from([None, "1", "latest", "1.2.3-rc.1", "V1_Final",
                     "t" * 128]),
    st.sampled_from([None, None, DIGEST]))
IMAGES = generated(
    VALID_IMAGES, u"abz09AZ.-_:/@ \t\n\x00;$`|&'\"\\~*\u0430\uff52\u200b",
    ["a", "b0", "redis", "Ex", "localhost", "example.com", ".", "_", "__",
     "-", "--", "/", "//", ":", "5000", "99999", "0", "@", DIGEST,
     "sha256:", "t" * 128, "a" * 200, "..", " ", "\n", u"\u0430", "$("],
    HOSTILE[properties.CONTAINER_IMAGE])

_IMAGE_CHARS_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/@-]*\Z")


_DISK_NAME_RE = re.compile(r"\A(?:vd|sd|hd|xvd)[a-z]{1,3}\Z")


def check_image(value, ref):
    assert str(ref) == value
    if isinstance(ref, imageref.DiskImage):
        # containerImage=disk:<target>: a disk name, nothing else (no
        # path, no option); which disk is the VM's to say.
        assert _DISK_NAME_RE.match(ref.disk), value
        assert (ref.kind, ref.source) == (None, None)
        return
    assert len(value) <= imageref.MAX_LENGTH
    # ASCII, no white space, no option, no path tricks.
    assert _IMAGE_CHARS_RE.match(value), value
    assert "//" not in value
    assert not set(value.split("@")[0].split("/")) & {".", ".."}, value
    assert len(ref.repository) <= imageref.MAX_NAME


def test_imageref_parse_generated(capsys):
    fuzz(capsys, "imageref.parse", IMAGES, imageref.parse, "containerImage",
         check_image)


# properties.parse_volume_map

DISKS = st.sampled_from(["vda", "vdb", "vdc", "sdb", "hdc", "xvdaa", "vdzzz",
                         "sdaa", "hdz"])
_TARGETS = st.one_of(
    st.lists(st.sampled_from(["data", "a", "x_y", "@b", "v+1", "logs", "var",
                              "lib", "..x", "proc2", "a" * 200]),
             min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(["data", "logs", "_x", ".x", "l" * 64]))
VALID_VOLUME_MAPS = st.lists(
    st.tuples(DISKS, _TARGETS), unique_by=lambda t: t[0],
    min_size=1, max_size=6).map(lambda vs: ",".join(map(":".join, vs)))
VOLUME_PIECES = [
    "vda", "vdb", "sdc", "xvdaa", "nvme0", ":", ",", "/", "//", "data", "a",
    "logs", ".", "..", "proc", "sys", "dev", "/proc", "/sys/", "/dev", "_x",
    "@", "+", "-", " ", "\n", "\x00", u"\u0430", "l" * 64, "/a" * 300,
    "--privileged", ":ro", "/etc", "~",
]
VOLUME_MAPS = generated(
    VALID_VOLUME_MAPS, u"vdsahxz:,/.proc_@+- \n\x00~*$;\u0430\u2215",
    VOLUME_PIECES, HOSTILE[properties.VOLUME_MAP], 16)

_DISK_RE = re.compile(r"\A(?:vd|sd|hd|xvd)[a-z]{1,3}\Z")
_CONTAINER_PATH_RE = re.compile(r"\A(?:/[A-Za-z0-9._@+-]+)+\Z")


def check_volumes(volumes):
    assert 0 < len(volumes) <= properties.MAX_VOLUMES
    assert len(set(v.disk for v in volumes)) == len(volumes)
    for v in volumes:
        assert _DISK_RE.match(v.disk), v
        assert _CONTAINER_PATH_RE.match(v.path), v
        assert len(v.path) <= properties.MAX_PATH
        assert not set(v.path.split("/")[1:]) & {".", ".."}, v
        for kernel in properties.FORBIDDEN_PATHS:
            assert not (v.path + "/").startswith(kernel + "/"), v
        for other in volumes:
            if other is not v:
                assert not (other.path + "/").startswith(v.path + "/")


def check_volume_map(value, volumes):
    if value:
        check_volumes(volumes)
        assert len(value) <= properties.MAX_VOLUME_MAP
    else:
        assert volumes == []


def test_parse_volume_map_generated(capsys):
    fuzz(capsys, "properties.parse_volume_map", VOLUME_MAPS,
         properties.parse_volume_map, "volumeMap", check_volume_map)


# properties.parse_ips

# Four octets (st.ip_addresses is three times slower to draw).
IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(
    lambda octets: "%d.%d.%d.%d" % octets)
VALID_IPS = st.lists(st.one_of(IPV4, IPV4, st.just("")),
                     min_size=1, max_size=5).map(",".join)
IPS = generated(
    VALID_IPS, u"0123456789.,: /x\n\x00\uff11\u0661",
    ["1", "19", "192", "255", "256", "0", "00", "01", ".", ",", ",,",
     "192.0.2.10", "::1", "/24", " ", "-", "\n", "\x00", u"\uff11",
     "1" * 300], HOSTILE[properties.CONTAINER_IP], 20)


def check_ips(value, ips):
    if not value:
        assert ips == []
        return
    assert ",".join(ips) == value
    assert any(ips)
    assert len(value) <= properties.MAX_IPS_LENGTH
    for ip in ips:
        assert ip == "" or str(ipaddress.IPv4Address(ip)) == ip, ip


def test_parse_ips_generated(capsys):
    fuzz(capsys, "properties.parse_ips", IPS, properties.parse_ips,
         "containerIP", check_ips)


# The application's properties: containerEnv, containerCommand,
# containerEntrypoint (percent escapes), containerWorkdir, containerUser,
# containerSecrets.

_FREE = [u"x", u"Yz", u"%25", u"%2C", u"%3B", u"%0A", u"%7e", u"%20", u"=",
         u" ", u"-", u"$(id)", u"/", u"\u00e9", u"\u00a0", u"\U0001f600"]
_FREE_BAD = [u"%", u"%2", u"%zz", u"%00", u"%80", u";", u"\n", u"\t",
             u"\x00", u"\x1b", u"\x7f", u"\x85", u"\u2028", u"\udc80"]


def _free(without, bad=False):
    pieces = [p for p in _FREE + (_FREE_BAD if bad else []) if p != without]
    return st.lists(st.sampled_from(pieces), max_size=6).map(u"".join)


_ENV_NAMES = st.sampled_from(["A", "B", "AB", "_", "a", "PATH", "LD_PRELOAD",
                              "K" * 128, "K" * 129, "1A", "A-B", "", " A"])
VALID_ENVS = st.lists(st.tuples(_ENV_NAMES, _free(u",")), max_size=8,
                      unique_by=lambda kv: kv[0]).map(
                          lambda kv: u",".join(map(u"=".join, kv)))
ENVS = generated(
    VALID_ENVS, u"AB_=x%2C,; \n\x00\x85\u2028\udc80\u0410",
    ["A=", "B=", "=", ",", "%", "%25", "%2C", ";", " ", "\n", "\x00",
     u"\u2028", u"\udc80", "x" * 300, "--env", "$(id)"],
    HOSTILE[properties.CONTAINER_ENV], 16)

def quote(text, separator):
    """text in percent escapes, as short as an admin would write it: only
    what cannot be raw (the property's separator, ",' in containerEnv and
    " " in the arguments, "%", ";" and control characters) is escaped, so
    that it is never longer than a value that decodes to text."""
    escaped = re.compile(u"[%%;%s\x00-\x1f\x7f]" % separator)
    return escaped.sub(lambda m: u"%%%02X" % ord(m.group()), text)


# What a decoded value may hold: ASCII from escapes, or raw characters
# the grammar allows (never a control, a line separator or a surrogate).
_DECODED = re.compile(u"\\A[\x01-\x7f\u00a0-\u2027\u202a-\ud7ff"
                      u"\ue000-\U0010ffff]*\\Z")


def check_env(value, env):
    assert len(value) <= properties.MAX_ENV
    assert len(env) <= properties.MAX_ENV_ITEMS
    names = [k for k, _ in env]
    assert len(set(names)) == len(names)
    for name, text in env:
        assert re.match(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z", name), name
        assert _DECODED.match(text), text
    # Written again in escapes, it means the same.
    again = u",".join(k + u"=" + quote(v, u",") for k, v in env)
    assert properties.parse_env(again) == env


def test_parse_env_generated(capsys):
    fuzz(capsys, "properties.parse_env", ENVS, properties.parse_env,
         "containerEnv", check_env)


VALID_ARGS = st.lists(_free(u" "), min_size=1, max_size=8).map(u" ".join)
_ARG_TOKENS = ["a", "sh", "-c", " ", "  ", "%", "%20", "%25", ",", ";",
               "\n", "\t", "\x00", u"\u2028", u"\udcff", "--privileged",
               "x" * 600]


def check_args(name):
    def check(value, args):
        if value == "":
            assert args is None
            return
        assert len(value) <= properties.MAX_ARGS_LENGTH[name]
        assert 1 <= len(args) <= properties.MAX_ARGS
        for arg in args:
            assert arg and _DECODED.match(arg), arg
        assert properties.parse_args(
            u" ".join(quote(a, u" ") for a in args), name) == args
    return check


@pytest.mark.parametrize("name", [properties.CONTAINER_COMMAND,
                                  properties.CONTAINER_ENTRYPOINT])
def test_parse_args_generated(name, capsys):
    values = generated(VALID_ARGS, u"ab %25,;\n\t\x00\x85\u2029\ud83d",
                       _ARG_TOKENS, HOSTILE[name], 16)
    fuzz(capsys, "properties.parse_args(%s)" % name, values,
         lambda v: properties.parse_args(v, name), name, check_args(name))


VALID_WORKDIRS = _TARGETS.map(lambda t: t if t.startswith("/") else "/" + t)
WORKDIRS = generated(
    VALID_WORKDIRS, u"/a.sv-@+ \n\x00~%\u00e9",
    ["/", "//", ".", "..", "/proc", "/dev", "/sys", "a", "srv", " ", "\n",
     "\x00", u"\u2215", "/a" * 300], HOSTILE[properties.CONTAINER_WORKDIR],
    10)


def check_workdir(value, workdir):
    if value == "":
        assert workdir is None
        return
    assert workdir == value
    check_volumes([properties.Volume("vda", workdir)])


def test_parse_workdir_generated(capsys):
    fuzz(capsys, "properties.parse_workdir", WORKDIRS,
         properties.parse_workdir, "containerWorkdir", check_workdir)


_IDS = st.one_of(st.integers(0, 1 << 33).map(str), st.sampled_from(
    ["0", "00", "01", "2147483647", "2147483648", "-1", "", "root", " 1"]))
VALID_USERS = st.builds(lambda u, g: u + (":" + g if g else ""),
                        _IDS, st.one_of(st.none(), _IDS))
USERS = generated(
    VALID_USERS, u"0129: \n\x00\uff11\u0661-", ["0", "1", "9", ":", "-",
                                               "2147483647", " ", "root"],
    HOSTILE[properties.CONTAINER_USER], 6)


def check_user(value, user):
    if value == "":
        assert user is None
        return
    uid, gid = user
    assert 0 <= uid <= properties.MAX_ID
    assert gid is None or 0 <= gid <= properties.MAX_ID
    assert value == str(uid) + ("" if gid is None else ":%d" % gid)


def test_parse_user_generated(capsys):
    fuzz(capsys, "properties.parse_user", USERS, properties.parse_user,
         "containerUser", check_user)


_SECRET_NAMES = st.sampled_from(["db", "DB", "db2", "pg-password", "a.b",
                                 "a_b", "0", "x" * 64, "x" * 65, "-a", ".a",
                                 "..", "", "a b", "a/b", u"\u0431"])
VALID_SECRETS = st.lists(_SECRET_NAMES, unique=True, max_size=17).map(
    ",".join)
SECRETS = generated(
    VALID_SECRETS, u"abAB01_.-, \n\x00;/", ["db", ",", ",,", "-", ".", "..",
                                           "/", "x" * 64, " ", "\n", ";"],
    HOSTILE[properties.CONTAINER_SECRETS], 16)


def check_secrets(value, names):
    if value == "":
        assert names == []
        return
    assert ",".join(names) == value
    assert 1 <= len(names) <= properties.MAX_SECRETS
    assert len(set(names)) == len(names)
    for n in names:
        # A file name in the secrets directory, never a path.
        assert re.match(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z", n), n


def test_parse_secret_names_generated(capsys):
    fuzz(capsys, "properties.parse_secret_names", SECRETS,
         properties.parse_secret_names, "containerSecrets", check_secrets)


# properties.parse_health_options

VALID_HEALTH_OPTIONS = st.lists(
    st.sampled_from(list(properties.HEALTH_OPTIONS)).flatmap(
        lambda name: st.integers(*properties.HEALTH_OPTIONS[name]).map(
            lambda n: "%s=%d" % (name, n))),
    unique_by=lambda item: item.partition("=")[0], max_size=4).map(",".join)
HEALTH_OPTIONS = generated(
    VALID_HEALTH_OPTIONS, u"interval=0159,-s \n\x00;",
    ["interval=", "timeout=", "retries=", "start-period=", "=", ",", "0",
     "5", "3600", "300", "100", " ", "\n", ";", u"\uff15"],
    HOSTILE[properties.CONTAINER_HEALTH_OPTIONS], 10)


def check_health_options(value, options):
    if value == "":
        assert options is None
        return
    assert len(value) <= properties.MAX_HEALTH_OPTIONS
    given = dict(item.split("=") for item in value.split(","))
    assert len(given) == len(value.split(","))
    for name, (low, high) in properties.HEALTH_OPTIONS.items():
        got = getattr(options, name.replace("-", "_"))
        if name not in given:
            assert got is None
            continue
        # A plain decimal number in its bounds, written as Python writes it.
        assert given[name] == str(got) and low <= got <= high, value


def test_parse_health_options_generated(capsys):
    fuzz(capsys, "properties.parse_health_options", HEALTH_OPTIONS,
         properties.parse_health_options, "containerHealthOptions",
         check_health_options)


# properties.collect + properties.parse: the whole set, from both sources.

_ANY_VALUE = st.one_of(st.text(max_size=40), st.sampled_from(ALL_HOSTILE))
_PROPERTY_VALUES = {
    properties.CONTAINER_TYPE: st.one_of(
        st.sampled_from(ENGINES), mutated(st.sampled_from(ENGINES)),
        _ANY_VALUE),
    properties.CONTAINER_IMAGE: IMAGES,
    properties.VOLUME_MAP: st.one_of(st.just(""), VOLUME_MAPS),
    properties.CONTAINER_IP: st.one_of(st.just(""), IPS),
    properties.CONTAINER_ENV: st.one_of(st.just(""), ENVS),
    properties.CONTAINER_COMMAND: st.one_of(st.just(""), VALID_ARGS,
                                            _ANY_VALUE),
    properties.CONTAINER_ENTRYPOINT: st.one_of(st.just(""), VALID_ARGS,
                                               _ANY_VALUE),
    properties.CONTAINER_WORKDIR: st.one_of(st.just(""), WORKDIRS),
    properties.CONTAINER_USER: st.one_of(st.just(""), USERS),
    properties.CONTAINER_SECRETS: st.one_of(st.just(""), SECRETS),
    properties.CONTAINER_HEALTH_CMD: st.one_of(
        st.just(""), st.just("none"), VALID_ARGS, _ANY_VALUE),
    properties.CONTAINER_HEALTH_OPTIONS: st.one_of(st.just(""),
                                                   HEALTH_OPTIONS),
}
_ENV = st.one_of(
    # A container VM, often valid: the checks of what parse() accepts run.
    st.fixed_dictionaries({
        properties.CONTAINER_TYPE: st.sampled_from(ENGINES),
        properties.CONTAINER_IMAGE: st.one_of(VALID_IMAGES, IMAGES),
    }, optional={
        properties.VOLUME_MAP: st.one_of(VALID_VOLUME_MAPS, VOLUME_MAPS),
        properties.CONTAINER_IP: st.one_of(VALID_IPS, IPS),
        properties.CONTAINER_ENV: st.one_of(VALID_ENVS, ENVS),
        properties.CONTAINER_COMMAND: VALID_ARGS,
        properties.CONTAINER_ENTRYPOINT: VALID_ARGS,
        properties.CONTAINER_WORKDIR: st.one_of(VALID_WORKDIRS, WORKDIRS),
        properties.CONTAINER_USER: st.one_of(VALID_USERS, USERS),
        properties.CONTAINER_SECRETS: st.one_of(VALID_SECRETS, SECRETS),
        properties.CONTAINER_HEALTH_CMD: st.one_of(VALID_ARGS,
                                                   st.just("none")),
        properties.CONTAINER_HEALTH_OPTIONS: st.one_of(
            VALID_HEALTH_OPTIONS, HEALTH_OPTIONS),
    }),
    # Anything, with other variables around.
    st.builds(lambda other, props: dict(other, **props),
              st.dictionaries(st.text(max_size=8), _ANY_VALUE, max_size=2),
              st.fixed_dictionaries({}, optional=_PROPERTY_VALUES)))


@st.composite
def _sources(draw):
    """(env, metadata): the same values, one of them only, or others."""
    env = draw(_ENV)
    how = draw(st.sampled_from(["same", "same", "env-only", "xml-only",
                                "other"]))
    if how == "same":
        return env, dict(env)
    if how == "env-only":
        return env, {}
    if how == "xml-only":
        return {}, env
    return env, draw(_ENV)


def test_parse_generated(capsys):
    count = Count("properties.collect+parse")

    @settings(max_examples=MAX_EXAMPLES, deadline=None)
    @given(_sources())
    def check(sources):
        count.n += 1
        env, metadata = sources
        try:
            raw = properties.collect(env, metadata)
            props = properties.parse(raw, ENGINES)
        except errors.Error as e:
            assert isinstance(e, errors.InvalidProperty)
            assert e.name in properties.NAMES
            check_error(e, e.name)
            return
        if props is None:
            assert properties.CONTAINER_TYPE not in raw
            return
        count.accepted += 1
        assert props.engine in ENGINES
        assert props.engine == raw[properties.CONTAINER_TYPE]
        check_image(raw[properties.CONTAINER_IMAGE], props.image)
        if raw.get(properties.VOLUME_MAP):
            check_volumes(props.volumes)
        if raw.get(properties.CONTAINER_IP):
            check_ips(raw[properties.CONTAINER_IP], props.ips)
        check_env(raw.get(properties.CONTAINER_ENV, ""), props.env)
        for name, args in ((properties.CONTAINER_COMMAND, props.command),
                           (properties.CONTAINER_ENTRYPOINT,
                            props.entrypoint)):
            check_args(name)(raw.get(name, ""), args)
        check_workdir(raw.get(properties.CONTAINER_WORKDIR, ""),
                      props.workdir)
        check_user(raw.get(properties.CONTAINER_USER, ""), props.user)
        check_secrets(raw.get(properties.CONTAINER_SECRETS, ""),
                      props.secrets)
        health_cmd = raw.get(properties.CONTAINER_HEALTH_CMD, "")
        if health_cmd.lower() == "none":
            assert props.health_cmd == []
        else:
            check_args(properties.CONTAINER_HEALTH_CMD)(health_cmd,
                                                        props.health_cmd)
        check_health_options(raw.get(properties.CONTAINER_HEALTH_OPTIONS,
                                     ""), props.health_options)
        assert props.raw == dict((n, raw[n]) for n in properties.NAMES
                                 if n in raw)

    run_counted(check, count, capsys)


# spec.nic and spec.volume: the helper's --nic and --volume values.

def _mac(octets, upper):
    mac = ":".join("%02x" % o for o in bytearray(octets))
    return mac.upper() if upper else mac


_UNICAST = st.binary(min_size=6, max_size=6).map(
    lambda b: bytes(bytearray([bytearray(b)[0] & 0xfe])) + b[1:])
MACS = st.builds(_mac, st.one_of(_UNICAST, _UNICAST, _UNICAST,
                                 st.binary(min_size=6, max_size=6)),
                 st.booleans())
BRIDGES = st.sampled_from(["ovirtmgmt", "br0", "backend_1.2", "a" * 15,
                           "a" * 16, "_x", "-x", ".", "br 0", "br/0"])
VALID_NICS = st.builds(
    lambda mac, bridge, ip: ",".join([mac, bridge] + ([ip] if ip else [])),
    MACS, BRIDGES, st.one_of(st.none(), IPV4))
NICS = generated(
    VALID_NICS, u"0123456789abcdefABCDEFxz:,. /\n\x00\u0430",
    ["56:6f:7a:4e:00:50", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
     "00:00:00:00:00:00", "56:6F:7A:4E:00:50", "zz", ":", ",", "ovirtmgmt",
     "br0", "a" * 15, "a" * 16, "-x", ".", "..", "/", "192.0.2.10",
     "999.1.1.1", "\n", "\x00", " ", u"\u0430", u"\uff11"],
    ALL_HOSTILE, 8)

_MAC_RE = re.compile(r"\A[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
_BRIDGE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\Z")


def check_nic(nic):
    assert _MAC_RE.match(nic.mac), nic
    assert not int(nic.mac[:2], 16) & 1 and nic.mac != "00:00:00:00:00:00"
    assert _BRIDGE_RE.match(nic.bridge), nic
    assert nic.ip is None or str(ipaddress.IPv4Address(nic.ip)) == nic.ip


def check_nic_arg(value, nic):
    check_nic(nic)
    assert value.lower() == ",".join(
        [nic.mac, nic.bridge] + ([nic.ip] if nic.ip else [])).lower()


def test_spec_nic_generated(capsys):
    fuzz(capsys, "spec.nic", NICS, specs.nic, "NIC", check_nic_arg)


VALID_VOLUME_ARGS = st.builds(
    lambda disk, target, kind, source: ",".join((disk, target, kind, source)),
    DISKS, _TARGETS, st.sampled_from(["file", "block"]),
    st.sampled_from(["/rhev/data-center/mnt/x/img", "/dev/dm-3", "/a,b",
                     "//x", "/"]))
VOLUME_ARGS = generated(
    VALID_VOLUME_ARGS, u"vdsa:,/.proc_@+-filebk \n\x00\u0430",
    VOLUME_PIECES + ["file", "block", "dir", ",", ",", "/rhev/data-center",
                     "/etc/shadow", "relative"], ALL_HOSTILE, 10)


def check_volume_source(value, v):
    check_volumes([properties.Volume(v.disk, v.path)])
    assert v.kind in ("file", "block")
    assert v.source == value.split(",", 3)[3]
    assert v.source.startswith("/") and "\0" not in v.source


def test_spec_volume_generated(capsys):
    fuzz(capsys, "spec.volume", VOLUME_ARGS, specs.volume, None,
         check_volume_source)


# spec.from_args, on what the helper's own parser makes of generated argv.

NUMBERS = st.one_of(
    st.integers(min_value=-10, max_value=1 << 40).map(str),
    st.sampled_from(["0", "1", " 64", "64\n", "6_4", "+64", "1e3", "0x10",
                     "", u"\uff16\uff14", u"\u0666\u0664", "9" * 5000]),
    _ANY_VALUE)
VM_IDS = st.one_of(st.uuids().map(str), st.uuids().map(str).map(str.upper))

# Each option of the start command: a valid value, and what else to try.
START_OPTIONS = collections.OrderedDict([
    ("vm-id", (VM_IDS, st.one_of(mutated(VM_IDS), _ANY_VALUE))),
    ("vm-name", (st.sampled_from(["web", "-web", "--privileged", "a" * 64,
                                  "vm.1_x"]),
                 st.one_of(st.sampled_from(["", "a" * 65, "web 1", "web/1"]),
                           _ANY_VALUE))),
    ("engine", (st.sampled_from(ENGINES),
                st.one_of(mutated(st.sampled_from(ENGINES)), _ANY_VALUE))),
    ("image", (VALID_IMAGES, IMAGES)),
    ("memory-mib", (st.integers(min_value=1, max_value=1 << 26).map(str),
                    NUMBERS)),
    ("vcpus", (st.integers(min_value=1, max_value=4096).map(str), NUMBERS)),
    ("cpu-shares", (st.integers(min_value=2, max_value=262144).map(str),
                    NUMBERS)),
])


def _few_or_many(values):
    """Up to 3 values, or one 15 to 18 times (the limit is 16)."""
    return st.one_of(
        st.lists(values, max_size=3),
        st.builds(lambda v, n: [v] * n, values, st.integers(15, 18)))


_NIC_LISTS = _few_or_many(VALID_NICS)
_VOLUME_LISTS = _few_or_many(VALID_VOLUME_ARGS)


@st.composite
def start_argv(draw):
    """A start command line in the hook's --option=value form: valid, but
    for up to three options given something else."""
    hostile = set(draw(st.lists(st.sampled_from(
        list(START_OPTIONS) + ["nic", "volume"]), max_size=3)))
    argv = ["start"]
    for name, (valid, other) in START_OPTIONS.items():
        if name == "cpu-shares" and not draw(st.booleans()):
            continue
        value = draw(other if name in hostile else valid)
        argv.append("--%s=%s" % (name, value))
    for name, valid, other in (("nic", _NIC_LISTS, NICS),
                               ("volume", _VOLUME_LISTS, VOLUME_ARGS)):
        values = draw(valid)
        if name in hostile:
            values.insert(draw(st.integers(0, len(values))), draw(other))
        argv += ["--%s=%s" % (name, v) for v in values]
    return argv


def check_spec(s, conf_engines=None):
    assert s.vm_id == str(uuid.UUID(s.vm_id))
    assert re.match(r"\A[A-Za-z0-9_.-]{1,64}\Z", s.vm_name)
    if conf_engines is not None:
        assert s.engine in conf_engines
    check_image(str(s.image), s.image)
    assert 1 <= s.memory_mib <= specs.MAX_MEMORY_MIB
    assert 1 <= s.vcpus <= specs.MAX_VCPUS
    assert s.cpu_shares is None or 2 <= s.cpu_shares <= 262144
    assert len(s.nics) <= specs.MAX_NICS
    for nic in s.nics:
        check_nic(nic)
    assert len(s.volumes) <= specs.MAX_VOLUMES
    for v in s.volumes:
        check_volume_source(",".join(v), v)


def check_plain_numbers(ns):
    """The helper took the numbers only as the hook writes them."""
    for value in (ns.memory_mib, ns.vcpus, ns.cpu_shares):
        assert value is None or re.match(r"\A[0-9]+\Z", value), value


def test_spec_from_args_generated(capsys):
    count = Count("spec.from_args")
    parser = helper._parser()

    @settings(max_examples=MAX_EXAMPLES, deadline=None)
    @given(start_argv())
    def check(argv):
        count.n += 1
        ns = parser.parse_args(argv)
        try:
            s = specs.from_args(ns)
        except errors.Error as e:
            check_error(e)
            return
        count.accepted += 1
        check_spec(s)
        check_plain_numbers(ns)

    run_counted(check, count, capsys)


# The helper in-process: hostile argv never reach the engine.

class Reached(BaseException):
    """The stub engine was asked for: validation let the argv through.

    A BaseException, so that helper.main does not turn it into exit 1."""


# Tokens slipped anywhere into a command line.
ARGV_TOKENS = [
    "--privileged", "--privileged=true", "-v", "/:/host", "--", "-h",
    "@/etc/shadow", "start", "stop", "--vm-id", "--vm-id=../../etc",
    "--image", "--image=--privileged", "--engine=lxc", "--nic",
    "--nic=ff:ff:ff:ff:ff:ff,br0", "--volume=vda,/data,file,/etc/shadow",
    "--cap-add=ALL", "--vm-i=8e3b2206-97c6-4edb-bd98-1cff8afa7047",
    "--memory-mib=-1", "\n", "",
    u"\u2014privileged", u"\uff0d\uff0dprivileged",
]


@st.composite
def helper_argv(draw):
    command = draw(st.sampled_from(
        ["start"] * 6 + ["stop", "stop", "pause", "unpause", "run", "",
                         "START", "--privileged"]))
    if command == "start":
        argv = draw(start_argv())
    else:
        vm_id, other = START_OPTIONS["vm-id"]
        argv = [command, "--vm-id=" + draw(st.one_of(vm_id, other))]
        if draw(st.booleans()):
            valid, other = START_OPTIONS["engine"]
            argv.append("--engine=" + draw(st.one_of(valid, other)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        how = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        i = draw(st.integers(min_value=0, max_value=len(argv)))
        if how == "insert":
            token = draw(st.one_of(st.sampled_from(ARGV_TOKENS),
                                   st.sampled_from(ALL_HOSTILE), st.text()))
            argv.insert(i, token)
        elif argv and how == "delete":
            del argv[min(i, len(argv) - 1)]
        elif argv:
            argv.insert(i, argv[min(i, len(argv) - 1)])
    return argv


def test_helper_main_generated(monkeypatch, tmp_path, capsys):
    count = Count("helper.main")
    conf_file = tmp_path / "containers.conf"
    conf_file.write_text(u"[containers]\n")
    state_dir = tmp_path / "run"
    monkeypatch.setattr(paths, "CONF_FILE", str(conf_file))
    monkeypatch.setattr(paths, "STATE_DIR", str(state_dir))
    # No syslog from the test run.
    monkeypatch.setattr(hookenv, "setup_logging", lambda: None)
    conf = config.load()
    validated = []
    real_from_args = specs.from_args

    def from_args(ns):
        validated.append((ns, real_from_args(ns)))
        return validated[-1][1]

    def engine_stub(conf_, name, runtime=None):
        # The seam where the helper would connect to the engine: what
        # arrives here must have been checked, and the engine name too.
        if name not in conf_.engines:
            raise errors.InvalidProperty(name="containerType", value=name,
                                         reason="stub: not on this host")
        raise Reached(name)

    monkeypatch.setattr(specs, "from_args", from_args)
    monkeypatch.setattr(helper, "_engine", engine_stub)

    @settings(max_examples=HELPER_EXAMPLES, deadline=None)
    @given(helper_argv())
    def check(argv):
        count.n += 1
        del validated[:]
        out, err = io.StringIO(), io.StringIO()
        reached = exit_code = rc = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = helper.main(argv)
            except SystemExit as e:
                exit_code = e.code
            except Reached as e:
                reached = e
        out, err = out.getvalue(), err.getvalue()
        assert "Traceback" not in err and "unexpected" not in err, err
        if reached is not None:
            count.accepted += 1
            if validated:   # a start: its spec was checked
                ns, s = validated[-1]
                check_spec(s, conf.engines)
                check_plain_numbers(ns)
            assert out == ""
        elif exit_code == 2:
            # argparse: usage and one "error:" line.
            assert "error:" in err and out == ""
        elif exit_code == 0:
            # -h or an abbreviation of --help: help, and nothing done.
            assert "usage:" in out and not validated
        elif rc == 0:
            # A stop of a VM with no state record: no container is the
            # package's then, so the engine is not asked.
            result = json.loads(out)
            assert "stop" in argv and result["stopped"] is None
            assert specs.vm_id(result["vm_id"]) == result["vm_id"]
        else:
            assert exit_code is None and rc == 1, (rc, exit_code)
            assert err.endswith("\n") and err.count("\n") == 1, err
            assert out == ""

    run_counted(check, count, capsys, least=HELPER_EXAMPLES)
    # Nothing got past the stub: no state, and the state directory holds
    # at most the lock files of stop (taken before the engine is asked).
    if state_dir.exists():
        assert all(n.endswith(".lock") for n in os.listdir(str(state_dir)))


# The installed helper, through "sudo -n", as the vdsm user.

def start_args(*extra, **replace):
    """A valid start command line with options replaced (None drops one)
    and extra arguments appended."""
    opts = collections.OrderedDict([
        ("vm-id", "@VM@"), ("vm-name", "hostile"), ("engine", "docker"),
        ("image", "@IMAGE@"), ("memory-mib", "64"), ("vcpus", "1")])
    for key, value in replace.items():
        key = key.replace("_", "-")
        if value is None:
            del opts[key]
        else:
            opts[key] = value
    return ["start"] + ["--%s=%s" % item for item in opts.items()] \
        + list(extra)


_CYRILLIC_ID = "8e3b2206-97c6-4edb-bd98-1cff8\u0430fa7047"

# (argv, exit code, a part of the last stderr line).  @VM@ is a fresh VM
# id, @IMAGE@ the test image (on the host), @CANARY@ the canary directory.
HELPER_ARGV = [
    # Option injection.
    pytest.param(start_args("--privileged"), 2,
                 "unrecognized arguments: --privileged", id="privileged"),
    pytest.param(start_args("--privileged=true"), 2,
                 "unrecognized arguments", id="privileged-value"),
    pytest.param(["--privileged"] + start_args(), 2,
                 "unrecognized arguments: --privileged",
                 id="privileged-first"),
    pytest.param(start_args("--cap-add=ALL"), 2, "unrecognized arguments",
                 id="cap-add"),
    pytest.param(start_args("-v", "/:/host"), 2, "unrecognized arguments",
                 id="short-volume"),
    pytest.param(start_args("--", "--privileged"), 2,
                 "unrecognized arguments", id="end-of-options"),
    pytest.param(start_args("@/etc/shadow"), 2,
                 "unrecognized arguments: @/etc/shadow", id="args-from-file"),
    pytest.param(start_args(vm_id=None) + ["--vm-id", "--privileged"], 2,
                 "expected one argument", id="option-as-value"),
    pytest.param(start_args(image="--privileged"), 1,
                 "containerImage='--privileged'", id="image-option"),
    pytest.param(start_args(engine="--privileged"), 1,
                 "containerType='--privileged'", id="engine-option"),
    pytest.param(start_args(engine="docker --privileged"), 1,
                 "containerType=", id="engine-and-option"),
    pytest.param(start_args(image="@IMAGE@ --privileged"), 1,
                 "containerImage=", id="image-and-option"),
    pytest.param(start_args(memory_mib="64 --privileged"), 1,
                 "memory '64 --privileged'", id="memory-and-option"),
    pytest.param(start_args(vm_name="x;touch @CANARY@/pwned"), 1,
                 "VM name", id="name-shell"),
    # Path traversal where a VM id belongs.
    pytest.param(start_args(vm_id="../../etc"), 1,
                 "VM id '../../etc' is not a UUID", id="start-id-dotdot"),
    pytest.param(start_args(vm_id="@VM@/../../../etc/passwd"), 1,
                 "is not a UUID", id="start-id-climb"),
    pytest.param(["stop", "--vm-id=../../etc"], 1, "is not a UUID",
                 id="stop-id-dotdot"),
    pytest.param(["stop", "--vm-id=@VM@/../../../etc"], 1, "is not a UUID",
                 id="stop-id-climb"),
    pytest.param(["pause", "--vm-id=../../etc/shadow"], 1, "is not a UUID",
                 id="pause-id-dotdot"),
    pytest.param(["unpause", "--vm-id=*"], 1, "is not a UUID",
                 id="unpause-id-glob"),
    pytest.param(["stop", "--vm-id=@VM@", "--engine=../../docker"], 1,
                 "containerType='../../docker'", id="stop-engine-path"),
    pytest.param(["stop", "--vm-id=@VM@", "--engine=@CANARY@/docker.sock"],
                 1, "containerType=", id="stop-engine-socket"),
    # Duplicated options: the last counts, and is checked.
    pytest.param(start_args("--vm-id=../../etc"), 1, "is not a UUID",
                 id="duplicate-id"),
    pytest.param(start_args("--image=--privileged"), 1,
                 "containerImage='--privileged'", id="duplicate-image"),
    pytest.param(start_args("--engine=lxc"), 1, "containerType='lxc'",
                 id="duplicate-engine"),
    pytest.param(["start"] + start_args(), 2,
                 "unrecognized arguments: start", id="duplicate-command"),
    # Unknown sub-commands.
    pytest.param(["run", "--vm-id=@VM@"], 2, "invalid choice: 'run'",
                 id="run"),
    pytest.param(["exec", "--vm-id=@VM@", "sh"], 2, "invalid choice",
                 id="exec"),
    pytest.param(["START"] + start_args()[1:], 2, "invalid choice",
                 id="uppercase-command"),
    pytest.param(["sh", "-c", "touch @CANARY@/pwned"], 2, "invalid choice",
                 id="shell"),
    pytest.param(["../../bin/sh"], 2, "invalid choice", id="command-path"),
    pytest.param([], 2, "arguments are required: command", id="nothing"),
    pytest.param(["start"], 2, "arguments are required: --vm-id",
                 id="start-alone"),
    pytest.param(["stop"], 2, "arguments are required: --vm-id",
                 id="stop-alone"),
    # vNICs.
    pytest.param(start_args("--nic=zz:zz:zz:zz:zz:zz,ovirtmgmt"), 1,
                 "bad NIC", id="nic-mac-not-hex"),
    pytest.param(start_args("--nic=56-6f-7a-4e-00-50,ovirtmgmt"), 1,
                 "bad NIC", id="nic-mac-dashes"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50"), 1, "bad NIC",
                 id="nic-no-bridge"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50,br0;reboot"), 1,
                 "bad NIC", id="nic-bridge-shell"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50,../../x"), 1,
                 "bad NIC", id="nic-bridge-path"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50,@CANARY@"), 1,
                 "bad NIC", id="nic-bridge-canary"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50,averyverylongbridge"),
                 1, "bad NIC", id="nic-bridge-16"),
    pytest.param(start_args("--nic=56:6f:7a:4e:00:50,ovirtmgmt,999.1.1.1"),
                 1, "bad NIC", id="nic-ip-octet"),
    pytest.param(start_args(
        "--nic=56:6f:7a:4e:00:50,ovirtmgmt,192.0.2.10,--privileged"), 1,
        "bad NIC", id="nic-extra-field"),
    pytest.param(start_args("--nic=ff:ff:ff:ff:ff:ff,ovirtmgmt"), 1,
                 "not a unicast MAC", id="nic-broadcast"),
    pytest.param(start_args("--nic=01:00:5e:00:00:01,ovirtmgmt"), 1,
                 "not a unicast MAC", id="nic-multicast"),
    pytest.param(start_args("--nic=00:00:00:00:00:00,ovirtmgmt"), 1,
                 "not a unicast MAC", id="nic-zero"),
    pytest.param(start_args(*["--nic=56:6f:7a:4e:01:%02x,ovirtmgmt" % i
                              for i in range(17)]), 1, "more than 16 NICs",
                 id="nic-17"),
    # Volumes: the syntax.
    pytest.param(start_args("--volume=vda,/proc,file,/rhev/data-center/x"),
                 1, "volumeMap='vda:/proc'", id="volume-proc"),
    pytest.param(start_args("--volume=vda,../etc,file,/rhev/data-center/x"),
                 1, "volumeMap=", id="volume-relative"),
    pytest.param(start_args("--volume=vda,/data,dir,/etc"), 1, "bad volume",
                 id="volume-kind"),
    pytest.param(start_args("--volume=vda,/data,file,relative/disk.img"), 1,
                 "bad volume source", id="volume-relative-source"),
    pytest.param(start_args("--volume=/:/host"), 1, "bad volume",
                 id="volume-bind"),
    pytest.param(start_args("--volume=/etc/shadow,/data,file,/etc/shadow"),
                 1, "volumeMap=", id="volume-disk-path"),
    # Huge values.
    pytest.param(start_args(vm_name="a" * 100000), 1, "VM name",
                 id="huge-name"),
    pytest.param(start_args(image="a" * 100000), 1, "longer than 512",
                 id="huge-image"),
    pytest.param(start_args(memory_mib="9" * 5000), 1, "memory",
                 id="huge-memory"),
    pytest.param(start_args(vm_id="@VM@" * 1000), 1, "is not a UUID",
                 id="huge-id"),
    pytest.param(start_args("--nic=" + "a" * 100000), 1, "bad NIC",
                 id="huge-nic"),
    pytest.param(start_args("--volume=vda,/%s,file,/x" % ("a" * 100000)), 1,
                 "volumeMap=", id="huge-volume"),
    # Numbers the hook never writes.
    pytest.param(start_args(memory_mib="-1"), 1, "memory '-1'",
                 id="memory-negative"),
    pytest.param(start_args(memory_mib="0"), 1, "memory '0'",
                 id="memory-0"),
    pytest.param(start_args(memory_mib="1e9"), 1, "memory", id="memory-exp"),
    pytest.param(start_args(vcpus="0x10"), 1, "vcpus", id="vcpus-hex"),
    pytest.param(start_args("--cpu-shares=1"), 1, "cpu shares",
                 id="shares-1"),
    pytest.param(start_args(memory_mib=" 64"), 1, "memory",
                 id="memory-space"),
    pytest.param(start_args(memory_mib="6_4"), 1, "memory",
                 id="memory-underscore"),
    pytest.param(start_args(memory_mib="+64"), 1, "memory",
                 id="memory-plus"),
    # Unicode.
    pytest.param(start_args(memory_mib=u"\uff16\uff14"), 1, "memory",
                 id="memory-fullwidth"),
    pytest.param(start_args(vcpus=u"\u0661"), 1, "vcpus",
                 id="vcpus-arabic-indic"),
    pytest.param(start_args(vm_id=_CYRILLIC_ID), 1, "is not a UUID",
                 id="id-cyrillic"),
    pytest.param(start_args(engine=u"d\u043ecker"), 1, "containerType=",
                 id="engine-cyrillic"),
    pytest.param(start_args(image=u"r\u0435dis"), 1, "containerImage=",
                 id="image-cyrillic"),
    pytest.param(start_args(vm_name=u"vm\u202e"), 1, "VM name",
                 id="name-rtl-override"),
    pytest.param(start_args(u"\u2014privileged"), 2,
                 "unrecognized arguments", id="em-dash-option"),
    pytest.param(start_args(u"\uff0d\uff0dprivileged"), 2,
                 "unrecognized arguments", id="fullwidth-dashes"),
    pytest.param(start_args(u"--vm\u2010id=../../etc"), 2,
                 "unrecognized arguments", id="unicode-hyphen-option"),
    # Control characters.
    pytest.param(start_args(vm_id="@VM@\n"), 1, "is not a UUID",
                 id="id-newline"),
    pytest.param(start_args(image="@IMAGE@\n--privileged"), 1,
                 "containerImage=", id="image-newline-option"),
    pytest.param(start_args(vm_name="vm\x1b[31m"), 1, "VM name",
                 id="name-escape"),
    # Volume sources outside the storage roots: they pass the syntax, and
    # the helper itself refuses them on the host (hostdisk.open_source).
    pytest.param(start_args("--volume=vda,/data,file,/etc/shadow"), 1,
                 "storage_roots", id="source-etc-shadow"),
    pytest.param(start_args("--volume=vda,/data,file,@CANARY@/disk.img"), 1,
                 "storage_roots", id="source-canary-disk"),
    pytest.param(start_args("--volume=vda,/data,block,/dev/null"), 1,
                 "storage_roots", id="source-block-dev-null"),
    pytest.param(start_args(
        "--volume=vda,/data,file,/rhev/data-center/../../etc/shadow"), 1,
        "storage_roots", id="source-climbing-out"),
]

HOST_FILES = ["/etc/shadow", "/etc/passwd", "/etc/sudoers"]


def host_files():
    result = {}
    for path in HOST_FILES:
        st_ = os.stat(path)
        with open(path, "rb") as f:
            result[path] = (st_.st_mode, st_.st_mtime_ns, st_.st_ctime_ns,
                            hashlib.sha256(f.read()).hexdigest())
    return result


def run_helper(installation, vdsm, argv):
    """The installed helper through sudo -n, as Vdsm's hooks run it."""
    p = subprocess.Popen(
        ["/usr/bin/sudo", "-n", installation.helper] + argv,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        **vdsm._credentials())   # vdsm (uid 36) with its groups
    out, err = p.communicate(timeout=120)
    return p.returncode, out.decode("utf-8", "replace"), \
        err.decode("utf-8", "replace")


def assert_helper_refused(rc, out, err, expected_rc, fragment):
    assert "Traceback" not in err and "unexpected" not in err, err
    assert out == ""
    assert rc == expected_rc, err
    lines = err.splitlines()
    if rc == 1:
        # The helper's protocol: one line, which the hook passes on.
        assert err.endswith("\n") and len(lines) == 1, err
    else:
        # argparse: the usage, then the line privileged.py passes on.
        assert lines[-1].startswith("containers-helper") \
            and ": error: " in lines[-1], err
        assert all(l.startswith(("usage:", " ", "containers-helper"))
                   for l in lines), err
    assert fragment in lines[-1], err


@pytest.mark.parametrize("argv, expected_rc, fragment", HELPER_ARGV)
def test_helper_refuses(argv, expected_rc, fragment, vdsm, installation,
                        clients, registry_image, canary):
    vm_id = str(uuid.uuid4())
    argv = [a.replace("@VM@", vm_id).replace("@IMAGE@", images.IMAGE)
            .replace("@CANARY@", canary) for a in argv]
    before = containers(clients)
    canary_before = tree(canary)
    files_before = host_files()

    rc, out, err = run_helper(installation, vdsm, argv)

    try:
        assert new_containers(before, clients, {vm_id}) == []
    finally:
        remove_ours(clients, {vm_id})
    assert_helper_refused(rc, out, err, expected_rc, fragment)
    assert not os.path.exists(
        os.path.join(installation.state_dir, vm_id + ".json"))
    assert not os.path.exists(
        os.path.join(installation.state_dir, "volumes", vm_id))
    assert tree(canary) == canary_before
    assert host_files() == files_before
    assert loops_of(os.path.join(canary, CANARY_DISK)) == ""


def test_helper_refuses_symlink_out_of_storage_root(
        vdsm, fresh_conf, clients, registry_image, canary):
    # A disk image inside a storage root that is a symlink to the canary
    # disk: the helper opens it, and refuses what it really is.
    root = tempfile.mkdtemp(prefix="vhc-storage-", dir="/var/tmp")
    try:
        link = os.path.join(root, "disk.img")
        os.symlink(os.path.join(canary, CANARY_DISK), link)
        fresh_conf.configure(storage_roots=root)
        vm_id = str(uuid.uuid4())
        before = containers(clients)
        canary_before = tree(canary)
        rc, out, err = run_helper(fresh_conf, vdsm, [
            a.replace("@VM@", vm_id).replace("@IMAGE@", images.IMAGE)
            for a in start_args("--volume=vda,/data,file," + link)])
        try:
            assert new_containers(before, clients, {vm_id}) == []
        finally:
            remove_ours(clients, {vm_id})
        assert_helper_refused(rc, out, err, 1, "outside the storage roots")
        assert not os.path.exists(
            os.path.join(fresh_conf.state_dir, vm_id + ".json"))
        assert tree(canary) == canary_before
        assert loops_of(os.path.join(canary, CANARY_DISK)) == ""
    finally:
        shutil.rmtree(root)
