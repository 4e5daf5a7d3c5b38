"""A serial console client as ovirt-vmconsole-host-shell is one.

On a host, the admin's ssh session ends in ovirt-vmconsole-host-shell,
run as user ovirt-vmconsole: it checks that it may read and write the
VM's socket (else "Console ... is not available"), connects to it as a
plain AF_UNIX stream client and copies bytes both ways, its own terminal
in raw mode, so Enter arrives as a CR (ovirt-vmconsole's
ovirt_vmconsole_host_shell/__main__.py doConnect and socketproxy.py).
Client does the same in a process of that user; the tests (and the demo)
type with send() and read with expect().
"""

import os
import select
import stat
import subprocess
import time

USER = "ovirt-vmconsole"
# How long the watcher may take to serve a console once the container
# runs (it looks every console.SYNC_INTERVAL, and at once on the engine's
# start event).
SERVE_TIMEOUT = 10


CLIENT = r"""
import os, select, socket, sys
path = sys.argv[1]
# ovirt-vmconsole-host-shell's doConnect, then socketproxy.Proxy.
if not os.access(path, os.F_OK | os.R_OK | os.W_OK):
    sys.stderr.write("Console is not available\n")
    sys.exit(3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
while True:
    r, _, _ = select.select([s, 0], [], [])
    if s in r:
        data = s.recv(4096)
        if not data:
            break
        while data:
            data = data[os.write(1, data):]
    if 0 in r:
        data = os.read(0, 4096)
        if not data:
            break
        s.sendall(data)
"""


class Client(object):
    """A console connection as ovirt-vmconsole-host-shell makes it, run as
    user ovirt-vmconsole; send() types, expect() waits for output."""

    def __init__(self, path, user=USER):
        self.proc = subprocess.Popen(
            ["runuser", "-u", user, "--", "/usr/bin/python3", "-c", CLIENT,
             path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.out = b""

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def expect(self, text, timeout=10):
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while text not in self.out:
            left = deadline - time.time()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("no %r in the console within %ss: %r"
                                     % (text, timeout, self.out))
            data = os.read(fd, 4096)
            if not data:
                self.proc.wait(10)
                raise AssertionError("the console closed without %r: %r"
                                     % (text, self.out + self.stderr()))
            self.out += data

    def ended(self, timeout=10):
        """The client's exit code once the console closed it."""
        return self.proc.wait(timeout)

    def stderr(self):
        return self.proc.stderr.read() if self.proc.poll() is not None \
            else b""

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_served(path, timeout=SERVE_TIMEOUT):
    """Seconds until path is a socket; fails after timeout."""
    start_time = time.time()
    while time.time() - start_time < timeout:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                return time.time() - start_time
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("%s was not served within %ss" % (path, timeout))
