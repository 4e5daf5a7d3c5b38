"""Per-VM state: VM ids that never become paths, a directory only root
writes, and which containers a record names."""

import json
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
    # Questions about it have the answer "no" (a hook asks for any VM,
    # the watcher and gc about any label): no state has such a name.
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
    record = state.Record(engine="docker", container_id="a" * 64,
                          container_name=name)
    assert state.owns(record, "docker", info("a" * 64, name))
    assert not state.owns(record, "docker", info("b" * 64, name))
    assert not state.owns(record, "podman", info("a" * 64, name))
    assert not state.owns(None, "docker", info("a" * 64, name))
    # Created, its id not recorded yet (a start killed in between).
    record.container_id = None
    assert state.owns(record, "docker", info("b" * 64, name))
    assert not state.owns(record, "docker", info("b" * 64, "other"))


def test_record_of_another_version_keeps_its_keys(state_dir):
    # A host upgraded under running VMs: the record an older helper wrote
    # (no hostname, no pid yet) and a key a newer one added.
    old = {"vm_id": VM_ID, "engine": "podman", "container_name": "c",
           "ips": ["10.0.0.5"], "future": {"x": 1}}
    (state_dir / (VM_ID + ".json")).write_text(u"%s" % json.dumps(old))

    record = state.read(VM_ID)

    assert record.engine == "podman" and record.ips == ["10.0.0.5"]
    assert record.pid is None and record.volumes == [] \
        and record.stopping is False
    assert not record.has("hostname")
    record.stopping = True
    state.write(VM_ID, record)
    with open(str(state_dir / (VM_ID + ".json"))) as f:
        assert json.load(f) == dict(old, stopping=True)


def test_record_refuses_undeclared_fields():
    with pytest.raises(TypeError):
        state.Record(enigne="docker")
    with pytest.raises(AttributeError):
        state.Record().enigne = "docker"


def test_record_that_is_no_object_is_unreadable(state_dir):
    (state_dir / (VM_ID + ".json")).write_text(u"[1, 2]")
    with pytest.raises(errors.StateError):
        state.read(VM_ID)


def test_listing_sorts_the_kinds_in_one_look(state_dir):
    other = "0b1e6c6e-0000-4000-8000-000000000002"
    for name in (VM_ID + ".json", VM_ID + ".lock", other + ".exit",
                 "watcher.status", "network.lock", "." + VM_ID + "abc"):
        (state_dir / name).write_text(u"{}")
    found = state.listing()
    assert found == state.Listing({VM_ID}, {VM_ID}, {other}, set())


def test_dispatch_spells_the_names_as_state_does(state_dir, tmp_path):
    # dispatch.py decides "is this VM a container VM" without importing
    # state (start-up cost): it must find what state and exits write.
    from containerhooks import dispatch
    other = "0b1e6c6e-0000-4000-8000-000000000002"
    plain = "0b1e6c6e-0000-4000-8000-000000000003"
    state.write(VM_ID, state.Record(vm_id=VM_ID))
    exits.write(exits.record(other, 1))
    assert dispatch._has_state({"vmId": VM_ID})
    assert not dispatch._has_state({"vmId": other})
    stats = tmp_path / "stats.json"
    for vm_id, ours in ((VM_ID, True), (other, True), (plain, False)):
        stats.write_text(u'[{"vmId": "%s"}]' % vm_id)
        assert dispatch._stats_of_containers(
            {"_hook_json": str(stats)}) is ours
