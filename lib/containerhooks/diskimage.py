"""containerImage=disk:<target>: the container's image from a VM disk.

For hosts that reach no registry (issue 10, "Images from a storage-domain
disk"): an admin uploads an image archive to a storage domain as a raw
disk and attaches it to the VM.  At start, before anything else is made
for the container, the root helper opens the disk Vdsm prepared,
read-only and with the checks a volume's source gets
(hostdisk.open_image_source), reads which image the archive holds
(imagearchive.inspect), and has the engine load it unless the engine has
that image already; the container then runs that image by its id.  The
disk is never written; nothing on it is extracted on the host.

The interface the helper uses: ensure(eng, image, conf) -> image id.
"""

import logging
import os
import time

from containerhooks import errors
from containerhooks import hostdisk
from containerhooks import imagearchive

log = logging.getLogger("containerhooks.diskimage")

_monotonic = getattr(time, "monotonic", time.time)


def ensure(eng, image, conf, clock=_monotonic):
    """The id ("sha256:...") of the image on disk image (an
    imageref.DiskImage with its kind and source) in engine eng, loading
    it from the disk if eng does not have it."""
    source, fd = hostdisk.open_image_source(image, conf)
    abandoned = False
    try:
        archive = imagearchive.inspect(image.disk, fd, source.size,
                                       conf.image_archive_max_size)
        if eng.has_image(archive.image_id):
            log.info("disk=%s image %s (%s) is in %s already, not loaded "
                     "again", image.disk, archive.image_id, archive.kind,
                     eng.name)
            return archive.image_id
        if archive.kind == imagearchive.OCI_ARCHIVE and eng.name == "docker":
            # Docker's load (image/tarexport/load.go before moby 25) reads
            # manifest.json, or the legacy layout without it.
            raise errors.ImageDiskRefused(
                disk=image.disk, reason="it holds an OCI archive, which "
                "Docker does not load; save the image with 'docker save' "
                "(or 'podman save --format docker-archive'), or run the VM "
                "with containerType=podman")
        log.info("disk=%s loading image %s (%s, %d bytes) from %s into %s",
                 image.disk, archive.image_id, archive.kind, archive.end,
                 source.path, eng.name)
        began = clock()
        deadline = began + conf.image_load_timeout

        def check():
            if clock() > deadline:
                raise errors.ImageLoadTimeout(
                    disk=image.disk, engine=eng.name,
                    timeout=conf.image_load_timeout, conf=conf.path)

        try:
            eng.load(_read(image.disk, imagearchive.stream(fd, archive,
                                                           check)),
                     image.disk, conf.image_load_timeout, conf.api_timeout)
        except errors.ImageLoadTimeout:
            # The load's thread may still read fd: closing it would let
            # the number name another file before this process exits.
            abandoned = True
            raise
        if not eng.has_image(archive.image_id):
            raise errors.ImageLoadError(
                engine=eng.name, disk=image.disk, reason="the engine did "
                "not store image %s, the one the archive holds"
                % archive.image_id)
        log.info("disk=%s loaded image %s into %s in %.1f s", image.disk,
                 archive.image_id, eng.name, clock() - began)
        return archive.image_id
    finally:
        if not abandoned:
            os.close(fd)


def _read(disk, chunks):
    """chunks, a failure to read the disk said as the disk's."""
    try:
        for chunk in chunks:
            yield chunk
    except EnvironmentError as e:
        raise errors.ImageDiskRefused(disk=disk, reason="reading it failed "
                                      "(%s)" % e)
