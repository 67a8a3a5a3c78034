"""benchmarks/accuracy.py's wild groups, flat "no evidence" share, reliability table and bar lines."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "export", ROOT / "runtime"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

_spec = importlib.util.spec_from_file_location("accuracy_benchmark", ROOT / "benchmarks" / "accuracy.py")
accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accuracy)


def _record(kind: str, label: int, pred: str, p_clean: float, evidence=None, quality: str = "") -> dict:
    return {"path": f"{kind}/x.png", "label": str(label), "quality": quality, "kind": kind, "source": "x.png",
            "pred": pred, "p_clean": p_clean, "pred_quality": None, "tiles_scored": 1, "evidence": evidence}


def test_groups_flat_evidence_and_wild_bar():
    records = (
        [_record("clean", 0, "clean", 0.99)] * 19 + [_record("clean", 0, "jpeg", 0.3)]  # originals: 5% flagged
        + [_record("grey", 0, "webp", 0.1)] + [_record("grey", 0, "clean", 0.9)] * 3  # grey: 25%
        + [_record("flat", 0, "clean", 0.6, "none")] * 3 + [_record("flat", 0, "clean", 0.6, "single")]
        + [_record("jpeg_cjpeg", 1, "jpeg", 0.0, quality="50")] * 9 + [_record("jpeg_pillow", 1, "webp", 0.0, quality="97")]
    )
    s = accuracy.evaluate(records, [])
    assert s["flagged_group_originals"] == 0.05
    assert s["flagged_group_grey"] == 0.25
    assert math.isclose(s["flagged_group_all clean kinds"], 2 / 28)
    assert s["flat_labelled_clean"] == 1.0 and s["flat_no_evidence"] == 0.75
    assert s["caught_group_plain JPEG, five encoders"] == 1.0
    assert s["codec_right_group_plain JPEG, five encoders"] == 0.9
    bar = dict(accuracy.check_wild_bar(s))
    assert bar["originals flagged <= 5%"] and not bar["grey flagged <= 4%"]
    assert not bar['blank or flat images: clean with "no evidence"']
    assert not bar["plain JPEG, five encoders caught >= 99% with the codec right >= 98%"]  # codec right 90%
    assert "manga flagged <= 6%" not in bar  # a group the set lacks is no line


def test_flat_no_evidence_is_unmeasured_without_an_evidence_field():
    records = [_record("flat", 0, "clean", 0.6)] * 2 + [_record("clean", 0, "clean", 0.9)]
    s = accuracy.evaluate(records, [])
    assert s["flat_labelled_clean"] == 1.0 and math.isnan(s["flat_no_evidence"])
    assert not dict(accuracy.check_wild_bar(s))['blank or flat images: clean with "no evidence"']


def test_reliability_rows_bin_counts_and_ece():
    p = np.array([0.0, 0.01, 0.5, 0.95, 1.0, 1.0])
    lossy = np.array([False, False, True, True, True, True])
    rows = accuracy.reliability_rows(p, lossy)
    counts = [int(r[1]) for r in rows[:-1]]
    assert sum(counts) == len(p) and counts[0] == 2 and counts[-1] == 2  # 1.0 falls in the closed last bin
    assert rows[-1][0] == "ECE" and math.isclose(float(rows[-1][2]), (0.005 * 2 + 0.5 + 0.05) / 6, abs_tol=1e-4)


def test_quality_rows_count_a_missed_image_as_100_and_check_the_bar():
    def scored(kind, truth, estimate, source="table"):
        r = _record(kind, 1, "jpeg" if estimate is not None else "clean", 0.0, quality=str(truth))
        return {**r, "pred_quality": estimate, "quality_source": source if estimate is not None else None}

    records = ([scored("jpeg_cjpeg", 50, 50.0)] * 98 + [scored("jpeg_pillow", 60, 64.0, "model"),
                                                        scored("jpeg_imagemagick", 70, None)]
               + [scored("jpeg_q85", 85, 85.0)] * 10 + [scored("webp_cwebp", 40, 44.0, "model")])
    s = accuracy.evaluate(records, [])
    assert math.isclose(s["quality_mae_standard tables, all (bar)_<=80"], (4 + 100) / 100)
    assert s["quality_mae_standard tables, all (bar)_81-90"] == 0.0
    assert s["quality_mae_ImageMagick_<=80"] == 100.0
    assert s["webp_quality_mae_30_95"] == 4.0
    assert "no_quality_ImageMagick_<=80" not in s  # missed (labelled clean), not flagged without a quality
    resized = [{**scored("jpeg_downscaled", 60, None), "pred": "jpeg"}] * 3 + [scored("jpeg_downscaled", 60, None)]
    s = accuracy.evaluate(records + resized, [])
    assert s["no_quality_JPEG then downscaled_<=80"] == 0.75 and s["quality_mae_JPEG then downscaled_<=80"] == 100.0
    bar = dict(accuracy.check_quality_bar(s))
    assert bar["standard-table JPEG quality MAE <= 1.5 at <=80"] and bar["WebP quality MAE <= 5 at 30-95"]
    assert "standard-table JPEG quality MAE <= 1 at 91-95" not in bar  # a band the set lacks is no line
    assert accuracy.label_name("5") == "label5" and accuracy.label_name("1") == "jpeg"


def test_codec_bar_lines_and_labels_past_webp():
    records = (
        [_record("avif_avifenc", 3, "avif", 0.0, quality="60")] * 9 + [_record("avif_pillow", 3, "jpeg", 0.1, quality="70")]
        + [_record("jxl_cjxl", 4, "clean", 0.9, quality="80")] * 2
        + [_record("jpeg_downscaled", 1, "jpeg", 0.0, quality="80")] * 19 + [_record("jpeg_downscaled", 1, "webp", 0.2, quality="60")]
        + [_record("clean", 0, "clean", 0.99)] * 4
    )
    s = accuracy.evaluate(records, [])
    assert s["caught_group_AVIF (avifenc, Pillow)"] == 1.0 and s["codec_right_group_AVIF (avifenc, Pillow)"] == 0.9
    assert s["caught_group_JPEG XL (cjxl)"] == 0.0
    bar = dict(accuracy.check_codec_bar(s))
    assert bar["AVIF (avifenc, Pillow) caught >= 90% with the codec right >= 90%"]
    assert not bar["JPEG XL (cjxl) caught >= 80% with the codec right >= 85%"]
    assert bar["JPEG then downscaled caught >= 95% with the codec right >= 90%"]  # 100% caught, 95% right
    assert "JPEG then upscaled x2 caught >= 90%" not in bar  # a group the set lacks is no line
    assert "caught_jpeg_<=80" not in s  # the resized kinds stay out of the quality bands


def test_a_missing_real_lossy_folder_is_refused_before_scoring(tmp_path, capsys):
    """A --real-lossy folder that is not there would otherwise score no file and drop the real-files line from
    the summary and the bar without a word."""
    import pytest

    eval_set = tmp_path / "eval"
    eval_set.mkdir()
    (eval_set / "manifest.csv").write_text("path,label,quality,kind\n")
    with pytest.raises(SystemExit) as exit_:
        accuracy.main(["--eval-set", str(eval_set), "--real-lossy", str(tmp_path / "real-lossy")])
    assert exit_.value.code == 2
    assert "real-lossy" in capsys.readouterr().err
