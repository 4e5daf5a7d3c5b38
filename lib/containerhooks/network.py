"""The container sits on the VM's network, where the VM would be.

For every vNIC of the VM (a <interface type='bridge'> on a Linux bridge such
as ovirtmgmt) the container gets an interface on that same bridge, with the
MAC address Engine assigned to the vNIC, so the LAN sees the container
exactly where it would see the VM.  The mechanism is a macvlan network of
the engine (Docker or Podman) with the bridge as its parent, in bridge mode:

- no address is added to the host bridge, no NAT or masquerade rule, no
  host firewall change: the container's frames leave through the bridge
  with Engine's MAC and its own IP;
- the trade-off: macvlan children cannot talk to their parent's own
  addresses, so the host itself cannot reach the containers over that
  bridge (other machines on the LAN, and other containers, can).

Addresses come from a range the admin reserves per bridge (subnet, the
LAN's real gateway, an ip_range inside the subnet that nothing else on the
LAN hands out), configured in NETWORKS_DIR/<bridge>.conf.  The package
allocates them itself, under a lock, so Docker and Podman sharing a bridge
never hand out the same address; a VM may ask for a fixed address in the
container range with the containerIP property.  The engine network for a bridge,
named ovirt-<bridge>, is created on first use (or by setup-net).
"""

import collections
import errno
import os
import logging
import socket
import struct

from six.moves import configparser

from containerhooks import commands
from containerhooks import errors
from containerhooks import paths
from containerhooks import spec as specs
from containerhooks import state

log = logging.getLogger("containerhooks.network")

SECTION = "network"
NETWORK_PREFIX = "ovirt-"
LABEL_BRIDGE = "org.ovirt.vdsm-hook-containers.bridge"
NSENTER = "nsenter"
IP = "ip"

NetworkConfig = collections.namedtuple(
    "NetworkConfig", "bridge, subnet, gateway, ip_range")


def engine_network(bridge):
    return NETWORK_PREFIX + bridge


def config_path(bridge):
    # The bridge name comes from the command line or a domain XML: it
    # becomes a file name only once it is a bridge name.
    if not specs.is_bridge(bridge):
        raise errors.ConfigError(
            path=paths.NETWORKS_DIR, reason="%r is not a Linux bridge name "
            "(1 to 15 letters, digits, '_', '.', '-')" % (bridge,))
    return os.path.join(paths.NETWORKS_DIR, bridge + ".conf")


def load(bridge):
    """The container network configured for bridge, or raise."""
    path = config_path(bridge)
    parser = configparser.RawConfigParser()
    try:
        read = parser.read(path)
    except configparser.Error as e:
        raise errors.ConfigError(path=path, reason=str(e).splitlines()[0])
    if not read:
        raise errors.NetworkNotConfigured(bridge=bridge, path=path)
    try:
        values = dict(parser.items(SECTION))
        cfg = NetworkConfig(bridge=bridge, subnet=values["subnet"],
                            gateway=values["gateway"],
                            ip_range=values.get("ip_range") or
                            values["subnet"])
    except (configparser.Error, KeyError) as e:
        raise errors.ConfigError(path=path, reason="needs [network] with "
                                 "subnet, gateway and ip_range (%s)" % e)
    return validate(cfg, path)


def validate(cfg, where):
    subnet = _cidr(cfg.subnet, where, "subnet")
    ip_range = _cidr(cfg.ip_range, where, "ip_range")
    gateway = _ip(cfg.gateway, where, "gateway")
    if not _contains(subnet, gateway):
        raise errors.ConfigError(path=where, reason="gateway %s is not in "
                                 "subnet %s" % (cfg.gateway, cfg.subnet))
    if not (_contains(subnet, ip_range[0]) and ip_range[1] >= subnet[1]):
        raise errors.ConfigError(path=where, reason="ip_range %s is not "
                                 "inside subnet %s" % (cfg.ip_range,
                                                       cfg.subnet))
    return cfg


