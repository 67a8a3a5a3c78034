"""PNG decoding by libspng (pyspng): the same pixels as Pillow's wherever it is used, Pillow wherever it must decide."""

import importlib.util
import io
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import ccscore.images as images
from ccscore.errors import ImageError
from ccscore.images import DecodedImage, fast_png_pixels, load_image, open_image

pyspng = pytest.importorskip("pyspng", reason="pyspng has wheels for x86-64 and Apple silicon only")



def without_pyspng(monkeypatch) -> None:
    """Importing pyspng raises ImportError, and libspng's functions are not at hand (`_libspng` found them before)."""
    monkeypatch.setitem(sys.modules, "pyspng", None)
    monkeypatch.setattr(images, "_libspng", lambda: None)


def pillow_only(monkeypatch) -> None:
    """Pillow alone decodes: `load_image` tries no fast path (nor reads what they read first: the orientation), and
    importing pyspng or zlib_ng raises ImportError."""
    monkeypatch.setattr(images, "fast_png_pixels", lambda im: None)
    without_pyspng(monkeypatch)
    monkeypatch.setitem(sys.modules, "zlib_ng", None)


@pytest.fixture(params=["zlib-ng inflating", "libspng alone"])
def fast_path(request, monkeypatch):
    """Comparisons with Pillow run twice: zlib-ng inflating the files it can (numpy or libspng unfiltering), and
    libspng alone (zlib-ng hidden)."""
    if request.param == "libspng alone":
        monkeypatch.setitem(sys.modules, "zlib_ng", None)


RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, (53, 71, 4), dtype=np.uint8)


def png(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **options)
    return buf.getvalue()


def with_xmp_orientation() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    return png(Image.fromarray(PIXELS[..., :3], "RGB"), pnginfo=info)


