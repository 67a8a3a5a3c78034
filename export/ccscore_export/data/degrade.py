"""Degradations of a whole clean image, each returning what a user's file would decode to.

Codecs run on the whole image (before tiling), so the block grid sits at the image origin as in real
files; grid-shifting crops and light resizes happen after compression, as when someone crops or resizes a
downloaded JPEG and saves it as PNG. Every function returns `Degraded(rgb, label, quality, kind)`:
label 0 = clean, 1 = jpeg, 2 = webp (the *last* lossy codec applied); quality = that codec's setting
(NaN for clean); kind = a ':'-joined description ("jpeg:mozjpeg:double:shift") that evaluation can split.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from typing import NamedTuple

import cv2
import imagecodecs
import numpy as np
from PIL import Image, ImageFilter

from . import wild
from .procedural import add_film_grain, add_screentone

try:  # bundles several libjpeg builds, mozjpeg among them (its own quant tables and trellis quantisation)
    import jpeglib
except ImportError:  # optional: the pipeline still runs with libjpeg-turbo encoders only
    jpeglib = None

try:  # Google's jpegli (adaptive quantisation, its own tables), the newest encoder users meet
    import pyjpegli
except ImportError:  # optional, like jpeglib
    pyjpegli = None

CLEAN, JPEG, WEBP = 0, 1, 2
LABEL_NAMES = {CLEAN: "clean", JPEG: "jpeg", WEBP: "webp"}


class Degraded(NamedTuple):
    rgb: np.ndarray  # uint8 [H, W, 3], as decoded
    label: int
    quality: float  # codec quality setting, NaN for clean
    kind: str


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _pnm(image: np.ndarray) -> bytes:
    """PPM (RGB) or PGM (grey [H, W]) bytes: what the command-line encoders read on stdin."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PPM")
    return buf.getvalue()


def _run_encoder(cmd: list[str], image: np.ndarray) -> np.ndarray:
    """Pipes `image` through a command-line encoder (stdin -> stdout) and decodes what it wrote."""
    done = subprocess.run(cmd, input=_pnm(image), capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[:200]}")
    return _decode(done.stdout)


# ---------------------------------------------------------------- JPEG encoders

# Pillow's subsampling codes; cv2's named factors for the same layouts.
SUBSAMPLINGS = {"444": 0, "422": 1, "420": 2}
_CV2_SAMPLING = {
    "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
}
_JPEGLIB_SAMPLING = {"444": ((1, 1), (1, 1), (1, 1)), "422": ((2, 1), (1, 1), (1, 1)), "420": ((2, 2), (1, 1), (1, 1))}


def encode_jpeg_pillow(
    rgb: np.ndarray, quality: int, subsampling: int | str = 2, progressive: bool = False, optimize: bool = False
) -> np.ndarray:
    """libjpeg-turbo through Pillow; subsampling 0/1/2 or '444'/'422'/'420'."""
    sub = SUBSAMPLINGS.get(subsampling, subsampling) if isinstance(subsampling, str) else subsampling
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=int(quality), subsampling=sub, progressive=progressive, optimize=optimize)
    return _decode(buf.getvalue())


def _cv2_order(image: np.ndarray) -> np.ndarray:
    """OpenCV's channel order (BGR); grey [H, W] as is."""
    return np.ascontiguousarray(image if image.ndim == 2 else image[..., ::-1])


def encode_jpeg_cv2(rgb: np.ndarray, quality: int, subsampling: str = "420", progressive: bool = False, optimize: bool = False) -> np.ndarray:
    """OpenCV's bundled libjpeg(-turbo) build; decoded by Pillow like a user's viewer would."""
    params = [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _CV2_SAMPLING[subsampling],
        cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive),
        cv2.IMWRITE_JPEG_OPTIMIZE, int(optimize),
    ]  # fmt: skip
    ok, data = cv2.imencode(".jpg", _cv2_order(rgb), params)
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return _decode(data.tobytes())


