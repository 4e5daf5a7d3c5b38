"""Secrets: root-only files of environment variables for containers.

A VM names secrets in its containerSecrets custom property -- names only:
Engine and Vdsm log custom properties in full.  Each name is a file
``<SECRETS_DIR>/<name>.env`` on the host, written by root ("vdsm-containers
secret set NAME", the lines on standard input) and read by the root helper
when it creates the VM's container, whose environment gets its variables.
Values never pass through Engine, Vdsm, the hooks, argv or a log, and no
message here holds one: errors name the file, a line number or a key.

The format: one ``KEY=VALUE`` per line, UTF-8; KEY is a containerEnv key
(``[A-Za-z_][A-Za-z0-9_]{0,127}``), VALUE the rest of the line as it is (no
quotes, no escapes; ``=``, ``#``, spaces and any letter are part of it);
blank lines and lines starting with ``#`` are ignored.

The trust boundary: root uses a file only if nobody but root can have
written it.  The directory and each directory above it are real directories
(lstat: no symbolic link on the way) of root's that only root may write (an
ancestor may be sticky, as /var/tmp: there only root moves root's entries);
each file is opened without following a link and must be a regular file of
root's that nobody else may read or write.
"""

import collections
import errno
import logging
import os
import stat
import tempfile

from containerhooks import errors
from containerhooks import paths
from containerhooks import properties

log = logging.getLogger("containerhooks.secrets")

SUFFIX = ".env"

# Bounds: a secret is a handful of passwords and tokens, not a data file.
# 16 secrets of 64 KiB stay far below what the kernel takes as a process's
# environment (one string up to 128 KiB, all of them with argv about a
# quarter of the stack limit).
MAX_SIZE = 64 * 1024
MAX_VARIABLES = 256
MAX_SECRETS = properties.MAX_SECRETS

# A secret's name and its keys: containerSecrets' and containerEnv's own
# grammar (properties.py), so that what a VM may name is what can exist.
_NAME_RE = properties.SECRET_NAME_RE
NAME_GRAMMAR = "1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"

_KEY_RE = properties.ENV_KEY_RE

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

# What "secret list" and "check" show of a secret file: never a value.
Info = collections.namedtuple("Info", "name path keys problem")


def path(name, directory=None):
    """Where secret name lives (name checked first)."""
    check_name(name)
    return os.path.join(directory or paths.SECRETS_DIR, name + SUFFIX)


def check_name(name):
    # The name is not echoed: "secret set PASSWORD=..." would print it.
    if not _NAME_RE.match(name):
        raise errors.BadSecretName(grammar=NAME_GRAMMAR)
    return name


def environment(names, directory=None):
    """[(key, value), ...]: the variables of the secrets names, in order.

    Called by the root helper at container create.  Refuses, with what to
    do, a missing secret (MissingSecret), a file or directory that someone
    other than root may have written or may read, a bad file (line number,
    never a value), and one key in two secrets (SecretConflict)."""
    directory = directory or paths.SECRETS_DIR
    names = [check_name(n) for n in names]
    if len(names) > MAX_SECRETS:
        raise errors.SecretError(
            name=",".join(names), path=directory,
            reason="at most %d secrets per VM" % MAX_SECRETS)
    if len(set(names)) != len(names):
        twice = sorted(n for n in set(names) if names.count(n) > 1)
        raise errors.SecretError(name=twice[0], path=directory,
                                 reason="named twice")
    if not names:
        return []
    if not check_directory(directory):
        raise errors.MissingSecret(name=names[0], path=path(names[0],
                                                            directory))
    env = []
    origin = {}
    for name in names:
        for key, value in _read(name, directory):
            if key in origin:
                raise errors.SecretConflict(key=key, first=origin[key],
                                            second=name)
            origin[key] = name
            env.append((key, value))
    log.debug("secrets %s: %d variables", ",".join(names), len(env))
    return env


def check_directory(directory=None):
    """True if directory exists and only root can have put anything in it,
    False if it does not exist; else SecretsDirectoryError."""
    directory = directory or paths.SECRETS_DIR
    if not os.path.isabs(directory) or \
            os.path.normpath(directory) != directory:
        raise errors.SecretsDirectoryError(
            path=directory, reason="not an absolute, normalized path")
    chain = [directory]
    while chain[-1] != os.path.dirname(chain[-1]):
        chain.append(os.path.dirname(chain[-1]))
    for d in reversed(chain):
        try:
            st = os.lstat(d)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise errors.SecretsDirectoryError(
                path=directory, reason="cannot look at %s: %s"
                % (d, e.strerror))
        problem = _directory_problem(d, st, last=d == directory)
        if problem:
            raise errors.SecretsDirectoryError(path=directory, reason=problem)
    return True


def _directory_problem(d, st, last):
    if stat.S_ISLNK(st.st_mode):
        return ("%s is a symbolic link: root does not follow links to "
                "secrets" % d)
    if not stat.S_ISDIR(st.st_mode):
        return "%s is not a directory" % d
    if st.st_uid != 0:
        return "%s is owned by uid %d, not root: chown root:root %s" % (
            d, st.st_uid, d)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and (last or not mode & stat.S_ISVTX):
        return ("%s may be written by group or others (mode %04o): chmod "
                "%s %s" % (d, mode, "700" if last else "go-w", d))
    return None


