"""The container engine, through the Docker SDK for Python.

This is the only module that imports the SDK.  Docker and Podman (through
its Docker-compatible API) are both reached with docker.DockerClient on a
unix socket; only APIs that exist since docker-py 4.0 are used.  SDK and
transport errors become the package's own errors here.
"""

import calendar
import collections
import copy
import logging
import re
import threading
import unicodedata

import os
import sys
import sysconfig


def _prefer_stdlib_distutils():
    """docker-py before 6.0 imports distutils.version.  Where setuptools'
    distutils shim is active (Debian 12's Python 3.11), that import loads
    all of setuptools: ~130 ms of every helper run, half of importing the
    SDK.  The standard library's own distutils, where there is one, does
    the same job; without one (Python 3.12+) the shim stays."""
    stdlib = sysconfig.get_paths().get("stdlib") or ""
    if os.path.isdir(os.path.join(stdlib, "distutils")):
        sys.meta_path[:] = [f for f in sys.meta_path
                            if type(f).__module__ != "_distutils_hack"]


_prefer_stdlib_distutils()

import docker  # noqa: E402
import requests  # noqa: E402
import six  # noqa: E402
from six.moves import queue  # noqa: E402

from containerhooks import errors
from containerhooks.spec import LABEL_MANAGED, LABEL_VM_ID

log = logging.getLogger("containerhooks.engine")

# _call()'s "no default": a NotFound is an error.
_RAISE = object()

class Endpoint(collections.namedtuple(
        "Endpoint", "network, ip, mac, prefix, gateway")):
    """The container's place on one engine network."""

    def __new__(cls, network, ip=None, mac=None, prefix=None, gateway=None):
        return super(Endpoint, cls).__new__(cls, network, ip, mac, prefix,
                                            gateway)


class ContainerInfo(object):
    """What the package needs to know of one container."""

    def __init__(self, id, name, status, labels, exit_code=None,
                 oom_killed=False, pid=None, created=None, started=None,
                 image=None, config=None, image_id=None, runtime=None):
        self.id = id
        self.runtime = runtime        # the OCI runtime it runs on
        self.image_id = image_id      # the image it runs: sha256:<id>
        self.config = config or {}    # the engine's "Config": what runs
        self.created = created        # seconds since the epoch, or None
        self.started = started
        self.image = image
        self.name = name
        self.status = status          # created, running, paused, exited...
        self.labels = labels
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.pid = pid

    @property
    def vm_id(self):
        return self.labels.get(LABEL_VM_ID)

    def __repr__(self):
        return "<ContainerInfo %s %s %s>" % (self.name, self.id[:12],
                                             self.status)


