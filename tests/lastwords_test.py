"""The last lines of a container's output in its exit message: bounded,
printable, host secrets redacted (lastwords.py).  The end-to-end case, a
real container printing its environment, is in statsnap_test.py."""

import pytest

from containerhooks import exits
from containerhooks import lastwords


@pytest.mark.parametrize("data, expected", [
    pytest.param(b"", "", id="nothing"),
    pytest.param(b"one\n", "one", id="one-line"),
    pytest.param(b"1\n2\n3\n4\n5\n", "3 | 4 | 5", id="last-three"),
    pytest.param(b"a\n\n  \n\r\nb\n\n", "a | b", id="blank-lines-skipped"),
    pytest.param(b"\x1b[31mred\x1b[0m \x07bell\ttab\x00nul", "red bell tab nul",
                 id="escapes-and-controls"),
    pytest.param(b"progress 10%\rprogress 100%\n", "progress 10% | progress 100%",
                 id="carriage-return-is-a-break"),
    pytest.param(u"caf\u00e9 \u202eevil\u2028next".encode("utf-8"),
                 u"caf\u00e9 evil | next", id="bidi-and-separators"),
    pytest.param(b"\xff\xfebad utf-8", u"\ufffd\ufffdbad utf-8",
                 id="invalid-utf-8"),
])
def test_last_lines(data, expected):
    assert lastwords.last_lines(data) == expected


def test_bounded_keeps_the_end():
    text = lastwords.last_lines(b"x" * 5000 + b" the end\n")
    assert len(text) == lastwords.MAX_CHARS
    assert text.startswith("...") and text.endswith("x the end")


@pytest.mark.parametrize("secret", [
    "s3cr=t with spaces, # and \u00fcn\u00efc\u00f6d\u00e9",
    "short",
    "a  b\tc",                       # whitespace runs: collapsed on output
])
def test_secret_redacted(secret):
    data = ("starting\nPASSWORD=%s\nfailed: %s!\n" % (secret, secret))
    text = lastwords.last_lines(data.encode("utf-8"), [secret])
    assert text == "starting | PASSWORD=*** | failed: ***!"


def test_longer_secret_redacted_whole():
    text = lastwords.last_lines(b"pw=abcdef\n", ["abc", "abcdef"])
    assert text == "pw=***"


def test_secret_values_from_env_and_host():
    env = ["PATH=/usr/bin", "DB_PASSWORD=from-env", "EMPTY=",
           "OTHER=x=y"]
    values = lastwords.secret_values(env, ["DB_PASSWORD", "EMPTY"],
                                     ["from-file", ""])
    assert values == {"from-env", "from-file"}


def test_read_tail_is_bounded():
    chunks = iter([b"a" * 1000] * 1000)     # 1 MB, no newline
    data = lastwords.read_tail(chunks, max_read=10000, keep=4000)
    assert len(data) == 4000
    assert next(chunks) == b"a" * 1000      # stopped reading


def test_exit_message_with_output():
    assert exits.message(3, output="connecting | refused") == \
        "container exited with code 3 (error): connecting | refused"
    assert exits.message(0, output="") == \
        "container exited with code 0 (success)"


def test_secret_keys_are_the_variables_not_from_container_env():
    from containerhooks import appconfig
    from containerhooks.spec import NO_APP
    app = NO_APP._replace(env="GREETING=hi,TZ=UTC", secrets="pg")
    options = {"environment": ["GREETING=hi", "TZ=UTC",
                               "POSTGRES_PASSWORD=x=y", "API_TOKEN=t"]}
    assert appconfig.secret_keys(app, options) == ["POSTGRES_PASSWORD",
                                                   "API_TOKEN"]
    assert appconfig.secret_keys(NO_APP, {}) == []
