"""Degradations of a whole clean image, each returning what a user's file would decode to.

Codecs run on the whole image (before tiling), so the block grid sits at the image origin as in real
files; grid-shifting crops and light resizes happen after compression, as when someone crops or resizes a
downloaded JPEG and saves it as PNG. Every function returns `Degraded(rgb, label, quality, kind)`:
label 0 = clean, 1 = jpeg, 2 = webp, 3 = avif, 4 = jxl (the *last* lossy codec applied); quality = that
codec's setting on a 0-100 scale (AVIF: libavif's quality; JPEG XL: libjxl's quality equivalent of the distance),
NaN for clean and for damage resized after compression (its quality is approximate: the quality head is not
trained on it); kind = a ':'-joined description ("jpeg:mozjpeg:double:shift") that evaluation can split.
"""

from __future__ import annotations

import functools
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

from ..labels import LABELS
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

CLEAN, JPEG, WEBP, AVIF, JXL = (LABELS.index(name) for name in ("clean", "jpeg", "webp", "avif", "jxl"))
LABEL_NAMES = dict(enumerate(LABELS))


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


def _check_encoder(cmd: list[str], done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[:200]}")


def _run_encoder(cmd: list[str], image: np.ndarray) -> np.ndarray:
    """Pipes `image` through a command-line encoder (stdin -> stdout) and decodes what it wrote."""
    done = subprocess.run(cmd, input=_pnm(image), capture_output=True, check=False)
    _check_encoder(cmd, done)
    if not done.stdout:
        raise RuntimeError(f"{cmd[0]} wrote nothing")
    return _decode(done.stdout)


def _run_file_encoder(cmd: list[str], image: np.ndarray, suffix: str) -> bytes:
    """Runs an encoder that only reads and writes files (avifenc, cjxl): `cmd` + [input.png, output<suffix>];
    returns the bytes it wrote."""
    tmpdir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        source, target = os.path.join(tmp, "in.png"), os.path.join(tmp, "out" + suffix)
        Image.fromarray(image).save(source, compress_level=0)
        full = cmd + [source, target]
        _check_encoder(full, subprocess.run(full, capture_output=True, check=False))
        with open(target, "rb") as f:
            return f.read()


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


