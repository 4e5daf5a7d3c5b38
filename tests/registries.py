"""Registries that cannot be reached, on 127.0.0.1, for the fault tests.

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

import select
import socket
import threading
import time

LIFETIME = 120


def free_port():
    """A port on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
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
