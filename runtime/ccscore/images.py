"""Decoding any supported input into a `DecodedImage` that tilers read in parts."""

from __future__ import annotations

import functools
import os
import stat
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

from .container import is_jxl, jxl_size
from .errors import ImageError, one_line
from .inputs import EncodedImage

try:  # every IDAT's CRC is checked (`_png_pixel_data`): zlib-ng's CRC-32 is about 4x zlib's, the same values
    from zlib_ng.zlib_ng import crc32
except ImportError:
    from zlib import crc32

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, EncodedImage]
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own decompression-bomb limit
# The most bytes a JPEG XL file may hold for its pixel count: twice RGBA float32 stored raw, beside room for
# Exif, XMP and other metadata boxes (the decoder reads the file whole, so this bounds its memory).
JXL_BYTES_PER_PIXEL = 32
JXL_METADATA_BYTES = 64 * 2**20
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def flatten_on_white(im: Image.Image, box: Optional[tuple[int, int, int, int]] = None) -> Image.Image:
    """RGBA -> RGB composited over white, of `box` alone where given (left, top, right, bottom: an RGBA image's
    region, read straight from it, none copied first); other modes pass through.

    Colours under transparent pixels are arbitrary; over a flat white they carry no false evidence.
    """
    if im.mode != "RGBA":
        return im
    left, top, right, bottom = box or (0, 0, *im.size)
    background = Image.new("RGB", (right - left, bottom - top), (255, 255, 255))
    background.paste(im, (-left, -top), im)  # one pass, its alpha the mask: no intermediate RGBA composite
    return background


def _pil_array(im: Image.Image) -> np.ndarray:
    # np.asarray(im) costs ~4x more than tobytes() in Pillow 13: read the bytes once instead.
    channels = len(im.getbands())
    shape = (im.height, im.width, channels) if channels > 1 else (im.height, im.width)
    return np.frombuffer(im.tobytes(), np.uint8).reshape(shape)