@functools.lru_cache(maxsize=None)
def _magick_installed(command: tuple[str, ...], name: str) -> bool:
    """Whether `command -version` is the real `name` (ImageMagick, GraphicsMagick): a `convert` on the PATH can be
    something else (a sandbox's stand-in that only converts PNG to PPM)."""
    if not shutil.which(command[0]):
        return False
    try:
        done = subprocess.run([*command, "-version"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and name.encode() in done.stdout.lstrip().split(b"\n", 1)[0]


def jpeg_encoders() -> list[str]:
    """The JPEG encoders available here (the optional ones when their library or tool is installed)."""
    encoders = ["pillow", "cv2", "imagecodecs"] + (["mozjpeg", "libjpeg9"] if jpeglib is not None else [])
    encoders += ["cjpeg"] if shutil.which("cjpeg") else []
    encoders += ["imagemagick"] if _magick_installed(("convert",), "ImageMagick") else []
    encoders += ["graphicsmagick"] if _magick_installed(("gm", "convert"), "GraphicsMagick") else []
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


# ---------------------------------------------------------------- AVIF and JPEG XL encoders

# Pillow's names for AVIF's chroma layouts; imagecodecs' pixel formats for the same.
AVIF_SUBSAMPLINGS = ("4:2:0", "4:4:4")
_AVIF_PIXEL_FORMATS = {"4:2:0": imagecodecs.AVIF.PIXEL_FORMAT.YUV420, "4:4:4": imagecodecs.AVIF.PIXEL_FORMAT.YUV444}


def avif_quantizer_quality(quantizer: int) -> float:
    """libavif's quality (0-100) for an avifenc quantiser (0-63): the inverse of its
    quantizer = ((100 - quality) * 63 + 50) / 100, so AVIF qualities share one scale."""
    return 100.0 - quantizer * 100.0 / 63.0


def jxl_distance_quality(distance: float) -> float:
    """libjxl's quality equivalent (cjxl -q) of a Butteraugli distance: the inverse of its
    distance = 0.1 + (100 - quality) * 0.09, exact for qualities >= 30 (distances <= 6.4)."""
    return 100.0 - (distance - 0.1) / 0.09


def encode_avif_pillow(image: np.ndarray, quality: int, speed: int = 6, subsampling: str = "4:2:0") -> np.ndarray:
    """libavif through Pillow; a grey [H, W] input is written 4:0:0 (one plane), as Pillow does for L images."""
    buf = io.BytesIO()
    sub = subsampling if image.ndim == 3 else "4:0:0"
    Image.fromarray(image).save(buf, format="AVIF", quality=int(quality), speed=int(speed), subsampling=sub)
    return _decode(buf.getvalue())


def encode_avif_imagecodecs(image: np.ndarray, quality: int, speed: int = 6, subsampling: str = "4:2:0") -> np.ndarray:
    """libavif through imagecodecs (its own build); decoded by Pillow, a second libavif/dav1d build."""
    fmt = _AVIF_PIXEL_FORMATS[subsampling] if image.ndim == 3 else imagecodecs.AVIF.PIXEL_FORMAT.YUV400
    data = imagecodecs.avif_encode(np.ascontiguousarray(image), level=int(quality), speed=int(speed), pixelformat=fmt)
    return _decode(data)


def encode_avif_avifenc(image: np.ndarray, quantizer: int, speed: int = 6, yuv: str = "420") -> np.ndarray:
    """libavif's avifenc at a fixed quantiser (--min = --max, 0-63, lower is better)."""
    cmd = ["avifenc", "--jobs", "1", "--speed", str(int(speed)), "--yuv", yuv,
           "--min", str(int(quantizer)), "--max", str(int(quantizer))]
    return _decode(_run_file_encoder(cmd, wild.as_rgb(image), ".avif"))


def _decode_jxl(data: bytes) -> np.ndarray:
    return np.ascontiguousarray(wild.as_rgb(imagecodecs.jpegxl_decode(data)))


def encode_jxl_imagecodecs(image: np.ndarray, distance: float, effort: int = 7) -> np.ndarray:
    """libjxl through imagecodecs at a Butteraugli distance (lower is better; 1 is "visually lossless")."""
    return _decode_jxl(imagecodecs.jpegxl_encode(np.ascontiguousarray(image), distance=float(distance), effort=int(effort)))


def encode_jxl_cjxl(image: np.ndarray, distance: float, effort: int = 7) -> np.ndarray:
    """libjxl's cjxl; decoded through imagecodecs' libjxl."""
    cmd = ["cjxl", "--quiet", "--num_threads=0", f"--distance={float(distance)}", f"--effort={int(effort)}"]
    return _decode_jxl(_run_file_encoder(cmd, wild.as_rgb(image), ".jxl"))


def avif_encoders() -> list[str]:
    """The AVIF encoders available here: Pillow (11.3+ has AVIF built in), imagecodecs, avifenc if installed."""
    encoders = [name for name, ok in (("pillow", _pillow_has_avif()), ("imagecodecs", imagecodecs.AVIF.available)) if ok]
    return encoders + (["avifenc"] if shutil.which("avifenc") else [])


def jxl_encoders() -> list[str]:
    """The JPEG XL encoders available here: imagecodecs, cjxl if installed."""
    return (["imagecodecs"] if imagecodecs.JPEGXL.available else []) + (["cjxl"] if shutil.which("cjxl") else [])


def _pillow_has_avif() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def sample_avif_quality(rng: np.random.Generator) -> int:
    return _quality(rng, 20, 90, 70)


def sample_jxl_distance(rng: np.random.Generator) -> float:
    """Distance 0.5-4, half the draws from the hard near-lossless band 0.5-1.5; two decimals."""
    return round(float(rng.uniform(0.5, 1.5 if rng.random() < 0.5 else 4.0)), 2)


def random_avif(rng: np.random.Generator, image: np.ndarray, quality: int) -> tuple[np.ndarray, str]:
    """AVIF through Pillow or imagecodecs (the library encoders; avifenc is kept for evaluation) at a random
    speed (4-10) and chroma layout; returns (rgb, 'encoder:s<speed>:<subsampling>')."""
    encoders = [e for e in avif_encoders() if e != "avifenc"]
    encoder = str(rng.choice(encoders, p=[0.6, 0.4] if len(encoders) == 2 else None))
    speed = int(rng.choice([4, 5, 6, 6, 7, 8, 9, 10]))
    sub = str(rng.choice(AVIF_SUBSAMPLINGS, p=[0.7, 0.3]))
    encode = encode_avif_pillow if encoder == "pillow" else encode_avif_imagecodecs
    return encode(image, quality, speed, sub), f"{encoder}:s{speed}:{sub.replace(':', '')}"


def random_jxl(rng: np.random.Generator, image: np.ndarray, distance: float) -> tuple[np.ndarray, str]:
    """JPEG XL through imagecodecs at a random effort (1-8; 9 is rare and slow); returns (rgb, 'imagecodecs:e<effort>')."""
    effort = int(rng.choice([1, 3, 4, 5, 6, 7, 7, 7, 8]))
    return encode_jxl_imagecodecs(image, distance, effort), f"imagecodecs:e{effort}"


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
# Issue #12's precision: clean art whose texture or resize the runtime's judgements of resized damage (halved,
# downscaled) or the grid gate could take for a block grid under resampling. Pixel art upscaled by a smoothing
# kernel, manga pages downscaled, film grain resized a little (its resampling beats at a period), textured canvases.
SMOOTH_KERNELS = tuple(k for k in wild.ALL_KERNELS if not k.endswith("nearest"))


def pixel_art_smooth(rng: np.random.Generator, rgb: np.ndarray) -> wild.Variant:
    scale = float(rng.choice([2.0, 2.0, 3.0, 4.0, rng.uniform(1.3, 1.8)]))
    return wild.random_resample(rng, clean_pixel_art(rng, rgb), scale, SMOOTH_KERNELS)


def manga_downscaled(rng: np.random.Generator, rgb: np.ndarray) -> wild.Variant:
    manga = wild.random_manga(rng, rgb)
    resized = wild.random_resample(rng, manga.image, float(rng.uniform(0.5, 0.9)), wild.DOWNSCALE_KERNELS)
    return wild.Variant(resized.image, f"{manga.detail}:{resized.detail}")


def grainy_resized(rng: np.random.Generator, rgb: np.ndarray) -> wild.Variant:
    scale = float(rng.uniform(1.1, 1.35) if rng.random() < 0.5 else rng.uniform(0.6, 0.95))
    return wild.random_resample(rng, clean_grain(rng, rgb), scale, SMOOTH_KERNELS)


TEXTURE_NEGATIVES = {
    "pixel_art_smooth": pixel_art_smooth,
    "manga_downscaled": manga_downscaled,
    "grainy_resized": grainy_resized,
    "canvas_texture": wild.canvas_texture,
}
# degrade_clean's variants that return a wild.Variant.
VARIANT_NEGATIVES = {**WILD_NEGATIVES, **TEXTURE_NEGATIVES}
# Pictures that look like the wild negatives, to be compressed: the positives that teach content from codec.
WILD_CONTENT = {"grey": wild.random_grey, "lineart": wild.random_line_art, "manga": wild.random_manga}
# What degrade_lossy may draw a picture on first: the mixes' `content`.
CONTENT = {**WILD_CONTENT, **TEXTURE_NEGATIVES}


def degrade_clean(rng: np.random.Generator, rgb: np.ndarray, variant: str = "plain") -> Degraded:
    """Label-0 sample: the image itself, one of HARD_NEGATIVES, WILD_NEGATIVES or TEXTURE_NEGATIVES (all
    lossless)."""
    if variant == "plain":
        out, kind = rgb, "clean"
    elif variant in HARD_NEGATIVES:
        out, kind = HARD_NEGATIVES[variant](rng, rgb), f"clean:{variant}"
    else:
        v = VARIANT_NEGATIVES[variant](rng, rgb)
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


# Codec name -> label; the codecs a first pass of double compression draws from (what is passed on and re-saved).
LOSSY_LABELS = {"jpeg": JPEG, "webp": WEBP, "avif": AVIF, "jxl": JXL}


def compress(rng: np.random.Generator, image: np.ndarray, codec: str, quality: int | None = None) -> tuple[np.ndarray, float, str]:
    """One lossy save with `codec` and a random encoder of it at `quality` (0-100; drawn if None; for JPEG XL
    turned into libjxl's distance); returns (rgb, quality, encoder description)."""
    if codec == "jpeg":
        quality = sample_jpeg_quality(rng) if quality is None else quality
        out, enc = random_jpeg(rng, image, quality)
    elif codec == "webp":
        quality = sample_webp_quality(rng) if quality is None else quality
        out, enc = random_webp(rng, image, quality)
    elif codec == "avif":
        quality = sample_avif_quality(rng) if quality is None else quality
        out, enc = random_avif(rng, image, quality)
    elif codec == "jxl":
        distance = sample_jxl_distance(rng) if quality is None else 0.1 + (100 - quality) * 0.09
        out, enc = random_jxl(rng, image, distance)
        quality, enc = jxl_distance_quality(distance), f"{enc}:d{distance:g}"
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return out, float(quality), enc


# Resizes after compression (thumbnailers, sites, "upscalers"): down 0.5-0.95 or up 1.25-4 (2x in half the
# upscales), with every Pillow and OpenCV kernel.
def random_rescale(rng: np.random.Generator) -> float:
    if rng.random() < 0.5:
        return float(rng.uniform(0.5, 0.95))
    return float(2.0 if rng.random() < 0.5 else rng.uniform(1.25, 4.0))


def degrade_lossy(
    rng: np.random.Generator, rgb: np.ndarray, codec: str, quality: int | None = None, double: bool = False,
    shift: tuple[int, int] | None = None, scale: float | None = None, content: str | None = None,
) -> Degraded:
    """Compress with `codec` (a LOSSY_LABELS key), optionally after a first lossy pass (`double`), then
    optionally crop `shift` = (dy, dx) off the top-left and resize by `scale` with a random kernel. `content`
    (a CONTENT key: WILD_CONTENT or TEXTURE_NEGATIVES) first turns the art into grey art, line art, manga or one of
    the textures; grey pictures become
    one-component JPEGs (4:0:0 AVIFs, grey JPEG XLs).

    A resized result keeps the codec's label but gets quality NaN: resampling blurs or smears the
    quantisation, so the setting is no longer readable from the pixels, and the quality head is not trained
    to state one."""
    if codec not in LOSSY_LABELS:
        raise ValueError(f"unknown codec {codec!r}")
    parts = []
    if content is not None:
        v = CONTENT[content](rng, rgb)
        rgb = v.image
        parts.append(f"on_{content}")
    if double:
        first = str(rng.choice(["jpeg", "webp"], p=[0.7, 0.3]))
        rgb, _, _ = compress(rng, rgb, first)
        if rng.random() < 0.3:  # cropped between the two saves: the first grid no longer matches the second
            rgb = shift_grid(rgb, *_random_shift(rng))
            first += "_misaligned"
    rgb, quality, enc = compress(rng, rgb, codec, quality)
    parts = [codec, enc] + parts
    if double:
        parts.append(f"double_{first}")
    if shift is not None:
        rgb = shift_grid(rgb, *shift)
        parts.append("shift")
    if scale is not None:
        v = wild.random_resample(rng, rgb, scale, wild.ALL_KERNELS, max_side=MAX_RESCALED_SIDE)
        parts.append(f"resized_from_q{quality:.0f}:{v.detail}")
        rgb, quality = v.image, float("nan")
    return Degraded(np.ascontiguousarray(rgb), LOSSY_LABELS[codec], quality, ":".join(parts))


MAX_RESCALED_SIDE = 1024  # upscales start from a top-left crop so the result stays affordable to tile


# Qualities of damage resized after compression: above these a resize leaves next to no trace, and a lossy
# label on what looks clean would teach false positives on clean resampled art.
RESIZED_QUALITIES = {"jpeg": (30, 90), "webp": (30, 85)}


class Mix(NamedTuple):
    """A training mix. `lossy`: codec -> share of all images (the rest is clean); `resized`: codec -> share of
    that codec's images resized after compression; `clean`: clean variants (degrade_clean's) -> weights;
    `content`: what half the lossy images are drawn on first (degrade_lossy's `content` -> weights; empty: a
    quarter of them on WILD_CONTENT, as the mixes before it)."""

    lossy: dict[str, float]
    resized: dict[str, float]
    clean: dict[str, float]
    content: dict[str, float] = {}


# Clean side of the full mix: 30% plain, 30% hard negatives, 40% wild negatives.
_CLEAN_FULL = {"plain": 0.3, **{k: 0.3 / len(HARD_NEGATIVES) for k in HARD_NEGATIVES},
               **{k: 0.4 / len(WILD_NEGATIVES) for k in WILD_NEGATIVES}}
MIXES = {
    # Everything, in the shares of the shipped models (before issue #12: clean 48%, JPEG 30%, WebP 22%).
    "full": Mix({"jpeg": 0.25, "webp": 0.14, "avif": 0.08, "jxl": 0.07}, {"jpeg": 0.25, "webp": 0.2}, _CLEAN_FULL),
    # Issue #12's damage alone, to be merged with an earlier full set (build-data --merge): AVIF, JPEG XL,
    # JPEG / WebP mostly resized after compression, and clean resampled art as their negatives.
    "issue12": Mix({"jpeg": 0.2, "webp": 0.1, "avif": 0.22, "jxl": 0.18}, {"jpeg": 0.75, "webp": 0.75},
                   {"plain": 0.2, "resampled": 0.2, "downscaled": 0.3, "upscaled": 0.3}),
    # JPEG and WebP only (a clean/jpeg/webp model's labels), none resized: with --procedural-style graphics,
    # the flat UI and retro-game pictures whose few edges carry all the trace, to merge with a full set.
    "graphics": Mix({"jpeg": 0.35, "webp": 0.2}, {}, _CLEAN_FULL),
    # Issue #12's precision: TEXTURE_NEGATIVES as clean art, and half the lossy images drawn on them (the head must
    # tell a texture's period from a codec's grid, not textures from codecs), none resized; to merge with a full set.
    "textures": Mix({"jpeg": 0.25, "webp": 0.15, "avif": 0.05, "jxl": 0.05}, {},
                    {"plain": 0.2, **{k: 0.2 for k in TEXTURE_NEGATIVES}}, {k: 1.0 for k in TEXTURE_NEGATIVES}),
}


def random_degradation(rng: np.random.Generator, rgb: np.ndarray, mix: Mix = MIXES["full"]) -> Degraded:
    """One draw from `mix`. Of the lossy: ~25% on wild content (grey, line art, manga), ~15% double-compressed,
    ~50% grid-shifted; `mix.resized` of them resized after compression (down 0.5-0.95 or up 1.25-4, every
    kernel)."""
    u = rng.random()
    clean_share = 1.0 - sum(mix.lossy.values())
    if u < clean_share:
        variants = list(mix.clean)
        weights = np.array([mix.clean[v] for v in variants])
        return degrade_clean(rng, rgb, str(rng.choice(variants, p=weights / weights.sum())))
    bounds = clean_share + np.cumsum(list(mix.lossy.values()))
    codec = list(mix.lossy)[min(int(np.searchsorted(bounds, u, side="right")), len(bounds) - 1)]
    content = None
    if mix.content:
        if rng.random() < 0.5:
            weights = np.array(list(mix.content.values()))
            content = str(rng.choice(list(mix.content), p=weights / weights.sum()))
    elif rng.random() < 0.25:
        content = str(rng.choice(list(WILD_CONTENT), p=[0.5, 0.25, 0.25] if codec == "jpeg" else [0.6, 0.2, 0.2]))
    shift = _random_shift(rng) if rng.random() < 0.5 else None
    scale, quality = None, None
    if rng.random() < mix.resized.get(codec, 0.0):
        scale = random_rescale(rng)
        low, high = RESIZED_QUALITIES[codec]
        quality = int(rng.integers(low, high + 1))
    return degrade_lossy(rng, rgb, codec, quality, double=bool(rng.random() < 0.15), shift=shift, scale=scale,
                         content=content)
