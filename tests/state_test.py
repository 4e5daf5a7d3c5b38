"""Per-VM state: VM ids that never become paths, a directory only root
writes, and which containers a record names."""

import os

import pytest

from containerhooks import errors
from containerhooks import exits
from containerhooks import paths
from containerhooks import state
from containerhooks import volumes
from containerhooks.engine import ContainerInfo

VM_ID = "6f1383a1-ea92-44bf-a721-082563ac560f"

# What a container label, a file name or a caller may offer as a VM id.
NOT_IDS = [
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("../../etc/passwd", id="relative"),
    pytest.param("../" + VM_ID, id="uuid-behind-dotdot"),
    pytest.param(VM_ID + "/../../x", id="uuid-then-dotdot"),
    pytest.param(VM_ID + "\n", id="trailing-newline"),
    pytest.param(VM_ID + "\0", id="nul"),
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
    pytest.param(VM_ID.replace("-", ""), id="no-dashes"),
]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / "run"
    d.mkdir(mode=0o755)
    monkeypatch.setattr(paths, "STATE_DIR", str(d))
    return d


@pytest.mark.parametrize("value", NOT_IDS)
def test_no_path_is_made_of_what_is_not_a_vm_id(state_dir, value):
    for make in (state.remove, exits.path, exits.remove, volumes.vm_dir,
                 lambda v: state.write(v, {}), lambda v: state.Lock(v)
                 .__enter__(), lambda v: volumes.detach(v, [])):
        with pytest.raises(errors.BadVmId):
            make(value)
    # Questions about it answer "no" (gc asks with ids from labels).
    assert state.exists(value) is False
    assert state.read(value) is None
    assert state.lock_exists(value) is False
    assert state.lock_mtime(value) == 0
    assert os.listdir(str(state_dir)) == []


def test_listings_skip_what_is_not_a_vm_id(state_dir):
    for name in (VM_ID + ".json", VM_ID + ".lock", VM_ID + ".exit",
                 "..json", "x.json", "network.lock", ".%s.json" % VM_ID):
        (state_dir / name).write_text(u"{}")
    assert state.vm_ids() == [VM_ID]
    assert state.lock_ids() == [VM_ID]
    assert exits.vm_ids() == [VM_ID]


@pytest.mark.parametrize("owner, mode", [
    pytest.param(36, 0o755, id="owned-by-vdsm"),
    pytest.param(0, 0o775, id="group-writable"),
    pytest.param(0, 0o757, id="world-writable"),
])
def test_lock_refuses_a_state_dir_others_can_write(state_dir, owner, mode):
    os.chown(str(state_dir), owner, 0)
    os.chmod(str(state_dir), mode)
    with pytest.raises(errors.StateError) as e:
        state.Lock(VM_ID).__enter__()
    assert "only root can write" in str(e.value)
    assert os.listdir(str(state_dir)) == []


def info(id, name):
    return ContainerInfo(id=id, name=name, status="running", labels={})


def test_owns_by_recorded_id_or_reserved_name():
    name = "ovirt-vm-" + VM_ID
    record = {"engine": "docker", "container_id": "a" * 64,
              "container_name": name}
    assert state.owns(record, "docker", info("a" * 64, name))
    assert not state.owns(record, "docker", info("b" * 64, name))
    assert not state.owns(record, "podman", info("a" * 64, name))
    assert not state.owns(None, "docker", info("a" * 64, name))
    # Created, its id not recorded yet (a start killed in between).
    record["container_id"] = None
    assert state.owns(record, "docker", info("b" * 64, name))
    assert not state.owns(record, "docker", info("b" * 64, "other"))
