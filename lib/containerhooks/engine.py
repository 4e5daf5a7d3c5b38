"""The container engine, through the Docker SDK for Python.

This is the only module that imports the SDK.  Docker and Podman (through
its Docker-compatible API) are both reached with docker.DockerClient on a
unix socket; only APIs that exist since docker-py 4.0 are used.  SDK and
transport errors become the package's own errors here.
"""

import calendar
import collections
import copy
import json
import logging
import re
import socket
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
from six.moves.urllib.parse import quote, urlencode  # noqa: E402

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
        # Container -> the thread still waiting for the engine's reply to
        # a health check that overran its timeout (probe).
        self._overrun = {}

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
               domainname=None, terminal=False):
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
        (spec.host_names).  terminal: a TTY and an open stdin, for the
        VM's serial console (console.py).
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

        def create(host, check):
            check = dict(check) if check else None
            start_interval = check.pop("start_interval", None) \
                if check else None
            if start_interval is not None:
                return lambda: self._create_with_start_interval(
                    image, name, labels, hostname, domainname, mac,
                    api.create_host_config(**host), networking, check,
                    start_interval, config, terminal)
            # use_config_proxy: docker-py (since 4.0, by default) copies the
            # proxies of root's ~/.docker/config.json into the container's
            # environment; the host's proxy is none of a tenant's business.
            return lambda: api.create_container(
                str(image), name=name, labels=labels, detach=True,
                hostname=hostname, domainname=domainname, mac_address=mac,
                host_config=api.create_host_config(**host),
                networking_config=networking, healthcheck=check,
                use_config_proxy=False, tty=terminal, stdin_open=terminal,
                **(config or {}))
        bounded = dict(options, storage_opt={"size": layer_size}) \
            if layer_size else None
        unbounded = []      # [True] once the engine refused storage_opt

        def make(check):
            if bounded is not None and not unbounded:
                try:
                    return self._call("create", name, create(bounded, check))
                except errors.ContainerError as e:
                    if not any(w in e.reason for w in _NO_STORAGE_OPT):
                        raise
                    log.warning("%s cannot bound the writable layer of %s "
                                "(writable_layer_size): %s", self.name, name,
                                e.reason)
                    unbounded.append(True)
            return self._call("create", name, create(options, check))
        test = list((healthcheck or {}).get("test") or [])
        if self.name == "podman" and test[:1] == ["CMD"]:
            self._create_with_exec_check(make, name, healthcheck)
        else:
            make(healthcheck)
        for ep in endpoints[1:]:
            self._call("connect", name, lambda: api.connect_container_to_network(
                name, ep.network, ipv4_address=ep.ip))
        return self.inspect(name)

    def _create_with_start_interval(self, image, name, labels, hostname,
                                    domainname, mac, host_config, networking,
                                    check, start_interval, config,
                                    terminal=False):
        """create_container() with the health check's StartInterval set,
        which docker-py's Healthcheck type drops (it knows test, interval,
        timeout, retries and start_period; docker/docker-py#3157): the same
        body, built by create_container_config(), the field set, posted by
        create_container_from_config() (both since docker-py 1.x).  An
        engine that knows no StartInterval ignores it; the caller reads
        back what the engine took.  No proxy is injected on this path
        (create_container does that, before building the body)."""
        api = self.client.api
        options = dict(config or {})
        command = options.pop("command", None)
        body = api.create_container_config(
            str(image), command, hostname=hostname, detach=True,
            domainname=domainname, host_config=host_config,
            mac_address=mac, labels=labels, networking_config=networking,
            healthcheck=check, tty=terminal, stdin_open=terminal, **options)
        body["Healthcheck"]["StartInterval"] = start_interval
        return api.create_container_from_config(body, name)

    def _create_with_exec_check(self, make, name, healthcheck):
        """make(check) a container whose health check execs
        healthcheck["test"] (["CMD", args...]) on Podman, and check what
        it stored.

        Podman's compatible API (pkg/api/handlers/compat/containers_create.go
        up to 5.x) joins the test with spaces and splits it again at
        whitespace (specgenutil makeHealthCheckFromCli), so an argument
        with a space is cut in pieces; a one-element test that is a JSON
        array, though, it reads as that array and prepends "CMD".  Podman
        6 sends the test as JSON itself (#27818) and takes the list as
        given.  So the JSON form first, the plain one if the container got
        the check wrong; a check neither gives (one argument holding a
        space) is refused."""
        test = list(healthcheck["test"])
        tries = []
        if len(test) > 2:
            tries.append(dict(healthcheck, test=[json.dumps(test[1:])]))
        tries.append(healthcheck)
        for check in tries:
            make(check)
            got = (self.raw_inspect(name).get("Config") or {}).get(
                "Healthcheck") or {}
            if list(got.get("Test") or []) == test:
                return
            self._call("remove", name, lambda: self.client.api.
                       remove_container(name, force=True))
        raise errors.ContainerError(
            engine=self.name, action="give its health check to", name=name,
            reason="Podman's compatible API splits the arguments of %s at "
            "whitespace; write the check as /bin/sh -c ... (containerHealthCmd)"
            % clean_text(json.dumps(test[1:]))[:200])

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

    def probe(self, name, command, timeout):
        """Run command (a list) in container name once, as a health check:
        (exit code, output bytes).

        Bounded by timeout seconds, as the engines bound their own checks
        (Docker's daemon/health.go: a probe that overruns its Timeout is a
        failed run, "Health check exceeded timeout"): the exec is then
        ended -- its process group killed (end_exec) -- and the result is
        (-1, that message).  The call itself returns within timeout plus
        the inspect and the kill; the engine's reply to the exec, if it
        ever comes, goes to a thread nobody waits for -- one at most per
        container: while it waits (a process of the check escaped the kill
        and holds its output open), the next probe fails at once, "the
        previous health check still runs"."""
        api = self.client.api
        waiting = self._overrun.get(name)
        if waiting is not None and waiting.is_alive():
            return -1, PROBE_STILL_RUNS.encode("ascii")
        self._overrun.pop(name, None)
        exec_id = self._call(
            "run a health check in", name,
            lambda: api.exec_create(name, command, stdout=True,
                                    stderr=True)["Id"])
        outcome = queue.Queue()

        def read():
            # All of it is read (a check that cannot write blocks), the
            # first PROBE_OUTPUT_MAX bytes kept, as Docker keeps its own.
            kept = b""
            for chunk in api.exec_start(exec_id, stream=True):
                if len(kept) < PROBE_OUTPUT_MAX:
                    kept += chunk[:PROBE_OUTPUT_MAX - len(kept)]
            return kept

        def run():
            try:
                outcome.put(self._call("run a health check in", name, read))
            except (IOError, OSError) as e:     # the stream's socket
                outcome.put(errors.ContainerError(
                    engine=self.name, action="run a health check in",
                    name=name, reason=_reason(e)))
            except Exception as e:      # delivered to the caller
                outcome.put(e)
        thread = threading.Thread(target=run, name="probe-" + exec_id[:12])
        thread.daemon = True
        thread.start()
        try:
            output = outcome.get(timeout=timeout)
        except queue.Empty:
            self._overrun[name] = thread
            self.end_exec(exec_id)
            return -1, (PROBE_TIMEOUT % timeout).encode("ascii")
        if isinstance(output, Exception):
            raise output
        info = self._call("inspect a health check in", name,
                          lambda: api.exec_inspect(exec_id))
        code = info.get("ExitCode")
        return (-1 if code is None else code), output or b""

    def end_exec(self, exec_id):
        """Kill what the exec exec_id runs, if it still runs: its process
        group when its first process leads one (runc starts it in a session
        of its own), else that process.  The pid is the engine's answer,
        and is killed only while it is a live process of the exec's
        container (procfs.container_init: the kernel's cgroup record), so a
        pid that was reused meanwhile is left alone."""
        from containerhooks import procfs
        info = self._call("inspect the health check", exec_id,
                          lambda: self.client.api.exec_inspect(exec_id))
        pid = info.get("Pid")
        process = procfs.container_init(pid, info.get("ContainerID")) \
            if info.get("Running") else None
        if process is None:
            return False
        log.info("%s: killing health check %s (pid %d) of container %s: it "
                 "overran its timeout", self.name, exec_id[:12], pid,
                 info.get("ContainerID", "")[:12])
        return procfs.kill_group(process)

    def restart(self, name, timeout):
        container = self._get(name)
        self._call("restart", name,
                   lambda: container.restart(timeout=timeout))

    def raw_inspect(self, name):
        """The engine's whole inspect of container name (a dict)."""
        return self._get(name).attrs

    # The serial console (console.py)

    def attach(self, name, stdin):
        """A live Stream of container name's output (stdout and stderr as
        they come, none of the past), and its stdin when stdin is true.

        Detach keys: a sequence the engine watches for in what is typed
        and that ends the attach.  Podman disables them when given as ""
        (its compat AttachContainer: "explicitly set to "" is very
        different from unset"); Docker cannot disable them ("" is its
        default, ctrl-p ctrl-q, which would swallow every ctrl-p until the
        next key): DETACH_KEYS, a sequence nobody types by chance.  (An
        exec's detach keys cannot be turned off on either: Podman's compat
        exec create takes "" as its default, pkg/api/handlers/compat/
        exec.go.)

        Podman 4.3's compat AttachContainer re-initialises a container
        that is exited or stopped (ctr.Init: state "created", exit code
        0) before it attaches: the caller attaches only to a container it
        just saw running, and checks afterwards (console.py).
        """
        query = [("stream", "1"), ("stdout", "1"), ("stderr", "1"),
                 ("stdin", "1" if stdin else "0"), ("logs", "0"),
                 ("detachKeys",
                  "" if self.name == "podman" else DETACH_KEYS)]
        return self._hijack(
            "attach to", name, "/containers/%s/attach?%s"
            % (_quote(name), urlencode(query)), None)

    def exec_shell(self, name, command, env):
        """Run command (a list) in container name with a terminal of its
        own and stdin open, as the container's user; its Stream and the
        exec's id (exec_state)."""
        api = self.client.api
        created = self._call("run a shell in", name, lambda: api.exec_create(
            name, command, stdin=True, tty=True, environment=env,
            detach_keys=DETACH_KEYS))
        exec_id = created["Id"]
        stream = self._hijack("run a shell in", name, "/exec/%s/start"
                              % _quote(exec_id),
                              {"Detach": False, "Tty": True})
        return exec_id, stream

    def exec_state(self, exec_id):
        """(running, host pid) of an exec; (False, None) once it is gone."""
        info = self._call("inspect exec", exec_id,
                          lambda: self.client.api.exec_inspect(exec_id),
                          missing={})
        return bool(info.get("Running")), info.get("Pid") or None

    def resize(self, name, rows, columns, exec_id=None):
        """Set the size of container name's terminal (or of exec
        exec_id's); the engines leave it 0x0, which some programs take
        literally."""
        api = self.client.api
        if exec_id is None:
            self._call("resize the terminal of", name,
                       lambda: api.resize(name, height=rows, width=columns))
        else:
            self._call("resize the terminal of", name, lambda: api
                       .exec_resize(exec_id, height=rows, width=columns))

    def _hijack(self, action, name, path, body):
        """POST path on the engine's socket and take the connection over
        for a raw stream, as the engines' own clients attach: a Stream.

        The SDK's attach_socket hands over the socket under the HTTP
        response's buffered reader, which may already hold the stream's
        first bytes; here the response head is read byte-exact and what
        follows it is kept (Stream.pending)."""
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        request = ("POST /v%s%s HTTP/1.1\r\nHost: localhost\r\n"
                   "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n"
                   % (self.client.api.api_version, path, len(data)))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.client.api.timeout)
            sock.connect(self.socket)
            sock.sendall(request.encode("ascii") + data)
            head, rest = _response_head(sock)
            status = _status(head)
            if status not in (101, 200):
                raise errors.ContainerError(
                    engine=self.name, action=action, name=name,
                    reason="%s: %s" % (status, _error_body(sock, rest)))
        except (socket.error, IOError, ValueError) as e:
            sock.close()
            raise errors.EngineUnavailable(engine=self.name,
                                           socket=self.socket,
                                           reason=_reason(e))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return Stream(sock=sock, pending=rest)

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

