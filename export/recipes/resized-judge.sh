#!/usr/bin/env bash
# Rebuilds the runtime's resized-damage judge (runtime/ccscore/resized_judge.json) for the bundled model: two sets of
# 400 clean images of the *training* sources; of the first, JPEG-then-downscaled versions four times (seeds 11-14:
# encoder, quality 50-90, scale 0.5-0.9 and kernel drawn per image) and every clean kind once (seed 11); of the
# second, two times (15, 16) and every clean kind once (15); of each, JPEG then downscaled on grey art and on line art
# with their clean controls (seeds 17, 18; session 22); then the judge fitted on them and its threshold chosen on the
# calibration set (data/eval-wild-cal, built by default.sh from the validation sources; a set built before session 22
# gets its grey and line-art kinds added first), then the appearance network (last lines). On 2 CPU cores: sets
# ~18 min, reading ~30 min, fitting ~4 min, the network ~30 min. Needs the [train] extra and the sources (default.sh's
# --prepare-sources). Writes data/judge (git-ignored) and the JSONs.
set -euo pipefail
cd "$(dirname "$0")/../.."
clean=blurred,canvas_texture,clean,downscaled,downscaled_lanczos,flat,grainy_resized,grey,lineart,manga,\
manga_downscaled,noisy,palette,palette_dither,pixel_art,pixel_art_smooth,resampled,sharpened,small,smooth_render,\
upscaled_other,upscaled_x2
[ -d data/judge/clean-train ] || ccscore-export build-data --split train --export-clean 400 --out data/judge/clean-train --cache data/cache
[ -d data/judge/train-a ] || ccscore-export build-data --eval-from data/judge/clean-train --out data/judge/train-a \
    --seed 11 --kinds "jpeg_downscaled,$clean" --workers 2
for part in b:12 c:13 d:14; do
    [ -d "data/judge/train-${part%%:*}" ] || ccscore-export build-data --eval-from data/judge/clean-train \
        --out "data/judge/train-${part%%:*}" --seed "${part##*:}" --kinds jpeg_downscaled --workers 2
done
[ -d data/judge/clean-train2 ] || ccscore-export build-data --split train --export-clean 400 --seed 5 \
    --exclude-from data/judge/clean-train --out data/judge/clean-train2 --cache data/cache
[ -d data/judge/train-e ] || ccscore-export build-data --eval-from data/judge/clean-train2 --out data/judge/train-e \
    --seed 15 --kinds "jpeg_downscaled,$clean" --workers 2
[ -d data/judge/train-f ] || ccscore-export build-data --eval-from data/judge/clean-train2 --out data/judge/train-f \
    --seed 16 --kinds jpeg_downscaled --workers 2
styles=jpeg_grey_downscaled,jpeg_lineart_downscaled,grey_downscaled,lineart_downscaled
[ -d data/judge/train-g ] || ccscore-export build-data --eval-from data/judge/clean-train --out data/judge/train-g \
    --seed 17 --kinds "$styles" --workers 2
[ -d data/judge/train-h ] || ccscore-export build-data --eval-from data/judge/clean-train2 --out data/judge/train-h \
    --seed 18 --kinds "$styles" --workers 2
[ -f data/eval-wild-cal/manifest.csv ] || {
    echo "no calibration set: run export/recipes/default.sh first" >&2
    exit 1
}
grep -q ',jpeg_grey_downscaled,' data/eval-wild-cal/manifest.csv || ccscore-export build-data \
    --eval-from data/eval-clean-cal --out data/eval-wild-cal --seed 1 --kinds "$styles" --workers 2
ccscore-export resized-judge --train data/judge/train-a data/judge/train-b data/judge/train-c data/judge/train-d \
    data/judge/train-e data/judge/train-f data/judge/train-g data/judge/train-h \
    --cal data/eval-wild-cal --max-clean 0.005 --features data/judge/features.json \
    --out runtime/ccscore/resized_judge.json
# Sessions 24-25: the resized-damage appearance network (a small CNN over each image's most textured 64 px cells, up
# to 32) on the same folders but train-c and train-d (as it was trained), its threshold on the calibration set by the
# judge's rule; after the judge, whose verdicts it counts (session 25: ~10 min reading the folders' 290,716 cells and
# the calibration set, ~10 min training).
ccscore-export resized-appearance --train data/judge/train-a data/judge/train-b data/judge/train-e data/judge/train-f \
    data/judge/train-g data/judge/train-h --cal data/eval-wild-cal --max-clean 0.002 --cells data/judge/cells \
    --out runtime/ccscore/resized_appearance.json
