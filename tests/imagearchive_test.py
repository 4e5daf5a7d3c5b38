"""Image archives on a disk (imagearchive.py): what is read, what is
refused, what the engine gets.

On a real "docker save" archive (conftest.saved_image) and a real OCI
archive Podman saves of it, written to files as a disk holds them (with
whatever follows), and on those archives changed the ways a hostile disk
could be.
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from containerhooks import errors
from containerhooks import imagearchive

from conftest import _client, remove_image

MAX = 10 * 1024 ** 3


@pytest.fixture(scope="module")
def oci_archive(saved_image, tmp_path_factory):
    """An OCI archive of the saved image, as 'podman save --format
    oci-archive' writes it for a tagged image (with its name in
    index.json), and the id Podman gives the image it holds."""
    image_id, data, tag = saved_image
    podman = _client("podman")
    list(podman.api.load_image(data))
    path = str(tmp_path_factory.mktemp("oci") / "app.tar")
    try:
        repository, _, version = tag.rpartition(":")
        podman.images.get(image_id).tag(repository, version)
        subprocess.check_call(["podman", "save", "-q", "--format",
                               "oci-archive", "-o", path, tag])
    finally:
        remove_image(podman, image_id)
    with open(path, "rb") as f:
        oci = f.read()
    config = json.loads(member(oci, "index.json"))
    manifest = json.loads(member(oci, "blobs/sha256/" + config["manifests"][
        0]["digest"].split(":")[1]))
    return oci, manifest["config"]["digest"]


def disk(tmp_path, data):
    """A disk image file holding data; its open descriptor and size."""
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    fd = os.open(str(path), os.O_RDONLY)
    return fd, len(data)


@pytest.fixture
def opened(tmp_path):
    fds = []

    def open_disk(data):
        fd, size = disk(tmp_path, data)
        fds.append(fd)
        return fd, size
    yield open_disk
    for fd in fds:
        os.close(fd)


def member(data, name):
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return t.extractfile(name).read()


def members(data):
    """{name: (type, bytes)} of a tar archive."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            body = t.extractfile(m).read() if m.isreg() else b""
            found[m.name] = (m.type, body)
    return found


