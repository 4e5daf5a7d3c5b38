"""The VM's own disks, mounted into the container (volumeMap).

Not implemented yet: attach() refuses any volume.  The interface the root
helper uses:

- attach(spec, conf) -> list of JSON-able dicts, one per mounted volume
  (recorded in the VM's state file);
- container_options(attached) -> HostConfig options (bind mounts);
- detach(vm_id, attached): unmount and release everything attached for
  vm_id, even after a partial failure; quiet when nothing is there.
"""

from containerhooks import errors


def attach(spec, conf):
    if spec.volumes:
        raise errors.InvalidProperty(
            name="volumeMap", value=",".join(
                "%s:%s" % (v.disk, v.path) for v in spec.volumes),
            reason="volumes are not supported by this version of "
                   "vdsm-hook-containers; remove the property")
    return []


def container_options(attached):
    return {}


def detach(vm_id, attached):
    return None
