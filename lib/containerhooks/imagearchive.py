"""Container image archives on a VM disk (containerImage=disk:<target>).

An admin saves an image ("docker save", "podman save --format
oci-archive") and uploads the tar file to a storage domain as a raw disk:
the disk's bytes are the archive, followed by whatever fills the disk up to
its size (Engine rounds a disk up; an LV on block storage is extents of
128 MiB, and what lies beyond the archive is old data of the storage).  So
the archive ends where tar says it ends, at its two zero blocks, and
nothing after them is ever read or sent.

inspect() reads the archive's headers and its few small JSON files and
checks that it is one image:

- a "docker save" archive (docker-archive): manifest.json, one entry, its
  Config file and Layers present; Docker and Podman load it;
- an OCI archive (oci-archive): oci-layout and index.json with one image
  manifest, its config and layer blobs present; Podman loads it, Docker
  before 25 does not (its load reads manifest.json only).

The image id is the sha256 of the image's config, as both engines compute
it (Docker's image store and Podman's containers/storage name an image by
its config digest): computed here from the bytes, and compared with the
name the archive gives the config (docker-archive "<id>.json", OCI
"blobs/sha256/<id>").  Both engines check each layer they read from an
archive against the config's diff_ids, or take the layer of that digest
they have already (tests/diskimage_test.py): the id names the whole
image.

stream() yields the archive as the engine gets it: byte for byte, except
that the names the archive would give its image on the host (manifest.json
RepoTags, index.json's annotations) are removed, and the legacy
"repositories" file is left out.  An archive must not move a tag the host
already has (a "redis:latest" on the disk would become every VM's
redis:latest); the container runs the image by its id.

The disk's content is the VM owner's, hence hostile: sizes are bounded
(the archive by image_archive_max_size, the JSON files by MAX_JSON, the
members by MAX_MEMBERS), only regular files, directories and links are
accepted, no name twice, and nothing is extracted here.
"""

import collections
import hashlib
import io
import json
import re
import tarfile

import six

from containerhooks import errors

BLOCK = 512
END_OF_ARCHIVE = 2 * BLOCK
# The most headers an image archive has: four members per layer in the
# legacy layout (the overlay drivers stack at most 127 layers), and a few.
MAX_MEMBERS = 4096
# manifest.json, index.json, oci-layout, an OCI manifest, a config.
MAX_JSON = 4 * 1024 * 1024
CHUNK = 1024 * 1024

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"

MANIFEST = "manifest.json"
REPOSITORIES = "repositories"
INDEX = "index.json"
OCI_LAYOUT = "oci-layout"

_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")
_DIGEST_RE = re.compile(r"\Asha256:([0-9a-f]{64})\Z")
# How the archives name a config: "<hex>.json" (docker save before 25,
# podman's docker-archive), "blobs/sha256/<hex>" (OCI, docker save 25+).
_CONFIG_NAME_RE = re.compile(r"\A(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?\Z")
_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE,
          tarfile.SYMTYPE, tarfile.LNKTYPE)

# What inspect() found: kind (DOCKER_ARCHIVE or OCI_ARCHIVE), the image id
# ("sha256:<hex>"), end (the archive's size with its end blocks: what is
# read and sent), edits ((start, stop, bytes or b"") spans of the archive
# replaced in the stream, in order).
Archive = collections.namedtuple("Archive", "kind, image_id, end, edits")


def inspect(disk, fd, size, max_size):
    """The Archive on the disk open at fd (size bytes), or
    NotAnImageArchive.  max_size: the most the archive may take."""
    f = io.FileIO(fd, "r", closefd=False)
    members = _members(disk, f, size, max_size)
    archive = _Reader(disk, f, members)
    if MANIFEST in members.by_name:
        kind = DOCKER_ARCHIVE
        image_id, manifest = archive.docker()
        edits = [_replaced(members.by_name[MANIFEST], manifest)]
        if REPOSITORIES in members.by_name:
            edits.append(_replaced(members.by_name[REPOSITORIES], None))
        if INDEX in members.by_name:
            # docker save 25+ writes both layouts: they must agree.
            oci_id, index = archive.oci()
            if oci_id != image_id:
                _refuse(disk, "its manifest.json names image %s and its "
                        "index.json image %s" % (image_id, oci_id))
            edits.append(_replaced(members.by_name[INDEX], index))
    elif INDEX in members.by_name:
        kind = OCI_ARCHIVE
        image_id, index = archive.oci()
        edits = [_replaced(members.by_name[INDEX], index)]
    else:
        _refuse(disk, "it is a tar archive, but not of an image: it has "
                "neither manifest.json (docker save) nor index.json and "
                "oci-layout (an OCI archive) at its top")
    edits.sort()
    return Archive(kind=kind, image_id=image_id, end=members.end,
                   edits=edits)


