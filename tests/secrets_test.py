"""Secrets: root-only files read by the root helper (secrets.py).

Real files with real owners and modes in a private directory (the tests run
as root; os.chown gives a file to the vdsm user to see it refused).  Every
bad file holds CANARY, and no message may show it.
"""

import os
import pwd
import stat

import pytest

from containerhooks import errors
from containerhooks import secrets

CANARY = "S3cret-canary-value"

VALUES = [
    ("POSTGRES_PASSWORD", CANARY),
    ("WITH_EQUALS", "a=b==c="),
    ("WITH_SPACES", "  two  leading, two trailing  "),
    ("UNICODE", u"m\u00f6t\u00f6rhead \u65e5\u672c \U0001f511"),
    ("HASH", "#not a comment # nor this"),
    ("EMPTY", ""),
    ("QUOTES", "'single' \"double\" $HOME `cmd` \\n"),
    ("TAB", "a\tb"),
    ("LINE_SEPARATORS", u"a\u2028b\x85c\x0bd"),
]


def _text(variables):
    return u"".join(u"%s=%s\n" % kv for kv in variables).encode("utf-8")


def _uid(name):
    return pwd.getpwnam(name).pw_uid


@pytest.fixture
def secrets_dir(tmp_path):
    """An empty secrets directory, 0700 root, in a root-only tree."""
    d = tmp_path / "etc" / "secrets"
    d.mkdir(parents=True)
    d.chmod(0o700)
    return str(d)


def _write(directory, name, data, mode=0o600):
    path = os.path.join(directory, name + ".env")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def _refused(exc_info):
    message = str(exc_info.value)
    assert CANARY not in message
    assert "\n" not in message
    return message