class Engine(object):
    """One container engine (docker or podman) on this host."""

    def __init__(self, name, socket, client):
        self.name = name
        self.socket = socket
        self.client = client

    @classmethod
    def connect(cls, name, socket, timeout):
        """Connect to the engine listening on socket and check it answers."""
        try:
            # version="auto" asks the engine its API version: that
            # request already fails when the engine does not answer.
            client = docker.DockerClient(base_url="unix://" + socket,
                                         version="auto", timeout=timeout)
        except (docker.errors.DockerException,
                requests.exceptions.RequestException) as e:
            raise errors.EngineUnavailable(
                engine=name, socket=socket, reason=_reason(e))
        return cls(name, socket, client)

    def version(self):
        return self._call("query", "", self.client.version)

    def runtime_paths(self):
        """{name: path} of the OCI runtimes the engine is configured with
        (its info's Runtimes; a path may be a bare command name, "runc").
        Podman lists every runtime its containers.conf knows, installed
        or not (runtimes.engine_report checks the binaries)."""
        found = self._call("query", "info", self.client.info).get(
            "Runtimes") or {}
        return dict((name, (value or {}).get("path") or "")
                    for name, value in found.items())

    def default_runtime(self):
        """The name of the OCI runtime the engine runs a container on when
        none is asked for (its info's DefaultRuntime; a Podman service's
        own, --runtime)."""
        return self._call("query", "info", self.client.info).get(
            "DefaultRuntime")

    # Images

    def has_image(self, ref):
        try:
            self.client.images.get(str(ref))
            return True
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.APIError,
                requests.exceptions.RequestException) as e:
            raise self._error("inspect image", str(ref), e)

    def pull(self, ref, timeout, api_timeout, auth=None, progress=None):
        """Pull ref, giving up after timeout seconds.

        auth: the engine's credentials file (registryauth.AuthFile); the
        entry of ref's registry goes with the pull, and the engine is told
        explicitly when there is none (Podman would otherwise fall back to
        its own service's default auth file).  None: the SDK's own lookup
        (root's ~/.docker/config.json), for callers that have no file.
        progress(id, status, detail): called with each message of the
        engine (detail: its progress bar text, or "").

        The SDK waits for the engine's answer to a pull without any time
        limit (it passes timeout=None), and an engine waiting for a
        registry that stalls sends nothing meanwhile: no progress message
        comes to check a deadline against (Docker gives up on such a
        registry after about 25 s, Podman after minutes).  So the pull
        runs in a thread of its own, and this one waits for it until the
        deadline.  A pull given up on is left to end with the process (the
        root helper exits right after); its connection closing makes the
        engine cancel it.
        """
        outcome = queue.Queue()
        worker = threading.Thread(target=self._pull, name="pull",
                                  args=(ref, api_timeout, outcome, auth,
                                        progress))
        worker.daemon = True
        worker.start()
        try:
            error = outcome.get(timeout=timeout)
        except queue.Empty:
            raise errors.PullTimeout(image=str(ref), timeout=timeout,
                                     conf="containers.conf")
        if error is not None:
            raise error
        if not self.has_image(ref):
            raise errors.ImageNotFound(image=str(ref),
                                       reason="the engine did not store it")

    def load(self, chunks, disk, timeout, api_timeout):
        """Load the image archive chunks (an iterable of bytes, streamed
        to the engine as it is read: images.load's API, /images/load)
        from VM disk disk (for messages); give up after timeout seconds,
        as pull() does.  The caller checks that the engine has the image
        it expects: an engine's report of what it loaded is text.

        Measured (tests/diskimage_test.py): Docker 20.10 and Podman
        4.3's compatible API both name a loaded image by the archive's
        RepoTags ("Loaded image: app:1"), moving a tag the host had;
        imagearchive.stream gives them an archive without names, and they
        load it unnamed (Docker: "Loaded image ID: sha256:...", Podman:
        "Loaded image: sha256:...").
        """
        outcome = queue.Queue()
        worker = threading.Thread(target=self._load, name="load",
                                  args=(chunks, disk, api_timeout, outcome))
        worker.daemon = True
        worker.start()
        try:
            error = outcome.get(timeout=timeout)
        except queue.Empty:
            raise errors.ImageLoadTimeout(disk=disk, engine=self.name,
                                          timeout=timeout,
                                          conf="containers.conf")
        if error is not None:
            raise error

    def _load(self, chunks, disk, api_timeout, outcome):
        """load()'s thread: put None, or the error, into outcome."""
        api = docker.APIClient(base_url="unix://" + self.socket,
                               version="auto", timeout=api_timeout)
        try:
            for message in api.load_image(chunks) or ():
                if "error" in message:
                    raise errors.ImageLoadError(
                        engine=self.name, disk=disk,
                        reason=clean_text(message["error"]))
                if message.get("stream"):
                    log.info("load from disk %s: %s", disk,
                             clean_text(message["stream"]))
            outcome.put(None)
        except errors.Error as e:
            outcome.put(e)
        except docker.errors.APIError as e:
            outcome.put(errors.ImageLoadError(engine=self.name, disk=disk,
                                              reason=_reason(e)))
        except requests.exceptions.RequestException as e:
            # Also what the archive's reader raised, wrapped by requests
            # while it sent the body (ChunkedEncodingError and others).
            outcome.put(errors.ImageLoadError(engine=self.name, disk=disk,
                                              reason=_reason(e)))
        except Exception as e:
            log.exception("load from disk %s failed unexpectedly", disk)
            outcome.put(e)
        finally:
            api.close()

    def image_config(self, ref):
        """The image's own container config ("Config" of its inspect):
        Healthcheck, Volumes, User... as the image's author wrote it."""
        image = self._call("inspect image", str(ref),
                           lambda: self.client.images.get(str(ref)))
        return image.attrs.get("Config") or {}

    def image_id(self, ref):
        """The id of the image the engine has as ref."""
        return self._call("inspect image", str(ref),
                          lambda: self.client.images.get(str(ref))).id

    def repo_digest(self, image_id, ref):
        """The digest ("sha256:...") of the manifest the engine pulled
        image_id by, from ref's repository (its RepoDigests), or None (an
        image that came from no registry)."""
        image = self._call("inspect image", image_id,
                           lambda: self.client.images.get(image_id))
        return _repo_digest(image.attrs.get("RepoDigests") or [], ref)

    def _pull(self, ref, api_timeout, outcome, auth, progress):
        """pull()'s thread: put None, or the error, into outcome."""
        api = docker.APIClient(base_url="unix://" + self.socket,
                               version="auto", timeout=api_timeout)
        last = None
        credentials = _NOT_LOOKED_UP
        try:
            credentials = _credentials(ref, auth)
            stream = api.pull(ref.repository, tag=ref.pull_tag, stream=True,
                              decode=True, auth_config=credentials)
            for message in stream:
                if "error" in message:
                    raise _pull_error(ref, message["error"], auth,
                                      credentials)
                status = message.get("status")
                if progress is not None and status:
                    progress(message.get("id", ""), clean_text(status),
                             clean_text(message.get("progress") or ""))
                if status and status != last:
                    log.info("pull %s: %s %s", ref, message.get("id", ""),
                             status)
                    last = status
            outcome.put(None)
        except errors.Error as e:
            outcome.put(e)
        except docker.errors.APIError as e:
            outcome.put(_pull_error(ref, _reason(e), auth, credentials))
        except docker.errors.DockerException as e:
            # A credential helper (credsStore, credHelpers) that failed.
            outcome.put(errors.CredentialsFileError(
                path=auth.path if auth else "~/.docker/config.json",
                key=auth.key if auth else "-",
                conf=auth.conf if auth else "-", reason=_reason(e)))
        except requests.exceptions.RequestException as e:
            outcome.put(errors.EngineUnavailable(
                engine=self.name, socket=self.socket, reason=_reason(e)))
        except Exception as e:
            log.exception("pull %s failed unexpectedly", ref)
            outcome.put(e)
        finally:
            api.close()

    # Containers

    def create(self, name, image, labels, host_options, hostname=None,
               endpoints=(), healthcheck=None, layer_size="", config=None,
               domainname=None):
        """Create (not start) a container; return its ContainerInfo.

        host_options are HostConfig keywords (create_host_config).
        endpoints: Endpoint tuples; the container is created on the first
        and connected to the others before it starts.  No endpoint means
        no network at all.  healthcheck: the create() healthcheck (None:
        the image's).  layer_size: the most the container may write into
        its own layer ("10g"), where the storage driver can bound it
        (overlay2 on XFS mounted with pquota, btrfs, zfs...); an engine
        that cannot creates it unbounded, with a warning in the log.
        config: more create_container() keywords for the application
        (appconfig.create_options: environment, command, entrypoint,
        working_dir, user), never logged (secrets are in environment).
        domainname: Docker sets it; Podman 4.3's compatible API ignores it
        (spec.host_names).
        """
        api = self.client.api
        options = dict(host_options)
        networking = None
        mac = None
        if endpoints:
            first = endpoints[0]
            options["network_mode"] = first.network
            networking = api.create_networking_config(
                {first.network: self._endpoint_config(first)})
            # Docker before API 1.44 takes the MAC of the first network
            # from the container config only.
            mac = first.mac
        else:
            options["network_mode"] = "none"

        def create(host):
            # use_config_proxy: docker-py (since 4.0, by default) copies the
            # proxies of root's ~/.docker/config.json into the container's
            # environment; the host's proxy is none of a tenant's business.
            return lambda: api.create_container(
                str(image), name=name, labels=labels, detach=True,
                hostname=hostname, domainname=domainname, mac_address=mac,
                host_config=api.create_host_config(**host),
                networking_config=networking, healthcheck=healthcheck,
                use_config_proxy=False, **(config or {}))
        if layer_size:
            bounded = dict(options, storage_opt={"size": layer_size})
            try:
                self._call("create", name, create(bounded))
            except errors.ContainerError as e:
                if not any(w in e.reason for w in _NO_STORAGE_OPT):
                    raise
                log.warning("%s cannot bound the writable layer of %s "
                            "(writable_layer_size): %s", self.name, name,
                            e.reason)
                layer_size = ""
        if not layer_size:
            self._call("create", name, create(options))
        for ep in endpoints[1:]:
            self._call("connect", name, lambda: api.connect_container_to_network(
                name, ep.network, ipv4_address=ep.ip))
        return self.inspect(name)

    def _endpoint_config(self, ep):
        config = self.client.api.create_endpoint_config(ipv4_address=ep.ip)
        # Podman (and Docker from API 1.44) take the MAC per endpoint.
        config["MacAddress"] = ep.mac
        return config

    def endpoints(self, name):
        """{network name: Endpoint} of a started container, as the engine
        assigned them (IP, prefix length, MAC)."""
        attrs = self._get(name).attrs
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        return dict(
            (net, Endpoint(network=net, ip=info.get("IPAddress") or None,
                           mac=(info.get("MacAddress") or "").lower(),
                           prefix=info.get("IPPrefixLen"),
                           gateway=info.get("Gateway") or None))
            for net, info in nets.items())

    # Networks

    def find_network(self, name):
        """The engine's network called name, as a dict of its details."""
        net = self._call("inspect network", name,
                         lambda: self.client.networks.get(name), missing=None)
        return None if net is None else net.attrs

    def create_macvlan_network(self, name, parent, subnet, gateway,
                               ip_range, labels):
        """A macvlan network on the Linux bridge parent (bridge mode)."""
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
            subnet=subnet, gateway=gateway, iprange=ip_range)])
        self._call("create network", name, lambda: self.client.networks.create(
            name, driver="macvlan", ipam=ipam, labels=labels,
            options={"parent": parent, "macvlan_mode": "bridge"},
            check_duplicate=True))

    def start(self, name):
        container = self._get(name)
        self._call("start", name, container.start)

    def list_managed(self):
        """Every container of the package on this engine."""
        return self._list("managed", {"label": LABEL_MANAGED + "=1"})

    def _list(self, what, filters):
        """ContainerInfo of every container matching filters.

        The SDK's containers.list() lists, then inspects each container,
        and fails as a whole when one vanishes in between (removed by
        another VM's destroy, or being created: Docker lists a new
        container a moment before it can inspect it).  So: the engine's
        summaries, then each inspected alone; one gone meanwhile is
        simply not there."""
        summaries = self._call("list", what, lambda: self.client.api
                               .containers(all=True, filters=filters))
        found = []
        for summary in summaries:
            container = self._call(
                "inspect", summary["Id"][:12],
                lambda: self.client.containers.get(summary["Id"]),
                missing=None)
            if container is not None:
                found.append(_info(container))
        return found

    def summaries(self, label):
        """Summary of every container carrying label, in one call (the
        engine's list, as docker ps and podman ps show it), whatever their
        state."""
        found = self._call("list", label, lambda: self.client.api
                           .containers(all=True,
                                       filters={"label": label}))
        return [_summary(s) for s in found or ()]

    def logs(self, name, follow=False, tail="all"):
        """The container's output (stdout and stderr), as byte chunks."""
        container = self._get(name)
        return self._call("read the logs of", name, lambda: container.logs(
            stream=True, follow=follow, tail=tail))

    def find(self, vm_id):
        """The container standing for vm_id, or None."""
        for info in self._list(vm_id, {"label": "%s=%s" % (LABEL_VM_ID,
                                                          vm_id)}):
            if info.labels.get(LABEL_MANAGED) == "1":
                return info
        return None

    def inspect(self, name):
        return _info(self._get(name))

    def lookup(self, name):
        """The ContainerInfo of container name (a name or a full id), or
        None if there is none."""
        container = self._call("inspect", name,
                               lambda: self.client.containers.get(name),
                               missing=None)
        return None if container is None else _info(container)

    def pause(self, name):
        container = self._get(name)
        self._call("pause", name, container.pause)

    def unpause(self, name):
        container = self._get(name)
        self._call("unpause", name, container.unpause)

    def stop(self, name, timeout):
        container = self._get(name)
        self._call("stop", name, lambda: container.stop(timeout=timeout))

    def remove(self, name):
        """Remove the container (and its anonymous volumes); gone is fine."""
        def remove():
            self.client.containers.get(name).remove(v=True, force=True)
            return True
        if not self._call("remove", name, remove, missing=False):
            log.debug("container %s already gone", name)

    # Watching (the exit watcher, watcher.py)

    def facts(self):
        """What the engine is and can run, as EngineFacts."""
        version = self._call("query", "version", self.client.version)
        info = self._call("query", "info", self.client.info)
        return EngineFacts(
            version=version.get("Version"),
            api_version=version.get("ApiVersion"),
            runtimes=sorted((info.get("Runtimes") or {}).keys()),
            default_runtime=info.get("DefaultRuntime"),
            cgroup_driver=info.get("CgroupDriver"),
            cgroup_version=info.get("CgroupVersion"))

    def events(self, label):
        """The events of the containers labelled label, as they happen.

        An endless iterator of Event; it ends, or raises EngineUnavailable
        or ContainerError, when the connection to the engine breaks.  Only
        the label and type filters are passed to the engine: Podman's
        Docker-compatible API ignores an "event" filter of "die".
        """
        try:
            stream = self.client.api.events(
                decode=True,
                filters={"type": ["container"], "label": [label]})
        except (docker.errors.APIError,
                requests.exceptions.RequestException) as e:
            raise self._error("watch", label, e)
        return _events(self, stream)

    def exit_status(self, name):
        """How container name ended, as ExitStatus; None if it is gone."""
        container = self._call("inspect", name,
                               lambda: self.client.containers.get(name),
                               missing=None)
        if container is None:
            return None
        state = container.attrs.get("State") or {}
        return ExitStatus(status=state.get("Status"),
                          exit_code=state.get("ExitCode"),
                          oom_killed=bool(state.get("OOMKilled")),
                          error=state.get("Error") or None,
                          finished_at=state.get("FinishedAt"))

    # Health (health.py)

    def health(self, name):
        """The health of container name as the engine keeps it, as
        Health; None if the container is gone."""
        container = self._call("inspect", name,
                               lambda: self.client.containers.get(name),
                               missing=None)
        if container is None:
            return None
        attrs = container.attrs
        state = attrs.get("State") or {}
        # Docker's key; Podman 4's compat API says "Health" too, its own
        # API "Healthcheck".
        health = state.get("Health") or state.get("Healthcheck") or {}
        runs = health.get("Log") or []
        last = runs[-1] if runs else {}
        return Health(status=state.get("Status"),
                      health=health.get("Status") or None,
                      runs=len(runs), output=last.get("Output") or "",
                      started=_epoch(state.get("StartedAt")),
                      check=(attrs.get("Config") or {}).get("Healthcheck"))

    def probe(self, name, command):
        """Run command (a list) in container name once, as a health check:
        (exit code, output bytes).  Bounded by the client's api_timeout."""
        container = self._get(name)
        result = self._call("run a health check in", name,
                            lambda: container.exec_run(command))
        return result.exit_code, result.output

    def restart(self, name, timeout):
        container = self._get(name)
        self._call("restart", name,
                   lambda: container.restart(timeout=timeout))

    def raw_inspect(self, name):
        """The engine's whole inspect of container name (a dict)."""
        return self._get(name).attrs

    # Helpers

    def _get(self, name):
        return self._call("inspect", name,
                          lambda: self.client.containers.get(name))

    def _call(self, action, name, func, missing=_RAISE):
        """func(), its SDK and transport errors as the package's own; when
        missing is given, what a NotFound (the object is gone) returns."""
        try:
            return func()
        except docker.errors.ImageNotFound as e:
            raise errors.ImageNotFound(image=name, reason=_reason(e))
        except (docker.errors.APIError,
                requests.exceptions.RequestException) as e:
            if missing is not _RAISE and vanished(e):
                return missing
            raise self._error(action, name, e)

    def _error(self, action, name, e):
        if isinstance(e, requests.exceptions.ConnectionError):
            return errors.EngineUnavailable(
                engine=self.name, socket=self.socket, reason=_reason(e))
        return errors.ContainerError(engine=self.name, action=action,
                                     name=name, reason=_reason(e))


