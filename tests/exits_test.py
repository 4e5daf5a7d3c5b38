"""The exit message Engine shows when a container ended on its own."""

import os
import time

import pytest

from containerhooks import errors
from containerhooks import exits
from containerhooks import paths
from containerhooks import state


@pytest.mark.parametrize("code, oom, error, message", [
    pytest.param(0, False, None, "container exited with code 0 (success)",
                 id="success"),
    pytest.param(3, False, None, "container exited with code 3 (error)",
                 id="error"),
    pytest.param(137, True, None,
                 "container exited with code 137 (out of memory)",
                 id="oom"),
    pytest.param(137, False, None,
                 "container exited with code 137 (killed by SIGKILL)",
                 id="sigkill"),
    pytest.param(143, False, None,
                 "container exited with code 143 (killed by SIGTERM)",
                 id="sigterm"),
    pytest.param(127, False, "exec: \"nginx\": executable file not\nfound",
                 "container exited with code 127 (command not found): "
                 "exec: \"nginx\": executable file not found",
                 id="not-found-with-engine-error"),
    pytest.param(None, False, None,
                 "container is gone (removed outside of oVirt)",
                 id="gone"),
])
def test_message(code, oom, error, message):
    assert exits.message(code, oom, error) == message


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", str(tmp_path))
    return tmp_path


def test_write_read_remove(state_dir):
    vm_id = "6f1383a1-ea92-44bf-a721-082563ac560f"
    record = {"vm_id": vm_id, "exit_code": 3, "message": "m"}

    exits.write(record)

    assert exits.read(vm_id) == record
    assert os.stat(exits.path(vm_id)).st_mode & 0o777 == 0o644
    assert exits.vm_ids() == [vm_id]
    # Not a state file: the state's readers never see it.
    assert [n for n in os.listdir(str(state_dir))
            if n.endswith(".json")] == []
    exits.remove(vm_id)
    exits.remove(vm_id)             # gone is fine
    assert exits.read(vm_id) is None


OLD = "0b1e6c6e-0000-4000-8000-000000000001"
NEW = "0b1e6c6e-0000-4000-8000-000000000002"


def test_unreadable_record_is_none(state_dir):
    (state_dir / (OLD + ".exit")).write_text("{not json")
    assert exits.read(OLD) is None


def test_prune(state_dir):
    exits.write({"vm_id": OLD})
    exits.write({"vm_id": NEW})
    past = time.time() - exits.MAX_AGE - 10
    os.utime(exits.path(OLD), (past, past))

    assert exits.prune() == [OLD]
    assert exits.vm_ids() == [NEW]


@pytest.mark.parametrize("vm_id", [
    pytest.param("/../../../tmp/x", id="absolute"),
    pytest.param("../../tmp/x", id="traversal"),
    pytest.param("samples/x", id="subdirectory"),
    pytest.param("", id="empty"),
])
def test_not_a_vm_id_is_never_a_path(state_dir, vm_id):
    with pytest.raises(errors.BadVmId):
        exits.write({"vm_id": vm_id})
    assert exits.read(vm_id) is None
    assert os.listdir(str(state_dir)) == []


def test_watcher_and_gc_write_one_shape():
    # The watcher's record of a container that ended, and gc's of one
    # that disappeared: the same keys, so readers need not know who wrote.
    record = state.Record(vm_id=OLD, engine="docker", container_id="c" * 64,
                          container_name="ovirt-vm-" + OLD)
    ended = exits.record(OLD, 137, True, None, state_record=record,
                         finished_at="2026-01-01T00:00:00Z")
    gone = exits.record(OLD, None, state_record=record,
                        text="container x disappeared outside oVirt")
    assert sorted(ended) == sorted(gone)
    assert ended["message"] == "container exited with code 137 " \
        "(out of memory)"
    assert gone["message"] == "container x disappeared outside oVirt"
    assert ended["container_id"] == gone["container_id"] == "c" * 64