def stream(fd, archive, check=None):
    """The archive as the engine gets it (see the module's doc), in
    chunks of at most CHUNK bytes; check(), when given, is called before
    each chunk is read (it raises to stop: the load's deadline)."""
    f = io.FileIO(fd, "r", closefd=False)
    pos = 0
    for start, stop, data in archive.edits:
        for chunk in _copy(f, pos, start, check):
            yield chunk
        if data:
            yield data
        pos = stop
    for chunk in _copy(f, pos, archive.end, check):
        yield chunk


def _copy(f, start, stop, check):
    pos = start
    while pos < stop:
        if check is not None:
            check()
        f.seek(pos)
        data = f.read(min(CHUNK, stop - pos))
        if not data:
            raise IOError("the disk ended at %d, before the archive" % pos)
        pos += len(data)
        yield data


# The members

Members = collections.namedtuple("Members", "by_name, end")


def _members(disk, f, size, max_size):
    """The archive's members by name ("./" and a final "/" dropped), and
    the archive's end: its last member's end plus the two zero blocks."""
    f.seek(0)
    try:
        tar = tarfile.open(fileobj=f, mode="r:")
    except tarfile.TarError as e:
        _refuse(disk, "it holds no tar archive (%s)" % _first_line(e))
    except EnvironmentError as e:
        raise errors.ImageDiskRefused(disk=disk, reason="reading it failed "
                                      "(%s)" % e)
    by_name = {}
    while True:
        try:
            member = tar.next()
        except tarfile.TarError as e:
            _refuse(disk, "its tar archive is damaged (%s)" % _first_line(e))
        except EnvironmentError as e:
            raise errors.ImageDiskRefused(disk=disk, reason="reading it "
                                          "failed (%s)" % e)
        if member is None:
            break
        if len(by_name) >= MAX_MEMBERS:
            _refuse(disk, "its archive has more than %d members, more than "
                    "an image has" % MAX_MEMBERS)
        name = _normal(member.name)
        if member.type not in _TYPES or \
                getattr(member, "sparse", None) is not None:
            _refuse(disk, "its archive member %r is not a file, a "
                    "directory or a link (type %r)"
                    % (member.name[:100], member.type))
        if name in by_name:
            _refuse(disk, "its archive holds %r twice" % name[:100])
        by_name[name] = member
        _check_end(disk, _end(member), size, max_size)
    if tar.pax_headers:
        # They would change the members after them, and docker save and
        # podman save never write them.
        _refuse(disk, "its archive has pax global headers")
    # tarfile stops at the first zero block: the end of the archive, if
    # the one after it is zero too; else what follows is no tar header.
    end = tar.offset + END_OF_ARCHIVE
    _check_end(disk, end, size, max_size)
    f.seek(tar.offset)
    if _read_full(f, END_OF_ARCHIVE) != b"\0" * END_OF_ARCHIVE:
        _refuse(disk, "its tar archive is damaged: what follows its last "
                "member at offset %d is neither a tar header nor the "
                "archive's end" % tar.offset)
    if not by_name:
        _refuse(disk, "it holds an empty tar archive")
    return Members(by_name=by_name, end=end)