def vanished(e):
    """Whether the SDK error e says the object is gone (or going).

    NotFound (404), and Podman's answer to the inspection of a container
    in the middle of its removal: 500 "container ... does not exist in
    database: no such container" (Podman 4.3's compat handler maps every
    inspect error but the lookup's to 500; tests/engine_test.py removes
    containers in a loop while listing and sees it)."""
    if isinstance(e, docker.errors.NotFound):
        return True
    return (isinstance(e, docker.errors.APIError)
            and e.response is not None and e.response.status_code == 500
            and "no such container" in str(e.explanation or ""))


def _info(container):
    attrs = container.attrs
    state = attrs.get("State") or {}
    return ContainerInfo(
        id=container.id,
        name=container.name,
        status=state.get("Status") or container.status,
        labels=container.labels or {},
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        pid=state.get("Pid") or None,
        created=_epoch(attrs.get("Created")),
        started=_epoch(state.get("StartedAt")),
        image=(attrs.get("Config") or {}).get("Image"),
        config=attrs.get("Config") or {},
        image_id=attrs.get("Image") or None,
        # Podman says which runtime at the top ("OCIRuntime": "crun"; its
        # HostConfig.Runtime is "oci"), Docker in HostConfig ("runc").
        runtime=attrs.get("OCIRuntime")
        or (attrs.get("HostConfig") or {}).get("Runtime") or None,
    )


