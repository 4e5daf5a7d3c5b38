"""A hook on a VM that is not a container costs an interpreter start.

Every hook script goes through containerhooks/dispatch.py, which decides
from the environment, a file-existence check or a substring of the data
whether the call concerns a container VM.  For a VM that is not one, the
hook must not load anything heavy: Python's own import log
(PYTHONPROFILEIMPORTTIME, on stderr) tells what the script imported.
"""

import os
import re

import pytest
from lxml import etree

import domains
import vdsm as vdsm_module
import vdsmstats

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("docker", "lxml", "requests", "json", "logging", "tempfile",
         "containerhooks.hookenv", "containerhooks.engine")

PLAIN = domains.VM({"someOtherProperty": "value"})
PLAIN_DISK = etree.tostring(domains.disk(
    "vda", "/rhev/data-center/mnt/nfs:_data/0f6a/images/1/2")).decode()
PLAIN_STATS = [vdsmstats.vm_stats(PLAIN.id), vdsmstats.vm_stats(
    "0a0b0c0d-0000-4000-8000-000000000002")]

CASES = [
    pytest.param("before_vm_start", PLAIN.xml, id="before_vm_start"),
    pytest.param("before_vm_destroy", None, id="before_vm_destroy"),
    pytest.param("after_vm_destroy", PLAIN.xml, id="after_vm_destroy"),
    pytest.param("before_vm_migrate_source", PLAIN.xml,
                 id="before_vm_migrate_source"),
    pytest.param("before_vm_migrate_destination", PLAIN.xml,
                 id="before_vm_migrate_destination"),
    pytest.param("after_vm_migrate_source", PLAIN.xml,
                 id="after_vm_migrate_source"),
    pytest.param("after_vm_migrate_destination", PLAIN.xml,
                 id="after_vm_migrate_destination"),
    pytest.param("before_vm_hibernate", PLAIN.xml, id="before_vm_hibernate"),
    pytest.param("before_disk_hotunplug", PLAIN_DISK,
                 id="before_disk_hotunplug"),
    pytest.param("after_vm_pause", PLAIN.xml, id="after_vm_pause"),
    pytest.param("after_vm_cont", PLAIN.xml, id="after_vm_cont"),
    pytest.param("after_get_vm_stats", PLAIN_STATS[:1],
                 id="after_get_vm_stats"),
    pytest.param("after_get_all_vm_stats", PLAIN_STATS,
                 id="after_get_all_vm_stats"),
]


def imported(stderr):
    """The modules an interpreter imported, from -X importtime's log."""
    names = set()
    for line in stderr.decode("utf-8", "replace").splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)$", line)
        if m:
            names.add(m.group(2))
    return names


@pytest.fixture
def profiling_vdsm(installation):
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "PYTHONPROFILEIMPORTTIME": "1"}
    return vdsm_module.Vdsm(installation.hooks_dir, user="vdsm",
                            base_env=base)


@pytest.mark.parametrize("hook, data", CASES)
def test_plain_vm_imports_nothing_heavy(profiling_vdsm, hook, data):
    result = profiling_vdsm.run(hook, data, vm_id=PLAIN.id,
                                custom=PLAIN.custom)

    assert [s.rc for s in result.scripts] == [0]
    modules = imported(result.scripts[0].err)
    assert "containerhooks.dispatch" in modules
    assert sorted(m for m in modules
                  if m.split(".")[0] in HEAVY or m in HEAVY) == []
    assert result.data == (data if data is not None else "")


def test_every_hook_script_dispatches_its_own_hook():
    from containerhooks import dispatch
    hooks = sorted(os.listdir(os.path.join(TOP, "hooks")))
    assert hooks == sorted(dispatch.HOOKS)
    for hook in hooks:
        with open(os.path.join(TOP, "hooks", hook, "50_containers")) as f:
            script = f.read()
        assert 'dispatch.main("%s")' % hook in script, hook
        module = dispatch.HOOKS[hook][1]
        assert "containerhooks/%s.py" % module in script, hook
