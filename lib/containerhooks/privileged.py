"""Calling the root helper from a hook.

Hooks run as vdsm; the helper needs root.  When the helper service runs
(helperd.py: the helper already loaded, behind a socket), the request goes
there: a start costs ~150 ms less.  Otherwise the helper runs through
"sudo -n" (never prompting: a missing sudoers rule fails at once with a
clear message).  A hook that already runs as root (a test, an admin
debugging) runs the helper directly when the service is not there.
"""

import errno
import json
import logging
import os
import socket

from containerhooks import commands
from containerhooks import errors
from containerhooks import paths
from containerhooks import spec as specs

log = logging.getLogger("containerhooks.privileged")


def start(spec):
    """Create and start spec's container; return the helper's record."""
    return _run(["start"] + specs.to_args(spec))


def stop(vm_id, engine=None):
    """Stop and remove vm_id's container; quiet if it is already gone."""
    args = ["stop", "--vm-id", vm_id]
    if engine:
        args += ["--engine", engine]
    return _run(args)


def pause(vm_id):
    return _run(["pause", "--vm-id=" + vm_id])


def unpause(vm_id):
    return _run(["unpause", "--vm-id=" + vm_id])


def migration_mark(vm_id):
    """Mark vm_id's container as migrating away (migration.py)."""
    return _run(["migration-mark", "--vm-id=" + vm_id])


def migration_prepare(spec, image_id, source_runtime=None):
    """Check and reserve on this host what spec's incoming container
    needs; image_id, source_runtime: what the source runs, and on which
    OCI runtime (None: not recorded)."""
    return _run(["migration-prepare"] + specs.to_args(spec)
                + ["--image-id=" + image_id]
                + (["--source-runtime=" + source_runtime]
                   if source_runtime else []))


def migration_start(spec, image_id, hook_pid):
    """Start spec's incoming container once the source let go, or take
    the VM down once the hook (hook_pid) has returned."""
    return _run(["migration-start"] + specs.to_args(spec)
                + ["--image-id=" + image_id, "--hook-pid=%d" % hook_pid])


def migration_fail(vm_id, reason, hook_pid):
    """Take an incoming VM down, with reason for Engine."""
    return _run(["migration-fail", "--vm-id=" + vm_id, "--reason=" + reason,
                 "--hook-pid=%d" % hook_pid])


def _run(args):
    answer = _ask_service(args)
    if answer is not None:
        rc, out, err = answer
        if rc != 0:
            raise errors.HelperError(reason=_reason(rc, err))
        return json.loads(out)
    if os.geteuid() == 0:
        cmd = [paths.HELPER] + args
    else:
        cmd = [paths.SUDO, "-n", paths.HELPER] + args
    try:
        out = commands.run(cmd)
    except errors.CommandError as e:
        raise errors.HelperError(reason=_reason(e.rc, e.err))
    except OSError as e:
        raise errors.HelperError(
            reason="cannot run %s: %s; is vdsm-hook-containers installed?"
            % (cmd[0], e))
    return json.loads(out)


def _ask_service(args):
    """(rc, stdout, stderr) of args run by the helper service, or None
    when no service listens (then sudo runs the helper: same result).

    Only a refused connection falls back to sudo: once the request is
    sent, the service may have acted on it, and running it twice could
    start two containers.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(paths.HELPER_SOCKET)
        except (OSError, IOError, socket.error) as e:
            code = getattr(e, "errno", None)
            if code not in (errno.ENOENT, errno.ECONNREFUSED):
                log.warning("helper service at %s not usable (%s); using "
                            "sudo", paths.HELPER_SOCKET, e)
            return None
        try:
            try:
                sock.sendall(json.dumps({"argv": list(args)})
                             .encode("utf-8"))
                sock.shutdown(socket.SHUT_WR)
            except (OSError, IOError, socket.error) as e:
                # Refused before it read the request: its answer says why.
                if getattr(e, "errno", None) != errno.EPIPE:
                    raise
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
            answer = json.loads(b"".join(chunks).decode("utf-8"))
            return answer["rc"], answer["out"], answer["err"]
        except (OSError, IOError, socket.error, ValueError, KeyError,
                TypeError) as e:
            raise errors.HelperError(
                reason="the helper service at %s gave no answer (%s); see "
                "its log (journalctl -u vdsm-hook-containers-helperd)"
                % (paths.HELPER_SOCKET, e))
    finally:
        sock.close()


def _reason(rc, err):
    lines = [l for l in err.splitlines() if l.strip()]
    last = lines[-1] if lines else "exit code %s" % rc
    if last.startswith("sudo:"):
        return ("sudo refused to run %s for user vdsm (%s); install the "
                "sudoers rule /etc/sudoers.d/50_vdsm_hook_containers"
                % (paths.HELPER, last))
    return last
