"""Real lossy files from the wild, re-saved as PNG: the accuracy benchmark's `--real-lossy` set.

These are JPEG files that art packages ship (made by the artists' own tools, not by our encoders), taken
only from the validation-split sources, so no training source contributes. Each is decoded once and stored as
PNG; every one of them should be flagged. Quality is estimated from the file's quantisation table (IJG
scaling) for the record.

    python -m ccscore_export.data.real_lossy --out data/real-lossy [--per-source 10]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .sources import DEFAULT_CACHE, SOURCES

# IJG's standard luminance table (quality 50), in natural order.
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])  # fmt: skip


def ijg_quality(table: np.ndarray) -> int:
    """The IJG quality (1-100) whose scaled luminance table is closest to `table` (natural order)."""
    best, best_err = 50, float("inf")
    for q in range(1, 101):
        scale = 5000 / q if q < 50 else 200 - 2 * q
        scaled = np.clip((IJG_LUMA * scale + 50) // 100, 1, 255)
        err = float(np.abs(scaled - table).sum())
        if err < best_err:
            best, best_err = q, err
    return best


def luma_table(im: Image.Image) -> np.ndarray | None:
    """The file's luminance quantisation table in natural order (Pillow's order), or None for non-JPEG."""
    tables = getattr(im, "quantization", None)
    return np.array(tables[0]) if tables else None


def collect(cache_dir: Path, out_dir: Path, per_source: int = 10, min_side: int = 200) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for source in SOURCES:
        if source.split != "val":
            continue
        root = cache_dir / "pkgs" / source.name
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".webp") and p.is_file())
        kept = 0
        for path in files:
            if kept >= per_source:
                break
            try:
                im = Image.open(path)
                if min(im.size) < min_side:
                    continue
                table = luma_table(im)
                rgb = im.convert("RGB")
            except Exception:  # a broken file in a package is simply not part of the set
                continue
            target = out_dir / f"{source.name}__{path.parent.name}__{path.stem}.png"  # stems repeat across folders
            rgb.save(target, compress_level=1)
            rows.append({"path": target.name, "source": source.name, "license": source.license,
                         "original": str(path.relative_to(root)), "format": im.format,
                         "estimated_quality": ijg_quality(table) if table is not None else ""})
            kept += 1
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "source", "license", "original", "format", "estimated_quality"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} real lossy files to {out_dir}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--per-source", type=int, default=10)
    args = parser.parse_args(argv)
    collect(args.cache, args.out, args.per_source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
