"""volumeMap in before_vm_start, without daemons: which disk is which,
what is refused, and the placeholder's read-only disks (vmstart.py,
placeholder.py).  The host side (loop devices, mounts) is volumes_test.py.
"""

import pytest
from lxml import etree

import domains
from containerhooks import config
from containerhooks import errors
from containerhooks import imageref
from containerhooks import spec as specs
from containerhooks import vmstart

KERNEL = "/usr/share/vdsm-hook-containers/placeholder.elf"
IMAGE = "/rhev/data-center/mnt/nfs.example.com:_data/0f6a/images/11/22"
LV = "/rhev/data-center/mnt/blockSD/0f6a/images/33/44"


def vm_with(volume_map, *disks):
    props = {"containerType": "docker", "containerImage": "redis"}
    if volume_map is not None:
        props["volumeMap"] = volume_map
    vm = domains.VM(props)
    return domains.add_disks(vm, *disks)


def prepare(vm):
    env = dict(vm.custom)
    return vmstart.prepare(env, vm.xml.encode("utf-8"),
                           config.load("/nonexistent"), kernel=KERNEL)


def placeholder_disks(plan):
    root = etree.fromstring(plan.xml)
    return dict((d.find("target").get("dev"), d)
                for d in root.iterfind("devices/disk"))


def test_file_and_block_disks():
    vm = vm_with("vda:/data,sdb:/var/log/app",
                 domains.disk("vda", IMAGE),
                 domains.disk("sdb", LV, kind="block"),
                 domains.disk("vdc", IMAGE + "-other"))

    plan = prepare(vm)

    assert plan.spec.volumes == [
        specs.VolumeSource(disk="vda", path="/data", kind="file",
                           source=IMAGE),
        specs.VolumeSource(disk="sdb", path="/var/log/app", kind="block",
                           source=LV),
    ]
    assert "--volume=vda,/data,file," + IMAGE in specs.to_args(plan.spec)
    assert "--volume=sdb,/var/log/app,block," + LV \
        in specs.to_args(plan.spec)


def test_mounted_disks_are_readonly_in_the_placeholder():
    vm = vm_with("vda:/data,sdb:/logs",
                 domains.disk("vda", IMAGE),
                 domains.disk("sdb", LV, kind="block"),
                 domains.disk("vdc", IMAGE + "-other"))
    before = dict((d.find("target").get("dev"), d) for d in etree.fromstring(
        vm.xml.encode("utf-8")).iterfind("devices/disk"))

    disks = placeholder_disks(prepare(vm))

    assert disks["vda"].find("readonly") is not None
    assert disks["sdb"].find("readonly") is not None
    assert disks["vdc"].find("readonly") is None
    # Everything else of the disk stays as Vdsm built it.
    for name in ("vda", "sdb"):
        el = disks[name]
        el.remove(el.find("readonly"))
        assert etree.tostring(el) == etree.tostring(before[name])


def test_label_form_means_a_path_at_the_root():
    vm = vm_with("vda:data", domains.disk("vda", IMAGE))
    assert prepare(vm).spec.volumes[0].path == "/data"


def test_no_volume_map_changes_no_disk():
    vm = vm_with(None, domains.disk("vda", IMAGE))
    plan = prepare(vm)
    assert plan.spec.volumes == []
    assert placeholder_disks(plan)["vda"].find("readonly") is None


def test_restored_placeholder_keeps_its_readonly_disks():
    # Vdsm restoring a saved placeholder calls before_vm_start with the
    # placeholder's XML: the disks are read-only because of us.
    vm = vm_with("vda:/data", domains.disk("vda", IMAGE))
    first = prepare(vm)
    vm.xml = first.xml.decode("utf-8")

    again = prepare(vm)

    assert again.spec.volumes == first.spec.volumes
    assert len(placeholder_disks(again)["vda"].findall("readonly")) == 1


def with_disk_metadata(vm, target, domain, image, volume):
    """vm with Vdsm's <ovirt-vm:device> metadata for the disk target."""
    ns = "http://ovirt.org/vm/1.0"
    root = etree.fromstring(vm.xml.encode("utf-8"))
    dev = etree.SubElement(root.find("metadata/{%s}vm" % ns),
                           "{%s}device" % ns, devtype="disk", name=target)
    for tag, value in (("domainID", domain), ("imageID", image),
                       ("volumeID", volume)):
        etree.SubElement(dev, "{%s}%s" % (ns, tag)).text = value
    vm.xml = etree.tostring(root, encoding="unicode")
    return vm


def test_block_disk_as_vdsm_metadata_names_it():
    vm = with_disk_metadata(vm_with("sdb:/data", domains.disk(
        "sdb", LV, kind="block")), "sdb", "0f6a", "33", "44")
    assert prepare(vm).spec.volumes[0].source == LV


@pytest.mark.parametrize("ids", [("0f6a", "33", "45"), ("0f6b", "33", "44"),
                                 ("0f6a", "34", "44")])
