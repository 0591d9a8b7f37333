"""A small PNG decoder for the chart screenshots (tests/python/test_chart.py): 8-bit RGB or RGBA,
not interlaced, which is what Chromium writes. zlib and numpy only, so the tests need no image
library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}
"""Colour type -> channels: 2 truecolour (RGB), 6 truecolour with alpha (RGBA)."""


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, row: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """One scan line without its filter (PNG spec §9.2); rows are uint8, arithmetic mod 256."""
    if kind == 0:
        return row
    if kind == 1:  # Sub: a running sum along the row, per channel
        return np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    if kind == 2:  # Up
        return row + prior
    if kind not in (3, 4):
        raise ValueError(f"unknown PNG filter type {kind}")
    # Average and Paeth depend on the byte just reconstructed: byte by byte.
    out = bytearray(row.tobytes())
    up = prior.tobytes()
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
        else:
            upper_left = up[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + _paeth(left, up[i], upper_left)) & 0xFF
    return np.frombuffer(bytes(out), dtype=np.uint8)


def read_png(path: Path) -> np.ndarray:
    """The image as an array of shape (height, width, 3) of RGB bytes (alpha dropped)."""
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    pos = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace != 0:
        raise ValueError(
            f"{path}: only 8-bit RGB/RGBA non-interlaced PNG is supported "
            f"(depth {depth}, colour type {colour}, interlace {interlace})"
        )
    bpp = CHANNELS[colour]
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8)
    if len(raw) != height * (stride + 1):
        raise ValueError(
            f"{path}: {len(raw)} bytes of pixel data, expected {height * (stride + 1)}"
        )
    lines = raw.reshape(height, stride + 1)
    pixels = np.empty((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        prior = _unfilter(int(lines[y, 0]), lines[y, 1:], prior, bpp)
        pixels[y] = prior
    return pixels.reshape(height, width, bpp)[:, :, :3]


def count_colour(pixels: np.ndarray, colour: str, tolerance: int = 10) -> int:
    """How many pixels are within ``tolerance`` per channel of ``colour`` ("#rrggbb")."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    near = np.abs(pixels.astype(np.int16) - rgb) <= tolerance
    return int(near.all(axis=-1).sum())