# action: "die", "start", ...; attributes: the labels, name, exitCode;
# exit_code: a "die" event's exit code, as either engine names it (None
# when it names none).
Event = collections.namedtuple("Event", "action, id, attributes, exit_code")

# What a probe that overran its timeout yields, as Docker words it.
PROBE_TIMEOUT = "Health check exceeded timeout (%gs)"
# What a probe's output may be: Docker's daemon/health.go maxOutputLen.
PROBE_OUTPUT_MAX = 4096
PROBE_STILL_RUNS = ("the previous health check still runs: a process of it "
                    "outlived its timeout and holds its output open")

# status: the container's (running...); health: the engine's verdict
# (starting, healthy, unhealthy; None without a check); runs: how many runs
# the engine logged; output: the last one's; check: Config.Healthcheck.
Health = collections.namedtuple(
    "Health", "status, health, runs, output, started, check")

ExitStatus = collections.namedtuple(
    "ExitStatus", "status, exit_code, oom_killed, error, finished_at")

# A stream taken over from the engine (Engine.attach, exec_shell): the
# socket, and the bytes of the stream that came with the response's head.
Stream = collections.namedtuple("Stream", "sock, pending")

# The detach keys of the console's attach on Docker and of its shell on
# both engines (Engine.attach, exec_shell): four ctrl-^ (ASCII 30,
# ctrl-shift-6) in a row, which no program binds to.
DETACH_KEYS = "ctrl-^,ctrl-^,ctrl-^,ctrl-^"