def test_block_disk_that_is_not_the_volume_of_the_metadata_refused(ids):
    vm = with_disk_metadata(vm_with("sdb:/data", domains.disk(
        "sdb", LV, kind="block")), "sdb", *ids)
    with pytest.raises(errors.VolumeRefused) as e:
        prepare(vm)
    assert ("VM disk sdb cannot be mounted in the container: its source %s "
            "is not the volume Vdsm prepared for it (domain %s, image %s, "
            "volume %s in Vdsm's metadata)" % ((LV,) + ids)) in str(e.value)


REFUSED = [
    pytest.param("vdz:/data", [domains.disk("vda", IMAGE)],
                 errors.InvalidProperty, "the VM has no disk vdz (its disks: "
                 "vda)", id="no-such-disk"),
    pytest.param("vda:/data", [],
                 errors.InvalidProperty, "has no disk vda (its disks: none)",
                 id="vm-without-disks"),
    pytest.param("sdc:/iso", [domains.disk("sdc", IMAGE, device="cdrom",
                                           bus="sata")],
                 errors.VolumeRefused, "VM disk sdc cannot be mounted in the "
                 "container: it is a CD-ROM", id="cdrom"),
    pytest.param("sda:/data", [domains.disk("sda", LV, kind="block",
                                            device="lun")],
                 errors.VolumeRefused, "it is a lun device", id="lun"),
    pytest.param("sda:/data", [domains.disk(
        "sda", "/dev/mapper/36001405d2b4f3c1e0a8", kind="block")],
        errors.VolumeRefused, "it is a direct LUN (/dev/mapper/36001405d2b4f"
        "3c1e0a8); only disks on storage domains", id="direct-lun"),
    pytest.param("vda:/data", [domains.disk("vda", IMAGE, shareable=True)],
                 errors.VolumeRefused, "it is shareable", id="shareable"),
    pytest.param("vda:/data", [domains.disk("vda", IMAGE, readonly=True)],
                 errors.VolumeRefused, "it is attached read-only",
                 id="readonly"),
    pytest.param("vda:/data", [domains.disk("vda", IMAGE, fmt="qcow2")],
                 errors.VolumeRefused, "it is a qcow2 image; only raw disks",
                 id="qcow2"),
    pytest.param("hda:/data", [domains.disk("hda", IMAGE)],
                 errors.VolumeRefused, "it is on the ide bus", id="ide"),
    pytest.param("sda:/data", [domains.disk("sda", IMAGE, bus="sata")],
                 errors.VolumeRefused, "it is on the sata bus", id="sata"),
    pytest.param("vda:/data", [domains.disk("vda", IMAGE, kind="network")],
                 errors.VolumeRefused, "it is a network disk",
                 id="network"),
    pytest.param("vda:/data", [domains.disk("vda", None)],
                 errors.VolumeRefused, "it has no image", id="no-source"),
    pytest.param("vda:/a,vdb:/b", [domains.disk("vda", IMAGE),
                                   domains.disk("vdb", IMAGE, fmt="qcow2")],
                 errors.VolumeRefused, "VM disk vdb cannot be mounted",
                 id="second-disk-bad"),
    pytest.param("vda:/a,vda:/b", [domains.disk("vda", IMAGE)],
                 errors.InvalidProperty, "disk vda is listed twice",
                 id="disk-twice"),
    pytest.param("vda:/a,vdb:/a", [domains.disk("vda", IMAGE),
                                   domains.disk("vdb", IMAGE + "2")],
                 errors.InvalidProperty, "overlap", id="one-path-twice"),
    pytest.param("vda:/proc/x", [domains.disk("vda", IMAGE)],
                 errors.InvalidProperty, "under /proc", id="proc"),
    pytest.param("vda:/", [domains.disk("vda", IMAGE)],
                 errors.InvalidProperty, "not an absolute container path",
                 id="root"),
    pytest.param("vda:/a/../b", [domains.disk("vda", IMAGE)],
                 errors.InvalidProperty, "contains '.' or '..'",
                 id="dotdot"),
]


@pytest.mark.parametrize("volume_map, disks, error, message", REFUSED)
def test_refused(volume_map, disks, error, message):
    vm = vm_with(volume_map, *disks)
    with pytest.raises(error) as e:
        prepare(vm)
    text = str(e.value)
    assert message in text
    if error is errors.VolumeRefused:
        # Says what to do, and names the disk in the way out too.
        assert "remove %s from volumeMap" % e.value.disk in text


# containerImage=disk:<target>: the disk holding the image archive.

def vm_with_image_disk(*disks, **custom):
    props = {"containerType": "docker", "containerImage": "disk:vdb"}
    props.update(custom)
    return domains.add_disks(domains.VM(props), *disks)