# One container as the engine's list shows it: status is the engine's
# sentence ("Up 3 minutes (healthy)", "Exited (1) 2 seconds ago").
Summary = collections.namedtuple(
    "Summary", "id, names, image, command, status, labels")


def _summary(summary):
    # Docker's names carry a leading "/" (its API's container names are
    # paths); docker ps, and Podman's list, show them without.
    return Summary(
        id=summary.get("Id") or "",
        names=[n.lstrip("/") for n in summary.get("Names") or ()],
        image=summary.get("Image") or "",
        command=summary.get("Command") or "",
        status=summary.get("Status") or "",
        labels=summary.get("Labels") or {})


_TIME_RE = re.compile(r"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)")


def _epoch(text):
    """Seconds since the epoch of the engine's RFC 3339 UTC time, or None
    (Docker says 0001-01-01T00:00:00Z for "never")."""
    m = _TIME_RE.match(text or "")
    if not m or m.group(1) == "0001":
        return None
    offset = re.search(r"([+-])(\d\d):(\d\d)\Z", text)
    seconds = calendar.timegm(tuple(int(g) for g in m.groups()))
    if offset:
        delta = int(offset.group(2)) * 3600 + int(offset.group(3)) * 60
        seconds -= delta if offset.group(1) == "+" else -delta
    return seconds