def test_values_round_trip(secrets_dir):
    data = (b"# the database\n\n   \n" + _text(VALUES[:4]) + b"#X=1\n"
            + _text(VALUES[4:]))
    assert secrets.write("pg", data, directory=secrets_dir) == [
        k for k, _ in VALUES]
    st = os.stat(os.path.join(secrets_dir, "pg.env"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert secrets.environment(["pg"], directory=secrets_dir) == VALUES
    # Nothing else is left in the directory (the temporary file is gone).
    assert os.listdir(secrets_dir) == ["pg.env"]


def test_several_secrets_in_order(secrets_dir):
    _write(secrets_dir, "db", b"DB_PASSWORD=x\nDB_USER=y\n")
    _write(secrets_dir, "api.token", b"TOKEN=t\n")
    assert secrets.environment(["api.token", "db"],
                               directory=secrets_dir) == [
        ("TOKEN", "t"), ("DB_PASSWORD", "x"), ("DB_USER", "y")]


def test_no_names_needs_no_directory(tmp_path):
    assert secrets.environment([], directory=str(tmp_path / "none")) == []


@pytest.mark.parametrize("make", [
    pytest.param(lambda d: None, id="no-file"),
    pytest.param(lambda d: os.rmdir(d), id="no-directory"),
])
def test_missing_secret_says_where_and_how(secrets_dir, make):
    make(secrets_dir)
    with pytest.raises(errors.MissingSecret) as e:
        secrets.environment(["pg"], directory=secrets_dir)
    message = str(e.value)
    assert "Secret pg " in message
    assert os.path.join(secrets_dir, "pg.env") in message
    assert "vdsm-containers secret set pg" in message
    assert "every host that may run this VM" in message


def test_same_key_in_two_secrets(secrets_dir):
    _write(secrets_dir, "a", b"ONE=1\nSHARED=" + CANARY.encode() + b"\n")
    _write(secrets_dir, "b", b"SHARED=" + CANARY.encode() + b"2\n")
    with pytest.raises(errors.SecretConflict) as e:
        secrets.environment(["a", "b"], directory=secrets_dir)
    message = _refused(e)
    assert "Secrets a and b both set SHARED" in message


def _symlink_to_good_file(d):
    # A root file of the right mode, outside the directory: the link is
    # refused for being a link, not for its target.
    target = _write(os.path.dirname(d), "elsewhere", b"K=" + CANARY.encode())
    os.symlink(target, os.path.join(d, "pg.env"))


def _fifo(d):
    os.mkfifo(os.path.join(d, "pg.env"), 0o600)


def _hard_mode(mode):
    return lambda d: _write(d, "pg", b"K=" + CANARY.encode() + b"\n", mode)


def _owned_by(user):
    def make(d):
        path = _write(d, "pg", b"K=" + CANARY.encode() + b"\n")
        os.chown(path, _uid(user), 0)
    return make


@pytest.mark.parametrize("make, reason", [
    pytest.param(_symlink_to_good_file, "it is a symbolic link",
                 id="symlink"),
    pytest.param(_fifo, "it is not a regular file", id="fifo"),
    pytest.param(lambda d: os.mkdir(os.path.join(d, "pg.env"), 0o700),
                 "it is not a regular file", id="directory"),
    pytest.param(_owned_by("vdsm"), "owned by uid 36, not root: chown "
                 "root:root", id="owned-by-vdsm"),
    pytest.param(_owned_by("nobody"), "not root", id="owned-by-nobody"),
    pytest.param(_hard_mode(0o640), "group or others may access it (mode "
                 "0640): chmod 600", id="group-readable"),
    pytest.param(_hard_mode(0o604), "(mode 0604)", id="other-readable"),
    pytest.param(_hard_mode(0o620), "(mode 0620)", id="group-writable"),
    pytest.param(_hard_mode(0o601), "(mode 0601)", id="other-executable"),
])
def test_file_refused(secrets_dir, make, reason):
    make(secrets_dir)
    with pytest.raises(errors.SecretError) as e:
        secrets.environment(["pg"], directory=secrets_dir)
    message = _refused(e)
    assert reason in message
    assert os.path.join(secrets_dir, "pg.env") in message


def test_refused_file_is_not_read_at_all(secrets_dir):
    # A FIFO with no writer: opening it must not block the helper.
    _fifo(secrets_dir)
    with pytest.raises(errors.SecretError):
        secrets.environment(["pg"], directory=secrets_dir)


def _chown_vdsm(path):
    os.chown(path, _uid("vdsm"), 0)


@pytest.mark.parametrize("change, reason", [
    pytest.param(lambda d, top: _chown_vdsm(d), "is owned by uid 36",
                 id="directory-of-vdsm"),
    pytest.param(lambda d, top: os.chmod(d, 0o770),
                 "may be written by group or others (mode 0770): chmod 700",
                 id="directory-group-writable"),
    pytest.param(lambda d, top: os.chmod(d, 0o1777), "mode 1777",
                 id="directory-sticky-world-writable"),
    pytest.param(lambda d, top: _chown_vdsm(os.path.dirname(d)),
                 "etc is owned by uid 36", id="parent-of-vdsm"),
    pytest.param(lambda d, top: os.chmod(os.path.dirname(d), 0o777),
                 "etc may be written by group or others (mode 0777): chmod "
                 "go-w", id="parent-world-writable"),
    pytest.param(lambda d, top: _chown_vdsm(top), "is owned by uid 36",
                 id="grandparent-of-vdsm"),
])
def test_directory_refused(secrets_dir, change, reason):
    _write(secrets_dir, "pg", b"K=" + CANARY.encode() + b"\n")
    top = os.path.dirname(os.path.dirname(secrets_dir))
    change(secrets_dir, top)
    with pytest.raises(errors.SecretsDirectoryError) as e:
        secrets.environment(["pg"], directory=secrets_dir)
    assert reason in _refused(e)
    with pytest.raises(errors.SecretsDirectoryError):
        secrets.inventory(secrets_dir)
    with pytest.raises(errors.SecretsDirectoryError):
        secrets.write("pg", b"K=v\n", directory=secrets_dir)


def test_sticky_parent_is_trusted(secrets_dir):
    # As /tmp or /var/tmp: only root renames root's entries there.
    os.chmod(os.path.dirname(secrets_dir), 0o1777)
    _write(secrets_dir, "pg", b"K=v\n")
    assert secrets.environment(["pg"], directory=secrets_dir) == [("K", "v")]


@pytest.mark.parametrize("link", [
    pytest.param("directory", id="directory"),
    pytest.param("parent", id="parent"),
])
def test_symlinked_directory_refused(tmp_path, link):
    real = tmp_path / "real" / "secrets"
    real.mkdir(parents=True, mode=0o700)
    _write(str(real), "pg", b"K=" + CANARY.encode() + b"\n")
    if link == "directory":
        (tmp_path / "secrets").symlink_to(real)
        directory = str(tmp_path / "secrets")
    else:
        (tmp_path / "etc").symlink_to(tmp_path / "real")
        directory = str(tmp_path / "etc" / "secrets")
    with pytest.raises(errors.SecretsDirectoryError) as e:
        secrets.environment(["pg"], directory=directory)
    message = _refused(e)
    assert "is a symbolic link" in message


C = CANARY.encode()


@pytest.mark.parametrize("data, reason", [
    pytest.param(b"A=1\n" + C + b"\n", "line 2 is not KEY=VALUE",
                 id="no-equals"),
    pytest.param(b"export PW=" + C, "line 1: what comes before the first "
                 "'=' is not a variable name", id="export"),
    pytest.param(b" PW=" + C, "line 1: what comes before", id="indented"),
    pytest.param(b"1PW=" + C, "line 1: what comes before", id="digit-key"),
    pytest.param(b"=" + C, "line 1: what comes before", id="no-key"),
    pytest.param(b"K" * 129 + b"=" + C, "at most 128", id="long-key"),
    pytest.param(b"PW=" + C + b"\n\n#\nPW=" + C + b"2\n",
                 "line 4 sets PW again (line 1 set it first)", id="twice"),
    pytest.param(b"A=1\nPW=" + C + b"\0x\n", "line 2 holds a NUL byte",
                 id="nul"),
    pytest.param(b"A=1\n\nPW=" + C + b"\xff\xfe\n",
                 "line 3 is not UTF-8 text", id="not-utf8"),
    pytest.param(b"PW=" + C + b"\xed\xa0\x80\n", "line 1 is not UTF-8",
                 id="surrogate"),
    pytest.param(b"PW=" + C + b"\r\n", "line 1 holds a carriage return",
                 id="crlf"),
    pytest.param(b"PW=" + C + b"\n" + b"#" * (64 * 1024), "larger than 64 "
                 "KiB", id="too-large"),
    pytest.param(b"".join(b"K%d=%s\n" % (i, C) for i in range(257)),
                 "more than 256 variables", id="too-many"),
])
def test_bad_file(secrets_dir, data, reason):
    path = _write(secrets_dir, "pg", data)
    with pytest.raises(errors.SecretError) as e:
        secrets.environment(["pg"], directory=secrets_dir)
    message = _refused(e)
    assert reason in message
    assert "Secret pg (%s)" % path in message
    # The same check when the file comes in through "secret set".
    with pytest.raises(errors.SecretError) as e:
        secrets.write("new", data, directory=secrets_dir)
    assert reason in _refused(e) and "(standard input)" in str(e.value)
    assert not os.path.exists(os.path.join(secrets_dir, "new.env"))


def test_largest_file_and_most_variables(secrets_dir):
    many = b"".join(b"K%d=v\n" % i for i in range(256))
    big = b"K=" + b"v" * (64 * 1024 - 3) + b"\n"
    assert len(big) == 64 * 1024
    for name, data in (("many", many), ("big", big)):
        _write(secrets_dir, name, data)
    env = secrets.environment(["many", "big"], directory=secrets_dir)
    assert len(env) == 257 and env[-1] == ("K", "v" * (64 * 1024 - 3))


@pytest.mark.parametrize("name", [
    pytest.param("../../etc/shadow", id="traversal"),
    pytest.param("a/b", id="slash"),
    pytest.param(".hidden", id="dot"),
    pytest.param("-rf", id="dash"),
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="too-long"),
    pytest.param("PASSWORD=" + CANARY, id="a-value"),
    pytest.param("pg\n", id="newline"),
    pytest.param(u"p\u00e4g", id="non-ascii"),
])
def test_bad_name_refused_and_not_echoed(secrets_dir, name):
    for call in (lambda: secrets.environment([name], directory=secrets_dir),
                 lambda: secrets.write(name, b"K=v\n",
                                       directory=secrets_dir),
                 lambda: secrets.remove(name, directory=secrets_dir)):
        with pytest.raises(errors.BadSecretName) as e:
            call()
        assert CANARY not in str(e.value)
        assert "Not a secret name" in str(e.value)
    assert os.listdir(secrets_dir) == []


def test_names_twice_or_too_many(secrets_dir):
    _write(secrets_dir, "pg", b"K=v\n")
    with pytest.raises(errors.SecretError) as e:
        secrets.environment(["pg", "x", "pg"], directory=secrets_dir)
    assert "Secret pg" in str(e.value) and "named twice" in str(e.value)
    with pytest.raises(errors.SecretError) as e:
        secrets.environment(["s%d" % i for i in range(17)],
                            directory=secrets_dir)
    assert "at most 16 secrets" in str(e.value)


def test_write_replaces_and_refusal_keeps_the_old(secrets_dir):
    secrets.write("pg", b"A=1\n", directory=secrets_dir)
    secrets.write("pg", b"B=2\n", directory=secrets_dir)
    assert secrets.environment(["pg"], directory=secrets_dir) == [("B", "2")]
    with pytest.raises(errors.SecretError) as e:
        secrets.write("pg", b"# nothing\n\n", directory=secrets_dir)
    assert "no KEY=VALUE line" in str(e.value)
    assert secrets.environment(["pg"], directory=secrets_dir) == [("B", "2")]
    assert os.listdir(secrets_dir) == ["pg.env"]


def test_write_replaces_a_symlink_not_its_target(secrets_dir, tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"untouched")
    os.symlink(str(target), os.path.join(secrets_dir, "pg.env"))
    secrets.write("pg", b"A=1\n", directory=secrets_dir)
    assert target.read_bytes() == b"untouched"
    assert secrets.environment(["pg"], directory=secrets_dir) == [("A", "1")]


def test_write_creates_the_directory(tmp_path):
    directory = str(tmp_path / "etc" / "secrets")
    old = os.umask(0o022)
    try:
        secrets.write("pg", b"A=1\n", directory=directory)
    finally:
        os.umask(old)
    st = os.stat(directory)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 0)
    assert secrets.environment(["pg"], directory=directory) == [("A", "1")]


