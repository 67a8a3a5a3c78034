#!/usr/bin/env bash
# The 0.7.0 candidate (labels avif and jxl, resized damage): measured in the model card, NOT shipped (see there).
# Data, training, export, calibration, evaluation.
# On 2 CPU cores: source download ~4 min, tile builds ~10 min (+ ~10 min for issue #12's supplement), features +
# training ~5 min, evaluation sets ~20 min each (+ ~10 min each for issue #12's kinds), calibration and benchmark
# ~10 min. Needs the [train] extra (imagecodecs and Pillow >= 11.3 give AVIF and JPEG XL; jpegli kinds also need
# `pip install pyjpegli`; cjpeg/cwebp/ImageMagick/GraphicsMagick/avifenc/cjxl kinds need those Debian tools
# (libjpeg-turbo-progs, webp, imagemagick, graphicsmagick, libavif-bin, libjxl-tools); kinds without their
# encoder are left out). Writes data/ and runs/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${VERSION:-0.7.0}
summary="8000 images (50% procedural illustrations, 50% verified-lossless GPL/CC/public-domain game and clip art \
from Debian packages: wesnoth, openclipart, hedgewars, tuxpaint stamps, frozen-bubble, desktop-base), wild-looking \
negatives (grey, line art, manga, down/upscales with every kernel, smooth renders, 8% small crops) and positives \
(JPEG from Pillow/OpenCV/imagecodecs/mozjpeg/libjpeg9/cjpeg/ImageMagick/jpegli, grey JPEG, JPEG'd line art and \
manga, WebP from libwebp/cwebp, WebP of grey art), plus 2000 chroma-only JPEG q100 twins; \
plus 4000 images of issue #12 damage (AVIF from Pillow/imagecodecs libavif at speeds 4-10, 4:2:0 and 4:4:4, \
JPEG XL from imagecodecs libjxl at distance 0.5-4 and efforts 1-8, JPEG and WebP resized after compression \
x0.5-0.95 or x1.25-4 with every Pillow/OpenCV kernel, no quality target; clean resampled negatives)"

ccscore-export build-data --split train --images 8000 --out data/train-v6.npz --prepare-sources
ccscore-export build-data --split val --images 1500 --out data/val-v6.npz
# Quality-100 JPEGs with subsampled chroma leave no luma trace: twins of clean tiles whose chroma alone went
# through JPEG q100 teach the head to read the chroma block (--chroma).
ccscore-export build-data --chroma-twins 2000 --from data/train-v6.npz --out data/train-v6-twins.npz
# Issue #12: AVIF, JPEG XL and JPEG/WebP resized after compression, with resampled clean art as their negatives,
# built on their own (--mix issue12, a seed of their own) and merged with the sets above.
ccscore-export build-data --split train --images 4000 --mix issue12 --seed 12 --out data/train-v7-codecs.npz
ccscore-export build-data --split val --images 800 --mix issue12 --seed 12 --out data/val-v7-codecs.npz
ccscore-export build-data --merge data/train-v6-twins.npz data/train-v7-codecs.npz --out data/train-v7.npz
ccscore-export build-data --merge data/val-v6.npz data/val-v7-codecs.npz --out data/val-v7.npz
# The encoder keeps 8x8 DCT frequencies 0,1,3,5,7 per direction (24 coefficients, 1.8x cheaper than all 63;
# odd frequencies carry most of the on-grid contrast, and the 0 row and column keep false positives down).
ccscore-export train --train data/train-v7.npz --val data/val-v7.npz --out runs/v7 --epochs 80 --seed 0 \
    --frequencies 0,1,3,5,7 --frequencies all --chroma --training-data "$summary"

# Two disjoint evaluation sets from the validation packages (never trained on): one to choose the grid gate on,
# one to report on. Every clean image in 51 kinds (clean, grey, line art, manga, resampled, small, flat, ...;
# JPEG from five encoders, WebP, AVIF from avifenc and Pillow, JPEG XL from cjxl, JPEG/WebP resized after ...).
# Sets built before issue #12 get its kinds added in place with --kinds (other kinds and rows untouched):
#   ccscore-export build-data --eval-from data/eval-clean-val --out data/eval-wild --seed 0 --kinds \
#       avif_avifenc,avif_pillow,jxl_cjxl,jpeg_downscaled,jpeg_upscaled_x2,webp_downscaled
ccscore-export build-data --split val --export-clean 120 --out data/eval-clean-val --seed 0
ccscore-export build-data --eval-from data/eval-clean-val --out data/eval-wild --seed 0 --workers 2
ccscore-export build-data --split val --export-clean 120 --out data/eval-clean-cal --seed 1 --exclude-from data/eval-clean-val
ccscore-export build-data --eval-from data/eval-clean-cal --out data/eval-wild-cal --seed 1 --workers 2

ccscore-export export runs/v7/best.pt --output runs/v7/candidate.onnx --validation-data data/val-v7.npz --version "$version"
ccscore-export calibrate runs/v7/candidate.onnx --cal-set data/eval-wild-cal --periods jpeg=8,webp=4,avif=4,jxl=8 \
    --json runs/v7/grid-gate.json
ccscore-export export runs/v7/best.pt --output runs/v7/ccscore-detector-0.7.0.onnx --validation-data data/val-v7.npz \
    --version "$version" --grid-gate runs/v7/grid-gate.json

python -m ccscore_export.data.real_lossy --out data/real-lossy
python benchmarks/accuracy.py --eval-set data/eval-wild --real-lossy data/real-lossy --json runs/v7/eval-wild.json
