"""Test images, made here without the internet.

A tiny image is imported from Debian's busybox-static binary (the same as
"docker import" of a busybox tree): its command runs busybox httpd in the
foreground on port 8080, a long-running service that stops on SIGTERM.
It is pushed to the local registry, from which both engines pull it.
The same tree with other commands gives the images whose container ends
when a test tells it to: exit 0, exit 3, or run out of memory (EXITING).
"""

import io
import json
import tarfile

REGISTRY = "127.0.0.1:5000"
REPOSITORY = REGISTRY + "/vhc-tests/busybox-httpd"
TAG = "1"
IMAGE = REPOSITORY + ":" + TAG
MISSING = REGISTRY + "/vhc-tests/no-such-image:1"

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "httpd", "cat", "echo", "hostname", "ls", "ip",
           "nc", "wget", "id", "grep", "head", "dd", "sync", "true", "false",
           "kill", "ps", "mkdir", "rm", "touch", "sha256sum", "stat",
           "printf", "env", "pwd")
COMMAND = '["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]'


def rootfs_tar(files=()):
    """The busybox tree, plus files: (path, bytes, mode) each."""
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
        for path, data, mode in (("www/index.html", index, 0o644),) \
                + tuple(files):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push(api, repository, tag, **kwargs):
    """Push repository:tag from Docker (api: its low-level APIClient) to
    its registry; RuntimeError when the registry refuses (the stream says
    so in a message: the call itself does not fail)."""
    for message in api.push(repository, tag=tag, stream=True, decode=True,
                            **kwargs):
        if "error" in message:
            raise RuntimeError("push failed: %s" % message["error"])


def build_and_push(docker_client):
    """Import the image into Docker and push it to the local registry."""
    api = docker_client.api
    api.import_image_from_data(rootfs_tar(), repository=REPOSITORY, tag=TAG,
                               changes=["CMD " + COMMAND])
    push(api, REPOSITORY, TAG)
    return IMAGE


def ensure_local(client, image=IMAGE):
    """Have image in the engine's own storage, pulling it from the local
    registry if it is not there yet.

    For tests that create containers with the SDK directly rather than
    through the hooks (which pull themselves): containers.run() pulls only
    on ImageNotFound, and docker-py maps Podman's lowercase "no such image"
    to plain NotFound, so on a fresh Podman storage it fails instead.
    """
    import docker
    try:
        client.images.get(image)
    except docker.errors.NotFound:
        repository, tag = image.rsplit(":", 1)
        client.images.pull(repository, tag=tag)
    return image


def remove_local(client, image=IMAGE):
    """Remove image from an engine, so the next start has to pull it."""
    import docker
    try:
        client.images.remove(image, force=True)
    except docker.errors.NotFound:
        pass    # Podman's "image not known" is a plain NotFound


# Images whose main process ends when told to: it waits for a file to
# appear (docker exec ... touch /tmp/exit-now), then does its last act.
# The test decides when the container ends, so the placeholder is surely
# running by then; no sleep has to be long enough.
EXITING_REPOSITORY = REGISTRY + "/vhc-tests/busybox-exit"
EXIT_TRIGGER = "/tmp/exit-now"
EXITING = {
    "exit0": "exit 0",
    "exit3": "exit 3",
    # Allocates and fills a 300 MiB buffer: beyond a 64 MiB VM's memory.
    "oom": "dd if=/dev/zero of=/dev/null bs=300M count=1",
}


def exiting(kind):
    """The reference of the image whose container ends with kind."""
    return "%s:%s" % (EXITING_REPOSITORY, kind)


