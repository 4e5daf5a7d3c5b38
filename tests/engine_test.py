"""engine.py against the real engines: what the rest of the package relies
on when containers come and go under its feet."""

import uuid

import pytest

import images
import vmrun
from containerhooks import config
from containerhooks import errors
from containerhooks import engine as engines
from containerhooks.spec import LABEL_MANAGED, LABEL_VM_ID


@pytest.fixture
def eng(engine):
    name, client = engine
    conf = config.load("/nonexistent")
    return engines.Engine.connect(name, conf.sockets[name], 60), client


def _container(client, vm_id):
    return client.containers.create(
        images.ensure_local(client), labels={LABEL_MANAGED: "1", LABEL_VM_ID: vm_id},
        name="vhc-engine-test-" + vm_id[:8])


def test_listing_survives_a_container_removed_meanwhile(eng, registry_image):
    # Between the engine's list and the inspection of each container,
    # another VM's destroy removes one of them (for real, here): it is
    # simply not in the result, and the others are.
    e, client = eng
    ids = [str(uuid.uuid4()) for _ in range(3)]
    made = [_container(client, vm_id) for vm_id in ids]
    real = e.client.api.containers
    removed = []

    def list_then_remove(*args, **kwargs):
        summaries = real(*args, **kwargs)
        if not removed:
            made[1].remove(force=True)
            removed.append(made[1].id)
        return summaries
    e.client.api.containers = list_then_remove
    try:
        found = [i for i in e.list_managed() if i.vm_id in ids]
        assert removed and made[1].id not in [i.id for i in found]
        assert sorted(i.id for i in found) == sorted([made[0].id,
                                                       made[2].id])
        # find() lists the same way.
        removed[:] = []
        made[1] = _container(client, ids[1])
        assert e.find(ids[1]) is None
        assert e.find(ids[0]).id == made[0].id
    finally:
        e.client.api.containers = real
        vmrun.remove_managed(client, ids)


def test_listing_survives_containers_being_removed(eng, registry_image):
    # Another VM's destroy removes its container while this one lists:
    # inspected in the middle of its removal, Podman 4.3 answers 500 "...
    # does not exist in database: no such container", not 404 (seen in
    # CI).  Removals run for real in a loop here, and every listing must
    # succeed.
    import threading
    import time
    e, client = eng
    vm_id = str(uuid.uuid4())
    stop = threading.Event()
    churned = []

    def churn():
        while not stop.is_set():
            c = _container(client, vm_id)
            c.remove(force=True)
            churned.append(c.id)
    worker = threading.Thread(target=churn)
    worker.start()
    listings = seen = 0
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            seen += len([i for i in e.list_managed() if i.vm_id == vm_id])
            e.find(vm_id)
            listings += 1
    finally:
        stop.set()
        worker.join()
        vmrun.remove_managed(client, [vm_id])
    print("%d listings while %d containers came and went, %d seen"
          % (listings, len(churned), seen))
    assert len(churned) > 10 and listings > 10


@pytest.mark.parametrize("name, unit", [
    pytest.param("docker", "docker", id="docker"),
    pytest.param("podman", "podman.socket", id="podman"),
])
def test_unreachable_engine_names_its_unit(name, unit, tmp_path):
    # Every way of losing the engine tells the admin the unit that serves
    # its API: Podman's is the socket unit, there is no "podman" unit.
    import requests
    missing = str(tmp_path / "no.sock")
    with pytest.raises(errors.EngineUnavailable) as connect:
        engines.Engine.connect(name, missing, 5)
    lost = engines.Engine(name, missing, None)._error(
        "start", "c", requests.exceptions.ConnectionError("gone"))
    for e in (connect.value, lost):
        assert "'systemctl start %s'" % unit in str(e)


@pytest.mark.parametrize("repo_digests, image, expected", [
    pytest.param(["127.0.0.1:5000/a/b@sha256:" + "1" * 64],
                 "127.0.0.1:5000/a/b:1", "sha256:" + "1" * 64, id="one"),
    pytest.param(["r.example/other@sha256:" + "2" * 64,
                  "127.0.0.1:5000/a/b@sha256:" + "1" * 64],
                 "127.0.0.1:5000/a/b:1", "sha256:" + "1" * 64,
                 id="same-image-two-registries"),
    pytest.param(["redis@sha256:" + "3" * 64], "docker.io/library/redis",
                 "sha256:" + "3" * 64, id="docker-hub-short"),
    pytest.param(["docker.io/library/redis@sha256:" + "3" * 64], "redis:7",
                 "sha256:" + "3" * 64, id="podman-hub-long"),
    pytest.param(["r.example/other@sha256:" + "2" * 64], "r.example/a:1",
                 None, id="other-repository"),
    pytest.param([], "r.example/a:1", None, id="none"),
])
def test_repo_digest(repo_digests, image, expected):
    from containerhooks import imageref
    assert engines._repo_digest(repo_digests,
                                imageref.parse(image)) == expected


def test_create_with_a_start_interval(eng, registry_image):
    # The body docker-py cannot build (its Healthcheck drops
    # StartInterval): posted by hand, it must still be the container
    # create() makes otherwise, on both engines; the field itself is sent
    # (the engines here, Docker 20.10 and Podman 4.3, know none, so what
    # the body held is checked on the wire).
    e, client = eng
    vm_id = str(uuid.uuid4())
    name = "vhc-engine-test-" + vm_id[:8]
    images.ensure_local(client)
    sent = []
    real = e.client.api.create_container_from_config

    def spy(body, *args, **kwargs):
        sent.append(body)
        return real(body, *args, **kwargs)
    e.client.api.create_container_from_config = spy
    check = {"test": ["CMD", "/bin/true"], "interval": 30 * 10 ** 9,
             "timeout": 0, "retries": 0, "start_period": 0,
             "start_interval": 5 * 10 ** 9}
    try:
        info = e.create(name, registry_image,
                        {LABEL_MANAGED: "1", LABEL_VM_ID: vm_id},
                        {"network_mode": "none"}, hostname="vm-start",
                        healthcheck=check,
                        config={"environment": ["APP_MODE=x"],
                                "command": ["/bin/sleep", "60"]})
        assert sent and sent[0]["Healthcheck"]["StartInterval"] == 5 * 10 ** 9
        attrs = client.api.inspect_container(name)
        assert attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "/bin/true"]
        assert attrs["Config"]["Healthcheck"]["Interval"] == 30 * 10 ** 9
        assert attrs["Config"]["Cmd"] == ["/bin/sleep", "60"]
        assert "APP_MODE=x" in attrs["Config"]["Env"]
        assert attrs["Config"]["Hostname"] == "vm-start"
        assert attrs["Config"]["Labels"][LABEL_VM_ID] == vm_id
        assert info.id == attrs["Id"]
    finally:
        e.client.api.create_container_from_config = real
        vmrun.remove_managed(client, [vm_id])