@pytest.mark.parametrize("disk, kind, source", [
    pytest.param(domains.disk("vdb", IMAGE, readonly=True), "file", IMAGE,
                 id="file-readonly"),
    pytest.param(domains.disk("vdb", IMAGE), "file", IMAGE,
                 id="file-read-write"),
    pytest.param(domains.disk("vdb", IMAGE, shareable=True, readonly=True),
                 "file", IMAGE, id="shared-with-other-vms"),
    pytest.param(domains.disk("vdb", LV, kind="block"), "block", LV,
                 id="block"),
])
def test_image_disk(disk, kind, source):
    vm = vm_with_image_disk(disk, domains.disk("vdc", IMAGE + "-other"))

    plan = prepare(vm)

    assert plan.spec.image == imageref.DiskImage(disk="vdb", kind=kind,
                                                 source=source)
    args = specs.to_args(plan.spec)
    assert "--image=disk:vdb" in args
    assert "--image-source=%s,%s" % (kind, source) in args
    assert plan.spec.volumes == []
    disks = placeholder_disks(plan)
    # Nothing writes the archive, the placeholder neither.
    assert len(disks["vdb"].findall("readonly")) == 1
    assert disks["vdc"].find("readonly") is None
    # The placeholder's metadata names the disk, as ps and state do.
    assert etree.fromstring(plan.xml).findtext(
        "metadata/{http://ovirt.org/vdsm-hook-containers/1.0}container/"
        "{http://ovirt.org/vdsm-hook-containers/1.0}image") == "disk:vdb"


def test_image_disk_with_volumes():
    vm = vm_with_image_disk(domains.disk("vda", IMAGE + "-data"),
                            domains.disk("vdb", IMAGE, readonly=True),
                            volumeMap="vda:/data")
    plan = prepare(vm)
    assert plan.spec.image.disk == "vdb"
    assert [v.disk for v in plan.spec.volumes] == ["vda"]


IMAGE_DISK_REFUSED = [
    pytest.param([domains.disk("vda", IMAGE)], errors.InvalidProperty,
                 "Invalid custom property containerImage='disk:vdb': the VM "
                 "has no disk vdb (its disks: vda)", id="no-such-disk"),
    pytest.param([domains.disk("vdb", IMAGE, device="cdrom", bus="sata")],
                 errors.ImageDiskRefused, "it is a cdrom device", id="cdrom"),
    pytest.param([domains.disk("vdb", LV, kind="block", device="lun")],
                 errors.ImageDiskRefused, "it is a lun device", id="lun"),
    pytest.param([domains.disk("vdb", "/dev/mapper/36001405d2b4f3c1e0a8",
                               kind="block")],
                 errors.ImageDiskRefused, "it is a direct LUN",
                 id="direct-lun"),
    pytest.param([domains.disk("vdb", IMAGE, fmt="qcow2")],
                 errors.ImageDiskRefused, "it is a qcow2 image; upload the "
                 "archive as a raw disk", id="qcow2"),
    pytest.param([domains.disk("vdb", IMAGE, kind="network")],
                 errors.ImageDiskRefused, "it is a network disk",
                 id="network"),
    pytest.param([domains.disk("vdb", None)], errors.ImageDiskRefused,
                 "it has no image", id="no-source"),
]


@pytest.mark.parametrize("disks, error, message", IMAGE_DISK_REFUSED)
def test_image_disk_refused(disks, error, message):
    vm = vm_with_image_disk(*disks)
    with pytest.raises(error) as e:
        prepare(vm)
    text = str(e.value)
    assert message in text
    if error is errors.ImageDiskRefused:
        assert text.startswith("VM disk vdb cannot be the container's image "
                               "(containerImage=disk:vdb): ")


def test_image_disk_in_volume_map_refused():
    vm = vm_with_image_disk(domains.disk("vdb", IMAGE), volumeMap="vdb:/x")
    with pytest.raises(errors.InvalidProperty) as e:
        prepare(vm)
    assert "disk vdb is in volumeMap too" in str(e.value)


def helper_args(*extra):
    from containerhooks import helper
    return helper._parser().parse_args(
        ["start", "--vm-id=" + "6f1c3a2e-0d4b-4c55-9a1e-2b7d9c0e8f11",
         "--vm-name=web", "--engine=docker", "--memory-mib=64",
         "--vcpus=1"] + list(extra))


def test_helper_takes_image_disk_again():
    spec = specs.from_args(helper_args("--image=disk:vdb",
                                       "--image-source=block," + LV))
    assert spec.image == imageref.DiskImage(disk="vdb", kind="block",
                                            source=LV)


@pytest.mark.parametrize("args, message", [
    pytest.param(["--image=disk:vdb"], "needs --image-source",
                 id="no-source"),
    pytest.param(["--image=redis", "--image-source=file," + IMAGE],
                 "for an image disk (disk:...) only", id="source-for-ref"),
    pytest.param(["--image=disk:vdb", "--image-source=lun," + IMAGE],
                 "bad image source", id="bad-kind"),
    pytest.param(["--image=disk:vdb", "--image-source=file,relative"],
                 "bad image source", id="relative"),
    pytest.param(["--image=disk:vdb", "--image-source=file," + IMAGE,
                  "--volume=vdb,/data,file," + IMAGE],
                 "disk vdb is in volumeMap too", id="also-a-volume"),
    pytest.param(["--image=disk:nvme0", "--image-source=file," + IMAGE],
                 "not a VM disk name", id="bad-disk"),
])
def test_helper_refuses_bad_image_disk(args, message):
    with pytest.raises(errors.Error) as e:
        specs.from_args(helper_args(*args))
    assert message in str(e.value)