def with_exif_orientation(tag: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = tag
    return png(Image.fromarray(PIXELS[..., :3], "RGB"), exif=exif.tobytes())


def animated() -> bytes:
    frames = [Image.fromarray(np.roll(PIXELS[..., :3], k, axis=0), "RGB") for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def text_chunks() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, masterpiece")  # what generated art carries
    info.add_text("Comment", "zipped", zip=True)
    return png(Image.fromarray(PIXELS[..., :3], "RGB"), pnginfo=info)


FAST = {
    "rgba": lambda: png(Image.fromarray(PIXELS, "RGBA")),
    "rgba half transparent": lambda: png(Image.fromarray(np.dstack([PIXELS[..., :3], PIXELS[..., 3] // 2]), "RGBA")),
    "rgb": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB")),
    "rgb stored": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB"), compress_level=0),
    "grey": lambda: png(Image.fromarray(PIXELS[..., 0], "L")),
    "palette": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB").convert("P")),
    "palette of 4 colours, 2 bits": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB").quantize(4), bits=2),
    "rgb with text chunks": text_chunks,
    # rows the numpy path takes (Pillow's own files above filter some rows Average or Paeth: libspng's)
    "rgba rows None, Sub and Up": lambda: filtered_png(PIXELS, (0, 1, 2)),
    "rgb rows None": lambda: filtered_png(PIXELS[..., :3], (0,)),
}
PILLOW = {
    "palette with transparency": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB").convert("P"), transparency=3),
    "rgb colour key": lambda: png(Image.fromarray(PIXELS[..., :3], "RGB"), transparency=(1, 2, 3)),
    "grey colour key": lambda: png(Image.fromarray(PIXELS[..., 0], "L"), transparency=5),
    "16-bit grey": lambda: png(Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257)),
    "exif orientation": with_exif_orientation,
    "xmp orientation": with_xmp_orientation,
    "animated": animated,
}


def pillow_pixels(path) -> np.ndarray:
    return DecodedImage.from_pil(open_image(path)).rgb()


def fast_pixels(path):
    with images._opened(path, None) as (im, _):
        return fast_png_pixels(im)


@pytest.mark.parametrize("kind", sorted(FAST))
def test_libspng_decodes_these_to_pillows_pixels(tmp_path, kind, fast_path):
    path = tmp_path / "image.png"
    path.write_bytes(FAST[kind]())
    assert fast_pixels(path) is not None
    assert_reads_as_pillows(path)


def assert_reads_as_pillows(path) -> None:
    """Every read the tilers make, not only the whole image: crops, halved crops and the sparse plane that ranks cells."""
    decoded = load_image(path)
    assert np.array_equal(decoded.rgb(), pillow_pixels(path))
    reference = DecodedImage.from_pil(open_image(path))
    for image, expected in ((decoded, reference), (decoded.halved((1, 0)), reference.halved((1, 0)))):
        assert np.array_equal(image.crop(3, 5, 40, 30), expected.crop(3, 5, 40, 30))
        assert np.array_equal(image.sparse_green(4), expected.sparse_green(4))


@pytest.mark.parametrize("kind", sorted(PILLOW))
def test_pillow_decodes_what_pixels_alone_do_not_settle(tmp_path, kind):
    """Other modes and bit depths, colour keys, orientation (EXIF or XMP, which Pillow applies) and animation."""
    path = tmp_path / "image.png"
    path.write_bytes(PILLOW[kind]())
    assert fast_pixels(path) is None
    assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


def test_orientation_is_applied_either_way(tmp_path):
    path = tmp_path / "turned.png"
    path.write_bytes(with_exif_orientation(6))
    assert load_image(path).size == (PIXELS.shape[0], PIXELS.shape[1])  # turned a quarter: height x width


def test_without_pyspng_pillow_decodes(tmp_path, monkeypatch):
    path = tmp_path / "image.png"
    path.write_bytes(FAST["rgba"]())
    pillow_only(monkeypatch)
    assert fast_pixels(path) is None
    assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


def test_a_file_much_larger_than_its_pixels_is_left_to_pillow(tmp_path, monkeypatch):
    """libspng is handed the whole file; Pillow streams it. A small image with a huge file stays with Pillow."""
    data = FAST["rgb"]()
    path = tmp_path / "padded.png"
    path.write_bytes(data + b"\0" * 65536)  # bytes after IEND, which both decoders ignore
    assert fast_pixels(path) is not None
    monkeypatch.setattr(images, "FAST_PNG_EXTRA_BYTES", 1024)
    assert fast_pixels(path) is None
    assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


def assert_pillows_error_either_way(path, monkeypatch) -> None:
    """libspng leaves the file to Pillow, whose error record is then the same with and without pyspng."""
    assert fast_pixels(path) is None
    with pytest.raises(ImageError) as with_spng:
        load_image(path)
    pillow_only(monkeypatch)
    with pytest.raises(ImageError) as without:
        load_image(path)
    assert str(with_spng.value) == str(without.value)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_png_fails_as_pillow_says(tmp_path, monkeypatch, cut, fast_path):
    """libspng refuses it, Pillow then decides: the same error record with and without pyspng."""
    data = png(Image.fromarray(RNG.integers(0, 256, (300, 300, 3), dtype=np.uint8), "RGB"))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * cut)])
    assert_pillows_error_either_way(path, monkeypatch)


def test_the_file_position_is_left_where_pillow_expects_it(tmp_path, monkeypatch):
    """Where libspng gives up after reading the file, Pillow decodes from where its header reading left off."""
    path = tmp_path / "image.png"
    path.write_bytes(FAST["rgb"]())

    def refuses(data, mode):
        raise RuntimeError("pyspng: could not decode image: a test")

    monkeypatch.setattr(pyspng, "load", refuses)
    monkeypatch.setattr(images._StoredStream, "decoded", lambda self, shape, adler: None)
    assert fast_pixels(path) is None
    assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


def _flipped_in_pixel_data(data: bytes, at: float) -> bytes:
    """One bit flipped inside the first IDAT's compressed data (its CRC left as it was: bit rot)."""
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    flipped = bytearray(data)
    flipped[start + 2 + int((length - 6) * at)] ^= 0x10
    return bytes(flipped)


def _with_chunk_after_pixels(data: bytes, kind: bytes, body: bytes) -> bytes:
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + _chunk(kind, body) + data[iend:]


BROKEN = {
    **{f"bit flipped in the pixel data at {at:.0%}": (lambda at=at: _flipped_in_pixel_data(
        png(Image.fromarray(RNG.integers(0, 256, (64, 80, 3), dtype=np.uint8), "RGB")), at)) for at in (0.2, 0.5, 0.8)},
    "compressed text too large after the pixels": lambda: _with_chunk_after_pixels(
        FAST["rgb"](), b"zTXt", b"Comment\0\0" + zlib.compress(b"x" * (PngImagePlugin.MAX_TEXT_CHUNK + 1))),
    "cut in a chunk after the pixels": lambda: FAST["rgb"]()[:-12] + b"\0\0\0\x10tEXt",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_png_gives_pillows_record(tmp_path, monkeypatch, kind, fast_path):
    """pyspng has libspng ignore checksums (the zlib stream's Adler-32 too) and stops at the pixels: where Pillow
    would fail on what it checks or reads after them, Pillow decides."""
    path = tmp_path / "broken.png"
    path.write_bytes(BROKEN[kind]())
    assert_pillows_error_either_way(path, monkeypatch)


def text_after_pixels(texts: dict[bytes, bytes]) -> bytes:
    """A PNG with tIME and tEXt chunks after its pixels, as ImageMagick and GIMP write dates."""
    data = png(Image.fromarray(PIXELS[..., :3], "RGB"))
    iend = data.rindex(b"IEND") - 4
    extra = _chunk(b"tIME", bytes([7, 234, 11, 26, 20, 0, 0]))
    extra += b"".join(_chunk(b"tEXt", key + b"\0" + value) for key, value in texts.items())
    return data[:iend] + extra + data[iend:]


def test_plain_text_after_the_pixels_keeps_libspng(tmp_path):
    path = tmp_path / "dated.png"
    path.write_bytes(text_after_pixels({b"date:create": b"2026-11-26T20:00:00+00:00"}))
    assert fast_pixels(path) is not None
    assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


@pytest.mark.parametrize("key", [b"exif", b"xmp", b"Raw profile type exif", b"XML:com.adobe.xmp"])
def test_text_that_can_orient_the_image_leaves_it_to_pillow(tmp_path, key):
    path = tmp_path / "oriented.png"
    path.write_bytes(text_after_pixels({key: b"anything"}))
    assert fast_pixels(path) is None


def test_text_after_the_pixels_past_pillows_limit_leaves_it_to_pillow(tmp_path, monkeypatch):
    """Pillow fails where its texts pass MAX_TEXT_MEMORY in all: then so must the record here."""
    path = tmp_path / "wordy.png"
    path.write_bytes(text_after_pixels({b"Comment": b"x" * 5000}))
    assert fast_pixels(path) is not None
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 4000)
    assert fast_pixels(path) is None
    with pytest.raises(ImageError):
        load_image(path)


# Hand-built PNG files: what Pillow reads besides the pixels (text keywords, chunks after the pixels, checksums).
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def hand_png(pre: bytes = b"", post: bytes = b"", colour_type: int = 2, grey: bool = False) -> bytes:
    """A 71x53 8-bit PNG (RGB, grey or palette) of PIXELS, with `pre` chunks before its IDAT and `post` after."""
    pixels = PIXELS[..., 0] if grey or colour_type != 2 else PIXELS[..., :3]
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + row.tobytes() for row in pixels.reshape(height, -1))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    palette = _chunk(b"PLTE", bytes(range(256)) * 3) if colour_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + palette + pre + _chunk(b"IDAT", zlib.compress(rows))
            + post + _chunk(b"IEND", b""))