def encode_jpeg_imagecodecs(rgb: np.ndarray, quality: int, subsampling: str = "420", optimize: bool = False) -> np.ndarray:
    return _decode(imagecodecs.jpeg8_encode(rgb, level=int(quality), subsampling=subsampling, optimize=optimize))


def encode_jpeg_jpeglib(
    rgb: np.ndarray, quality: int, version: str = "mozjpeg403", subsampling: str = "420", base_table: int | None = None,
    progressive: bool = True,
) -> np.ndarray:
    """A jpeglib-bundled libjpeg build: 'mozjpeg403' (base_table 0-8 picks mozjpeg's quant table set),
    '6b' / '9f' (original IJG libjpeg). jpeglib only writes files, hence the temp file."""
    if jpeglib is None:
        raise RuntimeError("jpeglib is not installed")
    tmpdir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(suffix=".jpg", dir=tmpdir)
    os.close(fd)
    try:
        with jpeglib.version(version):
            im = jpeglib.from_spatial(np.ascontiguousarray(rgb))
            im.samp_factor = _JPEGLIB_SAMPLING[subsampling]
            kwargs = {"qt": int(quality)}
            if base_table is not None and version.startswith("mozjpeg"):
                kwargs["base_quant_tbl_idx"] = int(base_table)
            # mozjpeg keeps its own defaults (progressive, tuned scans, trellis), as its cjpeg users get.
            if version.startswith("mozjpeg"):
                flags = []
            else:
                flags = ["+PROGRESSIVE_MODE"] if progressive else ["-PROGRESSIVE_MODE"]
            im.write_spatial(path, flags=flags, **kwargs)
        with open(path, "rb") as f:
            return _decode(f.read())
    finally:
        os.unlink(path)


_TOOL_SAMPLING = {"444": "1x1", "422": "2x1", "420": "2x2"}  # cjpeg -sample / magick -sampling-factor


def encode_jpeg_cjpeg(
    image: np.ndarray, quality: int, subsampling: str = "420", progressive: bool = False, optimize: bool = False,
    grayscale: bool = False, dct: str = "int",
) -> np.ndarray:
    """libjpeg-turbo's cjpeg; `grayscale` writes a one-component file (cjpeg -grayscale), as a grey [H, W] input does."""
    cmd = ["cjpeg", "-quality", str(int(quality)), "-sample", _TOOL_SAMPLING[subsampling], "-dct", dct]
    cmd += ["-progressive"] * progressive + ["-optimize"] * optimize + ["-grayscale"] * grayscale
    return _run_encoder(cmd, image)


def encode_jpeg_magick(
    image: np.ndarray, quality: int, tool: str = "imagemagick", subsampling: str | None = None, progressive: bool = False
) -> np.ndarray:
    """ImageMagick `convert` or GraphicsMagick `gm convert`; subsampling None keeps the tool's default
    (ImageMagick: 4:4:4 from quality 90, else 4:2:0). A grey [H, W] input gives a grey JPEG."""
    cmd = ["convert"] if tool == "imagemagick" else ["gm", "convert"]
    cmd += ["pnm:-", "-quality", str(int(quality))]
    if subsampling is not None:
        cmd += ["-sampling-factor", _TOOL_SAMPLING[subsampling]]
    if progressive:
        cmd += ["-interlace", "Plane"]
    return _run_encoder(cmd + ["jpg:-"], image)


def encode_jpeg_jpegli(image: np.ndarray, quality: int) -> np.ndarray:
    """Google's jpegli (through pyjpegli; RGB only, so grey art is written as a colour file)."""
    if pyjpegli is None:
        raise RuntimeError("pyjpegli is not installed")
    rgb = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image)
    return _decode(pyjpegli.encode(rgb.tobytes(), rgb.shape[1], rgb.shape[0], int(quality)))


def jpeg_encoders() -> list[str]:
    """The JPEG encoders available here (the optional ones when their library or tool is installed)."""
    encoders = ["pillow", "cv2", "imagecodecs"] + (["mozjpeg", "libjpeg9"] if jpeglib is not None else [])
    tools = {"cjpeg": "cjpeg", "imagemagick": "convert", "graphicsmagick": "gm"}
    encoders += [name for name, tool in tools.items() if shutil.which(tool)]
    return encoders + (["jpegli"] if pyjpegli is not None else [])


