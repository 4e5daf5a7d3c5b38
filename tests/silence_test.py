"""The placeholder never puts a frame with the container's MAC on the wire.

The container uses the MAC Engine assigned to the vNIC; the placeholder
keeps that vNIC (Engine needs it) with its link down and no option ROM.
This test runs a real placeholder in libvirt on a real bridge and listens
on the bridge port of its vNIC (its tap device) from the moment qemu
starts, through the firmware, until the idle kernel halts, and then while
qemu itself announces the vNIC's MAC (the RARP frames it sends at the end
of a migration): every frame the vNIC sends arrives there, and there must
be none.

Hearing nothing proves nothing unless the listener would have heard a
frame.  So the same test then sets the vNIC's link up and asks qemu for the
same announcement: the same listener on the same tap must now receive it,
with the vNIC's MAC; else the test fails.
"""

import json
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
ETH_P_RARP = 0x8035
SOL_PACKET = getattr(socket, "SOL_PACKET", 263)
PACKET_STATISTICS = 6

# qemu's announce-self, with the parameters a migration uses by default
# (the announce-* migration parameters): "rounds" RARP frames per NIC, the
# first at once, the last about 1.25 s later.
ANNOUNCE = {"initial": 50, "max": 550, "rounds": 5, "step": 100}
# How long to listen after asking for the announcement: all of it, with
# room for a busy machine.
ANNOUNCE_SECONDS = 3.0


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
    root = placeholder_xml()
    mac = root.find("devices/interface/mac").get("address")
    assert root.find("devices/interface/link").get("state") == "down"
    with libvirt.bridge(BRIDGE), libvirt.nwfilter():
        libvirt.adjust(root, libvirt_host, qemu_workdir, BRIDGE)
        vm_id = root.findtext("uuid")
        before = set(os.listdir("/sys/class/net/%s/brif" % BRIDGE))
        # Paused: the vCPU runs its first instruction once the listener is
        # there (libvirt sets the link down before that, as on a host).
        libvirt.virsh("create", "--paused",
                      libvirt.write_xml(root, qemu_workdir))
        try:
            ports = set(os.listdir("/sys/class/net/%s/brif" % BRIDGE))
            (tap,) = ports - before
            listener = Listener(tap)
            try:
                # The placeholder as it runs: the socket queues what the
                # guest sends while qemu boots it; read() drains that too.
                rx_start = _counter(tap, "rx_packets")
                libvirt.virsh("resume", vm_id)
                boot = libvirt.wait_idle_kernel(vm_id)
                _announce(vm_id)
                silenced = listener.read(ANNOUNCE_SECONDS)
                rx_silenced = _counter(tap, "rx_packets")

                # The control: the same vNIC, link up, same announcement.
                libvirt.virsh("domif-setlink", vm_id, tap, "up")
                _announce(vm_id)
                control = listener.read(ANNOUNCE_SECONDS)
                rx_control = _counter(tap, "rx_packets")
            finally:
                listener.close()
        finally:
            libvirt.virsh("destroy", vm_id, check=False)

    print("\nvNIC %s on %s (idle kernel halted after %.1f s)\n"
          "  placeholder, link down, boot + announce: %s; "
          "tap rx_packets %d -> %d\n"
          "  control, link up, announce: %s; tap rx_packets %d -> %d\n"
          "  listener drops: %d"
          % (mac, tap, boot, _describe(silenced, mac), rx_start,
             rx_silenced, _describe(control, mac), rx_silenced, rx_control,
             listener.drops))
    # Nothing came out of the placeholder's vNIC, not even qemu's own
    # announcement of its MAC...
    assert silenced == []
    assert rx_start == rx_silenced == 0
    # ...while the listener hears that announcement once the link is up:
    # every round of it, from the vNIC's MAC, and nothing else.
    assert [(_src(f), _ethertype(f)) for f in control] \
        == [(mac, ETH_P_RARP)] * ANNOUNCE["rounds"]
    assert rx_control - rx_silenced == ANNOUNCE["rounds"]
    # The socket lost nothing it should have queued.
    assert listener.drops == 0


class Listener(object):
    """Every frame the guest sends through one tap device.

    An AF_PACKET socket bound to the tap sees each frame qemu writes to it
    before the bridge (and the nwfilter rules on the port) look at it.
    Frames queue in the socket from the moment it is bound, so nothing is
    missed while the test waits for something else; the kernel counts
    what it could not queue (drops).
    """

    def __init__(self, tap):
        self.drops = 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                  socket.htons(ETH_P_ALL))
        self.sock.bind((tap, 0))
        self.sock.settimeout(0.2)

    def read(self, seconds):
        """The frames from the guest queued until now and received in the
        next seconds."""
        frames = []
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                frame, (_, _, pkttype, _, _) = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            # PACKET_OUTGOING (4) is the bridge (or the host) sending to
            # the guest; everything else on the tap came from the guest.
            if pkttype != socket.PACKET_OUTGOING:
                frames.append(frame)
        self._count_drops()
        return frames

    def close(self):
        self._count_drops()
        self.sock.close()

    def _count_drops(self):
        # struct tpacket_stats {tp_packets, tp_drops}; reading resets it.
        stats = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self.drops += struct.unpack("II", stats)[1]


def _announce(vm_id):
    """Have qemu send its RARP announcement out of every NIC's backend.

    It is what qemu sends at the end of a migration (and what a guest
    whose driver cannot announce relies on): a frame from the NIC with the
    NIC's MAC, which qemu's network layer drops while the NIC's link is
    down.  No guest code is involved: the halted idle kernel stays halted.
    """
    cmd = {"execute": "announce-self", "arguments": ANNOUNCE}
    _, out, _ = libvirt.virsh("qemu-monitor-command", vm_id,
                              json.dumps(cmd))
    assert json.loads(out).get("return") == {}, out


def _describe(frames, mac):
    return "%d frames from the guest (%d with its MAC, %d RARP)" % (
        len(frames), len([f for f in frames if _src(f) == mac]),
        len([f for f in frames if _ethertype(f) == ETH_P_RARP]))


def _src(frame):
    return ":".join("%02x" % b for b in struct.unpack("6B", frame[6:12]))


def _ethertype(frame):
    return struct.unpack("!H", frame[12:14])[0]


def _counter(dev, name):
    with open("/sys/class/net/%s/statistics/%s" % (dev, name)) as f:
        return int(f.read())
