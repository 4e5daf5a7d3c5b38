"""The container on the VM's network: Engine's MAC, reachable from the LAN.

A real Linux bridge and a network namespace playing another machine on the
LAN (tests/lan.py); the hooks run as Vdsm runs them (tests/vdsm.py).
"""

import os
import uuid

import pytest
from lxml import etree

import domains
import images
import lan as lanmod
from vdsm import HookError, build_domain_xml
import vmrun
from vmrun import power_off, start_hook as start

BRIDGE = lanmod.BRIDGE
BRIDGE2 = lanmod.BRIDGE2
MAC1 = "00:1a:4a:16:01:51"
MAC2 = "00:1a:4a:16:01:52"


def links(container):
    """{ifname: (mac, [ipv4/prefix])} inside the container."""
    out = container.exec_run(["ip", "-o", "addr", "show"]).output.decode()
    macs = container.exec_run(["ip", "-o", "link", "show"]).output.decode()
    result = {}
    for line in macs.splitlines():
        fields = line.split()
        name = fields[1].rstrip(":").split("@")[0]
        mac = fields[fields.index("link/ether") + 1] \
            if "link/ether" in fields else None
        result[name] = (mac, [])
    for line in out.splitlines():
        fields = line.split()
        if fields[2] == "inet":
            result[fields[1].split("@")[0]][1].append(fields[3])
    return result


def container_of(client, vm):
    return client.containers.get("ovirt-vm-" + vm.id)


def test_container_on_the_lan_with_engines_mac(vdsm, installation, engine,
                                               lan):
    name, client = engine
    net = lan[0]
    nat_before = lanmod.nat_rules()
    vm = domains.add_nics(domains.container_vm(name, images.IMAGE),
                  [(MAC1, BRIDGE)])

    result = start(vdsm, vm)

    c = container_of(client, vm)
    ifaces = dict((n, v) for n, v in links(c).items() if n != "lo")
    assert len(ifaces) == 1
    mac, addrs = list(ifaces.values())[0]
    assert mac == MAC1
    assert len(addrs) == 1 and addrs[0].endswith("/24")
    ip = addrs[0].split("/")[0]
    assert ip.startswith("10.231.0.1")           # inside 10.231.0.128/26
    # Another machine on the LAN reaches the container's service.
    assert net.fetch(ip) == "hello from vdsm-hook-containers\n"
    # ... and sees it at Engine's MAC.
    neigh = net.exec_("ip", "neigh", "show", ip)
    assert MAC1 in neigh
    # The host was not changed: no address on the bridge, no NAT rule.
    assert lanmod.bridge_addresses(BRIDGE) == []
    assert lanmod.nat_rules() == nat_before
    # The state file records the NIC for the stats hooks.
    import json
    with open(os.path.join(installation.state_dir, vm.id + ".json")) as f:
        record = json.load(f)
    assert [(n["mac"], n["ip"], n["bridge"]) for n in record["nics"]] == [
        (MAC1, ip, BRIDGE)]

    power_off(vdsm, vm, result.data)
    with pytest.raises(AssertionError):
        net.fetch(ip, timeout=2)


def test_two_vnics_on_two_bridges(vdsm, installation, engine, lan):
    name, client = engine
    vm = domains.add_nics(domains.container_vm(name, images.IMAGE),
                  [(MAC1, BRIDGE), (MAC2, BRIDGE2)])

    result = start(vdsm, vm)

    ifaces = dict((v[0], v[1]) for n, v in links(container_of(client, vm))
                  .items() if n != "lo")
    assert sorted(ifaces) == [MAC1, MAC2]
    ip1 = ifaces[MAC1][0].split("/")[0]
    ip2 = ifaces[MAC2][0].split("/")[0]
    assert ip1.startswith("10.231.0.") and ip2.startswith("10.232.0.")
    assert lan[0].fetch(ip1).startswith("hello")
    assert lan[1].fetch(ip2).startswith("hello")
    power_off(vdsm, vm, result.data)


def test_fixed_address_and_link_down_vnic(vdsm, installation, engine, lan):
    name, client = engine
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerIP": "10.231.0.150"})
    domains.add_nics(vm, [(MAC1, BRIDGE), (MAC2, BRIDGE2, "down")])

    result = start(vdsm, vm)

    ifaces = dict((n, v) for n, v in links(container_of(client, vm)).items()
                  if n != "lo")
    # The vNIC Engine set down gets no interface.
    assert [v[0] for v in ifaces.values()] == [MAC1]
    assert list(ifaces.values())[0][1] == ["10.231.0.150/24"]
    assert lan[0].fetch("10.231.0.150").startswith("hello")
    power_off(vdsm, vm, result.data)