def outcome(path):
    """What `load_image` gives: its size and pixels, or its error's text."""
    try:
        decoded = load_image(path)
    except ImageError as exc:
        return "error", str(exc)
    return decoded.size, decoded.rgb().tobytes()


def _exif_turned() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def _flipped_idat_bit() -> bytes:
    data = bytearray(hand_png())
    data[data.index(b"IDAT") + 200] ^= 0x10  # the chunk's CRC and the zlib stream's Adler-32 no longer match
    return bytes(data)


_TWO_MB = zlib.compress(b"a" * 2 * 2**20)  # over Pillow's MAX_TEXT_CHUNK (1 MiB) once decompressed
PILLOW_DECIDES = {
    # Orientation Pillow reads from text chunks under the keywords "exif" and "xmp" (applied, or refused).
    "tEXt exif keyword": lambda: hand_png(pre=_chunk(b"tEXt", b"exif\0" + _exif_turned())),
    "tEXt exif keyword after the pixels": lambda: hand_png(post=_chunk(b"tEXt", b"exif\0" + _exif_turned())),
    "zTXt exif keyword": lambda: hand_png(pre=_chunk(b"zTXt", b"exif\0\0" + zlib.compress(_exif_turned()))),
    "tEXt xmp keyword": lambda: hand_png(pre=_chunk(b"tEXt", b'xmp\0<x tiff:Orientation="6"/>')),
    # A colour key after the pixels: Pillow makes its colour transparent (white once flattened).
    "grey tRNS after the pixels": lambda: hand_png(post=_chunk(b"tRNS", struct.pack(">H", int(PIXELS[0, 0, 0]))),
                                                   colour_type=0),
    "rgb tRNS after the pixels": lambda: hand_png(post=_chunk(b"tRNS", struct.pack(">HHH", *map(int, PIXELS[0, 0, :3])))),
    "palette tRNS after the pixels": lambda: hand_png(post=_chunk(b"tRNS", b"\0" * 256), colour_type=3),
    # Chunks after the pixels that Pillow refuses as it finishes decoding.
    "zTXt over MAX_TEXT_CHUNK after the pixels": lambda: hand_png(post=_chunk(b"zTXt", b"Comment\0\0" + _TWO_MB)),
    "iTXt over MAX_TEXT_CHUNK after the pixels": lambda: hand_png(post=_chunk(b"iTXt", b"Comment\0\1\0\0\0" + _TWO_MB)),
    "iCCP over MAX_TEXT_CHUNK after the pixels": lambda: hand_png(post=_chunk(b"iCCP", b"icc\0\0" + _TWO_MB)),
    "zTXt of unknown method after the pixels": lambda: hand_png(post=_chunk(b"zTXt", b"Comment\0\1xx")),
    "short gAMA after the pixels": lambda: hand_png(post=_chunk(b"gAMA", b"\0")),
    "short pHYs after the pixels": lambda: hand_png(post=_chunk(b"pHYs", b"\0")),
    "chunk cut short after the pixels": lambda: hand_png(post=_chunk(b"teXt", b"a\0bcdefgh")[:-6])[: -12],
    # APNG frame chunks without acTL.
    "fcTL without acTL": lambda: hand_png(pre=_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 10, 10, 0, 0, 1, 1, 0, 0))),
    "fcTL without acTL after the pixels": lambda: hand_png(post=_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 1, 10, 10, 0, 0,
                                                                                             1, 1, 0, 0))),
    # libspng checks neither CRCs nor the zlib stream's Adler-32 (pyspng turns both off): damaged pixels decode.
    "a bit flipped in IDAT": _flipped_idat_bit,
    # EXIF Pillow fails to parse before the pixels: Pillow's error, however it was read first (the orientation).
    "raw profile exif of bad hex": lambda: hand_png(pre=_chunk(b"zTXt", b"Raw profile type exif\0\0"
                                                               + zlib.compress(b"\nexif\n      8\nzz11zz11\n"))),
    "eXIf of garbage": lambda: hand_png(pre=_chunk(b"eXIf", b"not a TIFF header at all")),
    # Pillow stops at the first chunk after the pixels: IDAT past it is left unread (truncated).
    "IDAT split by tEXt": lambda: _split_by(_chunk(b"tEXt", b"Comment\0between")),
    "IDAT split by tIME": lambda: _split_by(_chunk(b"tIME", bytes([7, 234, 11, 26, 20, 0, 0]))),
    # Two headers (Pillow takes the last): one non-interlaced, one interlaced, a column of pixels either way.
    "a second IHDR, interlaced": lambda: _second_header(),
}


