"""Where the package lives on a host.

Every path the package uses is a constant here, so a reader finds them in one
place and tests can point them elsewhere.  An installation may ship a module
``containerhooks._site`` that overrides any of these names; the RPM does not
ship one (the defaults below are the RPM layout), the test suite writes one
into the private tree it installs the package to.
"""

# The configuration file (ini format, see packaging/containers.conf).
CONF_FILE = "/etc/vdsm-hook-containers/containers.conf"

# Per-bridge container network configuration, one <bridge>.conf each,
# written by "vdsm-containers setup-net" or by hand (see network.py).
NETWORKS_DIR = "/etc/vdsm-hook-containers/networks.d"

# Secrets: one root-only file <name>.env of KEY=VALUE lines per name a VM's
# containerSecrets may give; 0700 root, written by "vdsm-containers secret
# set", read by the root helper (see secrets.py).
SECRETS_DIR = "/etc/vdsm-hook-containers/secrets"

# The root helper that hooks run through "sudo -n" (see helper.py).
HELPER = "/usr/libexec/vdsm-hook-containers/containers-helper"

# The helper service's socket (root; see helperd.py), and its program.
HELPER_SOCKET = "/run/vdsm-hook-containers/helper.sock"
HELPERD = "/usr/libexec/vdsm-hook-containers/containers-helperd"

# Per-VM state files, written by the helper (root) and read by the hooks
# (vdsm).  Under /run: a reboot takes every VM and container down anyway.
STATE_DIR = "/run/vdsm-hook-containers"

# What the hooks (vdsm) keep between two stats calls: the previous CPU
# sample of each container VM (see samples.py).  Owned by vdsm; created by
# the RPM's tmpfiles.d entry.
SAMPLES_DIR = "/run/vdsm-hook-containers/samples"

# Where the watcher saves a container whose health check failed, for a VM
# whose watchdog action is "dump" (root only; see health.py).
HEALTH_DUMP_DIR = "/var/log/vdsm-hook-containers/dumps"

# Where Engine puts the VMs' channel sockets (LibvirtVmXmlBuilder
# writeGuestAgentChannels) and Vdsm connects to the oVirt guest agent's
# (P_LIBVIRT_VMCHANNELS; vdsm:qemu 0775).  The watcher serves it for a
# container VM (see guestagent.py).
VM_CHANNELS_DIR = "/var/lib/libvirt/qemu/channels"

# The exit watcher (root, a systemd service; see watcher.py).
WATCHER = "/usr/libexec/vdsm-hook-containers/containers-watcher"

# Where ovirt-vmconsole-host-shell connects to a VM's serial console,
# <vm id>.sock (Vdsm's constants.P_OVIRT_VMCONSOLES; vdsmd's init makes the
# directory vdsm:qemu 0775, init/vdsmd_init_common.sh.in _mk_console_path).
# For a container VM the watcher serves the socket (see console.py).
VMCONSOLE_DIR = "/var/run/ovirt-vmconsole-console"
# The group ovirt-vmconsole-host-shell runs as, that the socket is given to
# (Vdsm's constants.OVIRT_VMCONSOLE_GROUP; ovirt-vmconsole's %pre creates it).
VMCONSOLE_GROUP = "ovirt-vmconsole"

# The placeholder's do-nothing guest kernel (see placeholder.py).
PLACEHOLDER_KERNEL = "/usr/share/vdsm-hook-containers/placeholder.elf"

SUDO = "/usr/bin/sudo"

# What the kernel says of each block device, by major:minor (the helper
# knows Vdsm's LVs by their device-mapper name and uuid there).
SYS_DEV_BLOCK = "/sys/dev/block"

# The sudoers rule the RPM installs (checked by "vdsm-containers check").
SUDOERS = "/etc/sudoers.d/50_vdsm_hook_containers"

# Where Vdsm looks for hooks (checked by "vdsm-containers check").
VDSM_HOOKS_DIR = "/usr/libexec/vdsm/hooks"

# The libvirt qemu driver's state directory, where it keeps each running
# domain's pid file (src/qemu/qemu_conf.c virQEMUDriverConfigNew:
# RUNSTATEDIR "/libvirt/qemu" for qemu:///system, the connection Vdsm
# uses); see procfs.py.
QEMU_RUN = "/run/libvirt/qemu"

# Log file, or None for syslog (journald on a host).
LOG_FILE = None

try:  # pragma: no cover - depends on the installation
    from containerhooks._site import *  # noqa: F401,F403
except ImportError:
    pass