# The longest response head (status line and headers) read from an
# engine before its stream, and error body.
MAX_HEAD = 64 * 1024
MAX_ERROR_BODY = 4096


def _quote(name):
    return quote(name, safe="")


def _response_head(sock):
    """(head, the bytes read after it) of an HTTP response on sock."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("the engine closed the connection before its "
                             "answer")
        data += chunk
        if len(data) > MAX_HEAD:
            raise ValueError("the engine's answer has no end of headers")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _status(head):
    """The status code of an HTTP response head ("HTTP/1.1 101 ...")."""
    parts = head.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") \
            or not parts[1].isdigit():
        raise ValueError("not an HTTP answer: %r" % head[:80])
    return int(parts[1])


def _error_body(sock, rest):
    """The engine's message in an error response ({"message": ...}), as
    one clean line; whatever arrives within a second."""
    data = rest
    sock.settimeout(1)
    try:
        while len(data) < MAX_ERROR_BODY:
            chunk = sock.recv(MAX_ERROR_BODY)
            if not chunk:
                break
            data += chunk
            if data.rstrip().endswith(b"}"):
                break
    except (socket.error, IOError):
        pass
    text = data[:MAX_ERROR_BODY].decode("utf-8", "replace")
    try:
        text = json.loads(text.strip()).get("message") or text
    except (ValueError, AttributeError):
        pass
    return clean_text(text)


def _events(eng, stream):
    try:
        for event in stream:
            actor = event.get("Actor") or {}
            attributes = actor.get("Attributes") or {}
            # Docker's attribute; Podman's compat events name it
            # containerExitCode (pkg/domain/entities/events.go).
            yield Event(action=event.get("Action") or event.get("status"),
                        id=actor.get("ID") or event.get("id"),
                        attributes=attributes,
                        exit_code=attributes.get(
                            "exitCode", attributes.get("containerExitCode")))
    except (docker.errors.DockerException,
            requests.exceptions.RequestException, IOError, OSError,
            ValueError) as e:
        raise errors.EngineUnavailable(
            engine=eng.name, socket=eng.socket,
            reason="the event stream broke: %s" % _reason(e))
    finally:
        stream.close()