def _split_by(between: bytes) -> bytes:
    """hand_png's pixels in two IDAT chunks with `between` after the first."""
    data = hand_png()
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    stream = data[start + 8 : start + 8 + length]
    half = len(stream) // 2
    return (data[:start] + _chunk(b"IDAT", stream[:half]) + between + _chunk(b"IDAT", stream[half:])
            + data[start + 12 + length :])


def _second_header() -> bytes:
    column = PIXELS[:, :1, :3]
    first = filtered_png(column, (0,))
    interlaced = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, column.shape[0], 8, 2, 0, 0, 1))
    return first[:33] + interlaced + first[33:]


@pytest.mark.parametrize("kind", sorted(PILLOW_DECIDES))
def test_what_pillow_reads_beside_the_pixels_decides_as_it_does(tmp_path, monkeypatch, kind, fast_path):
    """The same pixels, size or error with and without pyspng, wherever chunks other than the pixels decide."""
    path = tmp_path / "image.png"
    path.write_bytes(PILLOW_DECIDES[kind]())
    with_spng = outcome(path)
    pillow_only(monkeypatch)
    assert with_spng == outcome(path)


def test_text_after_the_pixels_over_pillows_text_memory_fails_as_pillow_says(tmp_path, monkeypatch, fast_path):
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 1000)
    path = tmp_path / "image.png"
    path.write_bytes(hand_png(pre=_chunk(b"tEXt", b"a\0" + b"x" * 600), post=_chunk(b"tEXt", b"b\0" + b"y" * 600)))
    with_spng = outcome(path)
    assert with_spng[0] == "error"
    pillow_only(monkeypatch)
    assert with_spng == outcome(path)


# ---------------------------------------------------------------- rows filtered None, Sub or Up: numpy's path
needs_zlib_ng = pytest.mark.skipif(importlib.util.find_spec("zlib_ng") is None,
                                   reason="zlib-ng is installed where pyspng has wheels")