class DecodedImage:
    """A decoded image that tilers read in parts, converting only what they read.

    Flattening alpha and converting a whole 2-4 MP image costs about a third of decoding it, while content
    tiling reads a sparse green plane (every 4th pixel) to rank cells and then a few full-resolution tiles.
    So the image is kept as Pillow decoded it (RGB, or RGBA with alpha not yet flattened) or as an RGB
    array, and every read returns RGB uint8 with alpha composited over white.
    """

    def __init__(self, image: Optional[Image.Image] = None, array: Optional[np.ndarray] = None):
        if (image is None) == (array is None):
            raise ValueError("DecodedImage takes exactly one of a Pillow image and an array")
        if image is not None and image.mode not in ("RGB", "RGBA"):
            raise ValueError(f"DecodedImage takes an RGB or RGBA Pillow image, got mode {image.mode}")
        self._image = image
        self._array = array

    @classmethod
    def from_pil(cls, im: Image.Image) -> "DecodedImage":
        """Any Pillow mode: alpha kept for later flattening, high bit depths scaled, CMYK/palette converted."""
        if im.mode in HIGH_BIT_MODES:
            values = np.asarray(im, dtype=np.float64)
            gray = np.clip(values / 257.0, 0, 255).round().astype(np.uint8)
            return cls(array=np.repeat(gray[..., None], 3, axis=2))
        if im.mode == "F":
            gray = np.clip(np.asarray(im, dtype=np.float64), 0, 255).round().astype(np.uint8)
            return cls(array=np.repeat(gray[..., None], 3, axis=2))
        if im.mode in ALPHA_MODES or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
            return cls(image=im if im.mode == "RGBA" else im.convert("RGBA"))
        return cls(image=im if im.mode == "RGB" else im.convert("RGB"))

    @classmethod
    def from_array(cls, array: np.ndarray) -> "DecodedImage":
        """An RGB (H, W, 3), RGBA (H, W, 4) or grey (H, W) uint8 array; RGBA is flattened like a Pillow image."""
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ImageError(f"expected an RGB array of shape (H, W, 3), got {array.shape}")
        if array.dtype != np.uint8:
            raise ImageError(f"expected uint8 pixels, got {array.dtype}")
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        if array.shape[2] == 4:
            array = _pil_array(flatten_on_white(Image.fromarray(array, "RGBA")))
        return cls(array=array)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        if self._image is not None:
            return self._image.size
        return int(self._array.shape[1]), int(self._array.shape[0])

    def rgb(self) -> np.ndarray:
        """The whole image, [H, W, 3] uint8."""
        if self._array is not None:
            return self._array
        return _pil_array(flatten_on_white(self._image))

    def crop(self, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        """One region inside the image, [bottom - top, right - left, 3] uint8."""
        if self._array is not None:
            return self._array[top:bottom, left:right]
        if self._image.mode == "RGBA":  # the box alone flattened, straight from the image
            return _pil_array(flatten_on_white(self._image, (left, top, right, bottom)))
        # A nearest "resize" to the box's own size copies it exactly, like crop(), but without crop's
        # decompression-bomb check against Pillow's global limit: --max-pixels alone decides, at decode time.
        region = self._image.resize((right - left, bottom - top), Image.NEAREST, box=(left, top, right, bottom))
        return _pil_array(region)

    def halved(self, offset: tuple[int, int] = (0, 0)) -> "HalvedImage":
        """The image at half size, each pixel the mean of a 2x2 block (Pillow's reduce of the flattened image),
        computed only where read; `offset` (x, y in {0, 1}): the blocks start there, the first column (row) left
        out."""
        return HalvedImage(self, offset)

    def sparse_green(self, step: int) -> np.ndarray:
        """The green channel at the centre pixel of every whole step x step cell, uint8: for c = step // 2,
        rgb()[c::step, c::step, 1] cut to whole cells. The image must be at least `step` pixels each way."""
        width, height = self.size
        if width < step or height < step:
            raise ValueError(f"a {width}x{height} image has no whole {step}x{step} cell")
        cells = (width // step, height // step)
        if self._array is not None:
            return self._array[step // 2 :: step, step // 2 :: step, 1][: cells[1], : cells[0]]
        # Nearest-neighbour resampling by a whole factor samples exactly the cell centres.
        box = (0, 0, cells[0] * step, cells[1] * step)
        small = self._image.resize(cells, Image.NEAREST, box=box)
        green = small.getchannel("G")
        if small.mode == "RGBA":  # flatten the one channel read, not all three
            white = Image.new("L", cells, 255)
            white.paste(green, mask=small.getchannel("A"))
            green = white
        return _pil_array(green)


class HalvedImage(DecodedImage):
    """A `DecodedImage` halved where it is read: a crop is the source's crop at twice the coordinates, reduced
    (2x2 means; the same pixels as reducing the whole image, since blocks start at even coordinates there), and
    the sparse green plane that ranks cells is the source's at twice the step (a pixel of each 2x2 block stands in
    for their mean: it only ranks). Tiling an image halved thus costs its tiles, not a pass over every pixel.
    Halved again, it is the source reduced by 4 (4x4 means, rounded once) from the two offsets combined: one
    reduction of each crop instead of two."""

    def __init__(self, source: DecodedImage, offset: tuple[int, int] = (0, 0), factor: int = 2):
        self._source = source
        self.offset = offset  # in the source's pixels
        self.factor = factor

    @property
    def size(self) -> tuple[int, int]:
        width, height = self._source.size
        f = self.factor
        return (width - self.offset[0] + f - 1) // f, (height - self.offset[1] + f - 1) // f

    def rgb(self) -> np.ndarray:
        x, y = self.offset
        return _pil_array(Image.fromarray(np.ascontiguousarray(self._source.rgb()[y:, x:])).reduce(self.factor))

    def crop(self, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        width, height = self._source.size
        (x, y), f = self.offset, self.factor
        region = self._source.crop(f * left + x, f * top + y, min(f * right + x, width), min(f * bottom + y, height))
        return _pil_array(Image.fromarray(np.ascontiguousarray(region)).reduce(f))

    def sparse_green(self, step: int) -> np.ndarray:
        # Where a side of the source is not a whole number of blocks, a cell fewer than the halved size holds can
        # come back (the last one would take in the partial block): tile_texture_scores measures its border cells
        # on the samples there are.
        width, height = self.size
        green = self._source.sparse_green(self.factor * step)
        return green[: height // step, : width // step]

    def halved(self, offset: tuple[int, int] = (0, 0)) -> "HalvedImage":
        (x, y), f = self.offset, self.factor
        return HalvedImage(self._source, (x + f * offset[0], y + f * offset[1]), 2 * f)


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_regular_file(path: Path) -> BinaryIO:
    """Opens a regular file for reading; anything else is an `ImageError`.

    The check is on the open descriptor, so a FIFO or device swapped in after the folder was listed is refused
    too; O_NONBLOCK keeps the open itself from waiting for a FIFO's writer (regular files ignore it).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
            raise ImageError(f"{path} is {kind}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def _opened(path: Union[str, os.PathLike, EncodedImage],
            max_pixels: Optional[int]) -> Iterator[tuple[Image.Image, bool]]:
    """(the image with its header read, whether it is JPEG XL: decoded at open, the only format that is) within
    the pixel limits; every failure, in the `with` body too, is an `ImageError`."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(path, EncodedImage):
        if path.error is not None:
            raise ImageError(f"{path.name}: {path.error}")
        p, opener = path.name, path.open
    else:
        p = Path(path)
        opener = lambda: open_regular_file(p)  # noqa: E731
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings(), opener() as fp:
            # Our own limit below decides; Pillow's warning would only be noise on stderr, and its open-time
            # bomb check (at twice its limit) must not refuse what a larger --max-pixels allows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if pillow_limit is not None and limit > pillow_limit:
                Image.MAX_IMAGE_PIXELS = limit
            jxl = is_jxl(fp.read(12))
            if jxl:  # the JPEG XL plugin reads the whole file and decodes it while opening: check the header first
                size = jxl_size(fp) or _no_jxl_header(p)
                _check_pixels(p, size, limit)
                _check_jxl_bytes(p, fp, size)
                _register_jxl(p)
            fp.seek(0)
            im = _open_jxl(p, fp) if jxl else Image.open(fp)
            _check_pixels(p, im.size, limit)
            yield im, jxl
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{p}: image exceeds the decompression-bomb limit (--max-pixels)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{p}: cannot decode image (not an image format Pillow knows)") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        raise ImageError(f"{p}: cannot decode image ({one_line(exc, p)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def open_image(path: Union[str, os.PathLike, EncodedImage], max_pixels: int | None = None) -> Image.Image:
    """Opens and fully decodes the first frame, EXIF orientation applied; every failure is an `ImageError`.
    `path` may be an `EncodedImage` (a shard's member): the same limits apply to its bytes."""
    with _opened(path, max_pixels) as (im, jxl):
        return _loaded(im, jxl)


def _loaded(im: Image.Image, jxl: bool) -> Image.Image:
    """An image `_opened` gave, decoded as `open_image` says (inside its `with`: failures become ImageErrors)."""
    im.seek(0)  # animated images: the first frame
    im.load()
    ImageOps.exif_transpose(im, in_place=True)  # a copy per image otherwise, even without EXIF
    if jxl and im.mode == "F":  # JPEG XL's float samples run 0..1; `DecodedImage` reads mode F as 0..255
        im = im.point(lambda value: value * 255)
    return im


def oriented_size(path: Union[str, os.PathLike], max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of the image `open_image` would give (EXIF orientation applied), read from the header
    without decoding the pixels where the format allows (not PNG, whose EXIF may follow its pixels); every
    failure is an `ImageError`."""
    with _opened(path, max_pixels) as (im, _):
        width, height = im.size
        # The orientations that `exif_transpose` turns by a quarter (transpose, rotations, transverse).
        return (height, width) if im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8) else (width, height)


def _check_pixels(path, size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width * height > limit:
        raise ImageError(f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,} "
                         "(--max-pixels)")  # in pixels: a small limit in megapixels rounds to 0


def _check_jxl_bytes(path, fp: BinaryIO, size: tuple[int, int]) -> None:
    """The plugin reads a JPEG XL file whole into memory: one larger than its pixels could need (a small image
    with gigabytes after it) is refused, so memory stays bounded by --max-pixels, not by the file."""
    length = fp.seek(0, os.SEEK_END)
    most = JXL_METADATA_BYTES + JXL_BYTES_PER_PIXEL * size[0] * size[1]
    if length > most:
        raise ImageError(f"{path}: a {size[0]}x{size[1]} JPEG XL file of {length / 2**20:.0f} MiB is larger than "
                         f"its pixels could need (at most {most / 2**20:.0f} MiB)")


def _no_jxl_header(path) -> tuple[int, int]:
    raise ImageError(f"{path}: cannot decode image (truncated JPEG XL header)")


def _open_jxl(path, fp: BinaryIO) -> Image.Image:
    try:
        return Image.open(fp, formats=["JXL"])
    except RuntimeError as exc:
        # Every libjxl failure (a truncated or corrupt file) reaches us as jpegxl-rs's "Generic Error. Please build
        # libjxl from source ... in debug mode": advice for its developers, not for whoever reads the record.
        reason = "corrupt or truncated JPEG XL" if str(exc).startswith("Generic Error") else one_line(exc)
        raise ImageError(f"{path}: cannot decode image ({reason})") from None


def _register_jxl(path) -> None:
    """Registers the JPEG XL decoder (the optional pillow-jxl-plugin) on first use."""
    try:
        from pillow_jxl import JpegXLImagePlugin
    except ImportError:
        raise ImageError(f"{path}: JPEG XL needs pillow-jxl-plugin: pip install 'ccscore[jxl]'") from None
    # One decoding thread: the decode workers are the parallelism (its default takes every core per file).
    JpegXLImagePlugin.DECODE_THREADS = 0


# PNG chunks after which Pillow's decoding could differ from the pixels alone: orientation (eXIf, EXIF or XMP in
# text chunks, read by `exif_transpose`) after the pixels, which Pillow reads only as it decodes them (before them, as
# GIMP writes its EXIF and XMP, Pillow has read them at open: `fast_png_pixels` asks it the orientation and leaves a
# turned image to it), animation (Pillow decodes the first frame, libspng the default image; an fcTL without acTL makes
# Pillow decode its frame's region, which fails unless it is the whole image).
# And broken files: pyspng tells libspng to ignore checksums, the zlib stream's Adler-32 included, where Pillow's
# inflate fails on it (most bit flips in the pixel data); and Pillow reads the chunks after the pixels, where it
# can fail too (a compressed text too large, the file cut short). So an IDAT whose CRC does not match, a chunk cut
# short, or any chunk after the first IDAT but IDAT, IEND, tIME and tEXt (ImageMagick and GIMP write the date there;
# Pillow skips tIME, and fails on plain text only past MAX_TEXT_MEMORY in all, counted here): Pillow decides.
_PNG_PIXELS_ONLY_UNLESS = (b"acTL", b"fcTL")  # eXIf only before the pixels: after them it is no _PNG_AFTER_PIXELS
_PNG_AFTER_PIXELS = (b"IDAT", b"tIME", b"tEXt")
# Text keywords whose values Pillow's getexif reads an orientation from (tEXt "exif" as info["exif"], "xmp" as
# info["xmp"]; compressed or international ones there as str, which it then fails on).
_PNG_ORIENTATION_TEXT = (b"Raw profile type exif", b"XML:com.adobe.xmp", b"exif", b"xmp")
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_TURNING_ORIENTATIONS = range(2, 9)  # the EXIF orientations exif_transpose turns or flips an image by
# A PNG whose file is larger than this beyond its raw pixels is left to Pillow, which streams it: libspng is
# given the whole file in memory, twice (pyspng copies it), beside the pixels (zlib-ng's path holds it and the
# filtered rows, unfiltered in place by numpy, or copied for libspng, up to STORED_MAX_BYTES, beside its pixels): at
# most about 2 x (this + twice the raw pixels) + twice the pixels, a few times Pillow's need on a padded file, still
# bounded by --max-pixels.
FAST_PNG_EXTRA_BYTES = 64 * 2**20
# Pillow's mode -> the raw modes (sample layouts) the fast paths take, and the layout they decode to: 8-bit samples
# (16-bit ones Pillow reads as "RGB;16B" and the like), palettes of any depth expanded to RGB as Pillow converts them
# (libspng alone), grey with alpha (zlib-ng's path alone: pyspng refuses that output).
FAST_PNG_MODES = {"L": (("L",), "L"), "LA": (("LA",), "LA"), "RGB": (("RGB",), "RGB"), "RGBA": (("RGBA",), "RGBA"),
                  "P": (("P", "P;1", "P;2", "P;4"), "RGB")}


def _png_pixel_data(data: bytes, text_memory_left: int = 0) -> Optional[list[memoryview]]:
    """The PNG's IDAT chunks' data, in order, where nothing in its chunks but its pixels decides what `open_image`
    gives, or whether it fails (see above); None where Pillow must decide. `text_memory_left`: the text Pillow
    still accepts after what it read while opening."""
    pos, end = 8, len(data)
    view = memoryview(data)
    idat: list[memoryview] = []
    pixels_ended = False  # a chunk other than IDAT came after them: Pillow reads no further IDAT (truncated)
    while pos + 8 <= end:
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"IEND":
            return idat
        if pos + 12 + length > end or kind in _PNG_PIXELS_ONLY_UNLESS or (idat and kind not in _PNG_AFTER_PIXELS):
            return None
        if (kind == b"IHDR") != (pos == 8) or (kind == b"IDAT" and pixels_ended):
            return None  # the header not first, or twice (Pillow takes the last, zlib-ng's path the first)
        pixels_ended |= bool(idat) and kind != b"IDAT"
        if kind in _PNG_TEXT_CHUNKS:
            keyword, _, value = bytes(view[pos + 8 : pos + 8 + length]).partition(b"\0")
            if keyword in _PNG_ORIENTATION_TEXT and idat:
                return None
            if idat:  # Pillow counts a plain text's value (or, without a separator, nothing) as it reads it
                text_memory_left -= len(value)
                if text_memory_left < 0:
                    return None
        if kind == b"IDAT":
            if crc32(view[pos + 4 : pos + 8 + length]) != int.from_bytes(data[pos + 8 + length : pos + 12 + length],
                                                                         "big"):
                return None
            idat.append(view[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return idat if pos == end else None  # no IEND: as Pillow, where the file ends after a whole chunk


# PNG encoders choose each row's filter; where every row is filtered None, Sub or Up (optimisers and many game
# tools write such files: half the pixels of a sample of Debian's game art), the rows unfilter in a few whole-array
# numpy steps, and zlib-ng inflates about three times as fast as the zlib inside libspng: the same pixels in about
# half libspng's time. Average and Paeth filters depend on the pixel to the left, decoded just before: libspng
# unfilters those rows, given them inflated by zlib-ng (`_StoredStream`: inflating is nine tenths of libspng's time on
# such files). The stream is inflated in blocks of this many bytes, each block's rows checked as they come.
UNFILTERED_BLOCK_BYTES = 1 << 18
UNFILTERED_INPUT_BYTES = 1 << 16  # compressed bytes given the inflater at a time
UNFILTER_CHUNK_BYTES = 1 << 20  # filtered rows unfiltered at a time (and at most this many rows)
UNFILTER_CHUNK_ROWS = 1 << 16
# Up rows at least this wide are added to the row above one by one (a running sum down the rows costs ~2.5 ns a
# sample, an add ~1 us a row more than its bytes); narrower ones as running sums, however the filters alternate.
UP_ROW_BY_ROW_BYTES = 512
# Rows laid out for libspng at most (`_StoredStream`): a larger image's copy would double its peak memory; pyspng
# decodes it as before (16 MP of RGBA fit: the speed set's largest image is 4.5 MP).
STORED_MAX_BYTES = 64 << 20
_NONE_SUB_UP = b"\x00\x01\x02"
_PNG_FILTERS = b"\x00\x01\x02\x03\x04"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type (grey, RGB, grey with alpha, RGBA) -> samples per pixel


def _unfiltered_png(data: bytes, idat: list[memoryview]) -> Optional[np.ndarray]:
    """An 8-bit, non-interlaced grey, grey and alpha, RGB or RGBA PNG's pixels [H, W] or [H, W, 2 | 3 | 4], inflated
    by zlib-ng where it is installed: unfiltered in numpy where every row is filtered None, Sub or Up, else by libspng
    (`_StoredStream`). None where neither can, or the zlib stream is not exactly the image's rows (short, long, or a
    row of no filter type: libspng, then Pillow, decide). A stream zlib-ng finds broken (its Adler-32 wrong included)
    raises zlib_ng.error: Pillow decides then (libspng, which ignores checksums, would decode what Pillow refuses)."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])  # IHDR comes first
    channels = _PNG_CHANNELS.get(colour)
    if depth != 8 or interlace or channels is None or data[12:16] != b"IHDR":
        return None
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return None
    row = width * channels + 1  # the filter type, then the row's samples
    expected = height * row
    shape = (height, width, channels) if channels > 1 else (height, width)
    # a byte past the rows: each row's samples then end a whole row from the first
    raw = np.empty(expected + 1, np.uint8)
    stored: Optional[_StoredStream] = None  # the rows so far and to come, laid out for libspng: once one needs it
    inflater, done = zlib_ng.decompressobj(), 0
    for chunk in idat:
        # Fed in pieces: what a call leaves unread is copied (`unconsumed_tail`), so each call's input stays small.
        for start in range(0, len(chunk), UNFILTERED_INPUT_BYTES):
            rest = chunk[start : start + UNFILTERED_INPUT_BYTES]
            while rest:
                # max_length 0 is unlimited: past the rows, 1 byte more is asked, and any is too much
                block = inflater.decompress(rest, min(max(UNFILTERED_BLOCK_BYTES, row), expected - done) or 1)
                rest = inflater.unconsumed_tail
                filters = block[-done % row :: row]
                if done + len(block) > expected or filters.translate(None, _PNG_FILTERS):
                    return None  # more than the rows, or no such filter: libspng and Pillow decide as they do
                if stored is None and filters.translate(None, _NONE_SUB_UP):  # the first Average or Paeth row
                    stored = _StoredStream.of(data[8:33], expected, raw[:done])
                    if stored is None:
                        return None  # pyspng decodes the file itself
                    raw = None  # the rows so far are in `stored` now
                if stored is None:
                    raw[done : done + len(block)] = np.frombuffer(block, np.uint8)
                else:
                    stored.put(done, block)
                done += len(block)
    if done != expected or not inflater.eof or inflater.unused_data:
        return None
    if stored is not None:
        return stored.decoded(shape, b"".join(bytes(chunk[-4:]) for chunk in idat)[-4:])
    if raw[:expected:row].any():  # a row filtered Sub or Up (every row None: the samples are the pixels already)
        _unfilter_none_sub_up(raw[:expected].reshape(height, row), channels)
    # the pixels where they lie, a row apart (a row's filter byte between): no copy
    return np.ndarray(shape, np.uint8, buffer=raw[1:], strides=(row, channels, 1) if channels > 1 else (row, 1))


# libspng, called through ctypes in pyspng's extension module, whose Linux and macOS builds export its C functions
# (pyspng's own call always inflates with the zlib inside it). Only the libspng version whose interface is written
# here (its spng.h: the constants below, the functions' signatures in `_libspng`).
_LIBSPNG_VERSION = b"0.7."
_SPNG_CTX_IGNORE_ADLER32 = 1  # zlib-ng checked it as it inflated
_SPNG_CRC_USE = 2  # the chunks' CRCs are not checked (`_png_pixel_data` checked the file's IDAT chunks)
_SPNG_FMT_PNG = 256  # the samples as the file holds them: 8-bit grey, grey and alpha, RGB, RGBA
_STORED_BLOCK_BYTES = 65535  # the most a stored deflate block holds
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\0\0\0\0IEND\xaeB`\x82"


@functools.cache
def _libspng():
    """libspng's functions (ctypes) where pyspng exports them, its version the one written for; else None."""
    try:
        import ctypes  # here: 5 ms of importing, on every start otherwise

        import pyspng

        lib = ctypes.CDLL(pyspng._pyspng_c.__file__)
        lib.spng_version_string.restype = ctypes.c_char_p
        if not lib.spng_version_string().startswith(_LIBSPNG_VERSION):
            return None
        context, size = ctypes.c_void_p, ctypes.c_size_t
        for name, result, arguments in (
                ("spng_ctx_new", context, [ctypes.c_int]), ("spng_ctx_free", None, [context]),
                ("spng_set_crc_action", ctypes.c_int, [context, ctypes.c_int, ctypes.c_int]),
                ("spng_set_png_buffer", ctypes.c_int, [context, ctypes.c_void_p, size]),
                ("spng_decoded_image_size", ctypes.c_int, [context, ctypes.c_int, ctypes.POINTER(size)]),
                ("spng_decode_image", ctypes.c_int, [context, ctypes.c_void_p, size, ctypes.c_int, ctypes.c_int])):
            function = getattr(lib, name)
            function.restype, function.argtypes = result, arguments
        return lib
    except Exception:  # no pyspng, a build that exports nothing (Windows), another libspng
        return None


class _StoredStream:
    """A PNG of the file's header and its rows as zlib-ng inflated them, in stored (uncompressed) deflate blocks, for
    libspng to unfilter without inflating: the rows are put in as they are inflated."""

    def __init__(self, header: bytes, size: int, lib):
        self.lib = lib
        # after the signature, the header, the IDAT chunk's length and type, and the zlib stream's header
        self.start = len(_PNG_SIGNATURE) + len(header) + 8 + 2
        full, last = divmod(size - 1, _STORED_BLOCK_BYTES)  # all blocks full but the last (1 to 65,535 bytes)
        last += 1
        self.end = self.start + size + 5 * (full + 1)  # where the last block ends: the Adler-32 follows
        self.file = np.empty(self.end + 4 + 4 + len(_PNG_IEND), np.uint8)
        stream = self.end + 4 - (self.start - 2)
        self.file[: self.start] = np.frombuffer(_PNG_SIGNATURE + header + struct.pack(">I", stream) + b"IDAT\x78\x01",
                                                np.uint8)
        step = 5 + _STORED_BLOCK_BYTES
        blocks = self.file[self.start : self.start + full * step].reshape(full, step)
        blocks[:, :5] = self._block_header(False, _STORED_BLOCK_BYTES)
        at = self.start + full * step
        self.file[at : at + 5] = self._block_header(True, last)
        self.file[self.end + 4 :] = np.frombuffer(b"\0" * 4 + _PNG_IEND, np.uint8)  # the IDAT's CRC: not checked

    @staticmethod
    def _block_header(final: bool, length: int) -> np.ndarray:
        """A stored block's header: final or not, then its length and the length's complement, little-endian."""
        return np.frombuffer(struct.pack("<BHH", final, length, length ^ 0xFFFF), np.uint8)

    @classmethod
    def of(cls, header: bytes, size: int, done: np.ndarray) -> Optional["_StoredStream"]:
        """The stored layout of an image's `size` bytes of rows (`header`: its IHDR chunk), the bytes inflated so far
        (`done`) put in; None where libspng is not at hand or the rows are over STORED_MAX_BYTES."""
        lib = _libspng()
        if lib is None or size > STORED_MAX_BYTES:
            return None
        stored = cls(header, size, lib)
        stored.put(0, done)
        return stored

    def put(self, done: int, block) -> None:
        """Puts the inflated bytes `block` (any buffer), which follow the first `done` of the rows, in their blocks."""
        samples, at = np.frombuffer(block, np.uint8), 0
        while at < len(samples):
            index, offset = divmod(done + at, _STORED_BLOCK_BYTES)
            count = min(_STORED_BLOCK_BYTES - offset, len(samples) - at)
            start = self.start + index * (5 + _STORED_BLOCK_BYTES) + 5 + offset
            self.file[start : start + count] = samples[at : at + count]
            at += count

    def decoded(self, shape: tuple[int, ...], adler: bytes) -> Optional[np.ndarray]:
        """The pixels [H, W] or [H, W, channels], unfiltered by libspng once every row is in (`adler`: the stream's
        Adler-32, which zlib-ng checked); None if libspng refuses them."""
        import ctypes

        lib, pixels = self.lib, np.empty(shape, np.uint8)
        self.file[self.end : self.end + 4] = np.frombuffer(adler, np.uint8)
        context = lib.spng_ctx_new(_SPNG_CTX_IGNORE_ADLER32)
        if not context:
            return None
        try:
            size = ctypes.c_size_t()
            if (lib.spng_set_crc_action(context, _SPNG_CRC_USE, _SPNG_CRC_USE)
                    or lib.spng_set_png_buffer(context, self.file.ctypes.data, self.file.nbytes)
                    or lib.spng_decoded_image_size(context, _SPNG_FMT_PNG, ctypes.byref(size))
                    or size.value != pixels.nbytes
                    or lib.spng_decode_image(context, pixels.ctypes.data, pixels.nbytes, _SPNG_FMT_PNG, 0)):
                return None
        finally:
            lib.spng_ctx_free(context)
        return pixels


def _unfilter_none_sub_up(rows: np.ndarray, channels: int) -> None:
    """PNG rows [H, 1 + W x channels] filtered None (0), Sub (1: each sample adds the one a pixel to its left) or
    Up (2: each adds the one above), unfiltered in place: each row's samples after its filter byte become the pixels';
    uint8 sums wrap, as the filters' do. Done UNFILTER_CHUNK_BYTES of rows at a time (the temporaries stay that
    small), each chunk in whole-array steps but for wide Up rows (UP_ROW_BY_ROW_BYTES): however the filters
    alternate, no step per narrow row."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    samples = rows[:, 1:]  # None rows are done as they are; Sub and Up rows hold their filtered samples
    step = min(max(1, UNFILTER_CHUNK_BYTES // max(stride, 1)), UNFILTER_CHUNK_ROWS)
    for top in range(0, height, step):
        filters, chunk = rows[top : top + step, 0], samples[top : top + step]
        sub = np.flatnonzero(filters == 1)
        if len(sub) == len(filters):  # all Sub: summed in place
            pixels = chunk.reshape(len(sub), -1, channels)
            np.cumsum(pixels, axis=1, dtype=np.uint8, out=pixels)
        elif len(sub):
            summed = np.cumsum(chunk[sub].reshape(len(sub), -1, channels), axis=1, dtype=np.uint8)
            chunk[sub] = summed.reshape(len(sub), -1)
        up = filters == 2
        if up.any() and stride >= UP_ROW_BY_ROW_BYTES:  # wide rows: each adds the row above (done before it)
            for row in np.flatnonzero(up):
                if row or top:
                    np.add(chunk[row], chunk[row - 1] if row else samples[top - 1], out=chunk[row])
        elif up.any():
            # An Up row is the row its run starts from (a None or Sub row, done above) plus every Up row's samples
            # since: running sums down the chunk, less the sum before that row. Rows before the chunk's first such row
            # go on from the row above the chunk (zeros above the image).
            sums = np.cumsum(chunk, axis=0, dtype=np.uint8)
            start = np.maximum.accumulate(np.where(up, -1, np.arange(len(filters))))  # each row's run start, or -1
            before = np.concatenate([np.zeros((1, stride), np.uint8), sums[:-1]])[np.maximum(start, 0)]
            np.subtract(sums, before, out=chunk)
            continued = start < 0
            if top and continued.any():
                chunk[continued] += samples[top - 1]


def _open_time_orientation(im: Image.Image) -> Optional[int]:
    """The EXIF orientation Pillow reads from what it read at open: the image's where no orientation follows the
    pixels (`_png_pixel_data`). A turned image is left to Pillow (exif_transpose), as rare in art as it is simple to
    leave. Pillow caches the EXIF it parses, even where parsing fails: the cache is put back as it was, so that
    Pillow, decoding the file after all, parses (and fails) as it would have."""
    cached = im._exif
    try:
        return Image.Image.getexif(im).get(ExifTags.Base.Orientation)  # not PngImageFile's: it decodes the pixels
    finally:
        im._exif = cached


def fast_png_pixels(im: Image.Image) -> Optional[np.ndarray]:
    """An opened (not yet decoded) 8-bit grey, grey and alpha, RGB, RGBA or palette PNG's pixels [H, W, 3 | 4] (grey
    repeated, a palette applied), the same values Pillow gives: inflated by zlib-ng and unfiltered in numpy, or by
    libspng where rows are filtered Average or Paeth (`_unfiltered_png`; about a third of Pillow's time), else
    decoded by libspng alone (pyspng; palettes, or without zlib-ng: about two thirds). None where Pillow decodes it:
    another mode or bit depth, a transparent colour key, what `_png_pixel_data` leaves to Pillow (orientation,
    animation, broken chunks), a file much larger than its pixels (FAST_PNG_EXTRA_BYTES), neither zlib-ng's path nor
    pyspng at hand (both have wheels for x86-64 and Apple silicon only), a zlib stream zlib-ng finds broken, or
    libspng refusing the file (a broken one then fails, or not, as Pillow decides)."""
    rawmodes, layout = FAST_PNG_MODES.get(im.mode, ((), ""))
    if im.format != "PNG" or "transparency" in im.info or len(im.tile) != 1 or im.tile[0][3] not in rawmodes:
        return None
    width, height = im.size
    fp = im.fp
    start = fp.tell()
    try:
        length = fp.seek(0, os.SEEK_END)
        if length > FAST_PNG_EXTRA_BYTES + 2 * width * height * len(layout):
            return None
        fp.seek(0)
        data = fp.read(length)  # no more than was measured, should the file grow meanwhile
        text_memory = getattr(getattr(im, "png", None), "text_memory", None)  # what Pillow read while opening
        left = PngImagePlugin.MAX_TEXT_MEMORY - text_memory if isinstance(text_memory, int) else 0
        idat = _png_pixel_data(data, left)
        if idat is None or _open_time_orientation(im) in _TURNING_ORIENTATIONS:
            return None
        pixels = _unfiltered_png(data, idat)
        if pixels is None:
            try:
                import pyspng
            except ImportError:
                return None
            pixels = pyspng.load(data, layout)
    except Exception:  # libspng's errors are RuntimeErrors, zlib-ng's its own: Pillow decodes (or refuses) the file
        return None
    finally:
        fp.seek(start)
    channels = len(layout)
    if pixels.shape != ((height, width, channels) if channels > 1 else (height, width)) or pixels.dtype != np.uint8:
        return None
    if channels == 1:
        return np.repeat(pixels[..., None], 3, axis=2)  # grey made RGB, as from_pil does
    if channels == 2:  # grey with alpha made RGBA, as from_pil converts it
        return np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
    return pixels


def _decoded_png(pixels: np.ndarray) -> DecodedImage:
    if pixels.shape[2] == 3:  # RGB, or grey made RGB
        return DecodedImage(array=pixels)
    # RGBA stays a Pillow image sharing the array's memory, flattened only where read, as a decoded one is: rows a
    # stride apart too (`_unfiltered_png`'s, in the buffer they were inflated into, a filter byte before each row).
    height, width = pixels.shape[:2]
    stride, rows = pixels.strides[0], pixels.base
    if pixels.flags.c_contiguous:
        rows, stride = pixels, 0
    else:
        # Pillow maps `stride` bytes a row from the buffer's start: the buffer from the first sample, that many rows
        # (and rows that neither overlap nor run backwards: Pillow reads any shorter stride as a row's width)
        base = rows if isinstance(rows, np.ndarray) and rows.ndim == 1 and rows.flags.c_contiguous else None
        start = -1 if base is None else pixels.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        if (base is not None and base.dtype == np.uint8 and pixels.strides[1:] == (4, 1) and stride >= 4 * width
                and 0 <= start and start + height * stride <= base.nbytes):
            rows = base[start:]
        else:
            rows, stride = np.ascontiguousarray(pixels), 0
    return DecodedImage(image=Image.frombuffer("RGBA", (width, height), rows, "raw", "RGBA", stride, 1))


def load_image(source: ImageInput, max_pixels: int | None = None) -> DecodedImage:
    """A path, a Pillow image or an array -> `DecodedImage`; every failure is an `ImageError`. 8-bit grey, grey and
    alpha, RGB, RGBA and palette PNG files are decoded by zlib-ng, numpy and libspng where those are installed and the
    file allows (`fast_png_pixels`), any other by Pillow."""
    if isinstance(source, np.ndarray):
        return DecodedImage.from_array(source)
    name = "image" if isinstance(source, Image.Image) else getattr(source, "name", None) or str(source)
    if isinstance(source, Image.Image):
        im = source
    else:
        with _opened(source, max_pixels) as (im, jxl):
            pixels = None if jxl else fast_png_pixels(im)
            if pixels is not None:
                return _decoded_png(pixels)
            im = _loaded(im, jxl)
    try:
        return DecodedImage.from_pil(im)
    except Exception as exc:
        raise ImageError(f"{name}: cannot convert image ({one_line(exc, name)})") from None
