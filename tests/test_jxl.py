"""JPEG XL files: sized from the header before decoding (the pixel limit), decoded through the optional
pillow-jxl-plugin (the [jxl] extra), and a clear error record where it is missing."""

from __future__ import annotations

import io
import json
import struct
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from ccscore.container import JXL_CONTAINER, jxl_size, read_container
from ccscore.errors import ImageError
from ccscore.images import load_image
from conftest import draw_art, run_cli

pytest.importorskip("pillow_jxl", reason="the [jxl] extra (pillow-jxl-plugin) is not installed")


def jxl_bytes(im: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    im.save(out, "JXL", quality=quality)
    return out.getvalue()


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def container(codestream: bytes, split_at: Optional[int] = None) -> bytes:
    """The ISO BMFF form of a codestream: signature, ftyp, then jxlc (whole) or two jxlp parts split at a byte."""
    head = JXL_CONTAINER + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + box(b"jxll", b"\x0a")
    if split_at is None:
        return head + box(b"jxlc", codestream)
    return (head + box(b"jxlp", struct.pack(">I", 0) + codestream[:split_at])
            + box(b"jxlp", struct.pack(">I", 0x80000001) + codestream[split_at:]))


def huge_header(width_minus_1: int) -> bytes:
    """A codestream whose SizeHeader claims a square of width_minus_1 + 1 pixels, with no image after it."""
    bits = 0 | (3 << 1) | (width_minus_1 << 3) | (1 << 33)  # not div8; 30-bit ysize - 1; ratio 1:1
    return b"\xff\x0a" + bits.to_bytes(8, "little") + b"\x00" * 8


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (256, 64), (640, 480), (1920, 1080), (600, 500), (123, 457),
                                  (4000, 1), (17, 4097), (8197, 3)])