def rewritten(data, change):
    """data (a tar) made again, change(info, body) -> [(info, body)] for
    each member."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=out, mode="w",
                         format=tarfile.GNU_FORMAT) as dst:
        for m in src:
            body = src.extractfile(m).read() if m.isreg() else None
            for info, new in change(m, body):
                if new is not None:
                    info.size = len(new)
                dst.addfile(info, io.BytesIO(new) if new is not None
                            else None)
    return out.getvalue()


def streamed(fd, archive):
    return b"".join(imagearchive.stream(fd, archive))


def test_docker_save_archive(opened, saved_image):
    image_id, data, tag = saved_image
    tail = os.urandom(1024 * 1024)
    fd, size = opened(data + tail)

    archive = imagearchive.inspect("vdb", fd, size, MAX)

    assert archive.kind == imagearchive.DOCKER_ARCHIVE
    assert archive.image_id == image_id
    assert archive.end == len(data)
    sent = streamed(fd, archive)
    # Nothing after the archive's end blocks is sent.
    assert tail[:4096] not in sent
    assert sent.endswith(b"\0" * 1024)
    original, given = members(data), members(sent)
    # The names it would give the image on the host are gone...
    assert json.loads(original["manifest.json"][1])[0]["RepoTags"] == [tag]
    manifest = json.loads(given["manifest.json"][1])
    assert "RepoTags" not in manifest[0]
    assert "repositories" in original and "repositories" not in given
    # ...and everything else is as saved.
    assert manifest[0]["Config"] == json.loads(
        original["manifest.json"][1])[0]["Config"]
    del original["manifest.json"], original["repositories"]
    del given["manifest.json"]
    assert given == original


def test_oci_archive(opened, oci_archive):
    data, config_digest = oci_archive
    assert b"org.opencontainers.image.ref.name" in member(data, "index.json")
    fd, size = opened(data + b"\xff" * 4096)

    archive = imagearchive.inspect("vdb", fd, size, MAX)

    assert archive.kind == imagearchive.OCI_ARCHIVE
    assert archive.image_id == config_digest
    sent = streamed(fd, archive)
    index = json.loads(member(sent, "index.json"))
    assert [set(d) for d in index["manifests"]] == [
        {"mediaType", "digest", "size"}]
    assert index["manifests"][0]["digest"] == json.loads(member(
        data, "index.json"))["manifests"][0]["digest"]
    original, given = members(data), members(sent)
    del original["index.json"], given["index.json"]
    assert given == original


def _docker(saved_image):
    return saved_image[1]


def _manifest(data):
    return json.loads(member(data, "manifest.json"))


def two_images(info, body):
    if info.name == "manifest.json":
        entries = json.loads(body)
        body = json.dumps(entries * 2).encode()
    return [(info, body)]


def changed_config(info, body):
    if info.name.endswith(".json") and len(info.name) == 69:
        config = json.loads(body)
        config["config"]["Cmd"] = ["/bin/sh"]
        body = json.dumps(config).encode()
    return [(info, body)]


def no_layer(info, body):
    return [] if info.name.endswith("/layer.tar") else [(info, body)]


def fifo(info, body):
    found = [(info, body)]
    if info.name == "manifest.json":
        extra = tarfile.TarInfo("pipe")
        extra.type = tarfile.FIFOTYPE
        found.append((extra, None))
    return found


def twice(info, body):
    return [(info, body)] * (2 if info.name == "manifest.json" else 1)


def not_json(info, body):
    return [(info, b"{" if info.name == "manifest.json" else body)]


HOSTILE = [
    pytest.param(lambda data: os.urandom(len(data)), "it holds no tar "
                 "archive", id="random-bytes"),
    pytest.param(lambda data: b"\0" * len(data), "it holds an empty tar "
                 "archive", id="zeros"),
    pytest.param(lambda data: rewritten(data, two_images), "its "
                 "manifest.json lists 2 images", id="two-images"),
    pytest.param(lambda data: rewritten(data, changed_config), "the archive "
                 "was changed after it was saved", id="changed-config"),
    pytest.param(lambda data: rewritten(data, no_layer), "is missing from "
                 "the archive", id="missing-layer"),
    pytest.param(lambda data: rewritten(data, fifo), "is not a file, a "
                 "directory or a link", id="fifo"),
    pytest.param(lambda data: rewritten(data, twice), "its archive holds "
                 "'manifest.json' twice", id="member-twice"),
    pytest.param(lambda data: rewritten(data, not_json), "is not a JSON "
                 "list", id="manifest-not-json"),
    pytest.param(lambda data: data[:len(data) - 2048], "its tar archive is "
                 "cut off", id="cut-off"),
    # A header in the middle overwritten: tarfile takes it for the end.
    pytest.param(lambda data: data[:3072] + os.urandom(512) + data[3584:],
                 "what follows its last member at offset 3072 is neither",
                 id="damaged-header"),
]


@pytest.mark.parametrize("change, message", HOSTILE)
def test_hostile_archive_refused(opened, saved_image, change, message):
    data = change(saved_image[1])
    fd, size = opened(data)

    with pytest.raises(errors.NotAnImageArchive) as e:
        imagearchive.inspect("vdb", fd, size, MAX)

    text = str(e.value)
    assert text.startswith("VM disk vdb does not hold a container image "
                           "archive (containerImage=disk:vdb): ")
    assert message in text


def test_larger_than_allowed(opened, saved_image):
    data = saved_image[1]
    fd, size = opened(data)
    limit = len(data) - 1
    with pytest.raises(errors.NotAnImageArchive) as e:
        imagearchive.inspect("vdb", fd, size, limit)
    assert "larger than image_archive_max_size (%d bytes)" % limit \
        in str(e.value)
    # Exactly the archive's size is enough.
    assert imagearchive.inspect("vdb", fd, size, len(data)).end == len(data)


def test_stream_stops_when_told(opened, saved_image):
    fd, size = opened(saved_image[1])
    archive = imagearchive.inspect("vdb", fd, size, MAX)
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise errors.ImageLoadTimeout(disk="vdb", engine="docker",
                                          timeout=1, conf="c")

    with pytest.raises(errors.ImageLoadTimeout):
        b"".join(imagearchive.stream(fd, archive, check))
    assert len(calls) == 2


def test_image_id_is_the_config_digest(opened, saved_image):
    image_id, data, _ = saved_image
    config = _manifest(data)[0]["Config"]
    assert "sha256:" + hashlib.sha256(member(data, config)).hexdigest() \
        == image_id
