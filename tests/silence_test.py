"""The placeholder never puts a frame with the container's MAC on the wire.

The container uses the MAC Engine assigned to the vNIC; the placeholder
keeps that vNIC (Engine needs it) with its link down and no option ROM.
This test runs a real placeholder in libvirt on a real bridge and listens
on the bridge port of its vNIC (its tap device) from the moment qemu
starts, through the firmware, until the idle kernel halts: every frame the
guest sends arrives there, and there must be none.
"""

import os
import socket
import struct
import time
import uuid as uuidlib

from lxml import etree

import libvirt
from containerhooks import config
from containerhooks import vmstart

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
BRIDGE = "vhcsilent0"
ETH_P_ALL = 0x0003
LISTEN_SECONDS = 5.0
CONTROL_SECONDS = 30.0


def placeholder_xml():
    """The golden i440fx VM (one vNIC) as before_vm_start makes it, with
    a uuid and name of its own."""
    with open(os.path.join(DATA, "i440fx-minimal-in.xml"), "rb") as f:
        root = etree.fromstring(f.read())
    vm_id = str(uuidlib.uuid4())
    old = root.findtext("uuid")
    root.find("uuid").text = vm_id
    root.find("name").text = "vhc-silent-" + vm_id[:8]
    data = etree.tostring(root).replace(old.encode(), vm_id.encode())
    plan = vmstart.prepare({}, data, config.load("/nonexistent"))
    return etree.fromstring(plan.xml)


def test_placeholder_sends_nothing_with_the_vnic_mac(libvirt_host,
                                                     qemu_workdir):
    silenced = True
    root = placeholder_xml()
    mac = root.find("devices/interface/mac").get("address")
    if silenced:
        assert root.find("devices/interface/link").get("state") == "down"
    with libvirt.bridge(BRIDGE), libvirt.nwfilter():
        libvirt.adjust(root, libvirt_host, qemu_workdir, BRIDGE)
        vm_id = root.findtext("uuid")
        before = set(os.listdir("/sys/class/net/%s/brif" % BRIDGE))
        libvirt.create(root, qemu_workdir)
        try:
            ports = set(os.listdir("/sys/class/net/%s/brif" % BRIDGE))
            (tap,) = ports - before
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                 socket.htons(ETH_P_ALL))
            sock.bind((tap, 0))
            sock.settimeout(0.2)
            rx_before = _counter(tap, "rx_packets")
            frames = []
            deadline = time.time() + (LISTEN_SECONDS if silenced
                                      else CONTROL_SECONDS)
            while time.time() < deadline and not (frames and not silenced):
                try:
                    frame, (_, _, pkttype, _, _) = sock.recvfrom(65535)
                except socket.timeout:
                    continue
                # PACKET_OUTGOING (4) is the bridge sending to the guest;
                # everything else on the tap came from the guest.
                if pkttype != socket.PACKET_OUTGOING:
                    frames.append(frame)
            sock.close()
            if silenced:
                libvirt.wait_idle_kernel(vm_id)
            rx_after = _counter(tap, "rx_packets")
        finally:
            libvirt.virsh("destroy", vm_id, check=False)
    from_mac = [f for f in frames if _src(f) == mac]
    print("\n%s vNIC %s on %s: %d frames from the guest in %.0f s "
          "(%d with its MAC); tap rx_packets %d -> %d"
          % ("placeholder" if silenced else "control", mac, tap,
             len(frames), LISTEN_SECONDS, len(from_mac),
             rx_before, rx_after))
    assert frames == []
    assert rx_after == rx_before


def _src(frame):
    return ":".join("%02x" % b for b in struct.unpack("6B", frame[6:12]))


def _counter(dev, name):
    with open("/sys/class/net/%s/statistics/%s" % (dev, name)) as f:
        return int(f.read())