def _end(member):
    """Where member's data ends (padded to a block), as tarfile reads."""
    data = 0
    if member.isreg() or member.type not in tarfile.SUPPORTED_TYPES:
        data = -(-member.size // BLOCK) * BLOCK
    return member.offset_data + data


def _check_end(disk, end, size, max_size):
    if end > max_size:
        _refuse(disk, "its archive is larger than image_archive_max_size "
                "(%d bytes) allows; raise it in containers.conf if the "
                "image is meant to be that large" % max_size)
    if end > size:
        _refuse(disk, "its tar archive is cut off: it runs past the end of "
                "the disk (%d bytes); upload the whole file" % size)


def _normal(name):
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _read_full(f, n):
    chunks = []
    while n > 0:
        data = f.read(n)
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _replaced(member, document):
    """The edit that puts document (JSON-able; None: nothing) in place of
    member: a new header and its data, padded."""
    if document is None:
        return (member.offset, _end(member), b"")
    data = json.dumps(document, sort_keys=True).encode("utf-8")
    info = tarfile.TarInfo(member.name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    header = info.tobuf(tarfile.USTAR_FORMAT)
    pad = b"\0" * (-len(data) % BLOCK)
    return (member.offset, _end(member), header + data + pad)


class _Reader(object):
    """The small files of an archive, read from the disk and checked."""

    def __init__(self, disk, f, members):
        self.disk = disk
        self.f = f
        self.members = members.by_name

    def member(self, name, what, regular=True):
        found = self.members.get(_normal(name))
        if found is None:
            _refuse(self.disk, "its %s %r is missing from the archive"
                    % (what, name[:100]))
        if regular and not found.isreg():
            _refuse(self.disk, "its %s %r is not a regular file"
                    % (what, name[:100]))
        return found

    def read(self, name, what):
        member = self.member(name, what)
        if member.size > MAX_JSON:
            _refuse(self.disk, "its %s %r is larger than %d bytes"
                    % (what, name[:100], MAX_JSON))
        self.f.seek(member.offset_data)
        data = _read_full(self.f, member.size)
        if len(data) != member.size:
            _refuse(self.disk, "its %s %r is cut off" % (what, name[:100]))
        return data

    def json(self, name, what, kind):
        data = self.read(name, what)
        try:
            value = json.loads(data.decode("utf-8"))
        except ValueError:
            value = None
        if not isinstance(value, kind):
            _refuse(self.disk, "its %s %r is not a JSON %s"
                    % (what, name[:100], "list" if kind is list
                       else "object"))
        return value

    def config(self, name, digest=None):
        """The id of the image whose config is member name: its sha256,
        which must be the digest its name (or descriptor) says."""
        data = self.read(name, "image config")
        actual = hashlib.sha256(data).hexdigest()
        m = _CONFIG_NAME_RE.match(_normal(name))
        expected = digest or (m.group(1) if m else None)
        if expected is not None and expected != actual:
            _refuse(self.disk, "its image config %r has the digest "
                    "sha256:%s, not the one the archive names it by: the "
                    "archive was changed after it was saved"
                    % (name[:100], actual))
        try:
            config = json.loads(data.decode("utf-8"))
        except ValueError:
            config = None
        if not isinstance(config, dict) \
                or not isinstance(config.get("rootfs"), dict):
            _refuse(self.disk, "its image config %r is not an image's "
                    "config (no rootfs)" % name[:100])
        return "sha256:" + actual, config

    def docker(self):
        """docker-archive: (image id, manifest.json without RepoTags)."""
        manifest = self.json(MANIFEST, "manifest", list)
        if len(manifest) != 1:
            _refuse(self.disk, "its manifest.json lists %d images; save "
                    "one image per archive (docker save IMAGE)"
                    % len(manifest))
        entry = manifest[0]
        if not isinstance(entry, dict) or \
                not isinstance(entry.get("Config"), six.string_types) or \
                not isinstance(entry.get("Layers"), list) or \
                not all(isinstance(layer, six.string_types)
                        for layer in entry["Layers"]):
            _refuse(self.disk, "its manifest.json is not a docker save "
                    "manifest (Config, Layers)")
        image_id, config = self.config(entry["Config"])
        diff_ids = config["rootfs"].get("diff_ids") or []
        if len(diff_ids) != len(entry["Layers"]):
            _refuse(self.disk, "its manifest.json lists %d layers and the "
                    "image's config %d" % (len(entry["Layers"]),
                                          len(diff_ids)))
        for layer in entry["Layers"]:
            self.member(layer, "layer", regular=False)
        return image_id, [dict((k, v) for k, v in entry.items()
                               if k != "RepoTags")]

    def blob(self, descriptor, what):
        digest = descriptor.get("digest") \
            if isinstance(descriptor, dict) else None
        m = _DIGEST_RE.match(digest if isinstance(digest, six.string_types)
                             else "")
        if not m:
            _refuse(self.disk, "its %s descriptor has no sha256 digest"
                    % what)
        return "blobs/sha256/" + m.group(1), m.group(1)

    def oci(self):
        """oci-archive: (image id, index.json without annotations)."""
        layout = self.json(OCI_LAYOUT, "oci-layout", dict)
        if not isinstance(layout.get("imageLayoutVersion"), six.string_types):
            _refuse(self.disk, "its oci-layout has no imageLayoutVersion")
        index = self.json(INDEX, "index", dict)
        manifests = index.get("manifests")
        if not isinstance(manifests, list) or len(manifests) != 1:
            _refuse(self.disk, "its index.json lists %s images; save one "
                    "image per archive" % (len(manifests) if isinstance(
                        manifests, list) else "no"))
        descriptor = manifests[0]
        if not isinstance(descriptor, dict) or \
                descriptor.get("mediaType") not in _MANIFEST_TYPES:
            _refuse(self.disk, "its index.json names no image manifest "
                    "(an index of several platforms?); save one platform's "
                    "image")
        name, hexdigest = self.blob(descriptor, "manifest")
        data = self.read(name, "image manifest")
        if hashlib.sha256(data).hexdigest() != hexdigest:
            _refuse(self.disk, "its image manifest %r does not have the "
                    "digest its name says: the archive was changed after "
                    "it was saved" % name)
        try:
            manifest = json.loads(data.decode("utf-8"))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or \
                not isinstance(manifest.get("layers"), list):
            _refuse(self.disk, "its image manifest %r is not one (no "
                    "layers)" % name)
        config_name, config_hex = self.blob(manifest.get("config"),
                                            "config")
        image_id, config = self.config(config_name, config_hex)
        for layer in manifest["layers"]:
            self.member(self.blob(layer, "layer")[0], "layer",
                        regular=False)
        clean = dict((k, v) for k, v in descriptor.items()
                     if k != "annotations")
        clean_index = dict((k, v) for k, v in index.items()
                           if k != "annotations")
        clean_index["manifests"] = [clean]
        return image_id, clean_index


def _first_line(e):
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _refuse(disk, reason):
    raise errors.NotAnImageArchive(disk=disk, reason=reason)
