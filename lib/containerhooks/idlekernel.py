"""The placeholder's guest kernel: a few bytes that halt the vCPU forever.

The placeholder domain keeps the VM's disks (Vdsm and Engine rely on them),
so it must never boot the operating system that may be on them.  qemu's
direct kernel boot loads this image instead of reading any disk: a 32-bit
ELF with a Multiboot header (which qemu's -kernel loader accepts) whose
code is "cli; hlt; jmp hlt".  The vCPU sleeps in hlt, costing no CPU.

The image is generated, not shipped as a binary: the RPM build and the test
suite call write() to produce it.
"""

import struct
import sys

LOAD_ADDRESS = 0x100000          # 1 MiB, where Multiboot kernels load
MULTIBOOT_MAGIC = 0x1BADB002

_ELF_HEADER = 52
_PROGRAM_HEADER = 32
_MULTIBOOT_HEADER = 12
_CODE = b"\xfa\xf4\xeb\xfd"      # cli; hlt; jmp $-1 (back to hlt)


def image():
    """Return the bytes of the kernel image."""
    code_offset = _ELF_HEADER + _PROGRAM_HEADER + _MULTIBOOT_HEADER
    size = code_offset + len(_CODE)
    ident = b"\x7fELF" + struct.pack("<BBBB", 1, 1, 1, 0) + b"\0" * 8
    elf = ident + struct.pack(
        "<HHIIIIIHHHHHH",
        2,                        # e_type: executable
        3,                        # e_machine: i386
        1,                        # e_version
        LOAD_ADDRESS + code_offset,   # e_entry
        _ELF_HEADER,              # e_phoff
        0,                        # e_shoff
        0,                        # e_flags
        _ELF_HEADER,              # e_ehsize
        _PROGRAM_HEADER,          # e_phentsize
        1,                        # e_phnum
        0, 0, 0)                  # no section headers
    phdr = struct.pack(
        "<IIIIIIII",
        1,                        # PT_LOAD
        0,                        # p_offset: the whole file
        LOAD_ADDRESS, LOAD_ADDRESS,
        size, size,
        5,                        # PF_R | PF_X
        0x1000)
    flags = 0
    checksum = (-(MULTIBOOT_MAGIC + flags)) & 0xFFFFFFFF
    multiboot = struct.pack("<III", MULTIBOOT_MAGIC, flags, checksum)
    return elf + phdr + multiboot + _CODE


def write(path):
    with open(path, "wb") as f:
        f.write(image())


def main(args=None):
    args = sys.argv[1:] if args is None else args
    if len(args) != 1:
        sys.stderr.write("usage: python -m containerhooks.idlekernel PATH\n")
        return 2
    write(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