def build_and_push_exiting(docker_client):
    """Import and push one image per EXITING kind; return their refs."""
    api = docker_client.api
    rootfs = rootfs_tar()
    for kind, last in sorted(EXITING.items()):
        script = "until [ -e %s ]; do sleep 0.05; done; %s" % (
            EXIT_TRIGGER, last)
        api.import_image_from_data(
            rootfs, repository=EXITING_REPOSITORY, tag=kind,
            changes=["CMD " + json.dumps(["/bin/sh", "-c", script])])
        push(api, EXITING_REPOSITORY, kind)
    return dict((kind, exiting(kind)) for kind in EXITING)


# A real application's shape (issue 12): like postgres, it refuses to start
# without a password in its environment and without an argument, and like
# most images its ENTRYPOINT is a script that takes the command's arguments.
# Once configured it serves a page of what it was given, the password only
# hashed: the tests compare it with what the VM's properties and secret say.
APP_REPOSITORY = REGISTRY + "/vhc-tests/busybox-app"
APP_IMAGE = APP_REPOSITORY + ":1"
APP_SCRIPT = b"""#!/bin/sh
if [ -z "$APP_PASSWORD" ]; then
    echo "app: APP_PASSWORD is not set; refusing to start" >&2
    exit 64
fi
if [ "$#" -eq 0 ]; then
    echo "app: usage: app GREETING [ARG...]; refusing to start" >&2
    exit 64
fi
mkdir -p /tmp/www
page=/tmp/www/index.html
{
    printf 'password_sha256=%s\n' "$(printf %s "$APP_PASSWORD" | sha256sum)"
    printf 'args=%d\n' "$#"
    for arg in "$@"; do
        printf 'arg_sha256=%s\n' "$(printf %s "$arg" | sha256sum)"
    done
    printf 'greeting=%s\n' "$1"
    printf 'mode=%s\n' "$APP_MODE"
    printf 'hostname=%s\n' "$(hostname)"
    printf 'uid=%s\n' "$(id -u)"
    printf 'gid=%s\n' "$(id -g)"
    printf 'cwd=%s\n' "$(pwd)"
} > "$page"
echo "app: $1 - serving on port 8080"
exec httpd -f -p 8080 -h /tmp/www
"""


def build_and_push_app(docker_client):
    """Import and push the application image; return its reference."""
    api = docker_client.api
    api.import_image_from_data(
        rootfs_tar([("bin/app", APP_SCRIPT, 0o755)]),
        repository=APP_REPOSITORY, tag="1",
        changes=['ENTRYPOINT ["/bin/app"]', "EXPOSE 8080"])
    push(api, APP_REPOSITORY, "1")
    return APP_IMAGE


def push_to(docker_client, image, registry, auth_config):
    """Push image (in Docker) to registry as the same path and tag, with
    auth_config; return the new reference."""
    name = image.split("/", 1)[1]
    target = registry + "/" + name
    repository, tag = target.rsplit(":", 1)
    ensure_local(docker_client, image)
    docker_client.images.get(image).tag(repository, tag)
    push(docker_client.api, repository, tag, auth_config=auth_config)
    return target


# A tag that tests move: the same repository and tag pushed again with
# other content (a new image id), as a team publishing a new release.
MOVING_REPOSITORY = REGISTRY + "/vhc-tests/busybox-moving"
MOVING_IMAGE = MOVING_REPOSITORY + ":1"


def push_moving(docker_client, release):
    """Push release (a number) as MOVING_IMAGE; return its image id."""
    api = docker_client.api
    api.import_image_from_data(
        rootfs_tar(), repository=MOVING_REPOSITORY, tag="1",
        changes=["CMD " + COMMAND, "ENV VHC_RELEASE=%d" % release])
    push(api, MOVING_REPOSITORY, "1")
    return docker_client.images.get(MOVING_IMAGE).id


