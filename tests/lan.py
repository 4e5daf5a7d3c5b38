"""A small LAN on this machine, for the networking tests.

A Linux bridge stands in for ovirtmgmt (no address on it, as on a host
whose management address lives elsewhere), and a network namespace joined
to it by a veth pair plays "another machine on the LAN".  Everything stays
inside this machine: the bridge has no uplink.
"""

import subprocess

# The bridges of the conftest "lan" fixture.
BRIDGE = "vhcnet0"
BRIDGE2 = "vhcnet1"


def run(*cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (
            " ".join(cmd), p.returncode, err.decode("utf-8", "replace")))
    return out.decode("utf-8", "replace")


class Lan(object):
    """bridge + a peer namespace with address peer_ip on subnet."""

    def __init__(self, bridge, netns, subnet, gateway, ip_range, peer_ip):
        self.bridge = bridge
        self.netns = netns
        self.subnet = subnet
        self.gateway = gateway
        self.ip_range = ip_range
        self.peer_ip = peer_ip
        self._veth = bridge[:10] + "-p"

    def create(self):
        run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        try:
            run("ip", "link", "set", self.bridge, "up")
            run("ip", "netns", "add", self.netns)
            run("ip", "link", "add", self._veth, "type", "veth", "peer",
                "name", "lan0", "netns", self.netns)
            run("ip", "link", "set", self._veth, "master", self.bridge)
            run("ip", "link", "set", self._veth, "up")
            prefix = self.subnet.split("/")[1]
            self.exec_("ip", "addr", "add", "%s/%s" % (self.peer_ip, prefix),
                       "dev", "lan0")
            self.exec_("ip", "link", "set", "lan0", "up")
            self.exec_("ip", "link", "set", "lo", "up")
        except Exception:
            self.remove()
            raise
        return self

    def exec_(self, *cmd):
        """Run cmd on the LAN peer."""
        return run("ip", "netns", "exec", self.netns, *cmd)

    def fetch(self, ip, port=8080, timeout=10):
        """HTTP GET from the LAN peer.  (Debian 12's busybox wget crashes
        with -T, hence Python.)"""
        return self.exec_(
            "/usr/bin/python3", "-c",
            "import sys, urllib.request; sys.stdout.write(urllib.request."
            "urlopen(sys.argv[1], timeout=%d).read().decode())" % timeout,
            "http://%s:%d/" % (ip, port))

    def remove(self):
        subprocess.call(["ip", "link", "del", self._veth],
                        stderr=subprocess.DEVNULL)
        subprocess.call(["ip", "netns", "del", self.netns],
                        stderr=subprocess.DEVNULL)
        subprocess.call(["ip", "link", "del", self.bridge],
                        stderr=subprocess.DEVNULL)


def bridge_addresses(bridge):
    return [line.split()[3] for line in run(
        "ip", "-o", "addr", "show", "dev", bridge).splitlines()
        if line.split()[2] in ("inet", "inet6")
        and not line.split()[3].startswith("fe80:")]


def nat_rules():
    """Every NAT rule of the host, iptables (nft backend) and ip6tables."""
    return run("iptables", "-t", "nat", "-S") + run(
        "ip6tables", "-t", "nat", "-S")
