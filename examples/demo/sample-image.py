#!/usr/bin/python3
"""Write a deterministic 224x224 RGB PNG (a colour gradient with a disc) to argv[1]: the demo's input."""
import struct
import sys
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main():
    w = h = 224
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            inside = (x - 112) ** 2 + (y - 112) ** 2 < 60 ** 2
            rows += bytes((200, 40, 30) if inside else (x, y, (x + y) // 2))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    with open(sys.argv[1], "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main()