# An image with a HEALTHCHECK that fails while UNHEALTHY_TRIGGER exists,
# printing its content (issue 13: the health check as the VM's watchdog).
# Built (not imported: an import takes no HEALTHCHECK) on the base image,
# which is local: no network.  One failure makes it unhealthy; the
# interval is the package's floor (spec.HEALTHCHECK_MIN_INTERVAL).
HEALTH_REPOSITORY = REGISTRY + "/vhc-tests/busybox-health"
HEALTH_IMAGE = HEALTH_REPOSITORY + ":1"
UNHEALTHY_TRIGGER = "/tmp/unhealthy"
HEALTH_INTERVAL = 5
HEALTH_DOCKERFILE = """FROM %s
HEALTHCHECK --interval=%ds --timeout=3s --retries=1 CMD \
if [ -e %s ]; then echo "sick: $(cat %s)"; exit 1; fi; echo fine
""" % (IMAGE, HEALTH_INTERVAL, UNHEALTHY_TRIGGER, UNHEALTHY_TRIGGER)


def build_and_push_health(docker_client):
    """Build and push the health image; return its reference."""
    ensure_local(docker_client, IMAGE)
    docker_client.images.build(
        fileobj=io.BytesIO(HEALTH_DOCKERFILE.encode("utf-8")),
        tag=HEALTH_IMAGE, pull=False, rm=True, forcerm=True)
    push(docker_client.api, HEALTH_REPOSITORY, "1")
    return HEALTH_IMAGE


# An application for the serial console (console.py): it says it is ready,
# then answers every line it reads on stdin, until stdin ends; then it
# keeps running.  Its output before a console connects is what the
# console replays.
CONSOLE_REPOSITORY = REGISTRY + "/vhc-tests/busybox-console"
CONSOLE_IMAGE = CONSOLE_REPOSITORY + ":1"
CONSOLE_READY = "console-app: ready"
CONSOLE_SCRIPT = b"""#!/bin/sh
echo "console-app: ready"
while IFS= read -r line; do
    echo "console-app: you said <$line>"
done
echo "console-app: stdin ended"
exec sleep 100000
"""


def build_and_push_console(docker_client):
    """Import and push the console application image; its reference."""
    api = docker_client.api
    api.import_image_from_data(
        rootfs_tar([("bin/console-app", CONSOLE_SCRIPT, 0o755)]),
        repository=CONSOLE_REPOSITORY, tag="1",
        changes=['CMD ["/bin/console-app"]'])
    push(api, CONSOLE_REPOSITORY, "1")
    return CONSOLE_IMAGE


# An image that records the signal it is stopped with (issue 13: Engine's
# Shutdown and Reboot through the guest agent).  Its STOPSIGNAL is SIGUSR1,
# not the engines' default SIGTERM: a line "stopped by SIGUSR1" in its
# output shows that the stop used the image's own.  Built (an import may
# not take STOPSIGNAL) on an imported tree with the script.
STOP_REPOSITORY = REGISTRY + "/vhc-tests/busybox-stopsignal"
STOP_IMAGE = STOP_REPOSITORY + ":1"
STOP_SIGNAL = "SIGUSR1"
STOP_SCRIPT = b"""#!/bin/sh
trap 'echo "stopped by SIGUSR1"; exit 0' USR1
trap 'echo "stopped by SIGTERM"; exit 0' TERM
echo "started"
while true; do sleep 1 & wait $!; done
"""
STOP_DOCKERFILE = """FROM %s:base
STOPSIGNAL %s
CMD ["/bin/stopsignal"]
""" % (STOP_REPOSITORY, STOP_SIGNAL)


def build_and_push_stopsignal(docker_client):
    """Build and push the stop signal image; return its reference."""
    api = docker_client.api
    api.import_image_from_data(
        rootfs_tar([("bin/stopsignal", STOP_SCRIPT, 0o755)]),
        repository=STOP_REPOSITORY, tag="base")
    docker_client.images.build(
        fileobj=io.BytesIO(STOP_DOCKERFILE.encode("utf-8")),
        tag=STOP_IMAGE, pull=False, rm=True, forcerm=True)
    push(api, STOP_REPOSITORY, "1")
    return STOP_IMAGE
