"""Which lossy decoder an image's colours came out of: the fingerprint of its YCbCr -> RGB conversion.

A JPEG or lossy WebP decoder turns integer luma and chroma samples into RGB with fixed-point arithmetic
(libjpeg and libjpeg-turbo: jdcolor.c's tables, full-range BT.601; libwebp: dsp/yuv.h, limited-range BT.601), so
the colours it can output are a sparse subset of the RGB cube: 25% of it for JPEG, 18% for WebP. Every colour of
an image decoded by one of them, and stored as PNG without further change, lies in that decoder's subset, whatever
the quality, the subsampling and the content; clean art's colours fall in it by chance (measured on our evaluation
sets: 0.15-0.24 of the colours, at most 0.5 per image; JPEG and WebP of the same art: 1.000 in every image with
enough colours). Resizing, blending or noise in more than one channel erases the trace; for JPEG a colour tells only
its hue (the subset is closed under adding a grey: greys carry nothing) but for WebP its level too (it skips every
seventh grey); clipped pixels are left out. What the colours prove is the conversion, not the codec: planes
converted by the textbook full-range BT.601 formula in floating point and rounded (a YCbCr pipeline, e.g. one
that works on luma alone) make the same colours as libjpeg's, so they prove JPEG too.

AVIF decoded through libavif (Pillow's plugin, avifdec) is converted by libyuv, whose full-range BT.601
conversion (the encoders' default for RGB input) has a subset of its own, 25% of the cube like JPEG's and sharing
57% of it: an image's colours name the decoder whose subset holds them all while every other one's misses some,
and prove nothing where two subsets hold them all. JPEG XL (libjxl decodes in floating point) has no subset.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

# An image's colours prove a decoder (DecoderTrace.proven) when at least this many of its distinct colours tell
# about it, at least DECODER_SHARE of them lie in its subset and every other decoder that has enough telling
# colours misses at least DECODER_OTHER_OUTSIDE of them: colours its decoder cannot output rule it out, whatever
# share of them it can (AVIF's lie 0.58-0.98 in JPEG's subset, JPEG's 0.24-0.97 in libyuv's). By chance, 64
# colours of clean art would all but never pass (P < 1e-40 at 18% each; greys, for WebP: 85% of them lie in its
# subset, but clean grey art's levels run through the 15% it skips). For a decoder in GREY_SHIFT_CLOSED a colour
# tells only its hue, and DECODER_MIN_HUES of them are asked: each lies in JPEG's subset with a chance of 1 in 4
# (neighbouring hues less often together), all 32 with 5e-20 (clean art of the evaluation set: at most 0.86 of
# its hues). Decoded images reach a share of 1.000; the textbook floating-point limited-range BT.601 conversion,
# rounded (YCbCr pipelines, no codec), lands 0.98-0.99 of its colours in libwebp's subset by nearness of
# arithmetic, hence a share close to all. Two misses, not one, rule a decoder out: a share of DECODER_SHARE lets
# the proven one miss one colour in 200.
DECODER_MIN_COLOURS = 64
DECODER_MIN_HUES = 32
DECODER_SHARE = 0.995
DECODER_OTHER_OUTSIDE = 2
# A first tile whose telling colours reach less than this share of every decoder's subset ends the read: more
# tiles could not lift it to DECODER_SHARE unless they held 4 times its colours, none of them off the subset.
DECODER_REFUTED = 0.9

# A decoder's conversion as three tables over a luma sample y: red[y] (256 reds, one per chroma sample that red
# depends on), blue[y] (256, likewise) and green[y] (65536, one per chroma pair, first chroma sample major): the
# colours it outputs for y are (red[y][second], green[y][first, second], blue[y][first]).
Conversion = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]
_SAMPLES = np.arange(256, dtype=np.int32)


def _libwebp_rgb(y: int):
    """libwebp's VP8YUVToR/G/B (src/dsp/yuv.h: 14-bit fixed point, YUV_FIX2 = 6; its SIMD paths agree). Chroma:
    first u, second v."""
    def mult_hi(value, coeff):
        return (value * coeff) >> 8

    def clip8(value):  # VP8Clip8
        return np.clip(value >> 6, 0, 255)

    luma, u, v = mult_hi(y, 19077), _SAMPLES, _SAMPLES
    green = luma - mult_hi(u, 6419)[:, None] - mult_hi(v, 13320)[None, :] + 8708
    return clip8(luma + mult_hi(v, 26149) - 14234), clip8(green).ravel(), clip8(luma + mult_hi(u, 33050) - 17685)


def _libjpeg_rgb(y: int):
    """libjpeg's ycc_rgb_convert (jdcolor.c: 16-bit fixed-point tables, rounded; libjpeg-turbo's SIMD agrees).
    Chroma: first Cb, second Cr."""
    bits, half = 16, 1 << 15

    def fix(x: float) -> int:
        return int(x * (1 << bits) + 0.5)

    cb = cr = _SAMPLES - 128
    green = (-fix(0.34414) * cb[:, None] + half - fix(0.71414) * cr[None, :]) >> bits
    return (np.clip(y + ((fix(1.40200) * cr + half) >> bits), 0, 255), np.clip(y + green, 0, 255).ravel(),
            np.clip(y + ((fix(1.77200) * cb + half) >> bits), 0, 255))


def _libyuv_full_range_rgb(y: int):
    """libyuv's I444/I420ToARGB with kYuvJPEGConstants (row_common.cc, YuvPixel: full-range BT.601, luma scaled by
    YG = 16320 in 16.16 fixed point, chroma coefficients in 6 bits: UB 113, UG 22, VG 46, VR 90, bias YB 32), which
    libavif uses to turn 8-bit full-range BT.601 AVIF into RGB. Chroma: first u, second v."""
    luma = ((y * 0x0101 * 16320) & 0xFFFFFFFF) >> 16
    u = v = _SAMPLES

    def clip8(value):
        return np.clip(value >> 6, 0, 255)

    green = luma + (22 + 46) * 128 + 32 - (u[:, None] * 22 + v[None, :] * 46)
    return clip8(luma + v * 90 - 90 * 128 + 32), clip8(green).ravel(), clip8(luma + u * 113 - 113 * 128 + 32)


CONVERSIONS: dict[str, Conversion] = {"jpeg": _libjpeg_rgb, "webp": _libwebp_rgb, "avif": _libyuv_full_range_rgb}
# Decoders whose subset is closed under adding a grey (JPEG's and libyuv's add the luma sample, one scaling for
# all three channels; a test checks it on the sets): for them a colour tells only its hue, (r - g, b - g), the
# same as its brighter and darker shifts (an 'add' blend of a grey ramp over one hue: 200 colours, one trial), and
# greys tell nothing. WebP's scaled luma makes its membership depend on the level as well.
GREY_SHIFT_CLOSED = frozenset({"jpeg", "avif"})


def build_reachable(codec: str) -> np.ndarray:
    """Bit set (packed, 2 MiB) of the RGB colours `codec`'s decoder can output, indexed by r << 16 | g << 8 | b,
    from the conversion's formula (0.2-0.4 s: 16.7M scattered writes)."""
    convert = CONVERSIONS[codec]
    seen = np.zeros(1 << 24, dtype=bool)
    for y in range(256):
        red, green, blue = convert(y)
        seen[((red[None, :] << 16) | (green.reshape(256, 256) << 8) | blue[:, None]).ravel()] = True
    return np.packbits(seen)


