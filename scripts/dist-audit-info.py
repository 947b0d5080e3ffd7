#!/usr/bin/env python3
"""Read the dependency list cargo-auditable embeds in a binary, for scripts/dist-check.sh.

cargo-auditable writes it as zlib-compressed JSON into an ELF section named `.dep-v0`; this is
what `rust-audit-info` and `cargo audit bin` read, in 40 lines and without installing either.
Any 64-bit little-endian ELF (x86_64 and aarch64 alike).

Usage: scripts/dist-audit-info.py <binary>        (the JSON on stdout; exit 1 when absent)
"""

import json
import struct
import sys
import zlib

SECTION = b".dep-v0"


def section(data, wanted):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit("dist-audit-info: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)

    names_off = header(shstrndx)[4]
    for i in range(shnum):
        name_idx, _, _, _, off, size = header(i)
        end = data.index(b"\0", names_off + name_idx)
        if data[names_off + name_idx:end] == wanted:
            return data[off:off + size]
    return None


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    raw = section(data, SECTION)
    if raw is None:
        sys.exit(f"dist-audit-info: {sys.argv[1]} has no {SECTION.decode()} section "
                 "(not built with cargo auditable)")
    info = json.loads(zlib.decompress(raw))
    json.dump(info, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
