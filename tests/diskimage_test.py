"""containerImage=disk:<target>: the image from an archive on a VM disk.

Through the installed hooks as the vdsm user (tests/vdsm.py), on real
engines, with real disks: a raw image file on the test storage root and a
block device (a loop device made to look like Vdsm's LV, hoststorage.py)
holding a real "docker save" archive of an image that is on no registry
and not in the engine.  The disk is compared byte for byte before and
after: nothing writes it.  No test leaves a container, a loaded image, a
loop device or a mount behind.
"""

import os
import time

import pytest

from containerhooks import state
from containerhooks import vmstats

import domains
from conftest import _client, remove_image
from hoststorage import MIB, sha256, write_at
from vdsm import HookError
from vmrun import power_off, start_hook as start

DISK_MIB = 8


@pytest.fixture
def archive(saved_image):
    return saved_image


def has_image(client, ref):
    import docker
    try:
        client.images.get(ref)
        return True
    except docker.errors.NotFound:
        return False


@pytest.fixture
def absent(archive, engine):
    """The archive's image is in neither engine now, nor after the test
    (whatever it loaded is removed)."""
    image_id = archive[0]
    for name in ("docker", "podman"):
        remove_image(_client(name), image_id)
    yield
    for name in ("docker", "podman"):
        remove_image(_client(name), image_id)


def file_disk(storage, data, tail=b""):
    """A raw image on the file domain holding data (an archive), then
    tail, as Engine's upload leaves a file rounded up to the disk size."""
    path = storage.image(size_mib=DISK_MIB)
    write_at(path, 0, data + tail)
    return path


def block_disk(storage, data, tail=b"", size_mib=DISK_MIB):
    """An LV on the block domain holding data, then tail (what an LV
    holds past an upload: old data of the storage)."""
    path, device = storage.block(size_mib=size_mib)
    write_at(device, 0, data + tail)
    return path, device


def disk_vm(engine, disk, volume_map=None):
    custom = {"containerType": engine, "containerImage": "disk:vdb"}
    if volume_map:
        custom["volumeMap"] = volume_map
    return domains.add_disks(domains.VM(custom), disk)


def container(client, vm):
    return client.containers.get("ovirt-vm-" + vm.id)


def assert_nothing_left(installation, client, vm):
    import docker
    with pytest.raises(docker.errors.NotFound):
        container(client, vm)
    assert [n for n in installation.state_files()
            if n.startswith(vm.id)] == []


@pytest.mark.parametrize("kind", ["file", "block"])
def test_start_from_disk_without_registry(vdsm, installation, engine,
                                          storage, archive, absent, kind):
    name, client = engine
    image_id, data, tag = archive
    # What an LV holds past the archive: not read, not sent.
    tail = os.urandom(MIB)
    if kind == "file":
        source = file_disk(storage, data, tail)
        device = source
    else:
        source, device = block_disk(storage, data, tail)
    before = sha256(device)
    assert not has_image(client, image_id)
    assert not has_image(client, tag)

    times = []
    for run in (1, 2):
        vm = disk_vm(name, domains.disk("vdb", source, kind=kind,
                                        readonly=True))
        began = time.time()
        result = start(vdsm, vm)
        times.append(time.time() - began)

        c = container(client, vm)
        assert c.attrs["Image"] == image_id
        assert c.status == "running"
        rc, out = c.exec_run(["cat", "/www/index.html"])
        assert (rc, out) == (0, b"hello from vdsm-hook-containers\n")
        record = installation.record(vm.id)
        assert record["image"] == "disk:vdb"
        assert record["image_id"] == image_id
        rc, out, err = installation.run_cli("ps")
        line = [l for l in out.splitlines() if l.startswith(vm.id)][0]
        assert "disk:vdb (%s)" % image_id[:19] in line
        # What Engine's Applications list of the VM shows.
        assert vmstats.apps_list(state.Record(**record)) == [
            "disk:vdb", image_id]

        power_off(vdsm, vm, result.data)
        assert_nothing_left(installation, client, vm)
        # Still there: the next start reuses it.
        assert has_image(client, image_id)

    log = installation.read_log()
    assert log.count("loaded image %s into %s" % (image_id, name)) >= 1
    assert "image %s (docker-archive) is in %s already" % (
        image_id, name) in log
    # The archive's name never reached the engine: no tag was moved.
    assert not has_image(client, tag)
    assert sha256(device) == before
    print("\n%s, %s disk: first start (load) %.2f s, second (reuse) %.2f s"
          % (name, kind, times[0], times[1]))


