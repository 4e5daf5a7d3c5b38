"""Registries on 127.0.0.1 for the tests: unreachable or hostile ones for
the fault tests, and a private one (Private: TLS and authentication).

- Stalling: accepts every connection and never answers a byte, as a
  registry behind a black-holing firewall or a hung proxy does;
- free_port(): a port where nothing listens (connections are refused).

Stalling runs in a thread of the test process and is bounded: it closes
every connection and stops by itself after LIFETIME seconds, even if the
test never stops it.

No registries.conf.d drop-in marks them insecure for Podman: its API
service reads the registries configuration once, when it starts (a
drop-in written later has no effect until it restarts), and for these two
it makes no difference: the TLS handshake Podman then tries stalls or is
refused like plain HTTP would be.  (A registry that is slow on purpose is
the local one, paused: daemons.paused("registry").)
"""

import base64
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time

LIFETIME = 120


def free_port(host="127.0.0.1"):
    """A port on host where nothing listens."""
    s = socket.socket()
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Stalling(object):
    """Accepts every connection, then says nothing, until it stops."""

    def __init__(self, lifetime=LIFETIME):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self.connections = []       # kept open, never read, never answered
        self._stop = threading.Event()
        self._deadline = time.time() + lifetime
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def image(self, path="vhc-tests/busybox-httpd:1"):
        """An image reference on this registry."""
        return "%s/%s" % (self.address, path)

    def _serve(self):
        try:
            while not self._stop.is_set() and time.time() < self._deadline:
                ready, _, _ = select.select([self._listener], [], [], 0.1)
                if ready:
                    self.connections.append(self._listener.accept()[0])
        finally:
            self._listener.close()
            for conn in self.connections:
                conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Hostile(object):
    """A registry (plain HTTP, as Docker speaks to any 127.0.0.0/8 one)
    whose /v2/ check passes and whose every other answer is an error whose
    text is hostile: ANSI escapes, newlines, other control characters and a
    body of body_size bytes.  It stops by itself after lifetime seconds."""

    # What a tenant's registry could put in its error message.
    HOSTILE = (u"\x1b[2J\x1b[31mEVIL\x1b[0m\r\nline two\x07\x08\x00"
               u"\x7f\u202e\u0085tail ")

    def __init__(self, body_size=1024 * 1024, lifetime=LIFETIME):
        import http.server
        import socketserver
        message = (self.HOSTILE * (body_size // len(self.HOSTILE) + 1))[
            :body_size]
        body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                       "message": message,
                                       "detail": message}]},
                          ensure_ascii=False).encode("utf-8")
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path == "/v2/":
                    self._send(200, b"{}")
                else:
                    self._send(404, body)

            do_HEAD = do_GET

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Docker-Distribution-API-Version",
                                 "registry/2.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def image(self, path="vhc-tests/busybox-httpd:1"):
        return "%s/%s" % (self.address, path)

    def close(self):
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Private(object):
    """A private registry, as an enterprise runs one: TLS with a
    certificate of the test's own CA, and htpasswd authentication, on host
    (an address of this machine; see Address for why not 127.0.0.1).

    Debian's docker-registry (distribution 2.8), run as a process of its
    own (start(), stop() by its pid), with its files in directory: the CA
    and server certificate (openssl), the htpasswd file (bcrypt from
    Python's crypt module: libxcrypt makes "$2b$" hashes), its storage and
    its log.  It does not stop by itself: the fixture that starts it stops
    it.

    trust() makes the engines trust its CA the way an admin does, each in
    its own place: /etc/docker/certs.d/<host:port>/ca.crt for Docker,
    /etc/containers/certs.d/<host:port>/ca.crt for Podman (read at each
    pull; no daemon restarts).  untrust() removes exactly what trust()
    made.
    """

    REALM = "vhc-tests"
    CERT_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d")

    def __init__(self, directory, users, host="127.0.0.1"):
        self.directory = directory
        self.users = dict(users)
        self.host = host
        self.port = free_port(host)
        self.address = "%s:%d" % (host, self.port)
        self.ca = os.path.join(directory, "ca.crt")
        self.log = os.path.join(directory, "registry.log")
        self._proc = None
        self._trusted = []

    def image(self, path="vhc-tests/busybox-httpd:1"):
        return "%s/%s" % (self.address, path)

    def start(self, timeout=30):
        d = self.directory
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", "/CN=vhc-tests private registry CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", os.path.join(d, "ca.key"), "-out", self.ca)
        _openssl("req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", "/CN=" + self.host,
                 "-keyout", os.path.join(d, "server.key"),
                 "-out", os.path.join(d, "server.csr"))
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName = IP:%s\n" % self.host +
                    "extendedKeyUsage = serverAuth\n"
                    "basicConstraints = CA:FALSE\n")
        _openssl("x509", "-req", "-in", os.path.join(d, "server.csr"),
                 "-CA", self.ca, "-CAkey", os.path.join(d, "ca.key"),
                 "-CAcreateserial", "-days", "2", "-extfile", ext,
                 "-out", os.path.join(d, "server.crt"))
        with open(os.path.join(d, "htpasswd"), "w") as f:
            for user, password in sorted(self.users.items()):
                f.write("%s:%s\n" % (user, bcrypt(password)))
        conf = os.path.join(d, "registry.yml")
        with open(conf, "w") as f:
            f.write(PRIVATE_CONF % {"dir": d, "addr": self.address,
                                    "realm": self.REALM})
        log = open(self.log, "ab")
        try:
            self._proc = subprocess.Popen(
                ["docker-registry", "serve", conf], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=d,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.time() + timeout
        while not self._answers():
            if self._proc.poll() is not None or time.time() > deadline:
                self.stop()
                with open(self.log) as f:
                    raise AssertionError("the private registry did not "
                                         "start:\n" + f.read()[-2000:])
            time.sleep(0.05)
        return self

    def _answers(self):
        try:
            socket.create_connection((self.host, self.port), 1).close()
            return True
        except OSError:
            return False

    def stop(self):
        """Stop the registry process by its pid."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def trust(self):
        for base in self.CERT_DIRS:
            d = os.path.join(base, self.address)
            if os.path.exists(d):
                raise AssertionError("%s exists already" % d)
            # certs.d itself too, if this machine has none yet.
            if not os.path.isdir(base):
                os.mkdir(base)
                self._trusted.append(base)
            os.mkdir(d)
            self._trusted.append(d)
            shutil.copy(self.ca, os.path.join(d, "ca.crt"))

    def untrust(self):
        """Remove what trust() made, last made first: its host:port
        directories, and certs.d if it made that and it is empty now."""
        while self._trusted:
            made = self._trusted.pop()
            if os.path.basename(made) == self.address:
                shutil.rmtree(made)
            else:
                try:
                    os.rmdir(made)
                except OSError:
                    pass    # somebody else's files in it now

    def manifest_digest(self, path, tag, user):
        """The registry's digest of the manifest of path:tag, as user."""
        return manifest_digest(self.address, path, tag, scheme="https",
                               auth=(user, self.users[user]),
                               cafile=self.ca)


class Address(object):
    """An address of this machine that is not on 127.0.0.0/8, for the
    private registry: a bridge of its own with one /32 of TEST-NET-2
    (RFC 5737: never routed), removed by remove().

    Not 127.0.0.1: Docker counts every registry on 127.0.0.0/8 as
    insecure (its default insecure-registries), and for those it skips
    the certificate check and, when the registry answers 401 to a pull
    without credentials, falls back to plain HTTP on the TLS port: the
    admin would read "connection reset by peer" instead of what a real
    registry's refusal says.  On this address Docker treats the registry
    as a host's remote one: it verifies the CA of certs.d, and reports
    the 401."""

    BRIDGE = "vhcreg0"
    IP = "198.51.100.73"

    def create(self):
        import lan
        lan.run("ip", "link", "add", "name", self.BRIDGE, "type", "bridge")
        try:
            lan.run("ip", "addr", "add", self.IP + "/32", "dev", self.BRIDGE)
            lan.run("ip", "link", "set", self.BRIDGE, "up")
        except Exception:
            self.remove()
            raise
        return self.IP

    def remove(self):
        import lan
        lan.run("ip", "link", "del", self.BRIDGE)


MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json"))

PRIVATE_CONF = """version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %(dir)s/data
  delete:
    enabled: true
http:
  addr: %(addr)s
  tls:
    certificate: %(dir)s/server.crt
    key: %(dir)s/server.key
auth:
  htpasswd:
    realm: %(realm)s
    path: %(dir)s/htpasswd
"""


def _openssl(*args):
    subprocess.run(("openssl",) + args, check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)


def bcrypt(password):
    """A bcrypt hash of password, as htpasswd -B makes (cost 5: the
    registry checks it at every request)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH,
                                              rounds=1 << 5))


def manifest_digest(address, path, tag, scheme="http", auth=None,
                    cafile=None):
    """The digest the registry at address gives the manifest of path:tag
    (its Docker-Content-Digest header); auth: (user, password)."""
    import ssl
    import urllib.request
    request = urllib.request.Request(
        "%s://%s/v2/%s/manifests/%s" % (scheme, address, path, tag),
        method="HEAD", headers={"Accept": MANIFEST_TYPES})
    if auth:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    context = ssl.create_default_context(cafile=cafile) \
        if scheme == "https" else None
    with urllib.request.urlopen(request, context=context,
                                timeout=30) as answer:
        return answer.headers["Docker-Content-Digest"]
