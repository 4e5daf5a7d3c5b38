"""The hook scripts' entry point: is this call about a container VM at all?

Vdsm runs every hook script for every VM of the host, and the stats hooks
every few seconds; most of those calls concern VMs that are not
containers.  Such a call must cost little more than starting the
interpreter, so this module imports only os, sys and time (and paths, a
list of constants), answers the question from what is at hand -- the
environment, a file-existence check, a substring of the hook's data --
and only when the answer is yes imports the module that does the work
(which checks again, properly).  Nothing heavier (json, logging, lxml,
the Docker SDK) is loaded for a VM that is not a container.

Each hook script is three lines: import this module, main(<hook name>).
"""

import os
import sys
import time

from containerhooks import paths

# When the hook started, for the host stats' hookMs.
STARTED = time.time()

# The package's metadata namespace, present in a placeholder's XML.
OUR_NS = b"http://ovirt.org/vdsm-hook-containers/1.0"


def _data(env, key):
    with open(env[key], "rb") as f:
        return f.read()


def _may_be_container(env):
    # The same test as properties.may_be_container, without importing it.
    return "containerType" in env or \
        b"containerType" in _data(env, "_hook_domxml")


# The state directory's names are state.py's (state.STATE, state.EXIT,
# state.listing); spelled out here because importing state (json, logging,
# six) costs ten times this module, on every hook call of every VM.
# tests/state_test.py checks that the two agree.

def _has_state(env):
    vm_id = env.get("vmId")
    return bool(vm_id) and os.path.exists(
        os.path.join(paths.STATE_DIR, vm_id + ".json"))


def _placeholder(env):
    return OUR_NS in _data(env, "_hook_domxml")


def _container_vm(env):
    # vmactions.container_vm: by vmId and the state file, else by the
    # package's metadata in the live XML.
    if env.get("vmId"):
        return _has_state(env)
    return _placeholder(env)


def _stats_of_containers(env):
    """Whether a VM of the stats list may be a container VM: one with a
    state file or an exit record whose id appears in the data."""
    try:
        names = os.listdir(paths.STATE_DIR)
    except OSError:
        return False
    ids = [n.split(".")[0] for n in names
           if n.endswith((".json", ".exit")) and not n.startswith(".")]
    if not ids:
        return False
    data = _data(env, "_hook_json")
    return any(vm_id.encode("ascii", "replace") in data for vm_id in ids)


def _always(env):
    return True


# hook -> (cheap test, module, function)
HOOKS = {
    "before_vm_start": (_may_be_container, "vmstart", "main"),
    "before_vm_destroy": (_has_state, "vmdestroy", "before_main"),
    "after_vm_destroy": (_placeholder, "vmdestroy", "after_main"),
    "before_vm_migrate_source": (_container_vm, "migration",
                                 "source_before_main"),
    # The destination has no state of the VM yet: the source's XML says.
    "before_vm_migrate_destination": (_placeholder, "migration",
                                      "destination_before_main"),
    "after_vm_migrate_source": (_has_state, "migration",
                                "source_after_main"),
    "after_vm_migrate_destination": (_placeholder, "migration",
                                     "destination_after_main"),
    "before_vm_hibernate": (_container_vm, "vmactions", "hibernate_main"),
    "before_disk_hotunplug": (_has_state, "vmactions",
                              "disk_hotunplug_main"),
    "after_vm_pause": (_container_vm, "vmactions", "pause_main"),
    "after_vm_cont": (_container_vm, "vmactions", "cont_main"),
    "after_get_vm_stats": (_stats_of_containers, "vmstats", "main"),
    "after_get_all_vm_stats": (_stats_of_containers, "vmstats", "main"),
    "after_get_stats": (_always, "hoststats", "stats_main"),
    "after_get_caps": (_always, "hoststats", "caps_main"),
}


def main(hook):
    test, module, function = HOOKS[hook]
    try:
        concerned = test(os.environ)
    except (IOError, OSError):
        # Unreadable data: let the module look, and report, properly.
        concerned = True
    if not concerned:
        sys.exit(0)
    __import__("containerhooks." + module)
    func = getattr(sys.modules["containerhooks." + module], function)
    if function == "stats_main":
        func(STARTED)
    else:
        func()