# How the engines refuse a writable layer size their storage cannot bound:
# Docker 20.10 and Podman 4.3 (containers/storage) both say "--storage-opt
# is supported only for overlay over xfs with 'pquota' mount option".
_NO_STORAGE_OPT = ("--storage-opt", "storage opt")

# How the engines (Go's net/http) say that a registry cannot be reached, as
# opposed to an image it does not have.
_UNREACHABLE = ("connection refused", "no such host", "no route to host",
                "network is unreachable", "i/o timeout",
                "TLS handshake timeout", "Client.Timeout exceeded",
                "context deadline exceeded", "connection reset by peer")


# How the engines say that a registry refused the pull for want of (the
# right) credentials: Docker "no basic auth credentials" (none sent),
# "unauthorized: authentication required" (wrong ones), Docker Hub "pull
# access denied ... may require 'docker login'"; Podman "unauthorized:
# authentication required" for both, "requested access to the resource is
# denied".
_UNAUTHORIZED = ("no basic auth credentials", "unauthorized",
                 "authentication required", "access to the resource is "
                 "denied", "may require 'docker login'")

# _pull's credentials before they were looked up.
_NOT_LOOKED_UP = object()


def _credentials(ref, auth):
    """The auth_config to pull ref with: the entry of its registry in
    auth (registryauth.AuthFile), {} for none; None without auth (the
    SDK looks in root's home).

    The file's data is handed to the SDK as a dict, never as a path: the
    SDK looks in $DOCKER_CONFIG and root's ~/.docker when the path it is
    given does not exist.  Credential helpers (credsStore, credHelpers)
    run as the SDK runs them for the Docker client."""
    if auth is None:
        return None
    if not auth.data:
        return {}
    config = docker.auth.load_config(config_dict=copy.deepcopy(auth.data))
    found = docker.auth.resolve_authconfig(config, ref.domain or "docker.io")
    return dict(found) if found else {}


