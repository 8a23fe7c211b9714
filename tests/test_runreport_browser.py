"""The HTML report in a real headless Chromium (Debian ``chromium``): it renders, the
SVG charts are in the DOM, and the screenshot is a picture, not a blank page.

A missing browser fails the test (``scripts/setup.sh`` installs it), never skips.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import attrs
import pytest

import gatekeeper
from gatekeeper import MemoryStore
from gatekeeper._runreport_html import render_html

pytestmark = pytest.mark.servers

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


@attrs.frozen
class Png:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows of width * channels bytes, unfiltered

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        start = (y * self.width + x) * self.channels
        return tuple(self.pixels[start : start + min(self.channels, 3)])


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Png:
    """A minimal PNG decoder (8-bit RGB or RGBA, not interlaced): enough to look at
    a browser's screenshot without an imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0), "only 8-bit, non-interlaced PNGs"
            channels = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if filter_type == 1:
            for i in range(channels, stride):
                row[i] = (row[i] + row[i - channels]) & 0xFF
        elif filter_type == 2:
            row = bytearray((r + p) & 0xFF for r, p in zip(row, previous, strict=True))
        elif filter_type == 3:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif filter_type == 4:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                up_left = previous[i - channels] if i >= channels else 0
                row[i] = (row[i] + _paeth(left, previous[i], up_left)) & 0xFF
        out[y * stride : (y + 1) * stride] = row
        previous = row
    return Png(width, height, channels, bytes(out))


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    if browser is None:
        raise RuntimeError(
            "chromium is not installed: run scripts/setup.sh (the test command does)"
        )
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def report(recording: str, target: Path) -> Path:
    store = MemoryStore()
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    gatekeeper.rehearse(plan, EXAMPLE / recording, store=store)
    (info,) = store.runs()
    target.write_text(render_html(info, store.events(info.run_id)), encoding="utf-8")
    return target


@pytest.mark.parametrize(("recording", "charts"), [("healthy.csv", 11), ("bad-canary.csv", 6)])
def test_report_renders_in_headless_chromium(recording: str, charts: int, tmp_path: Path) -> None:
    """Chromium parses the page with every chart in its DOM, and its screenshot at
    1280×900 shows the report (many colours, much of it not background)."""
    page = report(recording, tmp_path / "report.html")
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert charts == dom.count("<svg")
    assert 'class="chart timeline"' in dom
    assert "<polyline" in dom and "<circle" in dom
    shot = tmp_path / "report.png"
    chromium(
        f"--screenshot={shot}", "--window-size=1280,900", page.as_uri(), profile=tmp_path / "p2"
    )
    png = decode_png(shot.read_bytes())
    assert (1280, 900) == (png.width, png.height)
    background = png.pixel(2, 2)
    colours = set()
    differing = 0
    for y in range(0, png.height, 3):
        for x in range(0, png.width, 3):
            colour = png.pixel(x, y)
            colours.add(colour)
            differing += colour != background
    sampled = (png.height // 3 + 1) * (png.width // 3 + 1)
    assert len(colours) > 50, "a blank or single-colour screenshot"
    assert differing / sampled > 0.2, "the page is mostly background"
    # The timeline's phase bands are tinted green (advanced) or red (rolled back).
    assert any(g > r + 20 and g > b for r, g, b, *_ in colours)


def test_decoder_reads_a_known_png() -> None:
    """The test's own PNG decoder: a 2×2 RGB image, unfiltered, then with the Sub
    and Up filters (Average and Paeth are read from the browser's own screenshots)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    pixels = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (10, 20, 30)]]
    plain = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in pixels)
    # Sub: each byte less the one a pixel to its left; Up: less the one above.
    filtered = bytes([1, 255, 0, 0, 1, 255, 0]) + bytes([2, 1, 0, 255, 10, 21, 30])
    for rows in (plain, filtered):
        data = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b"")
        )
        png = decode_png(data)
        assert [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)] == [
            png.pixel(0, 0),
            png.pixel(1, 0),
            png.pixel(0, 1),
            png.pixel(1, 1),
        ]
