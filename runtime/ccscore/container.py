"""Header facts: what a file says about itself, read without decoding its pixels.

`read_container(path)` -> a small dict for the record's `container` field, e.g.
`{"format": "jpeg", "quality": 92, "table": "ijg", "subsampling": "4:2:0", "progressive": false}` or
`{"format": "webp", "lossless": false}`. Every read is bounded (at most MAX_SEGMENTS JPEG segments, MAX_CHUNKS
RIFF/ISO boxes, HEADER_BYTES per read) and nothing here raises: a hostile or truncated header gives what was
read plus a one-line `error`.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Optional

import numpy as np

from .quantisation import IJG_CHROMA, ZIGZAG, fit_quality

HEADER_BYTES = 64 * 1024  # the most read at once: one JPEG segment, one PNG chunk header, a box header
MAX_SEGMENTS = 256  # JPEG segments walked before the first scan; real files have a dozen
MAX_CHUNKS = 64  # RIFF chunks or ISO boxes walked

JPEG_SOF_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
JPEG_SOF = {0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF} | JPEG_SOF_PROGRESSIVE
JPEG_SOF_LOSSLESS = {0xC3, 0xC7, 0xCB, 0xCF}
SUBSAMPLING_NAMES = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1"}


class HeaderError(Exception):
    """A header that cannot be what it claims (inside this module only: read_container never raises)."""


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise HeaderError("truncated header")
    return data


def subsampling_name(components: list[tuple[int, int]]) -> Optional[str]:
    """(horizontal, vertical) sampling factors of a JPEG's components -> 4:4:4 / 4:2:2 / 4:2:0 / grey."""
    if len(components) == 1:
        return "grey"
    (h0, v0), rest = components[0], components[1:]
    if any(h == 0 or v == 0 or h0 % h or v0 % v for h, v in rest) or len(set(rest)) != 1:
        return "other"
    h, v = rest[0]
    return SUBSAMPLING_NAMES.get((h0 // h, v0 // v), "other")


def table_quality(tables: dict[int, np.ndarray], luma_id: int, chroma_id: Optional[int]) -> dict:
    """The IJG quality of a file's own tables (as ImageMagick's %Q): exact IJG tables are "ijg", others "custom"
    with the nearest quality."""
    luma = tables.get(luma_id)
    if luma is None:
        return {}
    fit = fit_quality(luma, np.ones((8, 8), bool))
    exact = fit.exact
    if chroma_id is not None and chroma_id != luma_id and chroma_id in tables:
        exact = exact and bool((tables[chroma_id] == IJG_CHROMA[fit.quality - 1]).all())
    return {"quality": fit.quality, "table": "ijg" if exact else "custom"}


def jpeg_facts(f: BinaryIO) -> dict:
    facts: dict = {"format": "jpeg"}
    tables: dict[int, np.ndarray] = {}
    component_tables: list[int] = []
    try:
        _read(f, 2)  # SOI, checked by the caller
        for _ in range(MAX_SEGMENTS):
            marker = _read(f, 2)
            while marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
                marker = marker[1:] + _read(f, 1)
            if marker[0] != 0xFF:
                raise HeaderError(f"bad marker 0x{marker.hex()}")
            code = marker[1]
            if code in (0x01,) or 0xD0 <= code <= 0xD7:
                continue  # markers without a length
            if code == 0xD9:
                raise HeaderError("image ends before its first scan")
            (length,) = struct.unpack(">H", _read(f, 2))
            if length < 2:
                raise HeaderError(f"bad segment length {length}")
            if code == 0xDA:  # start of scan: every table a baseline or progressive decoder needs is read
                break
            if code == 0xDB:
                payload = _read(f, length - 2)
                while payload:
                    precision, table_id = payload[0] >> 4, payload[0] & 15
                    size = 128 if precision else 64
                    if len(payload) < 1 + size or table_id > 3 or precision > 1:
                        raise HeaderError("bad quantisation table")
                    values = np.frombuffer(payload[1 : 1 + size], ">u2" if precision else "u1").astype(np.int64)
                    natural = np.zeros(64, np.int64)
                    natural[ZIGZAG] = values
                    if (natural == 0).any():
                        raise HeaderError("quantisation table with a zero step")
                    tables[table_id] = natural.reshape(8, 8)
                    payload = payload[1 + size :]
            elif code in JPEG_SOF:
                payload = _read(f, length - 2)
                if len(payload) < 6 or len(payload) < 6 + 3 * payload[5] or payload[5] == 0:
                    raise HeaderError("bad frame header")
                facts["progressive"] = code in JPEG_SOF_PROGRESSIVE
                facts["lossless"] = code in JPEG_SOF_LOSSLESS
                facts["arithmetic"] = code >= 0xC9
                count = payload[5]
                sampling = [(payload[7 + 3 * i] >> 4, payload[7 + 3 * i] & 15) for i in range(count)]
                component_tables = [payload[8 + 3 * i] for i in range(count)]
                facts["subsampling"] = subsampling_name(sampling)
            else:
                f.seek(length - 2, 1)
        else:
            raise HeaderError(f"more than {MAX_SEGMENTS} segments before the first scan")
        if "subsampling" not in facts:
            raise HeaderError("no frame header")
    except HeaderError as exc:
        facts["error"] = str(exc)
    if component_tables and not facts.get("lossless"):
        facts.update(table_quality(tables, component_tables[0],
                                   component_tables[1] if len(component_tables) > 1 else None))
    return facts


def _riff_chunks(f: BinaryIO, end: int):
    """(fourcc, size, offset of the payload) of each RIFF chunk up to `end`, at most MAX_CHUNKS."""
    position = 12
    for _ in range(MAX_CHUNKS):
        if position + 8 > end:
            return
        f.seek(position)
        head = f.read(8)
        if len(head) < 8:
            return
        fourcc, size = head[:4], struct.unpack("<I", head[4:])[0]
        yield fourcc, size, position + 8
        position += 8 + size + (size & 1)


def webp_facts(f: BinaryIO, riff_size: int) -> dict:
    facts: dict = {"format": "webp"}
    animated = False
    for fourcc, size, offset in _riff_chunks(f, riff_size + 8):
        if fourcc == b"VP8X":
            flags = f.read(1)
            animated = bool(flags and flags[0] & 0x02)
        elif fourcc in (b"VP8 ", b"VP8L", b"ANMF"):
            facts["lossless"] = fourcc == b"VP8L"
            break
    if animated:
        facts["animated"] = True
    if "lossless" not in facts:
        facts["error"] = "no image chunk"
    return facts


def _boxes(f: BinaryIO, start: int, end: Optional[int]):
    """(type, payload offset, payload size) of ISO BMFF boxes from `start` to `end` (None: the end of the file),
    at most MAX_CHUNKS; a payload size of None runs to the end of the file."""
    if end is None:  # a box's claimed size may be anything up to 2**64: the walk stops at the real end
        end = f.seek(0, 2)
    position = start
    for _ in range(MAX_CHUNKS):
        if position + 8 > end:
            return
        f.seek(position)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I", head[:4])[0], head[4:]
        header = 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                return
            size, header = struct.unpack(">Q", large)[0], 16
        elif size == 0:  # to the end of the file
            yield kind, position + header, None
            return
        if size < header:
            return
        yield kind, position + header, size - header
        position += size


def iso_facts(f: BinaryIO, brand: bytes) -> dict:
    """AVIF (ISO BMFF with an avif/avis brand) and the JPEG XL container."""
    if brand == b"jxl ":
        facts: dict = {"format": "jxl"}
        for kind, _, _ in _boxes(f, 0, None):
            if kind == b"jbrd":  # JPEG bitstream reconstruction data: a JPEG transcoded losslessly
                facts["from_jpeg"] = True
        facts.setdefault("from_jpeg", False)
        return facts
    return {"format": "avif", "animated": brand == b"avis"}


JXL_CODESTREAM = b"\xff\x0a"
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
# SizeHeader's fixed aspect ratios (ISO/IEC 18181-1): xsize = ysize * numerator // denominator.
JXL_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
JXL_SIZE_BITS = (9, 13, 18, 30)  # the U32 distribution of xsize - 1 and ysize - 1
JXL_HEADER_BYTES = 16  # the signature and the longest SizeHeader (1 + 2 * (2 + 30) + 3 bits)


def is_jxl(head: bytes) -> bool:
    """Whether a file's first 12 bytes start a JPEG XL codestream or container."""
    return head[:2] == JXL_CODESTREAM or head[:12] == JXL_CONTAINER


def _jxl_codestream_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the SizeHeader after a codestream's 0xFF0A signature; None if `data` is too short."""
    if data[:2] != JXL_CODESTREAM:
        return None
    bits = int.from_bytes(data[2:JXL_HEADER_BYTES], "little")  # the header is at most 1 + 2 * 32 + 3 bits
    position = 0

    def read(n: int) -> int:
        nonlocal position
        value = (bits >> position) & ((1 << n) - 1)
        position += n
        return value

    def size(div8: bool) -> int:
        return (read(5) + 1) * 8 if div8 else read(JXL_SIZE_BITS[read(2)]) + 1

    div8 = bool(read(1))
    height = size(div8)
    ratio = read(3)
    if ratio == 0:
        width = size(div8)
    else:
        numerator, denominator = JXL_RATIOS[ratio]
        width = height * numerator // denominator
    return (width, height) if position <= 8 * (len(data) - 2) else None


def _jxl_container_head(f: BinaryIO) -> bytes:
    """The codestream's first JXL_HEADER_BYTES inside a container, as the decoder joins them: the jxlc box, or
    the jxlp parts in order (a part may hold only a byte or two, so the header spans parts). Each read stays
    inside its box: bytes past a part's end (the next box's header) are not the codestream's."""
    head = b""
    for kind, offset, length in _boxes(f, 0, None):
        if kind not in (b"jxlc", b"jxlp"):
            continue
        if kind == b"jxlc" and head:  # a whole codestream after parts of one: malformed, no header to trust
            return b""
        skip = 4 if kind == b"jxlp" else 0  # a jxlp part starts with its 4-byte index
        want = JXL_HEADER_BYTES - len(head)
        f.seek(offset + skip)
        head += f.read(want if length is None else max(0, min(want, length - skip)))
        if kind == b"jxlc" or len(head) >= JXL_HEADER_BYTES:
            break
    return head


def jxl_size(f: BinaryIO) -> Optional[tuple[int, int]]:
    """(width, height) of a JPEG XL file from its header alone (`f` at any position; bounded reads), or None
    when no codestream header is found: the pixel limit is checked before any decoder allocates the image."""
    f.seek(0)
    head = f.read(JXL_HEADER_BYTES)
    if head[:12] == JXL_CONTAINER:
        head = _jxl_container_head(f)
    return _jxl_codestream_size(head)


def png_facts(f: BinaryIO) -> dict:
    head = f.read(8 + 25)
    if len(head) < 33 or head[12:16] != b"IHDR":
        return {"format": "png", "error": "truncated header" if len(head) < 33 else "no IHDR chunk first"}
    depth, colour = head[24], head[25]
    names = {0: "grey", 2: "rgb", 3: "palette", 4: "grey+alpha", 6: "rgba"}
    return {"format": "png", "bit_depth": int(depth), "colour": names.get(colour, "other")}


def read_container(path) -> dict:
    """Header facts of the file at `path` (or of an `EncodedImage`'s bytes: a shard's member); `{"format": null}`
    for formats not read here. Never raises."""
    from .images import open_regular_file
    from .inputs import EncodedImage

    try:
        with (path.open() if isinstance(path, EncodedImage) else open_regular_file(path)) as f:
            head = f.read(16)
            if head[:2] == b"\xff\xd8":
                f.seek(0)
                return jpeg_facts(f)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return webp_facts(f, struct.unpack("<I", head[4:8])[0])
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                f.seek(0)
                return png_facts(f)
            if head[:2] == JXL_CODESTREAM:
                return {"format": "jxl", "from_jpeg": False}
            if head[:12] == JXL_CONTAINER:
                return iso_facts(f, b"jxl ")
            if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
                return iso_facts(f, head[8:12])
            for signature, name in ((b"GIF8", "gif"), (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff")):
                if head.startswith(signature):
                    return {"format": name}
            return {"format": None}
    except (OSError, ValueError, struct.error) as exc:
        return {"format": None, "error": f"cannot read header ({type(exc).__name__})"}


def recompressed(container: Optional[dict], label: str, quality: Optional[float],
                 source: Optional[str] = "table") -> Optional[bool]:
    """Whether the pixels tell an earlier, lossier story than the file: a lossy trace in a lossless file (a PNG
    made from a JPEG, a lossless WebP), another codec's trace, or a JPEG whose pixels show a lower quality than
    its own tables (saved again at a higher quality). `source`: where `quality` comes from ("table": exact,
    "model": approximate). None when the header is unknown."""
    if not container or container.get("format") is None:
        return None
    if label == "clean":
        return False
    if container["format"] != label or container.get("lossless"):
        return True  # a lossless file, or another codec's file, carrying this codec's trace
    header_quality = container.get("quality")
    if header_quality is None or quality is None:
        return False
    return bool(quality < header_quality - RECOMPRESSED_MARGIN[source == "table"])


# How far below the header's quality the pixels' must be before a JPEG counts as saved again: (for the learned
# estimate, good to 4-10 points; for the table read from the pixels, exact for IJG tables).
RECOMPRESSED_MARGIN = (15, 2)