@pytest.mark.parametrize("content, message", [
    pytest.param(lambda data: os.urandom(len(data)),
                 "it holds no tar archive", id="random-bytes"),
    pytest.param(lambda data: plain_tar(), "it is a tar archive, but not of "
                 "an image", id="plain-tar"),
    pytest.param(lambda data: data[:len(data) // 2],
                 "is cut off", id="truncated"),
])
@pytest.mark.parametrize("kind", ["file", "block"])
def test_disk_without_image_refused(vdsm, installation, engine, storage,
                                    archive, absent, kind, content, message):
    name, client = engine
    data = content(archive[1])
    if kind == "file":
        source = device = storage.image(size_mib=DISK_MIB)
        # Cut off: the archive's end lies past the image file's end.
        os.truncate(source, len(data))
        write_at(source, 0, data)
    else:
        # Cut off: an LV smaller than the archive (1 MiB, half of it).
        source, device = block_disk(
            storage, data, size_mib=1 if message == "is cut off"
            else DISK_MIB)
    before = sha256(device)
    vm = disk_vm(name, domains.disk("vdb", source, kind=kind))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert err.startswith("VM disk vdb does not hold a container image "
                          "archive (containerImage=disk:vdb): ")
    assert message in err
    assert err.count("\n") == 1
    assert sha256(device) == before
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)


def plain_tar():
    import io
    import tarfile
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        info = tarfile.TarInfo("notes.txt")
        body = b"not an image\n"
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_archive_larger_than_allowed_refused(vdsm, installation, engine,
                                             storage, archive, absent):
    name, client = engine
    installation.configure(storage_roots=storage.root,
                           image_archive_max_size="1m")
    source = file_disk(storage, archive[1])
    vm = disk_vm(name, domains.disk("vdb", source, readonly=True))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    assert "its archive is larger than image_archive_max_size (1048576 " \
        "bytes) allows" in e.value.err.decode("utf-8")
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)


def test_image_disk_outside_storage_refused(vdsm, installation, engine,
                                            storage, archive, absent):
    name, client = engine
    outside = os.path.join(storage.outside, "app.tar")
    with open(outside, "wb") as f:
        f.write(archive[1])
    vm = disk_vm(name, domains.disk("vdb", storage.link(outside)))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert err.startswith("VM disk vdb cannot be the container's image "
                          "(containerImage=disk:vdb): ")
    assert "outside the storage roots" in err
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)


def test_image_disk_written_by_qemu_refused(vdsm, installation, engine,
                                            storage, archive, absent):
    # A VM writing the disk (qemu holds its write permission lock): what
    # is read could change under the load.
    import hoststorage
    name, client = engine
    source = file_disk(storage, archive[1])
    vm = disk_vm(name, domains.disk("vdb", source))

    with hoststorage.qemu_holding(source):
        with pytest.raises(HookError) as e:
            start(vdsm, vm)

    assert "VM disk vdb cannot be the container's image " \
        "(containerImage=disk:vdb): it is in use (a qemu process has its " \
        "image open for writing)" in e.value.err.decode("utf-8")
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)


def changed_layer(data):
    """data (a docker save archive) with a file added to its layer, the
    image's config (and so its id) unchanged."""
    import io
    import tarfile
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            body = src.extractfile(m).read() if m.isreg() else None
            if m.name.endswith("/layer.tar"):
                layer = io.BytesIO()
                with tarfile.open(fileobj=io.BytesIO(body)) as lsrc, \
                        tarfile.open(fileobj=layer, mode="w") as ldst:
                    for lm in lsrc:
                        ldst.addfile(lm, lsrc.extractfile(lm)
                                     if lm.isreg() else None)
                    extra = tarfile.TarInfo("bin/planted")
                    extra.size = 3
                    ldst.addfile(extra, io.BytesIO(b"hi\n"))
                body = layer.getvalue()
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    return out.getvalue()


def test_layer_changed_after_save_refused_by_the_engine(
        vdsm, installation, engine, storage, archive, absent):
    # The archive's files are all there and its config is the image's:
    # only the engine, which checks each layer against the config's
    # diff_ids while it loads, can tell.
    name, client = engine
    source = file_disk(storage, changed_layer(archive[1]))
    vm = disk_vm(name, domains.disk("vdb", source, readonly=True))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    err = e.value.err.decode("utf-8")
    assert err.startswith("Container engine %s could not load the image "
                          "archive of VM disk vdb: " % name)
    assert err.count("\n") == 1
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)


def test_host_image_policy_refuses_disk_image(vdsm, installation, engine,
                                             storage, archive, absent):
    name, client = engine
    installation.configure(storage_roots=storage.root,
                           require_digest="true")
    source = file_disk(storage, archive[1])
    vm = disk_vm(name, domains.disk("vdb", source, readonly=True))

    with pytest.raises(HookError) as e:
        start(vdsm, vm)

    assert e.value.err.decode("utf-8").startswith(
        "Image disk:vdb is refused by this host's image policy "
        "(require_digest = true in ")
    assert not has_image(client, archive[0])
    assert_nothing_left(installation, client, vm)