def shipped_path(codec: str) -> Path:
    """Where the package keeps `build_reachable(codec)`, xz-compressed (15-110 KB, 10-25 ms to read): building it
    would cost a run that meets its first lossy-looking image a third of a second. A test rebuilds and compares."""
    return Path(__file__).with_name(f"decoder-colours-{codec}.bits.xz")


@lru_cache(maxsize=None)
def reachable(codec: str) -> np.ndarray:
    """`build_reachable(codec)`, read from the package (built where a source tree lacks the file)."""
    path = shipped_path(codec)
    if path.is_file():
        bits = np.frombuffer(lzma.decompress(path.read_bytes()), dtype=np.uint8)
        if bits.size == 1 << 21:
            return bits
    return build_reachable(codec)


def _contains(bits: np.ndarray, colours: np.ndarray) -> np.ndarray:
    return ((bits[colours >> 3] >> (7 - (colours & 7))) & 1).astype(bool)


@dataclass(frozen=True)
class DecoderTrace:
    """Per codec: how many of an image's distinct colours tell about its decoder independently (`counts`:
    unclipped ones; for a decoder in GREY_SHIFT_CLOSED one per hue, greys left out) and the share of them it can
    output (`shares`)."""

    counts: dict[str, int]
    shares: dict[str, float]

    def telling(self, codec: str) -> bool:
        """Whether enough colours tell about `codec`'s decoder to weigh its share: DECODER_MIN_HUES hues for a
        decoder in GREY_SHIFT_CLOSED, else DECODER_MIN_COLOURS colours."""
        return self.counts[codec] >= (DECODER_MIN_HUES if codec in GREY_SHIFT_CLOSED else DECODER_MIN_COLOURS)

    @property
    def refutes_every_decoder(self) -> bool:
        """Enough telling colours for every decoder, too many of them outside its subset for any proof."""
        return all(self.telling(c) and self.shares[c] < DECODER_REFUTED for c in self.shares)

    def outside(self, codec: str) -> int:
        """How many of the telling colours `codec`'s decoder cannot output."""
        return round(self.counts[codec] * (1.0 - self.shares[codec]))

    @property
    def proven(self) -> Optional[str]:
        """The codec whose decoder made these colours, or None when the colours do not say: enough telling
        colours (`telling`), DECODER_SHARE of them in its subset, and every other decoder that has enough
        telling colours ruled out by DECODER_OTHER_OUTSIDE colours it cannot output (two subsets that hold them
        all prove neither)."""
        for codec, share in self.shares.items():
            if not self.telling(codec) or share < DECODER_SHARE:
                continue
            if all(self.shares[other] < DECODER_SHARE and self.outside(other) >= DECODER_OTHER_OUTSIDE
                   for other in self.shares if other != codec and self.telling(other)):
                return codec
        return None


