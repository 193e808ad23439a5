"""Ways a file goes bad: cut short, or bytes flipped where a reader would not otherwise notice."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def cut(path: Path) -> None:
    """Keep the first half of the file (a copy or a write that stopped halfway)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path, count: int = 50) -> None:
    """Change bytes so the file still parses: in a .pt, the low bit of `count` bytes in the middle of
    its largest tensor (a bool mask gains or loses kept weights, a float moves in its last bit); in a
    text file, one digit in the middle (the JSON or CSV stays valid, only a number changes)."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".pt":
        with zipfile.ZipFile(path) as archive:
            member = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
        start = member.header_offset + 30 + name_length + extra_length + member.file_size // 2 - count // 2
        for position in range(start, start + min(count, member.file_size)):
            data[position] ^= 1
    else:
        middle = len(data) // 2
        position = next(i for i in sorted(range(len(data)), key=lambda i: abs(i - middle)) if chr(data[i]).isdigit())
        data[position] = ord(str((int(chr(data[position])) + 1) % 10))
    path.write_bytes(bytes(data))