def test_addresses_unique_across_engines(vdsm, installation, lan,
                                         registry_image):
    import conftest
    vms = [domains.add_nics(domains.container_vm(engine, images.IMAGE),
                    [(mac, BRIDGE)])
           for engine, mac in (("docker", MAC1), ("podman", MAC2),
                               ("docker", "00:1a:4a:16:01:53"))]
    started = []
    try:
        for vm in vms:
            started.append((vm, start(vdsm, vm)))
        ips = []
        for vm, _ in started:
            client = conftest._client(vm.custom["containerType"])
            addrs = [a for n, v in links(container_of(client, vm)).items()
                     if n != "lo" for a in v[1]]
            ips.extend(addrs)
        assert len(ips) == 3 and len(set(ips)) == 3
        for ip in ips:
            assert lan[0].fetch(ip.split("/")[0]).startswith("hello")
    finally:
        for vm, result in started:
            power_off(vdsm, vm, result.data)


def test_no_vnic_no_network(vdsm, installation, engine):
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE)
    result = start(vdsm, vm)
    assert list(links(container_of(client, vm))) == ["lo"]
    power_off(vdsm, vm, result.data)


def test_no_network_vnic_is_an_unplugged_cable(vdsm, installation, engine,
                                               lan):
    # Engine's "No Network" vNIC profile reaches Vdsm as its dummy bridge
    # ;vdsmdummy;: the VM starts, that vNIC gets no interface, the others
    # theirs, and containerIP pairs with the vNICs that have one.
    name, client = engine
    vm = domains.VM({"containerType": name, "containerImage": images.IMAGE,
                     "containerIP": "10.231.0.151"})
    domains.add_nics(vm, [(MAC2, ";vdsmdummy;"), (MAC1, BRIDGE)])

    result = start(vdsm, vm)

    ifaces = dict((n, v) for n, v in links(container_of(client, vm)).items()
                  if n != "lo")
    assert [(v[0], v[1]) for v in ifaces.values()] == [
        (MAC1, ["10.231.0.151/24"])]
    # The placeholder keeps the vNIC, silent, for Engine and Vdsm.
    root = etree.fromstring(result.data.encode("utf-8"))
    assert [(n.find("mac").get("address"), n.find("link").get("state"))
            for n in root.iterfind("devices/interface")] == [
        (MAC2, "down"), (MAC1, "down")]
    power_off(vdsm, vm, result.data)


@pytest.mark.parametrize("nics, custom, message", [
    pytest.param([(MAC1, "vhcovs0", "up", "openvswitch")], {},
                 "cannot be given to the container: it is on an Open "
                 "vSwitch network (OVS or OVN, bridge vhcovs0); containers "
                 "join Linux bridge networks only", id="openvswitch"),
    pytest.param([(MAC1, "../../etc")], {},
                 "(%s) cannot be given to the container: its network's "
                 "bridge '../../etc' is no Linux bridge name" % MAC1,
                 id="bad-bridge-name"),
    pytest.param([(MAC1, "vhc/x")], {},
                 "its network's bridge 'vhc/x' is no Linux bridge name",
                 id="bridge-with-slash"),
    pytest.param([(MAC1, "vhcnone0")], {},
                 "Bridge vhcnone0 has no container network on this host: "
                 "run 'vdsm-containers setup-net vhcnone0", id="unconfigured"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.9.9.9"},
                 "Invalid custom property containerIP='10.9.9.9': not in the "
                 "container range 10.231.0.128/26 of bridge vhcnet0",
                 id="ip-outside-subnet"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.231.0.20"},
                 "not in the container range", id="ip-outside-range"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.231.0.128"},
                 "not in the container range", id="ip-range-first"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.231.0.1"},
                 "not in the container range", id="ip-is-gateway"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.231.0.5,10.232.0.5"},
                 "more addresses than the VM has vNICs", id="too-many-ips"),
    pytest.param([(MAC1, BRIDGE)], {"containerIP": "10.231.0.256"},
                 "is not an IPv4 address", id="bad-ip"),
])
def test_network_refusals(vdsm, installation, engine, lan, nics, custom,
                          message):
    name, client = engine
    props = {"containerType": name, "containerImage": images.IMAGE}
    props.update(custom)
    vm = domains.add_nics(domains.VM(props), nics)
    with pytest.raises(HookError) as e:
        start(vdsm, vm)
    err = e.value.err.decode("utf-8")
    assert message in err and err.count("\n") == 1
    assert vmrun.containers_of(client, vm) == []
    assert not os.path.exists(os.path.join(installation.state_dir,
                                           vm.id + ".json"))