def distinct_colours(pixels: Sequence[np.ndarray]) -> np.ndarray:
    """The distinct colours of uint8 RGB arrays, as r << 16 | g << 8 | b, without clipped ones (a channel at 0
    or 255: many decoder inputs reach them)."""
    flat = np.concatenate([np.asarray(p).reshape(-1, 3) for p in pixels]) if len(pixels) else np.zeros((0, 3), np.uint8)
    red, green, blue = (flat[:, k].astype(np.int32) for k in range(3))  # 24-bit codes: int32 sorts twice as fast
    low, high = np.minimum(np.minimum(red, green), blue), np.maximum(np.maximum(red, green), blue)
    codes = np.sort(((red << 16) | (green << 8) | blue)[(low > 0) & (high < 255)])
    return codes[_run_starts(codes)]


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values in sorted `keys` starts (sorting, then this, is np.unique: 40x faster on
    this numpy)."""
    return np.concatenate(([True], keys[1:] != keys[:-1])) if len(keys) else np.zeros(0, dtype=bool)


def decoder_trace(pixels: Sequence[np.ndarray]) -> DecoderTrace:
    """The decoder fingerprint of uint8 RGB arrays (an image's own pixels, e.g. its tiles without padding, the
    most telling first). The first array alone settles most clean images: when its colours already fall short of
    every decoder's subset, the others are not read (a decoded image's colours all lie in it, in every tile)."""
    first = _trace(distinct_colours(pixels[:1]))
    if len(pixels) > 1 and not first.refutes_every_decoder:
        return _trace(distinct_colours(pixels))
    return first


def _trace(colours: np.ndarray) -> DecoderTrace:
    counts, shares = {}, {}
    for codec in CONVERSIONS:
        inside = _contains(reachable(codec), colours)
        if codec in GREY_SHIFT_CLOSED:
            inside = _per_hue(colours, inside)
        counts[codec] = len(inside)
        shares[codec] = float(inside.mean()) if len(inside) else 0.0
    return DecoderTrace(counts, shares)


def _per_hue(colours: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`inside` (whether each colour lies in a GREY_SHIFT_CLOSED subset) once per hue (r - g, b - g), the greys'
    left out: the colours of one hue all lie in it or all do not."""
    red, green, blue = colours >> 16, (colours >> 8) & 255, colours & 255
    hue = ((red - green + 255) << 9) | (blue - green + 255)
    coloured = hue != (255 << 9 | 255)
    keyed = np.sort((hue[coloured] << 1) | inside[coloured])  # membership in the lowest bit: one sort
    return (keyed[_run_starts(keyed >> 1)] & 1).astype(bool)


if __name__ == "__main__":  # python -m ccscore.decoders: (re)writes the shipped tables
    for name in CONVERSIONS:
        shipped_path(name).write_bytes(lzma.compress(build_reachable(name).tobytes(), preset=9))
        print(shipped_path(name), shipped_path(name).stat().st_size)