def _filtered(samples: np.ndarray, channels: int, kind: int, above: np.ndarray) -> bytes:
    """One row's samples filtered as PNG's filter `kind` does (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    x = samples.astype(np.int32)
    left = np.r_[np.zeros(channels, np.int32), x[:-channels]]
    up = above.astype(np.int32)
    upper_left = np.r_[np.zeros(channels, np.int32), up[:-channels]]
    if kind == 0:
        predicted = np.zeros_like(x)
    elif kind == 1:
        predicted = left
    elif kind == 2:
        predicted = up
    elif kind == 3:
        predicted = (left + up) // 2
    else:
        p = left + up - upper_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upper_left)
        predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upper_left))
    return bytes([kind]) + ((x - predicted) % 256).astype(np.uint8).tobytes()


def filtered_png(pixels: np.ndarray, filters, stream=None) -> bytes:
    """An 8-bit grey (H, W), RGB or RGBA PNG of `pixels`, row y filtered filters[y % len(filters)]; `stream`, given
    the filtered rows, makes the IDAT's data (default: zlib's)."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows, above = [], np.zeros(width * channels, np.uint8)
    for y in range(height):
        samples = pixels[y].reshape(-1)
        rows.append(_filtered(samples, channels, filters[y % len(filters)], above))
        above = samples
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    data = (stream or zlib.compress)(b"".join(rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


# zlib-ng's error, taken now: tests hide the module later
ZLIB_NG_ERROR = importlib.import_module("zlib_ng.zlib_ng").error if importlib.util.find_spec("zlib_ng") else ()


def zlib_ng_path(path) -> "np.ndarray | str | None":
    """What `_unfiltered_png` makes of the file (None: libspng or Pillow decides; "broken": zlib-ng found the stream
    broken, Pillow decides)."""
    data = path.read_bytes()
    idat = images._png_pixel_data(data)
    try:
        return None if idat is None else images._unfiltered_png(data, idat)
    except ZLIB_NG_ERROR:
        return "broken"


SMOOTH = np.clip(np.add.outer(np.arange(53) * 3, np.arange(71) * 2)[..., None] + PIXELS // 8, 0, 255).astype(np.uint8)
NONE_SUB_UP = {
    "all None": (0,), "all Sub": (1,), "all Up": (2,), "Up from the first row": (2, 2, 1, 0),
    "runs of each": (0, 1, 1, 2, 2, 2, 0, 2, 1), "alternating Sub and Up": (1, 2), "alternating Up and None": (2, 0),
    "long runs of Up": (1,) + (2,) * 11 + (0,) + (2,) * 7,
}


@needs_zlib_ng
@pytest.mark.parametrize("up_row_by_row", [1, images.UP_ROW_BY_ROW_BYTES])  # these rows: Up row by row, or summed
@pytest.mark.parametrize("chunk", [1, 700, images.UNFILTER_CHUNK_BYTES])  # rows unfiltered at a time: 1, 2-9, all
@pytest.mark.parametrize("filters", sorted(NONE_SUB_UP))
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_rows_filtered_none_sub_or_up_unfilter_in_numpy_to_pillows_pixels(tmp_path, monkeypatch, filters, channels,
                                                                           chunk, up_row_by_row):
    monkeypatch.setattr(images, "UNFILTER_CHUNK_BYTES", chunk)
    monkeypatch.setattr(images, "UP_ROW_BY_ROW_BYTES", up_row_by_row)
    pixels = SMOOTH[..., 0] if channels == 1 else SMOOTH[..., :3] if channels == 3 else PIXELS[..., :channels]
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(pixels, NONE_SUB_UP[filters]))
    assert zlib_ng_path(path) is not None
    assert_reads_as_pillows(path)
    if channels != 2:  # pyspng gives no grey with alpha: Pillow decodes those zlib-ng's path leaves
        layout = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        assert np.array_equal(zlib_ng_path(path), pyspng.load(path.read_bytes(), layout))


# ---------------------------------------------------------------- rows filtered Average or Paeth: libspng unfilters
AVERAGE_PAETH = {
    "all Paeth": (4,), "all Average": (3,), "Paeth first, then the rest": (4, 0, 1, 2, 3),
    "Average after a block of the rest": (0, 1, 2) * 10 + (3,),
    "Paeth after a block of the rest": (0, 1, 2) * 10 + (4,),
}


@pytest.fixture
def stored_decodes(monkeypatch) -> list:
    """The pixels `_StoredStream.decoded` gives (libspng unfiltering what zlib-ng inflated), each call's."""
    made, decoded = [], images._StoredStream.decoded

    def spied(self, shape, adler):
        made.append(decoded(self, shape, adler))
        return made[-1]

    monkeypatch.setattr(images._StoredStream, "decoded", spied)
    return made


needs_libspng = pytest.mark.skipif(images._libspng() is None, reason="pyspng's Windows build exports no libspng")


@needs_zlib_ng
@needs_libspng
@pytest.mark.parametrize("stored_block", [1, 7, 300, images._STORED_BLOCK_BYTES])  # a row in many blocks, or in one
@pytest.mark.parametrize("block", [1, 300, 1000, images.UNFILTERED_BLOCK_BYTES])  # rows change layout mid-row or not
@pytest.mark.parametrize("filters", sorted(AVERAGE_PAETH))
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_rows_filtered_average_or_paeth_are_unfiltered_by_libspng_to_pillows_pixels(
        tmp_path, monkeypatch, filters, channels, block, stored_block, stored_decodes):
    """Inflated by zlib-ng, laid out for libspng from the first Average or Paeth row on (however far into the stream
    and into its row, in stored blocks of any size), unfiltered by libspng: libspng's own pixels, and Pillow's."""
    monkeypatch.setattr(images, "UNFILTERED_BLOCK_BYTES", block)
    monkeypatch.setattr(images, "_STORED_BLOCK_BYTES", stored_block)
    pixels = SMOOTH[..., 0] if channels == 1 else SMOOTH[..., :3] if channels == 3 else PIXELS[..., :channels]
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(pixels, AVERAGE_PAETH[filters]))
    decoded = zlib_ng_path(path)
    assert len(stored_decodes) == 1 and stored_decodes[0] is decoded
    if channels != 2:
        assert np.array_equal(decoded, pyspng.load(path.read_bytes(), {1: "L", 3: "RGB", 4: "RGBA"}[channels]))
    assert_reads_as_pillows(path)
    if channels == 2:  # pyspng gives no grey with alpha: without zlib-ng, Pillow decodes it
        monkeypatch.setitem(sys.modules, "zlib_ng", None)
        assert fast_pixels(path) is None
        assert_reads_as_pillows(path)


@needs_zlib_ng
def test_libspngs_functions_are_found_where_pyspng_exports_them():
    """pyspng's Linux and macOS builds export libspng's functions: the tests above use them there."""
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        assert images._libspng() is not None


def test_another_libspng_version_is_not_called(monkeypatch):
    monkeypatch.setattr(images, "_LIBSPNG_VERSION", b"0.6.")
    assert images._libspng.__wrapped__() is None


@needs_zlib_ng
@pytest.mark.parametrize("why", ["no libspng functions", "rows over STORED_MAX_BYTES"])
def test_average_or_paeth_rows_libspng_is_not_given_decode_as_before(tmp_path, monkeypatch, why, stored_decodes):
    """Without libspng's functions at hand, or rows too large to copy (STORED_MAX_BYTES), pyspng decodes the file
    itself: the same pixels."""
    if why == "no libspng functions":
        monkeypatch.setattr(images, "_libspng", lambda: None)
    else:
        monkeypatch.setattr(images, "STORED_MAX_BYTES", 53 * (71 * 4 + 1) - 1)
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(PIXELS, (0, 4)))
    assert zlib_ng_path(path) is None and not stored_decodes
    assert fast_pixels(path) is not None
    assert_reads_as_pillows(path)