def save(cfg):
    """Write NETWORKS_DIR/<bridge>.conf (setup-net)."""
    validate(cfg, config_path(cfg.bridge))
    try:
        os.makedirs(paths.NETWORKS_DIR, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    state.write_file(
        config_path(cfg.bridge),
        "# Container network on bridge %s (vdsm-hook-containers).\n"
        "[%s]\nsubnet = %s\ngateway = %s\nip_range = %s\n"
        % (cfg.bridge, SECTION, cfg.subnet, cfg.gateway, cfg.ip_range))


def ensure(eng, cfg):
    """Create the engine's macvlan network for cfg, unless it exists."""
    name = engine_network(cfg.bridge)
    net = eng.find_network(name)
    if net is None:
        if not os.path.isdir("/sys/class/net/%s" % cfg.bridge):
            raise errors.NetworkError(
                bridge=cfg.bridge, reason="no such network device on this "
                "host")
        eng.create_macvlan_network(name, cfg.bridge, cfg.subnet,
                                   cfg.gateway, cfg.ip_range,
                                   {LABEL_BRIDGE: cfg.bridge})
        return name
    if net.get("Driver") != "macvlan":
        raise errors.NetworkError(
            bridge=cfg.bridge, reason="engine network %s exists with driver "
            "%s, not macvlan; remove it" % (name, net.get("Driver")))
    return name


def plan(eng, spec, reserve):
    """Endpoints for spec's vNICs: network, IP (allocated here), MAC.

    reserve(ips) is called under the allocation lock: it must record the
    addresses in the VM's state file, where the next allocation sees them.
    """
    from containerhooks.engine import Endpoint
    if not spec.nics:
        # No address to allocate: neither the host lock nor a read of
        # every other VM's state file (100 VMs: ~10 ms of every start).
        return []
    endpoints = []
    with state.AddressLock():
        taken = state.reserved_ips(exclude=spec.vm_id)
        for nic in spec.nics:
            cfg = load(nic.bridge)
            network = ensure(eng, cfg)
            ip = nic.ip
            if ip is None:
                ip = _allocate(cfg, taken)
            else:
                _check_fixed(cfg, ip, taken)
            taken.add(ip)
            endpoints.append(Endpoint(network=network, ip=ip, mac=nic.mac))
        reserve([ep.ip for ep in endpoints])
    return endpoints


def finish(eng, name, endpoints, pid):
    """After start: make every interface carry its vNIC's MAC; describe
    them for the state file."""
    if not endpoints:
        return []
    assigned = eng.endpoints(name)
    ifnames = _ifnames_by_ip(pid)
    nics = []
    for ep in endpoints:
        got = assigned.get(ep.network)
        if got is None or got.ip != ep.ip:
            raise errors.NetworkError(
                bridge=ep.network[len(NETWORK_PREFIX):],
                reason="the engine did not give the container address %s"
                % ep.ip)
        ifname = ifnames.get(ep.ip)
        if ifname is None:
            raise errors.NetworkError(
                bridge=ep.network[len(NETWORK_PREFIX):],
                reason="no interface with %s in the container" % ep.ip)
        if got.mac != ep.mac:
            # Docker before API 1.44 sets the MAC of the first network only.
            _set_mac(pid, ifname, ep.mac)
        nics.append({"mac": ep.mac, "ip": ep.ip, "prefix": got.prefix,
                     "gateway": got.gateway, "network": ep.network,
                     "bridge": ep.network[len(NETWORK_PREFIX):],
                     "ifname": ifname})
    return nics


def _ifnames_by_ip(pid):
    out = commands.run([NSENTER, "--net=/proc/%d/ns/net" % pid,
                        IP, "-o", "-4", "addr", "show"])
    result = {}
    for line in out.splitlines():
        fields = line.split()
        # "2: eth0    inet 10.0.0.5/24 brd ..." (eth0@if12 in some versions)
        if len(fields) >= 4 and fields[2] == "inet":
            result[fields[3].split("/")[0]] = fields[1].split("@")[0]
    return result


def _set_mac(pid, ifname, mac):
    netns = "--net=/proc/%d/ns/net" % pid
    for args in (["link", "set", "dev", ifname, "down"],
                 ["link", "set", "dev", ifname, "address", mac],
                 ["link", "set", "dev", ifname, "up"]):
        commands.run([NSENTER, netns, IP] + args)


# Address allocation

def _usable(cfg):
    """The addresses containers may get on cfg's bridge, in order.

    Inside ip_range and the subnet's host addresses, never the gateway,
    and never ip_range's first address: Podman's host-local IPAM (CNI)
    does not hand that one out.
    """
    base, prefix = _cidr(cfg.ip_range, cfg.bridge, "ip_range")
    first, last = _first_last(_cidr(cfg.subnet, cfg.bridge, "subnet"))
    gateway = _ip(cfg.gateway, cfg.bridge, "gateway")
    for n in range(base + 1, base + (1 << (32 - prefix))):
        if first <= n <= last and n != gateway:
            yield n


def _allocate(cfg, taken):
    for n in _usable(cfg):
        if _str(n) not in taken:
            return _str(n)
    raise errors.NetworkError(
        bridge=cfg.bridge, reason="no free address left in ip_range %s"
        % cfg.ip_range)


def _check_fixed(cfg, ip, taken):
    n = _ip(ip, cfg.bridge, "containerIP")
    if n not in set(_usable(cfg)):
        raise errors.InvalidProperty(
            name="containerIP", value=ip, reason="not in the container "
            "range %s of bridge %s (its first address and the gateway %s "
            "excluded)" % (cfg.ip_range, cfg.bridge, cfg.gateway))
    if ip in taken:
        raise errors.InvalidProperty(
            name="containerIP", value=ip,
            reason="another container VM on this host uses it")


def _first_last(subnet):
    base, prefix = subnet
    size = 1 << (32 - prefix)
    if prefix >= 31:
        return base, base + size - 1
    return base + 1, base + size - 2     # not the network, not broadcast


def _ip(text, where, what):
    try:
        if text.count(".") != 3:
            raise ValueError(text)
        return struct.unpack("!I", socket.inet_aton(text))[0]
    except (socket.error, ValueError, TypeError):
        raise errors.ConfigError(path=where, reason="%s: %r is not an IPv4 "
                                 "address" % (what, text))


def _cidr(text, where, what):
    addr, sep, prefix = (text or "").partition("/")
    try:
        prefix = int(prefix)
        if not sep or not 8 <= prefix <= 30:
            raise ValueError(prefix)
    except ValueError:
        raise errors.ConfigError(path=where, reason="%s: %r is not an IPv4 "
                                 "network a.b.c.d/8..30" % (what, text))
    n = _ip(addr, where, what)
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    if n & mask != n:
        raise errors.ConfigError(path=where, reason="%s: %s has host bits "
                                 "set" % (what, text))
    return n, prefix


def _contains(net, n):
    base, prefix = net
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return n & mask == base


def _str(n):
    return socket.inet_ntoa(struct.pack("!I", n))