def _secrets(credentials):
    """The texts of credentials that must never be shown."""
    if not isinstance(credentials, dict):
        return []
    found = []
    for key, value in credentials.items():
        if key.lower() in ("password", "identitytoken", "auth",
                           "registrytoken") and value:
            found.append(value)
    return found


def _pull_error(ref, reason, auth=None, credentials=_NOT_LOOKED_UP):
    """The error of a pull the engine refused with reason."""
    reason = clean_text(reason)
    for secret in _secrets(credentials):
        reason = reason.replace(clean_text(secret), "***")
    registry = ref.domain or "docker.io"
    if any(words in reason for words in _UNAUTHORIZED):
        sent = bool(credentials) and credentials is not _NOT_LOOKED_UP
        if auth is None:
            problem = ("registry %s refused it without credentials (%s)"
                       % (registry, reason))
            fix = ("Store credentials for %s in the file containers.conf "
                   "names for this engine" % registry)
        elif sent:
            problem = ("registry %s refused the credentials this host has "
                       "for it in %s (%s)" % (registry, auth.path, reason))
            fix = auth.fix(registry, again=True)
        else:
            problem = ("registry %s asks for credentials and this host has "
                       "none for it in %s (%s)" % (registry, auth.path,
                                                   reason))
            fix = auth.fix(registry)
        return errors.RegistryCredentials(image=str(ref), problem=problem,
                                          fix=fix)
    if any(words in reason for words in _UNREACHABLE):
        return errors.RegistryUnreachable(
            image=str(ref), registry=registry, reason=reason)
    return errors.ImageNotFound(image=str(ref), reason=reason)