@needs_zlib_ng
@pytest.mark.parametrize("bad_row", [0, 1, 30])
def test_a_row_with_no_such_filter_is_decided_as_before(tmp_path, monkeypatch, bad_row, stored_decodes):
    """A filter type over 4 (before or after an Average or Paeth row): it decodes, or fails, as without zlib-ng."""
    monkeypatch.setattr(images, "UNFILTERED_BLOCK_BYTES", 1000)
    rows = [_filtered(PIXELS[y].reshape(-1), 4, (4, 0, 1, 2)[y % 4], PIXELS[y - 1].reshape(-1) if y else
                      np.zeros(71 * 4, np.uint8)) for y in range(53)]
    rows[bad_row] = b"\x05" + rows[bad_row][1:]
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 71, 53, 8, 6, 0, 0, 0))
    path = tmp_path / "bad-filter.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + _chunk(b"IEND", b""))
    result = outcome(path)
    assert zlib_ng_path(path) is None and not stored_decodes
    monkeypatch.setitem(sys.modules, "zlib_ng", None)
    assert outcome(path) == result


def _adler_broken(rows: bytes) -> bytes:
    stream = bytearray(zlib.compress(rows))
    stream[-1] ^= 1
    return bytes(stream)


def _data_broken(rows: bytes) -> bytes:
    stream = bytearray(zlib.compress(rows, 0))  # stored blocks: a block's length and its complement disagree
    stream[4] ^= 1
    return bytes(stream)


