"""vdsm-containers: the host admin's command line.

Run as root on a host.  Sub-commands:

  setup-net [BRIDGE --subnet CIDR --gateway IP --ip-range CIDR [--create]]
      show, or write, the container network of a Linux bridge (network.py);
      --create also creates the engines' macvlan networks now instead of
      on the first container start.
  engine-config [--cver 4.7]
      print the engine-config line that lets Engine accept the custom
      properties, with regexes generated from the hook's own grammar.

Listing commands take --json.  Errors print one line and exit 1.
"""

import argparse
import json
import os
import sys

from containerhooks import config
from containerhooks import errors
from containerhooks import network
from containerhooks import paths
from containerhooks import properties


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except errors.Error as e:
        sys.stderr.write("vdsm-containers: %s\n" % e)
        return 1


def _parser():
    parser = argparse.ArgumentParser(
        prog="vdsm-containers",
        description="Manage the containers that vdsm-hook-containers runs "
                    "for oVirt VMs on this host.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "setup-net", help="show or configure a bridge's container network",
        description="Without BRIDGE, show the configured container networks. "
        "With BRIDGE, reserve addresses on that Linux bridge for "
        "containers: SUBNET is the LAN's network, GATEWAY its real "
        "router, IP_RANGE a part of SUBNET that nothing else on the LAN "
        "hands out (no DHCP pool, no static hosts).  Containers join the "
        "bridge with macvlan; the host gets no address, no NAT rule.")
    p.add_argument("bridge", nargs="?", help="a Linux bridge, e.g. ovirtmgmt")
    p.add_argument("--subnet", help="e.g. 192.168.10.0/24")
    p.add_argument("--gateway", help="e.g. 192.168.10.1")
    p.add_argument("--ip-range", help="e.g. 192.168.10.192/27")
    p.add_argument("--create", action="store_true",
                   help="also create the engines' networks now")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=setup_net)

    p = sub.add_parser(
        "engine-config", help="print the Engine configuration line",
        description="Print the engine-config command that allows the custom "
        "properties containerType, containerImage, volumeMap and "
        "containerIP, then the Engine restart.  Run them on the Engine "
        "machine.")
    p.add_argument("--cver", default="4.7",
                   help="cluster compatibility level (default 4.7)")
    p.set_defaults(func=engine_config)
    return parser


def setup_net(args):
    if args.bridge is None:
        return _show_networks(args.json)
    missing = [o for o in ("subnet", "gateway", "ip_range")
               if getattr(args, o) is None]
    if missing:
        raise errors.ConfigError(
            path=network.config_path(args.bridge), reason="setup-net "
            "%s needs --%s" % (args.bridge, ", --".join(
                m.replace("_", "-") for m in missing)))
    cfg = network.NetworkConfig(bridge=args.bridge, subnet=args.subnet,
                                gateway=args.gateway, ip_range=args.ip_range)
    network.save(cfg)
    print("wrote %s" % network.config_path(args.bridge))
    if args.create:
        from containerhooks import engine
        conf = config.load()
        for name in conf.engines:
            eng = engine.Engine.connect(name, conf.sockets[name],
                                        conf.api_timeout)
            print("%s: network %s ready" % (name, network.ensure(eng, cfg)))
    return 0


def _show_networks(as_json):
    configs = []
    if os.path.isdir(paths.NETWORKS_DIR):
        for name in sorted(os.listdir(paths.NETWORKS_DIR)):
            if name.endswith(".conf"):
                configs.append(network.load(name[:-5]))
    if as_json:
        print(json.dumps([c._asdict() for c in configs], indent=2))
        return 0
    if not configs:
        print("No container network configured (%s is empty); see "
              "'vdsm-containers setup-net --help'." % paths.NETWORKS_DIR)
        return 0
    print("%-15s %-18s %-15s %s" % ("BRIDGE", "SUBNET", "GATEWAY",
                                    "IP RANGE"))
    for c in configs:
        print("%-15s %-18s %-15s %s" % (c.bridge, c.subnet, c.gateway,
                                        c.ip_range))
    return 0


def engine_config_value():
    """The UserDefinedVMProperties value: name=regex;name=regex..."""
    regexes = properties.engine_regexes(config.ENGINES)
    return ";".join("%s=%s" % item for item in regexes.items())


def engine_config(args):
    print("engine-config -s UserDefinedVMProperties='%s' --cver=%s"
          % (engine_config_value(), args.cver))
    print("systemctl restart ovirt-engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
