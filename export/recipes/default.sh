#!/usr/bin/env bash
# Rebuilds the shipped default model from scratch: data, training, export, evaluation.
# About 15 minutes on 2 CPU cores (source download ~4 min, tile builds ~4 min, features + training ~3 min,
# evaluation folders and benchmark ~4 min). Needs the [train] extra; writes data/ and runs/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${VERSION:-0.5.0}
summary="8000 images (50% procedural illustrations, 50% verified-lossless GPL/CC/public-domain game and clip art \
from Debian packages: wesnoth, openclipart, hedgewars, tuxpaint stamps, frozen-bubble, desktop-base), degraded by \
Pillow/OpenCV/imagecodecs/mozjpeg/libjpeg9 JPEG and libwebp WebP, plus 2000 chroma-only JPEG q100 twins of clean tiles; hard negatives incl. palette, dither, pixel art"

ccscore-export build-data --split train --images 8000 --out data/train-v3.npz --prepare-sources
ccscore-export build-data --split val --images 1500 --out data/val-v3.npz
# Quality-100 JPEGs with subsampled chroma leave no luma trace: twins of clean tiles whose chroma alone went
# through JPEG q100 teach the head to read the chroma block (--chroma).
ccscore-export build-data --chroma-twins 2000 --from data/train-v3.npz --out data/train-v3-twins.npz
# The encoder keeps 8x8 DCT frequencies 0,1,3,5,7 per direction (24 coefficients, 1.8x cheaper than all 63;
# odd frequencies carry most of the on-grid contrast, and the 0 row and column keep false positives down).
ccscore-export train --train data/train-v3-twins.npz --val data/val-v3.npz --out runs/v5 --epochs 80 --seed 0 \
    --frequencies 0,1,3,5,7 --frequencies all --chroma --training-data "$summary"
ccscore-export export runs/v5/best.pt --output models/ccscore-detector.onnx --validation-data data/val-v3.npz \
    --version "$version"

# Evaluation on sources never trained on (the validation split's packages) and on real JPEG files.
ccscore-export build-data --split val --export-clean 120 --out data/eval-clean-val --seed 0
ccscore-export build-data --eval-from data/eval-clean-val --out data/eval-val
python -m ccscore_export.data.real_lossy --out data/real-lossy
python benchmarks/accuracy.py --eval-set data/eval-val --real-lossy data/real-lossy --json runs/v5/eval-val.json