STREAMS = {
    "a row short": lambda rows: zlib.compress(rows[:-5]),
    "a row too many": lambda rows: zlib.compress(rows + rows[-(71 * 4 + 1):]),
    "bytes after the stream": lambda rows: zlib.compress(rows) + b"\0\0",
}
BROKEN_STREAMS = {"Adler-32 broken": _adler_broken, "a block broken": _data_broken}


@needs_zlib_ng
@pytest.mark.parametrize("filters", [(0, 1, 2), (0, 4)])
@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_a_stream_that_is_not_exactly_the_rows_is_libspngs_to_decide(tmp_path, monkeypatch, stream, filters,
                                                                      stored_decodes):
    """zlib-ng's path takes only a zlib stream that is exactly the image's rows; a sound stream that is not decodes
    (or fails) as it did before: libspng decides, and Pillow where libspng refuses."""
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(PIXELS, filters, stream=STREAMS[stream]))
    result = outcome(path)
    assert zlib_ng_path(path) is None and not stored_decodes
    monkeypatch.setitem(sys.modules, "zlib_ng", None)
    assert outcome(path) == result


@needs_zlib_ng
@pytest.mark.parametrize("filters", [(0, 1, 2), (0, 4)])
@pytest.mark.parametrize("stream", sorted(BROKEN_STREAMS))
def test_a_stream_zlib_ng_finds_broken_is_pillows_to_decide(tmp_path, monkeypatch, stream, filters, stored_decodes):
    """A broken zlib stream, its Adler-32 wrong included (which libspng ignores, decoding what Pillow refuses), gets
    Pillow's record, as without pyspng."""
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(PIXELS, filters, stream=BROKEN_STREAMS[stream]))
    result = outcome(path)
    assert zlib_ng_path(path) == "broken" and not stored_decodes
    assert result[0] == "error"
    pillow_only(monkeypatch)
    assert outcome(path) == result


@needs_zlib_ng
@pytest.mark.parametrize("level", [0, 9])  # stored (in many blocks) or deflated
def test_without_zlib_ng_libspng_decodes_the_same(tmp_path, monkeypatch, level):
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(PIXELS, (0, 1, 2), stream=lambda rows: zlib.compress(rows, level)))
    assert zlib_ng_path(path) is not None
    numpy_pixels = load_image(path).rgb()
    monkeypatch.setitem(sys.modules, "zlib_ng", None)
    assert zlib_ng_path(path) is None and fast_pixels(path) is not None
    assert np.array_equal(load_image(path).rgb(), numpy_pixels)


@needs_zlib_ng
def test_without_pyspng_numpy_still_decodes_rows_it_can(tmp_path, monkeypatch):
    without_pyspng(monkeypatch)
    easy, paeth = tmp_path / "easy.png", tmp_path / "paeth.png"
    easy.write_bytes(filtered_png(PIXELS, (0, 1, 2)))
    paeth.write_bytes(filtered_png(PIXELS, (0, 4)))
    assert fast_pixels(easy) is not None and fast_pixels(paeth) is None
    for path in (easy, paeth):
        assert np.array_equal(load_image(path).rgb(), pillow_pixels(path))


def test_rgba_rows_a_stride_apart_read_as_their_pixels():
    """`_decoded_png` shares memory with rows a stride apart where they lie in one flat buffer (as `_unfiltered_png`
    leaves them: a filter byte before each row); any other view of RGBA pixels is copied first. Either way the reads
    are the pixels'."""
    wide = RNG.integers(0, 256, (53, 80, 4), dtype=np.uint8)
    flat = np.concatenate([wide.reshape(-1), np.zeros(1, np.uint8)])
    as_laid = np.ndarray((53, 71, 4), np.uint8, buffer=flat, strides=(80 * 4, 4, 1))
    after_a_byte = np.concatenate([np.zeros(1, np.uint8), wide.reshape(-1)])
    filtered_rows = np.ndarray((53, 71, 4), np.uint8, buffer=after_a_byte[1:], strides=(80 * 4, 4, 1))
    # its last row's stride would end past the buffer (Pillow maps whole strides): copied
    late = np.ndarray((53, 71, 4), np.uint8, buffer=flat[4:], strides=(80 * 4, 4, 1))
    overlapping = np.ndarray((53, 71, 4), np.uint8, buffer=flat, strides=(4, 4, 1))  # Pillow would read 284 a row
    backwards = wide[::-1, :71]
    wide_items = np.ndarray((53, 71, 4), np.uint8, buffer=wide.view(np.uint32).reshape(-1), strides=(80 * 4, 4, 1))
    shared = (as_laid, filtered_rows)
    for view in (as_laid, filtered_rows, wide[:, :71], wide[:, 9:], late, overlapping, backwards, wide_items):
        assert not view.flags.c_contiguous
        expected = DecodedImage.from_array(np.ascontiguousarray(view))
        decoded = images._decoded_png(view)
        assert np.array_equal(decoded.rgb(), expected.rgb())
        assert np.array_equal(decoded.crop(3, 5, 40, 30), expected.crop(3, 5, 40, 30))
        before = decoded.crop(0, 0, 1, 1).copy()
        view[0, 0] = (255 - before[0, 0, 0], 0, 0, 255)  # shared memory shows the change, a copy does not
        assert np.array_equal(decoded.crop(0, 0, 1, 1), before) == (not any(view is v for v in shared))


