"""What Vdsm hands to the stats and caps hooks: realistic dictionaries.

Modelled on what Vdsm 4.4/4.5 returns from getAllVmStats, getStats and
getCapabilities (lib/vdsm/virt/vm.py _getRunningVmStats and
_getExitedVmStats, lib/vdsm/virt/vmstats.py, lib/vdsm/host/api.py,
lib/vdsm/host/caps.py): scalars as strings ('%.2f' floats, '%d' ints,
vdsm.utils.convertToStr), bools as bools, network sampleTime a float of
Vdsm's monotonic clock.  A placeholder's figures are those of its qemu:
a halted vCPU, no guest agent.
"""

import copy
import os


def vm_stats(vm_id, name="vm", macs=(), status="Up", memory_mib=256):
    """A running VM as Vdsm reports it, with a vNIC (vnetN) per MAC."""
    network = {}
    for i, mac in enumerate(macs):
        network["vnet%d" % i] = {
            "macAddr": mac, "name": "vnet%d" % i, "speed": "1000",
            "state": "unknown", "rx": "0", "tx": "0", "rxErrors": "0",
            "rxDropped": "0", "txErrors": "0", "txDropped": "0",
            "sampleTime": os.times()[4],
        }
    kib = str(memory_mib * 1024)
    return {
        "vmId": vm_id, "vmName": name, "status": status,
        "statusTime": "%d" % (os.times()[4] * 1000),
        "elapsedTime": "3605", "monitorResponse": "0", "clientIp": "",
        "timeOffset": "0", "pauseCode": "NOERR", "vmType": "kvm",
        "kvmEnable": "true", "acpiEnable": "true",
        "cpuUser": "0.00", "cpuSys": "0.27", "cpuUsage": "4520000000",
        "vcpuCount": "2", "vcpuPeriod": 100000, "vcpuQuota": "-1",
        "memUsage": "0", "memoryStats": {},
        "balloonInfo": {"balloon_max": kib, "balloon_min": kib,
                        "balloon_cur": kib, "balloon_target": kib,
                        "ballooning_enabled": True},
        "network": network,
        "disks": {"vda": {
            "truesize": "1073741824", "apparentsize": "10737418240",
            "readLatency": "0", "writeLatency": "0", "flushLatency": "0",
            "readRate": "0.0", "writeRate": "0.0", "readOps": "0",
            "writeOps": "0", "readBytes": "0", "writtenBytes": "0",
            "imageID": "b2a4a1a4-5e5c-4c5a-9a8e-0f6e6c1d2e3f"}},
        "disksUsage": [], "appsList": [], "netIfaces": [],
        "guestIPs": "", "guestFQDN": "", "guestName": "", "guestOs": "",
        "guestOsInfo": {}, "guestTimezone": {}, "guestCPUCount": -1,
        "username": "Unknown", "session": "Unknown",
        "displayInfo": [{"type": "vnc", "port": "5900", "tlsPort": "",
                         "ipAddress": "192.0.2.1"}],
        "hash": "-8424153357476342548", "vmJobs": {},
    }


def down_vm_stats(vm_id, exit_code=1, exit_reason=2,
                  message="Lost connection with qemu process"):
    """A VM Vdsm still lists after its domain ended (_getExitedVmStats)."""
    return {
        "vmId": vm_id, "status": "Down",
        "statusTime": "%d" % (os.times()[4] * 1000),
        "exitCode": exit_code, "exitReason": exit_reason,
        "exitMessage": message, "timeOffset": "0",
    }


_HOST_STATS = {
    "cpuIdle": "98.54", "cpuLoad": "0.12", "cpuSys": "0.50",
    "cpuSysVdsmd": "0.25", "cpuUser": "0.96", "cpuUserVdsmd": "0.50",
    "elapsedTime": "86400", "memAvailable": 23000, "memCommitted": 256,
    "memFree": 23500, "memShared": 0, "memUsed": "3", "swapFree": 0,
    "swapTotal": 0, "vmActive": 1, "vmCount": 1, "vmMigrating": 0,
    "incomingVmMigrations": 0, "outgoingVmMigrations": 0,
    "momStatus": "active", "ksmState": False, "ksmPages": 100,
    "ksmCpu": 0, "bootTime": "1700000000", "storageDomains": {},
    "network": {"ovirtmgmt": {
        "name": "ovirtmgmt", "rx": "123456", "tx": "654321",
        "rxDropped": "0", "txDropped": "0", "rxErrors": "0",
        "txErrors": "0", "speed": "1000", "state": "up",
        "sampleTime": 1234.5, "duplex": "full"}},
    "haStats": {"active": False, "configured": False, "score": 0,
                "localMaintenance": False, "globalMaintenance": False},
    "hugepages": {}, "numaNodeMemFree": {"0": {"memFree": "23500",
                                               "memPercent": 3}},
}

_CAPS = {
    "HBAInventory": {"iSCSI": [{"InitiatorName": "iqn.1994-05.com.redhat:x"}],
                     "FC": []},
    "additionalFeatures": ["libgfapi_supported", "GLUSTER_SNAPSHOT",
                           "GLUSTER_GEO_REPLICATION",
                           "GLUSTER_BRICK_MANAGEMENT"],
    "autoNumaBalancing": 1, "bondings": {}, "bridges": {},
    "clusterLevels": ["4.2", "4.3", "4.4", "4.5", "4.6", "4.7"],
    "cpuCores": "2", "cpuFlags": "fpu,vme,de,pse,tsc,msr,pae,mce,cx8",
    "cpuModel": "AMD EPYC", "cpuSockets": "1", "cpuSpeed": "2445.406",
    "cpuThreads": "2", "emulatedMachines": ["pc", "q35"],
    "guestOverhead": "65", "hooks": {}, "kdumpStatus": 0,
    "kvmEnabled": "true", "memSize": "24105", "nics": {},
    "numaNodes": {"0": {"cpus": [0, 1], "totalMemory": "24105"}},
    "operatingSystem": {"name": "RHEL", "release": "1", "version": "9"},
    "packages2": {"vdsm": {"version": "4.50.3.4", "release": "1.el9"}},
    "software_revision": "1", "software_version": "4.50",
    "supportedENGINEs": ["4.2", "4.3", "4.4", "4.5"],
    "vmTypes": ["kvm"], "uuid": "4c4c4544-0035-3010-8030-b4c04f4d4e32",
}


def host_stats():
    return copy.deepcopy(_HOST_STATS)


def host_caps():
    return copy.deepcopy(_CAPS)
