"""The last lines a container printed, for its VM's exit message.

When a container ends on its own, the exit watcher adds what it printed
last to the exit record's message (exits.message), which the stats hooks
give Engine as the Down VM's exitMessage, and which Engine shows as "VM X
is down with error. <message>" (ovirt-engine VdsBrokerObjectsBuilder
updateVmDynamicData reads exitMessage):

    container exited with code 3 (error): connecting to db:5432 | FATAL: password authentication failed

The output is the tenant's program's: it may hold escape sequences,
control characters, megabytes without a newline, and the values of the
host secrets the container was given (a program that prints its
environment on failure).  So:

- at most MAX_READ bytes are read from the engine, of the last READ_LINES
  lines it keeps;
- escape sequences are removed and every other control, format or
  separator character becomes a space (as engine.clean_text does for
  registry errors);
- every value of a host secret is replaced with REDACTED before anything
  is cut: the values of the container's variables that came from its
  secrets (the record's secret_keys, read from what the engine says the
  container's environment is: what it really got, even if the secret file
  changed since), and the values in the host's secret files now (a record
  from before secret_keys was kept);
- the last MAX_LINES non-empty lines, joined with " | ", at most
  MAX_CHARS characters (the end is kept: the last line says most).
"""

import logging
import re
import unicodedata

import six

log = logging.getLogger("containerhooks.lastwords")

MAX_LINES = 3
MAX_CHARS = 400
READ_LINES = 20
MAX_READ = 256 * 1024
KEEP = 64 * 1024
REDACTED = "***"
SEPARATOR = u" | "

# The escape sequences engine.clean_text removes: CSI, OSC, two-character
# escapes, 8-bit CSI.
_ESCAPE_RE = re.compile(
    u"\x1b\\[[0-?]*[ -/]*[@-~]"
    u"|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"
    u"|\x1b[@-Z\\\\-_]"
    u"|\x9b[0-?]*[ -/]*[@-~]")
_LINE_BREAK_RE = re.compile(u"[\r\n\x0b\x0c\x85\u2028\u2029]+")


def read_tail(chunks, max_read=MAX_READ, keep=KEEP):
    """The end (at most keep bytes) of what chunks (the engine's log
    stream) gives, reading at most max_read bytes."""
    data = b""
    total = 0
    for chunk in chunks:
        if not isinstance(chunk, bytes):
            chunk = six.text_type(chunk).encode("utf-8")
        total += len(chunk)
        data = (data + chunk)[-keep:]
        if total >= max_read:
            break
    return data


def last_lines(data, secrets=(), max_lines=MAX_LINES, max_chars=MAX_CHARS):
    """The last max_lines printable lines of data (bytes), secrets
    (values) redacted, as one line of at most max_chars characters; ""
    when it printed nothing."""
    if isinstance(data, bytes):
        text = data.decode("utf-8", "replace")
    else:
        text = six.text_type(data)
    values = _values(secrets)
    text = _redact(text, values)
    lines = []
    for line in _LINE_BREAK_RE.split(text):
        line = _printable(line)
        # Again once spaces are collapsed: a value with runs of spaces or
        # tabs reads that way now.
        line = _redact(line, [u" ".join(v.split()) for v in values])
        if line:
            lines.append(line)
    text = SEPARATOR.join(lines[-max_lines:])
    if len(text) > max_chars:
        text = u"..." + text[-(max_chars - 3):].lstrip()
    return text


def secret_values(env, secret_keys, host_values=()):
    """The values to redact: those of env (["KEY=VALUE", ...], the
    container's environment as the engine reports it) whose key is in
    secret_keys, and host_values."""
    keys = set(secret_keys or ())
    values = set(v for v in host_values if v)
    for item in env or ():
        key, _, value = six.text_type(item).partition(u"=")
        if key in keys and value:
            values.add(value)
    return values


def host_secret_values():
    """Every value of every readable secret file of the host (root)."""
    from containerhooks import errors
    from containerhooks import secrets
    values = set()
    try:
        found = secrets.inventory()
    except (errors.Error, IOError, OSError) as e:
        log.warning("cannot list the host's secrets to redact them: %s", e)
        return values
    for info in found:
        if info.problem:
            continue
        try:
            values.update(v for _, v in secrets.environment([info.name]))
        except (errors.Error, IOError, OSError) as e:
            log.warning("cannot read secret %s to redact it: %s",
                        info.name, e)
    return values


def _values(secrets):
    values = [six.text_type(v) if not isinstance(v, bytes)
              else v.decode("utf-8", "replace") for v in secrets if v]
    # Longest first: a value that holds another is redacted whole.
    return sorted(set(values), key=len, reverse=True)


def _redact(text, values):
    for value in values:
        if value:
            text = text.replace(value, REDACTED)
    return text


def _printable(line):
    line = _ESCAPE_RE.sub(u" ", line)
    line = u"".join(u" " if unicodedata.category(c)[0] in "CZ" else c
                    for c in line)
    return u" ".join(line.split())
