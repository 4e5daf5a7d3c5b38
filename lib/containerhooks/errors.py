"""The package's errors.

Every error a hook can meet on purpose is a subclass of Error.  Its message
ends up, verbatim, as the exit message of the VM in the Engine UI, so it says
what was wrong (with the value) and what to do about it.
"""


class Error(Exception):
    """Root of the package's errors; ``msg`` is a template over the fields."""

    msg = "{reason}"

    def __init__(self, **fields):
        Exception.__init__(self)
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self):
        return self.msg.format(**self.fields)


class InvalidProperty(Error):
    msg = "Invalid custom property {name}={value!r}: {reason}"


class InvalidDomain(Error):
    msg = "Cannot use the domain XML of this VM: {reason}"


class ConfigError(Error):
    msg = "Bad configuration in {path}: {reason}"


class NetworkNotConfigured(Error):
    msg = ("Bridge {bridge} has no container network on this host: run "
           "'vdsm-containers setup-net {bridge} --subnet CIDR --gateway IP "
           "--ip-range CIDR' on the host (or write {path}), or move the "
           "vNIC to a bridge that has one")


class NetworkError(Error):
    msg = "Cannot connect the container to bridge {bridge}: {reason}"


class NicRefused(Error):
    """A vNIC of the VM that no container interface can stand for."""
    msg = ("vNIC {nic} ({mac}) cannot be given to the container: {reason}")


class EngineUnavailable(Error):
    msg = ("Container engine {engine} is not reachable at {socket}: {reason}. "
           "Start it on this host (for example 'systemctl start {service}') "
           "or move the VM to another host")

    # The unit that serves each engine's API: Podman's Docker-compatible
    # API is socket-activated (podman.socket); "podman" is no unit at all.
    SERVICES = {"docker": "docker", "podman": "podman.socket"}

    def __init__(self, engine, socket, reason):
        Error.__init__(self, engine=engine, socket=socket, reason=reason,
                       service=self.SERVICES.get(engine, engine))


class ImageNotFound(Error):
    msg = ("Image {image} was not found in its registry: {reason}. "
           "Check the containerImage property and the host's registry access")


class RegistryUnreachable(Error):
    msg = ("Image {image} could not be pulled: its registry {registry} is "
           "not reachable ({reason}). Check that the registry runs and that "
           "this host can reach it, or pre-pull the image on this host")


class RegistryCredentials(Error):
    """A private registry refused the pull: this host has no credentials
    for it, or the wrong ones.  fix says which login command writes them
    where the package reads them (registryauth.login_command)."""

    msg = ("Image {image} could not be pulled: {problem}. {fix}")


class CredentialsFileError(Error):
    msg = ("Cannot use the registry credentials file {path} ({key} in "
           "{conf}): {reason}")


class ImageRefused(Error):
    """The host's image policy (imagepolicy.py) does not allow the image."""

    msg = ("Image {image} is refused by this host's image policy "
           "({setting} in {conf}): {reason}")


class ImageAbsent(Error):
    """Pull policy "never" and the image is not on the host."""

    msg = ("Image {image} is not on this host and the pull policy is never "
           "({source}): pre-pull it on this host with 'vdsm-containers pull "
           "--engine {engine} {image}', or let the start pull it")


class PullTimeout(Error):
    msg = ("Pulling image {image} did not finish within {timeout} seconds; "
           "raise pull_timeout in {conf} or pre-pull the image on this host")


class ContainerError(Error):
    msg = "Container engine {engine} failed to {action} container {name}: {reason}"


class AlreadyRunning(Error):
    msg = ("A container for VM {vm_id} is already running ({name}); "
           "power the VM off or run 'vdsm-containers gc' on the host")


class LeftoverTooRecent(AlreadyRunning):
    """A running container with no placeholder, too young to replace."""

    msg = ("A container for VM {vm_id} is already running ({name}), "
           "started {age} s ago with no placeholder: a start of this VM may "
           "still be under way; if not, start the VM again in {wait} s (the "
           "start then replaces that container)")


class ForeignContainer(AlreadyRunning):
    """A running container holds the name of the VM's container, and no
    state record says the package made it."""

    msg = ("Container {name} runs under the name of VM {vm_id}'s container, "
           "but it was not created by vdsm-hook-containers on this host (no "
           "state record names it); if it is a leftover, remove it by hand "
           "({engine} rm -f {name}), then start the VM again")


class StateError(Error):
    msg = "Cannot {action} container state for VM {vm_id}: {reason}"


class BadVmId(StateError):
    """Something offered as a VM id (a label, a file name) is not one."""

    msg = ("{vm_id!r} is not a VM id (a UUID): the package names nothing "
           "after it and does not act on it")


class VmChanged(Error):
    """What gc found of a VM is no longer so when it is about to act."""

    msg = "VM {vm_id} changed since gc looked at it ({reason}); left as it is"


class CommandError(Error):
    msg = "Command {cmd} failed with exit code {rc}: {err}"


