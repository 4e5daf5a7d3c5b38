"""before_vm_destroy and after_vm_destroy: the container goes with the VM.

before_vm_destroy runs on an Engine-initiated power off, before Vdsm tears
down the VM's storage: the container stops first, gracefully.
after_vm_destroy runs after every end of the domain, also when it died on
its own (virsh destroy, qemu killed): it removes whatever is left.  Both are
quiet when the container is already gone.  Neither can stop the destroy
(Vdsm ignores their exit codes), so failures are logged and exit 1.

A VM that is not a container costs a file-existence check (before) or a
substring test of the XML (after).
"""

import logging

from containerhooks import hookenv
from containerhooks import state

log = logging.getLogger("containerhooks.vmdestroy")

_OUR_NS = b"http://ovirt.org/vdsm-hook-containers/1.0"


def before_main():
    hookenv.run(before_vm_destroy, failure_rc=hookenv.ERROR)


def after_main():
    hookenv.run(after_vm_destroy, failure_rc=hookenv.ERROR)


def before_vm_destroy(env):
    vm_id = env.get("vmId")
    if not vm_id or not state.exists(vm_id):
        return
    _stop(vm_id, None)


def after_vm_destroy(env):
    data = hookenv.read_data(env, hookenv.DOMXML)
    if _OUR_NS not in data:
        return
    from containerhooks import domxml
    dom = domxml.Domain.parse(data)
    meta = dom.container_meta()
    _stop(dom.uuid, meta.engine if meta else None)


def _stop(vm_id, engine):
    from containerhooks import privileged
    result = privileged.stop(vm_id, engine)
    log.info("vm_id=%s container stopped: %s", vm_id, result.get("stopped"))
