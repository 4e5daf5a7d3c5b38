"""The host's registry credentials, where each engine keeps them (root side).

Credentials are never a VM's business: an admin logs in on the host with
the engine's own tool, and the root helper reads the file containers.conf
names for that engine, never whatever root's $HOME or the environment
would point at:

- docker_auth_file (default /root/.docker/config.json): what
  "docker login REGISTRY" writes for root.  dockerd itself never reads it:
  the client sends the registry's credentials with each pull, and here the
  helper is that client (engine.py).
- podman_auth_file (default /etc/containers/auth.json): "podman login"
  as root writes ${XDG_RUNTIME_DIR}/containers/auth.json, which for root
  without a session is /run/containers/0/auth.json: under /run, gone at
  the next boot.  So the package reads a file that persists, written with
  "podman login --authfile /etc/containers/auth.json REGISTRY".  Its
  format (containers-auth.json(5)) is Docker's.

The helper hands the engine only the entry of the image's registry, with
the pull; nothing of it is logged, recorded or put in a message.  The
file being root's is checked before it is used (a file another user could
write would let them choose what the host pulls with).  An absent file
means no credentials: public registries still work.  How the engine
reaches a registry (CA files in certs.d, Podman's registries.conf mirrors
and blocked registries) stays the engine's own configuration.
"""

import collections
import errno
import json
import os
import stat

import six

from containerhooks import errors

# Largest credentials file read (a few entries are a few hundred bytes).
MAX_SIZE = 1 << 20

# containers.conf key of each engine's file.
KEYS = {"docker": "docker_auth_file", "podman": "podman_auth_file"}

# Where "docker login" as root writes, without --config.
DOCKER_DEFAULT = "/root/.docker/config.json"

# Docker Hub's names in credentials files ("docker login" writes the
# first; the others mean the same registry).
DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "docker.io")


class AuthFile(collections.namedtuple("AuthFile",
                                      "engine, path, data, conf")):
    """One engine's credentials file: data is its JSON object ({} when the
    file does not exist), conf the containers.conf that names it."""

    @property
    def key(self):
        return KEYS[self.engine]

    def registries(self):
        """The registries this file has credentials for (sorted names)."""
        return registries(self.data)

    def fix(self, registry, again=False):
        """What the admin runs so that the helper finds (the right, again)
        credentials for registry in this file."""
        return ("Log in to %s on this host%s: '%s' (credentials file %s, %s "
                "in %s)" % (registry, " again with the right user and "
                            "password" if again else "",
                            login_command(self.engine, registry, self.path),
                            self.path, self.key, self.conf))


def load(engine, conf):
    """The AuthFile of engine by conf (config.Config); CredentialsFileError
    if it cannot be used."""
    path = conf.auth_files[engine]
    return AuthFile(engine=engine, path=path, data=read(path, KEYS[engine],
                                                        conf.path),
                    conf=conf.path)


def read(path, key="auth file", conf="containers.conf"):
    """The JSON object of the credentials file path, {} if there is none.

    It must be a regular file of root's that no one else can write.  (A
    symlink is followed: the file it leads to is checked.)"""
    def refuse(reason):
        return errors.CredentialsFileError(path=path, key=key, conf=conf,
                                           reason=reason)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENOENT:
            return {}
        raise refuse(e.strerror or str(e))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse("not a regular file")
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise refuse("it is not a file only root can write (owner uid "
                         "%d, mode %o): chown root:root and chmod 600 it"
                         % (st.st_uid, stat.S_IMODE(st.st_mode)))
        if st.st_size > MAX_SIZE:
            raise refuse("larger than %d bytes" % MAX_SIZE)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"))
    except (ValueError, UnicodeError) as e:
        # The decoder's message quotes no text of the file, only where.
        raise refuse("not JSON (%s)" % type(e).__name__)
    if not isinstance(data, dict):
        raise refuse("not a JSON object")
    return data


def registries(data):
    """The registries a credentials file's data has credentials for:
    the names of "auths" (as hostnames) and "credHelpers", sorted; a
    "credsStore" (a credential helper for every registry) is shown as
    "* (credsStore NAME)"."""
    names = set()
    for section in ("auths", "credHelpers"):
        entries = data.get(section)
        if isinstance(entries, dict):
            names.update(hostname(k) for k in entries)
    found = sorted(n for n in names if n)
    store = data.get("credsStore")
    if store:
        found.append("* (credsStore %s)" % store)
    return found


def hostname(key):
    """The registry of a credentials file's key: "https://index.docker.io/
    v1/" is docker.io, "registry.example.com/team" (Podman's per-namespace
    entries) registry.example.com."""
    if not isinstance(key, six.string_types):
        return ""
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
    host = key.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def login_command(engine, registry, path):
    """The command that stores credentials for registry where the package
    reads them (path: the engine's auth file)."""
    if engine == "podman":
        return "podman login --authfile %s %s" % (path, registry)
    if path == DOCKER_DEFAULT:
        return "docker login %s" % registry
    directory, name = os.path.split(path)
    if name == "config.json":
        return "docker --config %s login %s" % (directory, registry)
    return ("docker login %s, then copy /root/.docker/config.json to %s"
            % (registry, path))
