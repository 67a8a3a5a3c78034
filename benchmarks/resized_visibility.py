"""How visible the damage of a resized-after-compression kind is, and which of its images the runtime misses (issue
#12, session 27): each image of the kind against its clean source resampled to the same size with the same kernel
(the manifest's detail names it), as PSNR over RGB, sorted, with the runtime's label; then the misses per PSNR band.
A JPEG downscaled after compression at 46 dB or more differs from the clean downscale by under 1.3 levels RMS: the
eye sees nothing there, and the bar counts it as any other.

    python benchmarks/resized_visibility.py --eval-set data/eval-wild --kind jpeg_downscaled
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

BANDS = (30.0, 35.0, 40.0, 46.0, np.inf)  # dB, upper edges


def psnr(damaged: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((damaged.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def kernel_of(detail: str) -> str:
    """The resampling kernel a build's detail names (`encoder:q85:x0.70:pil_lanczos[:...]`)."""
    from ccscore_export.data.wild import KERNELS

    names = [part for part in detail.split(":") if part in KERNELS]
    if not names:
        raise ValueError(f"no resampling kernel in {detail!r}")
    return names[0]


def clean_resampled(clean: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """The clean source resized to `size` (width, height) with the build's kernel."""
    from ccscore_export.data.wild import KERNELS

    if kernel.startswith("pil_"):
        return np.asarray(Image.fromarray(clean).resize(size, KERNELS[kernel]))
    import cv2

    return cv2.resize(clean, size, interpolation=KERNELS[kernel])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", type=Path, required=True, help="a set built by `ccscore-export build-data`")
    # Only these kinds are the colour source compressed, then downscaled, nothing else: grey and line art are drawn
    # from the source before compression, upscales cropped and sometimes sharpened (the reference would be wrong).
    parser.add_argument("--kind", default="jpeg_downscaled", choices=("jpeg_downscaled", "webp_downscaled"),
                        help="a kind compressed then downscaled (default: %(default)s)")
    opts = parser.parse_args(argv)
    from ccscore import Scorer

    scorer = Scorer(device="cpu")
    with open(opts.eval_set / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == opts.kind]
    if not rows:
        parser.error(f"no images of kind {opts.kind!r} in {opts.eval_set}")
    read = []
    for row in rows:
        with Image.open(opts.eval_set / row["path"]) as im:
            damaged = np.asarray(im.convert("RGB"))
        with Image.open(opts.eval_set / "clean" / row["source"]) as im:  # the source as the build cropped it
            clean = np.asarray(im.convert("RGB"))
        reference = clean_resampled(clean, (damaged.shape[1], damaged.shape[0]), kernel_of(row["detail"]))
        label = scorer.score(opts.eval_set / row["path"]).label
        read.append((psnr(damaged, reference), label, row["detail"], damaged.shape[1], damaged.shape[0], row["path"]))
    read.sort()
    for value, label, detail, width, height, path in read:
        print(f"{value:6.1f} dB  {label:6} {detail:42} {width}x{height}  {path}")
    print(f"\n{opts.kind}: {len(read)} images; per PSNR band: missed (labelled clean) / named another codec / all")
    low = -np.inf
    for high in BANDS:
        band = [r for r in read if low <= r[0] and (r[0] < high or high == np.inf)]  # the last takes in inf
        print(f"  {low:5.0f} - {high:<4.0f} dB: {sum(r[1] == 'clean' for r in band):3} / "
              f"{sum(r[1] not in ('clean', 'jpeg') for r in band):3} / {len(band):3}")
        low = high
    return 0


if __name__ == "__main__":
    sys.exit(main())