def _read(name, directory):
    """The variables of secret name; the directory is checked already."""
    where = os.path.join(directory, name + SUFFIX)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | _CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise errors.MissingSecret(name=name, path=where)
        if e.errno == errno.ELOOP:
            raise errors.SecretError(
                name=name, path=where, reason="it is a symbolic link; a "
                "secret is a regular file (vdsm-containers secret set %s)"
                % name)
        raise errors.SecretError(name=name, path=where,
                                 reason="cannot open it: %s" % e.strerror)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            reason = "it is not a regular file"
        elif st.st_uid != 0:
            reason = "it is owned by uid %d, not root: chown root:root %s" % (
                st.st_uid, where)
        elif st.st_mode & 0o077:
            reason = ("group or others may access it (mode %04o): chmod 600 "
                      "%s" % (stat.S_IMODE(st.st_mode), where))
        else:
            reason = None
        if reason:
            raise errors.SecretError(name=name, path=where, reason=reason)
        data = _read_fd(fd, MAX_SIZE + 1)
    finally:
        os.close(fd)
    return parse(data, name, where)


def _read_fd(fd, limit):
    chunks = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse(data, name, source):
    """[(key, value), ...] of a secret file's bytes; source (a path, or
    "standard input") names them in errors, which never hold a value."""
    def bad(reason):
        return errors.SecretError(name=name, path=source, reason=reason)

    if len(data) > MAX_SIZE:
        raise bad("larger than %d KiB" % (MAX_SIZE // 1024))
    if b"\0" in data:
        raise bad("line %d holds a NUL byte, which no environment variable "
                  "can" % (data[:data.index(b"\0")].count(b"\n") + 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # Not str(e): it shows the offending byte, a piece of a value.
        raise bad("line %d is not UTF-8 text" % (
            data[:e.start].count(b"\n") + 1))
    variables = []
    seen = {}
    # "\n" only: splitlines() would also end a line at \v, \f, \x1c-\x1e,
    # \x85, U+2028 and U+2029, which a value may hold.
    for number, line in enumerate(text.split(u"\n"), 1):
        if not line.strip() or line.startswith(u"#"):
            continue
        if u"\r" in line:
            raise bad("line %d holds a carriage return (Windows line ends?): "
                      "write the file with Unix line ends" % number)
        key, sep, _ = line.partition(u"=")
        if not sep:
            raise bad("line %d is not KEY=VALUE" % number)
        if not _KEY_RE.match(key):
            raise bad("line %d: what comes before the first '=' is not a "
                      "variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128 "
                      "characters)" % number)
        if key in seen:
            raise bad("line %d sets %s again (line %d set it first)"
                      % (number, key, seen[key]))
        if len(variables) == MAX_VARIABLES:
            raise bad("more than %d variables" % MAX_VARIABLES)
        seen[key] = number
        variables.append((str(key), line[len(key) + 1:]))
    return variables


def write(name, data, directory=None, source="standard input"):
    """Check data (the bytes of a secret file) and make it secret name,
    atomically (a temporary file renamed over it), 0600 root:root; create
    the directory 0700 if there is none.  Returns the keys."""
    directory = directory or paths.SECRETS_DIR
    where = path(name, directory)
    keys = [k for k, _ in parse(data, name, source)]
    if not keys:
        raise errors.SecretError(name=name, path=source,
                                 reason="no KEY=VALUE line; nothing written")
    if not check_directory(directory):
        _make_directory(directory)
        check_directory(directory)
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp",
                               dir=directory)
    done = False
    try:
        try:
            # mkstemp makes it 0600 and ours; say so whatever the umask.
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o600)
            rest = data
            while rest:
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, where)
        done = True
    finally:
        if not done:
            os.unlink(tmp)
    _fsync(directory)
    log.info("secret %s written: keys %s", name, ",".join(keys))
    return keys


def _make_directory(directory):
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    try:
        os.mkdir(directory, 0o700)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    else:
        os.chmod(directory, 0o700)   # whatever the umask


def _fsync(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(name, directory=None):
    """Remove secret name; SecretError if there is none."""
    directory = directory or paths.SECRETS_DIR
    where = path(name, directory)
    missing = errors.SecretError(
        name=name, path=where, reason="there is no such secret "
        "(vdsm-containers secret list)")
    if not check_directory(directory):
        raise missing
    try:
        os.unlink(where)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise missing
        raise
    _fsync(directory)
    log.info("secret %s removed", name)


def inventory(directory=None):
    """[Info, ...]: every secret file of the directory, its keys or what
    is wrong with it (never a value); [] if there is no directory."""
    directory = directory or paths.SECRETS_DIR
    if not check_directory(directory):
        return []
    found = []
    for entry in sorted(os.listdir(directory)):
        # Dot files: write()'s temporary files, or nothing of ours.
        if not entry.endswith(SUFFIX) or entry.startswith("."):
            continue
        name = entry[:-len(SUFFIX)]
        where = os.path.join(directory, entry)
        if not _NAME_RE.match(name):
            found.append(Info(name, where, [], "not a secret name (%s): "
                              "containerSecrets cannot name it"
                              % NAME_GRAMMAR))
            continue
        try:
            keys = [k for k, _ in _read(name, directory)]
        except errors.SecretError as e:
            found.append(Info(name, where, [], str(e)))
        else:
            found.append(Info(name, where, keys, None))
    return found