def _repo_digest(repo_digests, ref):
    """The digest of ref's repository among repo_digests
    ("repository@sha256:..." each; Docker writes Docker Hub's short,
    "redis@...", Podman long, "docker.io/library/redis@...")."""
    from containerhooks import imagepolicy
    from containerhooks import imageref
    wanted = imagepolicy.full_name(ref)
    for entry in repo_digests:
        name, _, digest = entry.partition("@")
        try:
            repository = imagepolicy.full_name(imageref.parse(name))
        except errors.Error:
            continue
        if repository == wanted and digest.startswith("sha256:"):
            return digest
    return None


def _reason(e):
    """A one-line reason from an SDK or transport error."""
    if isinstance(e, docker.errors.APIError):
        text = e.explanation or str(e)
    else:
        text = str(e)
    return clean_text(text)


# Longest reason quoted from an engine (and through it, from a registry).
MAX_REASON = 300

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or
# ESC \), and two-character escapes.
_ESCAPE_RE = re.compile(
    u"\x1b\\[[0-?]*[ -/]*[@-~]"                 # CSI: ESC [ ... final
    u"|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"   # OSC: ESC ] ... BEL
    u"|\x1b[@-Z\\\\-_]"                         # other ESC + one char
    u"|\x9b[0-?]*[ -/]*[@-~]")                  # 8-bit CSI


def clean_text(text):
    """text (bytes or text) as one printable line of at most MAX_REASON
    characters.

    Engines quote what a registry answered in their errors, and that text
    ends up in the VM's exit message in Engine and in Vdsm's log: a tenant's
    registry could fill it with escape sequences, line breaks, bidi
    overrides or megabytes.  Escape sequences are removed, every other
    control, format, separator or unassigned character becomes a space,
    runs of spaces one."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, six.text_type):
        text = six.text_type(text)
    text = _ESCAPE_RE.sub(u" ", text[:MAX_REASON * 20])
    text = u"".join(u" " if unicodedata.category(c)[0] in "CZ" else c
                    for c in text)
    text = u" ".join(text.split())
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON - 3].rstrip() + u"..."
    return text if six.PY3 else text.encode("utf-8")


# What the exit watcher and the host stats need (see Engine.facts, events,
# exit_status).
EngineFacts = collections.namedtuple(
    "EngineFacts", "version, api_version, runtimes, default_runtime, "
    "cgroup_driver, cgroup_version")

# action: "die", "start", ...; attributes: the labels, name, exitCode.
Event = collections.namedtuple("Event", "action, id, attributes")

# status: the container's (running...); health: the engine's verdict
# (starting, healthy, unhealthy; None without a check); runs: how many runs
# the engine logged; output: the last one's; check: Config.Healthcheck.
Health = collections.namedtuple(
    "Health", "status, health, runs, output, started, check")

ExitStatus = collections.namedtuple(
    "ExitStatus", "status, exit_code, oom_killed, error, finished_at")


def _events(eng, stream):
    try:
        for event in stream:
            actor = event.get("Actor") or {}
            yield Event(action=event.get("Action") or event.get("status"),
                        id=actor.get("ID") or event.get("id"),
                        attributes=actor.get("Attributes") or {})
    except (docker.errors.DockerException,
            requests.exceptions.RequestException, IOError, OSError,
            ValueError) as e:
        raise errors.EngineUnavailable(
            engine=eng.name, socket=eng.socket,
            reason="the event stream broke: %s" % _reason(e))
    finally:
        stream.close()