def random_jpeg(rng: np.random.Generator, rgb: np.ndarray, quality: int, encoder: str | None = None) -> tuple[np.ndarray, str]:
    """JPEG-compress with a random encoder / subsampling / progressive / optimise choice; returns (rgb, encoder).
    A grey [H, W] input gives a grey (one-component) JPEG where the encoder can write one."""
    encoders = jpeg_encoders()
    # Pillow is what most tools use; mozjpeg (web optimisers, squoosh) is the second most valuable.
    weights = {"pillow": 0.3, "cv2": 0.1, "imagecodecs": 0.07, "mozjpeg": 0.2, "libjpeg9": 0.07, "cjpeg": 0.07,
               "imagemagick": 0.07, "graphicsmagick": 0.05, "jpegli": 0.07}
    if encoder is None:
        p = np.array([weights[e] for e in encoders])
        encoder = str(rng.choice(encoders, p=p / p.sum()))
    sub = str(rng.choice(["444", "422", "420"], p=[0.3, 0.15, 0.55]))
    progressive, optimize = bool(rng.random() < 0.3), bool(rng.random() < 0.5)
    if rgb.ndim == 2 and encoder in ("mozjpeg", "libjpeg9"):
        rgb = np.repeat(rgb[..., None], 3, axis=2)  # jpeglib's writer here takes colour only
    if encoder == "pillow":
        out = encode_jpeg_pillow(rgb, quality, sub, progressive, optimize)
    elif encoder == "cv2":
        out = encode_jpeg_cv2(rgb, quality, sub, progressive, optimize)
    elif encoder == "imagecodecs":
        out = encode_jpeg_imagecodecs(rgb, quality, sub, optimize)
    elif encoder == "mozjpeg":
        # Table set 3 (ImageMagick's) is mozjpeg's default; the others appear in tuned pipelines.
        table = 3 if rng.random() < 0.6 else int(rng.integers(0, 9))
        out = encode_jpeg_jpeglib(rgb, quality, "mozjpeg403", sub, base_table=table)
    elif encoder == "libjpeg9":
        out = encode_jpeg_jpeglib(rgb, quality, "9f", sub, progressive=progressive)
    elif encoder == "cjpeg":
        out = encode_jpeg_cjpeg(rgb, quality, sub, progressive, optimize, dct=str(rng.choice(["int", "float", "fast"], p=[0.7, 0.2, 0.1])))
    elif encoder in ("imagemagick", "graphicsmagick"):
        out = encode_jpeg_magick(rgb, quality, encoder, sub if rng.random() < 0.5 else None, progressive)
    elif encoder == "jpegli":
        out = encode_jpeg_jpegli(rgb, quality)
    else:
        raise ValueError(f"unknown JPEG encoder {encoder!r}")
    return out, encoder