def test_remove(secrets_dir):
    secrets.write("pg", b"A=1\n", directory=secrets_dir)
    secrets.remove("pg", directory=secrets_dir)
    assert os.listdir(secrets_dir) == []
    with pytest.raises(errors.SecretError) as e:
        secrets.remove("pg", directory=secrets_dir)
    assert "there is no such secret" in str(e.value)


def test_inventory_shows_keys_and_problems_never_values(secrets_dir):
    _write(secrets_dir, "pg", b"PW=" + C + b"\nUSER=app\n")
    _write(secrets_dir, "open", b"PW=" + C + b"\n", mode=0o644)
    _write(secrets_dir, "bad name", b"PW=" + C + b"\n")
    _write(secrets_dir, ".pg.xyz.tmp", b"PW=" + C + b"\n")
    found = secrets.inventory(secrets_dir)
    assert CANARY not in repr(found)
    assert [(i.name, i.keys, bool(i.problem)) for i in found] == [
        ("bad name", [], True), ("open", [], True),
        ("pg", ["PW", "USER"], False)]
    assert "mode 0644" in found[1].problem
    assert secrets.inventory(os.path.join(secrets_dir, "none")) == []


def test_readme_example_file(secrets_dir):
    # The README's example secret file is one, with the values it says.
    with open(os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "README.md"), "rb") as f:
        text = f.read().decode("utf-8")
    section = text[text.index("### Secrets"):text.index("## Networking")]
    block = section[section.index("    # comments"):]
    block = block[:block.index("\n\n")]
    data = "".join(l[4:] + "\n" for l in block.splitlines()).encode("utf-8")
    assert secrets.write("pg", data, directory=secrets_dir) == [
        "POSTGRES_PASSWORD", "POSTGRES_USER"]
    assert secrets.environment(["pg"], directory=secrets_dir) == [
        ("POSTGRES_PASSWORD", u"s3cr=t with spaces, # and \u00fcn\u00efc"
         u"\u00f6d\u00e9"), ("POSTGRES_USER", "app")]
