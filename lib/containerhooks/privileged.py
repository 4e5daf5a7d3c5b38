"""Calling the root helper from a hook.

Hooks run as vdsm; the helper needs root, so it runs through "sudo -n"
(never prompting: a missing sudoers rule fails at once with a clear
message).  A hook that already runs as root (a test, an admin debugging)
runs the helper directly.
"""

import json
import logging
import os

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


def _run(args):
    if os.geteuid() == 0:
        cmd = [paths.HELPER] + args
    else:
        cmd = [paths.SUDO, "-n", paths.HELPER] + args
    try:
        out = commands.run(cmd)
    except errors.CommandError as e:
        raise errors.HelperError(reason=_reason(e))
    except OSError as e:
        raise errors.HelperError(
            reason="cannot run %s: %s; is vdsm-hook-containers installed?"
            % (cmd[0], e))
    return json.loads(out)


def _reason(e):
    lines = [l for l in e.err.splitlines() if l.strip()]
    last = lines[-1] if lines else "exit code %s" % e.rc
    if last.startswith("sudo:"):
        return ("sudo refused to run %s for user vdsm (%s); install the "
                "sudoers rule /etc/sudoers.d/50_vdsm_hook_containers"
                % (paths.HELPER, last))
    return last