# BT.601 full-range RGB -> YCbCr (offsets cancel: only differences and round trips use it).
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def chroma_only_jpeg(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """A clean tile whose chroma alone went through JPEG quality 100 with subsampled chroma; its luma is kept.

    Quality-100 4:2:0 files carry almost no luma trace, but every lossy training tile otherwise does, so a head
    would learn to ignore chroma. These "twins" differ from clean only in chroma. The chroma grid is shifted
    by a random offset, as in crops of real files.
    """
    choice = rng.random()
    dy, dx = (int(v) for v in rng.integers(0, 8, 2))
    padded = np.pad(rgb, ((dy, 8 - dy), (dx, 8 - dx), (0, 0)), mode="reflect")
    if choice < 0.6:
        decoded, kind = encode_jpeg_pillow(padded, 100, "420"), "jpeg:chroma420-only"
    elif choice < 0.8:
        decoded, kind = encode_jpeg_pillow(padded, 100, "422"), "jpeg:chroma422-only"
    else:
        decoded, kind = encode_jpeg_cv2(padded, 100, "420"), "jpeg:cv2:chroma420-only"
    original, compressed = padded.astype(np.float64) @ _YCC.T, decoded.astype(np.float64) @ _YCC.T
    mixed = np.concatenate([original[..., :1], compressed[..., 1:]], axis=-1) @ np.linalg.inv(_YCC).T
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out[dy : dy + rgb.shape[0], dx : dx + rgb.shape[1]], kind


# ---------------------------------------------------------------- WebP encoders


def encode_webp_pillow(rgb: np.ndarray, quality: int, method: int = 4) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", quality=int(quality), method=int(method))
    return _decode(buf.getvalue())


def encode_webp_imagecodecs(rgb: np.ndarray, quality: int, method: int = 4) -> np.ndarray:
    return _decode(imagecodecs.webp_encode(np.ascontiguousarray(rgb), level=int(quality), method=int(method), lossless=False))


def encode_webp_cv2(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".webp", _cv2_order(rgb), [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode webp failed")
    return _decode(data.tobytes())


WEBP_PRESETS = ("default", "photo", "picture", "drawing", "icon", "text")


def encode_webp_cwebp(image: np.ndarray, quality: int, preset: str = "default", sharp_yuv: bool = False, method: int = 4) -> np.ndarray:
    """libwebp's cwebp with one of its content presets (they change filtering and spatial noise shaping)."""
    cmd = ["cwebp", "-quiet", "-preset", preset, "-q", str(int(quality)), "-m", str(int(method))]
    return _run_encoder(cmd + ["-sharp_yuv"] * sharp_yuv + ["-o", "-", "--", "-"], image)


def webp_encoders() -> list[str]:
    """The WebP encoders available here (cwebp when libwebp's tools are installed)."""
    return ["pillow", "imagecodecs", "cv2"] + (["cwebp"] if shutil.which("cwebp") else [])


def random_cwebp(rng: np.random.Generator, image: np.ndarray, quality: int) -> tuple[np.ndarray, str]:
    """cwebp with a random preset, method and sometimes -sharp_yuv; returns (rgb, 'cwebp:<preset>[:sharp_yuv]')."""
    preset, sharp = str(rng.choice(WEBP_PRESETS)), bool(rng.random() < 0.3)
    out = encode_webp_cwebp(image, quality, preset, sharp, int(rng.integers(0, 7)))
    return out, f"cwebp:{preset}" + ":sharp_yuv" * sharp


def random_webp(rng: np.random.Generator, rgb: np.ndarray, quality: int) -> tuple[np.ndarray, str]:
    """WebP-compress with a random libwebp build and method 0-6 (cwebp: also a preset); returns (rgb, encoder).
    A grey [H, W] input is encoded as the RGB picture it is (WebP has no grey mode)."""
    encoders = webp_encoders()
    weights = {"pillow": 0.45, "imagecodecs": 0.2, "cv2": 0.1, "cwebp": 0.25}
    p = np.array([weights[e] for e in encoders])
    encoder = str(rng.choice(encoders, p=p / p.sum()))
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if encoder == "cwebp":
        return random_cwebp(rng, rgb, quality)
    method = int(rng.integers(0, 7))
    if encoder == "pillow":
        return encode_webp_pillow(rgb, quality, method), encoder
    if encoder == "imagecodecs":
        return encode_webp_imagecodecs(rgb, quality, method), encoder
    return encode_webp_cv2(rgb, quality), encoder


# ---------------------------------------------------------------- geometry after compression


def shift_grid(rgb: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Crops dy rows / dx columns off the top / left, moving the block grid off the origin."""
    return np.ascontiguousarray(rgb[dy:, dx:])


def resize(rgb: np.ndarray, scale: float, resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, resample))


def _random_shift(rng: np.random.Generator) -> tuple[int, int]:
    while True:
        dy, dx = (int(v) for v in rng.integers(0, 8, size=2))
        if dy or dx:
            return dy, dx


# ---------------------------------------------------------------- clean-type negatives (stored lossless)


def clean_resampled(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    scale = float(rng.choice([rng.uniform(0.5, 0.95), rng.uniform(1.05, 2.0)]))
    h, w = rgb.shape[:2]
    scale = min(scale, 1400 / max(h, w))  # keep upscales affordable
    filt = [Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR][int(rng.integers(0, 3))]
    return resize(rgb, scale, filt)


def clean_palette(rng: np.random.Generator, rgb: np.ndarray, dither: bool) -> np.ndarray:
    """Palette PNG (GIF-like): 16-256 colours, Floyd-Steinberg or no dithering."""
    colours = int(rng.choice([16, 32, 64, 128, 256]))
    method = [Image.Quantize.MEDIANCUT, Image.Quantize.MAXCOVERAGE, Image.Quantize.FASTOCTREE][int(rng.integers(0, 3))]
    d = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    return np.asarray(Image.fromarray(rgb).quantize(colours, method=method, dither=d).convert("RGB"))


def clean_grain(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    img = rgb.astype(np.float32)
    add_film_grain(rng, img)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def clean_blur(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 2.0))))


def clean_screentone(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    img = rgb.astype(np.float32)
    add_screentone(rng, img)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def clean_sharpen(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    f = ImageFilter.UnsharpMask(radius=rng.uniform(0.5, 2.5), percent=int(rng.integers(50, 200)), threshold=int(rng.integers(0, 4)))
    return np.asarray(Image.fromarray(rgb).filter(f))


def clean_pixel_art(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Pixel art: a box-downscaled, few-colour image blown up k x k by nearest neighbour. Its k-pixel
    periodic blocks mimic a codec grid (k = 4 or 8 especially), so the model must see it as clean."""
    k = int(rng.choice([2, 3, 4, 4, 5, 6, 8, 8]))
    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((-(-w // k), -(-h // k)), Image.Resampling.BOX)  # ceil: covers the image
    if rng.random() < 0.7:
        small = small.quantize(int(rng.choice([8, 16, 32, 64])), dither=Image.Dither.NONE).convert("RGB")
    big = np.asarray(small.resize((small.width * k, small.height * k), Image.Resampling.NEAREST))
    return np.ascontiguousarray(big[:h, :w])


HARD_NEGATIVES = {
    "resampled": clean_resampled,
    "palette": lambda rng, rgb: clean_palette(rng, rgb, dither=False),
    "palette_dither": lambda rng, rgb: clean_palette(rng, rgb, dither=True),
    "grain": clean_grain,
    "blur": clean_blur,
    "screentone": clean_screentone,
    "sharpen": clean_sharpen,
    "pixel_art": clean_pixel_art,
}


# Clean art as it is found in the wild (issue #10). Resampling spans what sites and upscalers do: 0.25-0.9
# down, 2x or 1.25-4x up, every Pillow and OpenCV kernel, sharpened after in a third of the cases.
WILD_NEGATIVES = {
    "grey": wild.random_grey,
    "lineart": wild.random_line_art,
    "manga": wild.random_manga,
    "downscaled": lambda rng, rgb: wild.random_resample(rng, rgb, float(rng.uniform(0.25, 0.9)), wild.ALL_KERNELS, 0.3),
    "upscaled": lambda rng, rgb: wild.random_resample(
        rng, rgb, float(rng.choice([2.0, rng.uniform(1.25, 4.0)])), wild.ALL_KERNELS, 0.3, max_side=1024),
    "smooth_render": wild.random_smooth_render,
}
# Pictures that look like the wild negatives, to be compressed: the positives that teach content from codec.
WILD_CONTENT = {"grey": wild.random_grey, "lineart": wild.random_line_art, "manga": wild.random_manga}


def degrade_clean(rng: np.random.Generator, rgb: np.ndarray, variant: str = "plain") -> Degraded:
    """Label-0 sample: the image itself, one of HARD_NEGATIVES or one of WILD_NEGATIVES (all lossless)."""
    if variant == "plain":
        out, kind = rgb, "clean"
    elif variant in HARD_NEGATIVES:
        out, kind = HARD_NEGATIVES[variant](rng, rgb), f"clean:{variant}"
    else:
        v = WILD_NEGATIVES[variant](rng, rgb)
        out, kind = wild.as_rgb(v.image), f"clean:{variant}:{v.detail}"
    return Degraded(np.ascontiguousarray(out), CLEAN, float("nan"), kind)


# ---------------------------------------------------------------- lossy samples


def _quality(rng: np.random.Generator, low: int, high: int, hard_low: int) -> int:
    """Uniform over [low, high], with half the draws from the hard high-quality band [hard_low, high]."""
    return int(rng.integers(hard_low if rng.random() < 0.5 else low, high + 1))


def sample_jpeg_quality(rng: np.random.Generator) -> int:
    return _quality(rng, 20, 98, 80)


def sample_webp_quality(rng: np.random.Generator) -> int:
    return _quality(rng, 20, 95, 75)


def degrade_lossy(
    rng: np.random.Generator, rgb: np.ndarray, codec: str, quality: int | None = None, double: bool = False,
    shift: tuple[int, int] | None = None, scale: float | None = None, content: str | None = None,
) -> Degraded:
    """Compress with `codec` ('jpeg' / 'webp'), optionally after a first lossy pass (`double`), then
    optionally crop `shift` = (dy, dx) off the top-left and resize by `scale`. `content` (a WILD_CONTENT key)
    first turns the art into grey art, line art or manga; grey pictures become one-component JPEGs."""
    parts = []
    if content is not None:
        v = WILD_CONTENT[content](rng, rgb)
        rgb = v.image
        parts.append(f"on_{content}")
    if double:
        first = str(rng.choice(["jpeg", "webp"], p=[0.7, 0.3]))
        if first == "jpeg":
            rgb, _ = random_jpeg(rng, rgb, sample_jpeg_quality(rng))
        else:
            rgb, _ = random_webp(rng, rgb, sample_webp_quality(rng))
        if rng.random() < 0.3:  # cropped between the two saves: the first grid no longer matches the second
            rgb = shift_grid(rgb, *_random_shift(rng))
            first += "_misaligned"
    if codec == "jpeg":
        quality = sample_jpeg_quality(rng) if quality is None else quality
        rgb, enc = random_jpeg(rng, rgb, quality)
        label = JPEG
    elif codec == "webp":
        quality = sample_webp_quality(rng) if quality is None else quality
        rgb, enc = random_webp(rng, rgb, quality)
        label = WEBP
    else:
        raise ValueError(f"unknown codec {codec!r}")
    parts = [codec, enc] + parts
    if double:
        parts.append(f"double_{first}")
    if shift is not None:
        rgb = shift_grid(rgb, *shift)
        parts.append("shift")
    if scale is not None:
        rgb = resize(rgb, scale)
        parts.append("resize")
    return Degraded(np.ascontiguousarray(rgb), label, float(quality), ":".join(parts))


def random_degradation(rng: np.random.Generator, rgb: np.ndarray) -> Degraded:
    """The training mix: ~48% clean (30% of it plain, 30% hard negatives, 40% wild negatives), ~30% JPEG,
    ~22% WebP. Of the lossy: ~25% on wild content (grey, line art, manga), ~15% double-compressed, ~50%
    grid-shifted, ~5% lightly resized (a hard case)."""
    u = rng.random()
    if u < 0.48:
        v = rng.random()
        if v < 0.3:
            return degrade_clean(rng, rgb)
        pool = HARD_NEGATIVES if v < 0.6 else WILD_NEGATIVES
        return degrade_clean(rng, rgb, str(rng.choice(list(pool))))
    codec = "jpeg" if u < 0.78 else "webp"
    content = None
    if rng.random() < 0.25:
        content = str(rng.choice(list(WILD_CONTENT), p=[0.5, 0.25, 0.25] if codec == "jpeg" else [0.6, 0.2, 0.2]))
    shift = _random_shift(rng) if rng.random() < 0.5 else None
    scale = float(rng.uniform(0.9, 1.1)) if rng.random() < 0.05 else None
    return degrade_lossy(rng, rgb, codec, double=bool(rng.random() < 0.15), shift=shift, scale=scale, content=content)
