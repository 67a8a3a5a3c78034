#!/usr/bin/env bash
# The 0.7.2 candidate (labels avif and jxl on 0.6.2's data), and with VARIANT=jxl the 0.7.3 candidate (label jxl
# alone, AVIF tiles left out too): measured in the model card, not shipped (see there). BAR=1 calibrates the same
# training on issue #10's bar (`calibrate --pool-groups --lossy-lines`: clean groups pooled, each at the lower of
# its bar and 3%; lossy lines held with an image to spare) into runs/v74 (0.7.4; with VARIANT=jxl, runs/v75,
# 0.7.5): the candidates for the runtime's decoder check with AVIF's libyuv conversion. 0.7.4 is the shipped
# model (export/recipes/default.sh runs this with BAR=1 and exports runs/v74 into models/).
# Needs the tiles of both other recipes: data/train-v62.npz, data/val-v62.npz (export/recipes/default.sh) and
# data/train-v7-codecs.npz, data/val-v7-codecs.npz (export/recipes/candidate-0.7.0-codecs.sh: AVIF, JPEG XL,
# resized damage and resampled clean negatives). On 2 CPU cores: merge ~1 min, features + training ~5 min,
# calibration ~6 min (405 gates), each evaluation set ~2 min with --workers 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${VERSION:-0.7.2}
run=v72 labels=clean,jpeg,webp,avif,jxl leave_out=resized_from periods=jpeg=8,webp=4,avif=4,jxl=8
summary="v0.6.2's training tiles (see the 0.6.2 recipe) plus issue #12's AVIF (Pillow/imagecodecs libavif, speeds \
4-10, 4:2:0 and 4:4:4) and JPEG XL (imagecodecs libjxl, distance 0.5-4, efforts 1-8) tiles and their resampled clean \
negatives; JPEG and WebP resized after compression left out"
if [ "${VARIANT:-}" = jxl ]; then
    version=${VERSION:-0.7.3}
    run=v73 labels=clean,jpeg,webp,jxl leave_out=resized_from,avif periods=jpeg=8,webp=4,jxl=8
    summary="v0.6.2's training tiles (see the 0.6.2 recipe) plus issue #12's JPEG XL tiles (imagecodecs libjxl, \
distance 0.5-4, efforts 1-8) and resampled clean negatives; AVIF, and JPEG and WebP resized after compression, left out"
fi
data=$run calibration=()
if [ "${BAR:-}" = 1 ]; then
    version=${VERSION:-$([ "$run" = v72 ] && echo 0.7.4 || echo 0.7.5)}
    run=$([ "$run" = v72 ] && echo v74 || echo v75) calibration=(--pool-groups --lossy-lines)
fi

# JPEG and WebP resized after compression are left out: the encoder's fixed-grid statistics cannot see them, and
# as positives they teach the head to flag resampled clean art (the 0.7.0 candidate's lesson).
ccscore-export build-data --merge data/train-v62.npz data/train-v7-codecs.npz --leave-out "$leave_out" \
    --out "data/train-$data.npz"
ccscore-export build-data --merge data/val-v62.npz data/val-v7-codecs.npz --leave-out "$leave_out" --out "data/val-$data.npz"
ccscore-export train --train "data/train-$data.npz" --val "data/val-$data.npz" --out "runs/$run" --epochs 80 --seed 0 \
    --frequencies 0,1,3,5,7 --frequencies all --chroma --labels "$labels" --training-data "$summary"
ccscore-export export "runs/$run/best.pt" --output "runs/$run/candidate.onnx" --validation-data "data/val-$data.npz" \
    --version "$version"
ccscore-export calibrate "runs/$run/candidate.onnx" --cal-set data/eval-wild-cal --periods "$periods" \
    "${calibration[@]}" --json "runs/$run/grid-gate.json"
ccscore-export export "runs/$run/best.pt" --output "runs/$run/gated.onnx" --validation-data "data/val-$data.npz" \
    --version "$version" --grid-gate "runs/$run/grid-gate.json"
python benchmarks/accuracy.py --model "runs/$run/gated.onnx" --eval-set data/eval-wild-cal --workers 2 \
    --json "runs/$run/eval-wild-cal.json"
python benchmarks/accuracy.py --model "runs/$run/gated.onnx" --eval-set data/eval-wild --real-lossy data/real-lossy \
    --workers 2 --json "runs/$run/eval-wild.json"