def test_header_size_matches_every_aspect_ratio_and_width_code(size):
    rng = np.random.default_rng(sum(size))
    data = jxl_bytes(Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)))
    assert jxl_size(io.BytesIO(data)) == size
    for split_at in (None, len(data) // 2):
        assert jxl_size(io.BytesIO(container(data, split_at))) == size


def test_a_container_decodes_like_its_codestream():
    art = draw_art(3, (200, 120))
    data = jxl_bytes(art, 80)
    plain = load_image(_Encoded(data)).rgb()
    wrapped = load_image(_Encoded(container(data))).rgb()
    assert plain.shape == (120, 200, 3) and np.array_equal(plain, wrapped)
    assert np.abs(plain.astype(int) - np.asarray(art, dtype=int)).mean() < 8  # lossy, but the same picture
    assert read_container(_Encoded(container(data, len(data) // 2)))["format"] == "jxl"


def test_the_pixel_limit_is_checked_on_the_header_before_decoding():
    # 60000 x 60000 claimed, no image data: the limit must refuse it before the decoder allocates 10 GB.
    with pytest.raises(ImageError, match=r"60000x60000 .* exceeds the limit"):
        load_image(_Encoded(huge_header(59999)))
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(_Encoded(jxl_bytes(draw_art(1, (300, 200)))), max_pixels=300 * 200 - 1)
    with pytest.raises(ImageError, match="truncated JPEG XL header"):
        load_image(_Encoded(b"\xff\x0a\x00"))


def test_a_truncated_body_gets_a_plain_error_not_the_bindings_advice_to_rebuild_libjxl():
    data = jxl_bytes(draw_art(8, (160, 120)))
    for broken in (data[: len(data) // 2], container(data)[:60], data[:12] + b"\xff" * 200):
        with pytest.raises(ImageError) as caught:
            load_image(_Encoded(broken))
        assert str(caught.value) == "mem.jxl: cannot decode image (corrupt or truncated JPEG XL)"


def test_a_header_split_across_jxlp_parts_is_read_as_the_decoder_joins_them(monkeypatch):
    # A part may hold only a byte or two of the codestream: read past its end, the next box's header would be
    # taken for the size, and the decoder would decode all 800x600 before the limit was checked.
    from pillow_jxl import JpegXLImagePlugin

    data = jxl_bytes(draw_art(2, (800, 600)), 50)
    for split_at in (2, 3, 5):
        assert jxl_size(io.BytesIO(container(data, split_at))) == (800, 600)
        assert load_image(_Encoded(container(data, split_at))).size == (800, 600)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decoder ran on an image over the pixel limit")

    monkeypatch.setattr(JpegXLImagePlugin, "Decoder", no_decoding)
    for split_at in (2, 3, 5):
        with pytest.raises(ImageError, match="800x600 .* exceeds the limit"):
            load_image(_Encoded(container(data, split_at)), max_pixels=100_000)


def test_box_sizes_past_the_end_stop_the_walk_and_read_container_never_raises():
    data = jxl_bytes(draw_art(4, (64, 48)))
    head = JXL_CONTAINER + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
    for claimed in (2**64 - 1, 2**63, 2**40):  # a 64-bit box size: seeking there overflows an in-memory stream
        hostile = head + struct.pack(">I", 1) + b"junk" + struct.pack(">Q", claimed) + box(b"jxlc", data)
        assert read_container(_Encoded(hostile)) == {"format": "jxl", "from_jpeg": False}
        assert jxl_size(io.BytesIO(hostile)) is None
        with pytest.raises(ImageError, match="JPEG XL header"):
            load_image(_Encoded(hostile))
    avif = box(b"ftyp", b"avif\x00\x00\x00\x00") + struct.pack(">I", 1) + b"meta" + struct.pack(">Q", 2**64 - 1)
    assert read_container(_Encoded(avif))["format"] == "avif"


def test_a_grey_float_image_is_read_on_the_0_to_255_scale():
    # The plugin gives float JPEG XL as mode F with samples 0..1: read as 0..255, it was a black image.
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    out = io.BytesIO()
    Image.fromarray(ramp, "F").save(out, "JXL", lossless=True)
    pixels = load_image(_Encoded(out.getvalue())).rgb()
    assert pixels.shape == (48, 64, 3)
    assert np.abs(pixels[..., 0].astype(int) - np.round(ramp * 255)).max() <= 1


def test_a_file_larger_than_its_pixels_could_need_is_refused_before_the_plugin_reads_it_whole(tmp_path):
    from ccscore.images import JXL_BYTES_PER_PIXEL, JXL_METADATA_BYTES

    data = jxl_bytes(draw_art(7, (64, 48)))
    most = JXL_METADATA_BYTES + JXL_BYTES_PER_PIXEL * 64 * 48
    padded = tmp_path / "padded.jxl"
    with open(padded, "wb") as f:  # a 64x48 codestream with zeros after it; sparse, so no disk is spent
        f.write(data)
        f.truncate(most + 1)
    with pytest.raises(ImageError, match=r"64x48 JPEG XL file of \d+ MiB is larger than its pixels could need"):
        load_image(padded)
    with open(padded, "r+b") as f:  # at the bound it is read (the decoder ignores what follows the codestream)
        f.truncate(most)
    assert load_image(padded).size == (64, 48)


def test_a_folder_with_jpeg_xl_files_is_scored_and_without_the_plugin_each_gets_a_clear_error(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "art.jxl").write_bytes(jxl_bytes(draw_art(5, (384, 320)), 60))
    draw_art(6).save(folder / "art.png")
    out = tmp_path / "scores.jsonl"
    proc = run_cli(str(folder), "--output", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.read_text().splitlines()) if "path" in r}
    assert set(records) == {"art.jxl", "art.png"}
    assert records["art.jxl"].get("error") is None and records["art.jxl"]["width"] == 384
    assert records["art.jxl"]["container"]["format"] == "jxl"

    missing = tmp_path / "missing.jsonl"
    proc = run_cli(str(folder), "--output", str(missing), "--no-progress", blocked=("torch", "pillow_jxl"))
    assert proc.returncode == 1, proc.stderr  # some files failed; the others are scored
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, missing.read_text().splitlines()) if "path" in r}
    assert "pip install 'ccscore[jxl]'" in records["art.jxl"]["error"]
    assert records["art.png"].get("error") is None


class _Encoded:
    """In-memory bytes as `load_image` takes a shard member's (an EncodedImage)."""

    def __new__(cls, data: bytes):
        from ccscore.inputs import EncodedImage

        return EncodedImage("mem.jxl", data=data)
