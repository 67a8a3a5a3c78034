"""Real clean art shipped by Debian packages, fetched at build time into a cache, verified lossless.

`prepare_sources()` downloads each package with `apt-get download` (no root install: `dpkg -x` unpacks it
into the cache), scans its lossless images, rejects any with block-grid evidence (`lossless_check`), whose
colours came out of a JPEG or WebP decoder (`ccscore.decoders`: a PNG made from a high-quality JPEG) or whose
quantisation reads back through a downscale (`lossless_check.carries_resized_jpeg`: a JPEG resized before it was
stored) and writes `manifest.csv` listing every candidate, kept or rejected, with its source, license and scores.
Training and validation draw from different packages, so validation measures art never trained on.

Ren'Py and Live2D material is reserved for held-out evaluation: any source or file whose name contains
'renpy' or 'live2d' is refused here.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from ccscore.decoders import decoder_trace

from .lossless_check import THRESHOLD_4X4, THRESHOLD_8X8, carries_resized_jpeg, grid_score

REPO_ROOT = Path(__file__).resolve().parents[3]  # the checkout, when running from source


def _default_cache() -> Path:
    """$CCSCORE_DATA_CACHE, else <checkout>/data/cache (git-ignored), else ./data/cache for an installed package."""
    if os.environ.get("CCSCORE_DATA_CACHE"):
        return Path(os.environ["CCSCORE_DATA_CACHE"])
    base = REPO_ROOT if (REPO_ROOT / "runtime").is_dir() else Path.cwd()
    return base / "data" / "cache"


DEFAULT_CACHE = _default_cache()
FORBIDDEN = ("renpy", "live2d")
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tga", ".tif", ".tiff")
MIN_SIDE = 128
MAX_PIXELS = 16_000_000  # a few clip-art files are 100+ Mpx posters; decoding them would dominate the build
ACCEPTED_MODES = {"RGB", "RGBA", "P", "PA", "L", "LA"}
# Share of pixels with a visible luma step below which a flattened image is blank: light maps, fog and
# glow sprites (white or faint on transparent) become empty canvases, useless for training.
MIN_CONTENT = 0.01


@dataclass(frozen=True)
class Source:
    name: str  # Debian package name
    split: str  # "train" or "val"
    license: str  # summary of the package's debian/copyright for the art files
    globs: tuple[str, ...] = ("**/*",)  # relative to the unpacked package root
    max_files: int | None = None  # deterministic subset for very large packages


# Painted / drawn game art and clip art. Licenses summarised from each package's
# /usr/share/doc/<pkg>/copyright (Debian 12 versions); the manifest repeats them per file.
SOURCES: tuple[Source, ...] = (
    Source("wesnoth-1.16-data", "train", "GPL-2+", ("usr/share/games/wesnoth/**/*",)),
    Source("openclipart-png", "train", "public domain (Openclipart dedication)", max_files=2500),
    Source("hedgewars-data", "train", "GPL-2 (art; some files MIT/BSD/zlib, see copyright)"),
    Source("tuxpaint-stamps-default", "train", "GPL-2"),
    Source("frozen-bubble-data", "train", "GPL-2"),
    Source("desktop-base", "train", "GPL-2+ / CC-BY-SA-3.0 (theme artwork)"),
    Source("flare-game", "val", "CC-BY-SA-3.0+"),
    Source("supertux-data", "val", "GPL-2+/GPL-3+/CC-BY-SA (mixed, see copyright)"),
    Source("freedroidrpg-data", "val", "GPL-2+ (art; some files CC0/Expat, see copyright)"),
    Source("pingus-data", "val", "GPL-2+"),
)


def is_forbidden(text: str) -> bool:
    low = text.lower().replace("'", "").replace("_", "").replace("-", "")
    return any(word in low for word in FORBIDDEN)


def _check_sources(sources: tuple[Source, ...]) -> None:
    for s in sources:
        if is_forbidden(s.name):
            raise ValueError(f"source {s.name!r} is reserved for held-out evaluation")
        if s.split not in ("train", "val"):
            raise ValueError(f"source {s.name!r}: split must be 'train' or 'val'")


def fetch_package(name: str, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Downloads (if not cached) and unpacks one Debian package; returns its unpacked root."""
    debs, root = cache_dir / "debs", cache_dir / "pkgs" / name
    if root.is_dir() and any(root.iterdir()):
        return root
    debs.mkdir(parents=True, exist_ok=True)
    existing = sorted(debs.glob(f"{name}_*.deb"))
    if not existing:
        subprocess.run(["apt-get", "download", name], cwd=debs, check=True, stdout=subprocess.DEVNULL)
        existing = sorted(debs.glob(f"{name}_*.deb"))
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(existing[-1]), str(root)], check=True)
    return root


def candidate_files(source: Source, root: Path) -> list[Path]:
    files = set()
    for pattern in source.globs:
        for p in root.glob(pattern):
            if p.is_file() and p.suffix.lower() in LOSSLESS_SUFFIXES:
                files.add(p)
    ordered = sorted(files)
    if source.max_files is not None and len(ordered) > source.max_files:
        # Seeded by the name so the subset is stable across runs and machines.
        rng = np.random.default_rng(list(source.name.encode()))
        ordered = sorted(ordered[i] for i in rng.choice(len(ordered), source.max_files, replace=False))
    return ordered


