"""Run a program, never through a shell.

One wrapper for every command the package runs.  Arguments are passed as a
list, so nothing a user typed is ever interpreted by a shell.
"""

import logging
import subprocess

import six

from containerhooks import errors

log = logging.getLogger("containerhooks.commands")


def run(cmd, data=None, env=None):
    """Run cmd (a list), return its stdout as text; raise CommandError."""
    log.debug("Running %s", cmd)
    p = subprocess.Popen(
        # UTF-8, whatever the locale: Python 3.6 in the C locale encodes
        # text arguments as ASCII and fails on a VM's non-ASCII property
        # value (hookenv.text).
        [a.encode("utf-8") if isinstance(a, six.text_type) else a
         for a in cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        close_fds=True,
    )
    if data is not None and isinstance(data, six.text_type):
        data = data.encode("utf-8")
    out, err = p.communicate(data or b"")
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    if p.returncode != 0:
        raise errors.CommandError(cmd=cmd, rc=p.returncode, out=out,
                                  err=err.strip())
    return out