class HelperError(Error):
    """The root helper refused or failed; its own message is kept as is."""

    msg = "{reason}"


class VolumeRefused(Error):
    """A disk of volumeMap that cannot be mounted; reason says what to do."""

    msg = "VM disk {disk} cannot be mounted in the container: {reason}"


class DiskInUse(Error):
    """An Engine disk operation on a disk the container has mounted."""

    msg = ("{action} disk {disk} of VM {vm_id} is refused: the VM's "
           "container has it mounted at {path} (volumeMap); power the VM "
           "off first, or remove {disk} from volumeMap and restart the VM")


class UnsafeVolumeSource(Error):
    """The helper's caller named a source that is not a prepared VM disk."""

    msg = ("Refusing to mount VM disk {disk} from {source}: {reason}. Only "
           "disk images Vdsm prepared under storage_roots ({roots}) are "
           "mounted; if the storage domain lives elsewhere, add its "
           "directory to storage_roots in {conf}")


class UnpreparedBlockVolume(Error):
    """A block disk's source leads elsewhere than to the disk's LV."""

    msg = ("Refusing to mount VM disk {disk} from {source}: {reason}. From "
           "block storage only the logical volume Vdsm activated for the "
           "disk is mounted (/dev/<domain id>/<volume id>), never another "
           "device of the host, nor a direct LUN; find what changed the "
           "disk's path, or remove {disk} from volumeMap")


class VolumeCleanupError(Error):
    msg = ("Could not release every volume of VM {vm_id}: {reason}. Stop "
           "what still uses the mount (fuser -vm {path}), then power the VM "
           "off again or unmount and detach by hand")


class CGroupError(Error):
    msg = ("Cannot read the figures of container {container} (process "
           "{pid}): {reason}")


class SecretError(Error):
    """A secret (containerSecrets) root cannot use; never shows a value."""

    msg = "Secret {name} ({path}): {reason}"


class MissingSecret(SecretError):
    msg = ("Secret {name} named by containerSecrets does not exist on this "
           "host: it must be the file {path} (root's, mode 0600); create it "
           "with "
           "'vdsm-containers secret set {name}' (KEY=VALUE lines on standard "
           "input) on every host that may run this VM")


class SecretConflict(SecretError):
    msg = ("Secrets {first} and {second} both set {key}: a variable may come "
           "from one secret only; remove it from one of them "
           "('vdsm-containers secret set')")


class BadSecretName(SecretError):
    """Not echoed: a mistyped "secret set PASSWORD=..." would print it."""

    msg = ("Not a secret name: a secret name is {grammar} (values of secrets "
           "are never arguments: they are read from standard input)")


class SecretsDirectoryError(SecretError):
    msg = ("The secrets directory {path} cannot be trusted: {reason}; only "
           "root may have written what root reads there")


class NeedsRoot(Error):
    msg = "'vdsm-containers {command}' must run as root: {reason}"


class ImageDiskRefused(Error):
    """containerImage=disk:<target> names a disk that cannot be read as
    the container's image; reason says why and what to do."""

    msg = ("VM disk {disk} cannot be the container's image "
           "(containerImage=disk:{disk}): {reason}")


class NotAnImageArchive(ImageDiskRefused):
    """The disk can be read, but does not hold one image archive."""

    msg = ("VM disk {disk} does not hold a container image archive "
           "(containerImage=disk:{disk}): {reason}. Put one image saved "
           "with 'docker save -o app.tar IMAGE' or 'podman save --format "
           "oci-archive -o app.tar IMAGE' on it (upload the file in Engine "
           "as a raw disk), or set containerImage to an image reference")


class ImageLoadError(Error):
    msg = ("Container engine {engine} could not load the image archive of "
           "VM disk {disk}: {reason}")


class ImageLoadTimeout(Error):
    msg = ("Loading the image archive of VM disk {disk} into {engine} did "
           "not finish within {timeout} seconds; raise image_load_timeout "
           "in {conf}, or load the image on this host beforehand "
           "({engine} load -i ARCHIVE)")


class MigrationRefused(Error):
    """A container VM cannot be handed over to another host (migration.py):
    the migration is aborted before anything moved."""
    msg = "Migration of container VM {vm_id} is refused: {reason}"


class MigrationFailed(Error):
    """The destination of a migration cannot start the VM's container
    after the VM moved (migration.py)."""
    msg = "Container VM {vm_id} cannot start its container here: {reason}"


class RuntimeMismatch(Error):
    """The container runs on another OCI runtime than the VM's
    (runtimes.check_proof): the host shows it, whatever the engine says."""

    msg = ("Container engine {engine} at {socket} ran the container on "
           "{proven} instead of {wanted} ({evidence}); {fix}")


class RuntimeUnavailable(Error):
    """The engine service of a VM's OCI runtime does not offer it, as the
    engine says (runtimes.check_served)."""

    msg = ("Container engine {engine} at {socket} cannot run containers on "
           "{wanted} ({reason}); {fix}")
