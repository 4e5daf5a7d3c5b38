"""Test images, made here without the internet.

A tiny image is imported from Debian's busybox-static binary (the same as
"docker import" of a busybox tree): its command runs busybox httpd in the
foreground on port 8080, a long-running service that stops on SIGTERM.
It is pushed to the local registry, from which both engines pull it.
"""

import io
import tarfile

REGISTRY = "127.0.0.1:5000"
REPOSITORY = REGISTRY + "/vhc-tests/busybox-httpd"
TAG = "1"
IMAGE = REPOSITORY + ":" + TAG
MISSING = REGISTRY + "/vhc-tests/no-such-image:1"

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "httpd", "cat", "echo", "hostname", "ls", "ip",
           "nc", "wget", "id", "grep", "head", "dd", "sync", "true", "false",
           "kill", "ps", "mkdir", "rm", "touch", "sha256sum", "stat")
COMMAND = '["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]'


def rootfs_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo("bin/" + applet)
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            t.addfile(info)
        for d in ("www", "tmp", "data"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            t.addfile(info)
        index = b"hello from vdsm-hook-containers\n"
        info = tarfile.TarInfo("www/index.html")
        info.size = len(index)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(index))
    return buf.getvalue()


def build_and_push(docker_client):
    """Import the image into Docker and push it to the local registry."""
    api = docker_client.api
    api.import_image_from_data(rootfs_tar(), repository=REPOSITORY, tag=TAG,
                               changes=["CMD " + COMMAND])
    for message in api.push(REPOSITORY, tag=TAG, stream=True, decode=True):
        if "error" in message:
            raise RuntimeError("push failed: %s" % message["error"])
    return IMAGE


def remove_local(client, image=IMAGE):
    """Remove image from an engine, so the next start has to pull it."""
    import docker
    try:
        client.images.remove(image, force=True)
    except docker.errors.ImageNotFound:
        pass