def flatten_alpha(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any accepted mode -> uint8 RGB, transparent parts composited over `background`."""
    rgba = im.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return np.asarray(Image.alpha_composite(base, rgba).convert("RGB"))


def load_clean(path: str | Path, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    with Image.open(path) as im:
        return flatten_alpha(im, background)


def _load_candidate(path: Path, row: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Fills size/mode into `row`; returns the flattened image and its opaque pixels [N, 3], or None with
    row["status"] set to why not."""
    with warnings.catch_warnings():
        # Size limits are ours (MAX_PIXELS); Pillow's bomb warning for the few posters is just noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            row.update(width=im.width, height=im.height, mode=im.mode)
            if min(im.size) < MIN_SIDE:
                row["status"] = "rejected_small"
            elif im.width * im.height > MAX_PIXELS:
                row["status"] = "rejected_huge"
            elif im.mode not in ACCEPTED_MODES:
                row["status"] = "rejected_mode"
            else:
                rgb = flatten_alpha(im)
                if _content_share(rgb) >= MIN_CONTENT:
                    rgba = np.asarray(im.convert("RGBA"))
                    return rgb, rgba[..., :3][rgba[..., 3] == 255]
                row["status"] = "rejected_blank"
    return None


def _content_share(rgb: np.ndarray) -> float:
    y = rgb.astype(np.int16).sum(axis=2)  # channel sum: cheap and enough to see any edge
    step = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
    return float((step > 6).mean())


def inspect_file(path: Path) -> dict:
    """One manifest row (without source columns): size, mode, scores and the keep/reject decision."""
    row = {"width": 0, "height": 0, "mode": "", "score8": "", "score4": "", "status": "kept"}
    if is_forbidden(str(path)):
        row["status"] = "rejected_forbidden"
        return row
    try:
        loaded = _load_candidate(path, row)
    except Exception as exc:  # broken or exotic files are common in game data; skip, but say why
        row["status"] = f"rejected_error:{type(exc).__name__}"
        return row
    if loaded is None:
        return row
    rgb, opaque = loaded
    score = grid_score(rgb)  # the 512 px window the thresholds were calibrated on
    row.update(score8=round(score.score8, 5), score4=round(score.score4, 5))
    if score.score8 > THRESHOLD_8X8 or score.score4 > THRESHOLD_4X4:
        row["status"] = "rejected_lossy"
    elif decoder_trace([opaque]).proven:
        # A PNG made from a JPEG or WebP at a quality too high for the grid to show: its colours still lie
        # in that decoder's output set (ccscore.decoders), which clean art's do not.
        row["status"] = "rejected_decoded"
    elif carries_resized_jpeg(rgb):
        # A JPEG downscaled before it was stored: no grid at 8 px, but its quantisation reads back through the resize
        # (lossless_check.resized_jpeg_agreement)
        row["status"] = "rejected_resized"
    return row


def _inspect_task(args: tuple[str, str, str, str, str]) -> dict:
    source, split, license_, path, rel = args
    return {"source": source, "split": split, "license": license_, "path": rel, **inspect_file(Path(path))}


MANIFEST_FIELDS = ["source", "split", "license", "path", "width", "height", "mode", "score8", "score4", "status"]


def prepare_sources(
    cache_dir: Path = DEFAULT_CACHE, sources: tuple[Source, ...] = SOURCES, workers: int = 2, log=print
) -> Path:
    """Fetches every source, scans it and writes `<cache_dir>/manifest.csv`; returns the manifest path."""
    _check_sources(sources)
    cache_dir = Path(cache_dir)
    tasks = []
    for s in sources:
        root = fetch_package(s.name, cache_dir)
        files = candidate_files(s, root)
        log(f"{s.name}: {len(files)} candidate files")
        tasks += [(s.name, s.split, s.license, str(p), str(p.relative_to(cache_dir))) for p in files]
    with Pool(workers) as pool:
        rows = pool.map(_inspect_task, tasks, chunksize=16)
    manifest = cache_dir / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    for s in sources:
        mine = [r for r in rows if r["source"] == s.name]
        kept = sum(r["status"] == "kept" for r in mine)
        lossy = sum(r["status"] in ("rejected_lossy", "rejected_decoded", "rejected_resized") for r in mine)
        log(f"{s.name} [{s.split}]: kept {kept}, rejected as lossy {lossy}, other rejects {len(mine) - kept - lossy}")
    return manifest


def kept_files(split: str, cache_dir: Path = DEFAULT_CACHE) -> list[tuple[str, Path]]:
    """(source, absolute path) of every kept image of `split`, in manifest order; [] without a manifest."""
    manifest = Path(cache_dir) / "manifest.csv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as f:
        return [
            (r["source"], Path(cache_dir) / r["path"])
            for r in csv.DictReader(f)
            if r["split"] == split and r["status"] == "kept" and not is_forbidden(r["path"])
        ]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fetch and verify the real clean art sources.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(prepare_sources(args.cache, workers=args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