@needs_zlib_ng
@pytest.mark.parametrize("filters", [(0,), (0, 1, 2)])  # the samples as they lie, or unfiltered in place
def test_rgba_unfiltered_in_numpy_is_not_copied(tmp_path, filters):
    path = tmp_path / "image.png"
    path.write_bytes(filtered_png(PIXELS, filters))
    pixels = zlib_ng_path(path)
    decoded = images._decoded_png(pixels)
    assert np.array_equal(decoded.rgb(), DecodedImage.from_array(PIXELS).rgb())
    pixels[2, 3] = (1, 2, 3, 255)
    assert np.array_equal(decoded.crop(3, 2, 4, 3), [[[1, 2, 3]]])


@needs_zlib_ng
@pytest.mark.parametrize("filters", [(0, 1, 2), (0, 1, 2, 3, 4)])  # unfiltered by numpy, or by libspng
def test_the_stream_read_in_small_pieces_gives_the_same_pixels(tmp_path, monkeypatch, filters):
    """Compressed input is given in pieces (UNFILTERED_INPUT_BYTES), output taken in blocks: any sizes, any split of
    the IDAT chunks, the same pixels."""
    rows = b"".join(_filtered(PIXELS[y].reshape(-1), 4, filters[y % len(filters)], PIXELS[y - 1].reshape(-1) if y else
                              np.zeros(71 * 4, np.uint8)) for y in range(53))
    stream = zlib.compress(rows)
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 71, 53, 8, 6, 0, 0, 0))
    idats = b"".join(_chunk(b"IDAT", stream[i : i + 37]) for i in range(0, len(stream), 37)) + _chunk(b"IDAT", b"")
    path = tmp_path / "pieces.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + idats + _chunk(b"IEND", b""))
    for piece, block in ((7, 1), (1, 300), (64, 285), (1 << 16, 1 << 18)):
        monkeypatch.setattr(images, "UNFILTERED_INPUT_BYTES", piece)
        monkeypatch.setattr(images, "UNFILTERED_BLOCK_BYTES", block)
        assert np.array_equal(zlib_ng_path(path), PIXELS)


def _raw_profile(tag: int) -> bytes:
    """EXIF with an orientation as GIMP writes it: zTXt "Raw profile type exif", hex."""
    exif = Image.Exif()
    exif[0x0112] = tag
    data = exif.tobytes()
    return f"\nexif\n{len(data):8}\n{data.hex()}\n".encode()


GIMP_LIKE = {  # orientation chunks before the pixels, as GIMP writes them: Pillow has read them at open
    "raw profile exif": lambda tag: _chunk(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(_raw_profile(tag))),
    "eXIf": lambda tag: _chunk(b"eXIf", _exif_of(tag)),
    "xmp": lambda tag: _chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0"
                              + f'<x:xmpmeta><rdf:Description tiff:Orientation="{tag}"/></x:xmpmeta>'.encode()),
}


def _exif_of(tag: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = tag
    return exif.tobytes()


@pytest.mark.parametrize("tag", range(1, 9))
@pytest.mark.parametrize("kind", sorted(GIMP_LIKE))
def test_orientation_before_the_pixels_is_pillows_read_at_open(tmp_path, monkeypatch, kind, tag):
    """Upright (orientation 1) the fast paths decode the file; turned or flipped, Pillow does. Either way the same
    size and pixels as Pillow alone gives."""
    path = tmp_path / "image.png"
    path.write_bytes(hand_png(pre=GIMP_LIKE[kind](tag)))
    fast = fast_pixels(path)
    assert (fast is not None) == (tag == 1)
    result = outcome(path)
    pillow_only(monkeypatch)
    assert result == outcome(path)
