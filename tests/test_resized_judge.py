"""The resized-damage judge (ccscore.resized_judge; fitted by export/ccscore_export/resized_judge.py): JPEG damage
downscaled after compression that no single rule of Scorer.find_downscaled finds, judged on the grid's signs in
luma and chroma together (ccscore.resized.resized_features)."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import assert_broken_bundled_network_fails_in_one_line, compress, draw_art, resized
from ccscore import scorer as scorer_module
from ccscore.resized import JUDGE_GLOBALS, JUDGE_PER_PLANE, resized_features, resized_period
from ccscore.resized_judge import ResizedJudge
from ccscore.tiling import content_tiles


@pytest.fixture(scope="module")
def scorer():
    from ccscore import Scorer

    return Scorer(device="cpu")


def spec(features=4, hidden=3, threshold=0.5, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {"mean": rng.normal(size=features).tolist(), "scale": rng.uniform(0.5, 2, features).tolist(),
            "hidden": {"weight": rng.normal(size=(hidden, features)).tolist(),
                       "bias": rng.normal(size=hidden).tolist()},
            "out": {"weight": rng.normal(size=hidden).tolist(), "bias": 0.3}, "threshold": threshold}


def test_the_bundled_judge_loads_and_is_for_the_bundled_model(scorer):
    judge = ResizedJudge.bundled()
    assert judge.features == JUDGE_GLOBALS + 3 * JUDGE_PER_PLANE
    assert judge.fitted_for == (scorer.info.name, scorer.info.version, scorer.model_digest)
    assert scorer.resized_judge == judge and 0 < judge.threshold < 1 and scorer._judge_applies()


def test_probability_is_the_networks_forward_pass():
    s = spec()
    judge = ResizedJudge.from_spec(s)
    x = np.array([0.3, -1.0, 2.0, 0.5])
    hidden = np.tanh(np.array(s["hidden"]["weight"]) @ ((x - s["mean"]) / np.array(s["scale"])) + s["hidden"]["bias"])
    expected = 1 / (1 + np.exp(-(np.array(s["out"]["weight"]) @ hidden + 0.3)))
    assert judge.probability(x) == pytest.approx(expected, abs=1e-12)
    assert judge.flags(judge.probability(x)) == (expected > 0.5)
    assert not judge.flags(None)
    with pytest.raises(ValueError, match="reads 4 inputs"):
        judge.probability(np.zeros(5))


@pytest.mark.parametrize("broken", [
    lambda s: s.update(scale=[1.0, 0.0, 1.0, 1.0]),  # a zero scale
    lambda s: s.update(mean=s["mean"][:3]),  # fewer means than inputs
    lambda s: s["hidden"].update(bias=[0.0]),  # a bias per hidden unit
    lambda s: s["out"].update(weight=[float("nan")] * 3),
    lambda s: s.update(threshold=float("inf")),
])
def test_a_judge_that_does_not_fit_together_is_refused(broken):
    s = spec()
    broken(s)
    with pytest.raises(ValueError):
        ResizedJudge.from_spec(s)


def test_a_broken_bundled_judge_is_one_line_model_error_with_the_bundled_model_only(monkeypatch, tmp_path):
    from ccscore import resized_judge

    assert_broken_bundled_network_fails_in_one_line(
        monkeypatch, tmp_path, resized_judge, "BUNDLED_JUDGE", ResizedJudge.bundled,
        ['{"mean": [0.0]}', "not json", '{"model": "x"}', "", json.dumps(spec())],  # the last: 4 inputs
        "unusable resized-damage judge", "resized_judge")


def test_the_judge_is_asked_only_for_the_model_file_and_tiling_it_was_fitted_for(monkeypatch, tmp_path):
    from ccscore import Scorer, resized_judge
    from ccscore.model_info import default_model_path

    same = tmp_path / "copy.onnx"
    same.write_bytes(default_model_path().read_bytes())
    assert Scorer(same, device="cpu").resized_judge is not None  # the same file's content, elsewhere
    assert Scorer(device="cpu", max_tiles=16)._judge_applies() is False  # more tiles than it read
    assert Scorer(device="cpu", all_tiles=True)._judge_applies() is False  # no early stop
    assert Scorer(device="cpu", judge_resized=False)._judge_applies() is False
    for fitted_for in [("another-model", "0.7.4", ""), ("ccscore-detector", "0.7.4", "0" * 64)]:
        other = replace(ResizedJudge.bundled(), fitted_for=fitted_for)
        monkeypatch.setattr(resized_judge.ResizedJudge, "bundled", classmethod(lambda cls, judge=other: judge))
        assert Scorer(device="cpu").resized_judge is None


def test_settings_holding_the_judge_compare_by_value(scorer):
    """The pipeline's kept workers are rebuilt only where the settings changed (ScorerSettings equality)."""
    from ccscore.scorer import ScorerSettings

    assert ScorerSettings.of(scorer) == ScorerSettings.of(scorer)
    judge = scorer.resized_judge
    assert judge == ResizedJudge.bundled() and judge != replace(judge, threshold=judge.threshold / 2)


def features_of(rgb: np.ndarray, lean: float = 0.5, sharpness=0.9):
    tiles = content_tiles(rgb, 128, max_tiles=8)
    return resized_features(tiles.own(), tiles.boxes, rgb.shape[1::-1], lean, sharpness)


def test_features_read_the_grid_at_the_downscaled_period_in_every_plane():
    damaged = resized(compress(draw_art(3, (768, 640)), "JPEG", 60), 0.7)
    values = features_of(damaged)
    assert values.shape == (JUDGE_GLOBALS + 3 * JUDGE_PER_PLANE,) and np.all(np.isfinite(values))
    assert values[0] == 0.5 and values[1] == 0.9 and values[2] == 0.0 and values[3] == 0.0  # lean, sharpness, colour
    period, plane = resized_period(values)
    assert abs(period - 8 * 0.7) < 0.1 and plane in ("luma", "chroma")
    luma_strength = values[JUDGE_GLOBALS]
    assert luma_strength > np.log(3.5)  # a grid, well over its spectrum's median
    clean = features_of(resized(draw_art(3, (768, 640)), 0.7), sharpness=None)
    assert clean[2] == 1.0 and abs(resized_period(clean)[0] - 8 * 0.7) > 0.3  # its resize peaks elsewhere


def test_grey_art_reads_no_chroma():
    """float32's chroma of grey pixels is rounding noise, not colour: its planes read as absent."""
    grey = np.asarray(Image.fromarray(resized(compress(draw_art(3, (768, 640)).convert("L").convert("RGB"), "JPEG", 60),
                                              0.7)))
    values = features_of(grey, sharpness=None)
    assert values[3] == 1.0 and resized_period(values)[1] == "luma"
    for plane in (1, 2):
        start = JUDGE_GLOBALS + plane * JUDGE_PER_PLANE
        assert values[start] == np.log(1e-3) and not values[start + 1:start + JUDGE_PER_PLANE].any()


def test_the_judge_reads_at_scoring_what_its_fitting_reads(scorer, monkeypatch):
    """`Scorer.resized_inputs` (the fitting's read, the image tiled again) gives the vector the judgement read."""
    seen = []

    class Recording(ResizedJudge):
        def probability(self, values):
            seen.append(values)
            return super().probability(values)

    monkeypatch.setattr(scorer, "resized_judge", Recording(**vars(scorer.resized_judge)))
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", 0.0)  # asked whatever the network scores
    image = resized(draw_art(0, (512, 448)), 0.8)  # clean art the head leans lossy on a little (0.985): asked
    result = scorer.score(image)
    assert len(seen) == 1 and result.label == "clean", result.label
    assert np.array_equal(seen[0], scorer.resized_inputs(image, result))


def test_features_need_a_tile_to_read():
    assert features_of(np.full((20, 20, 3), 128, np.uint8)) is None


def flagging_everything(scorer) -> ResizedJudge:
    return replace(scorer.resized_judge, threshold=-1.0)


def test_an_image_the_judge_flags_is_jpeg_downscaled_with_its_probability(scorer, monkeypatch):
    clean = resized(draw_art(5, (640, 512)), 0.8)
    base = scorer.score(clean)
    assert base.label == "clean"
    lean = float(np.mean([t.scores["clean"] for t in base.tiles]))
    monkeypatch.setattr(scorer, "resized_judge", flagging_everything(scorer))
    monkeypatch.setattr(scorer_module, "JUDGE_MAX_TILE_CLEAN", 1.0)
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", 0.0)  # asked whatever the network scores
    judged = scorer.score(clean)
    assert judged.label == "jpeg" and judged.evidence.word == "downscaled", lean
    assert judged.quality is None
    details = judged.details()["downscaled"]
    assert 0 <= details["judged"] <= 1 and details["plane"] in ("luma", "chroma")
    assert details["scale"] == pytest.approx(details["period"] / 8, abs=1e-3)
    # the head's lean limit is asked first: a judge that flags everything is not asked over it (nor the appearance
    # network, asked up to its own gate)
    monkeypatch.setattr(scorer, "resized_appearance", None)
    monkeypatch.setattr(scorer_module, "JUDGE_MAX_TILE_CLEAN", lean - 1e-6)
    assert scorer.score(clean).label == "clean"


def test_a_judge_that_flags_nothing_changes_nothing(scorer, monkeypatch):
    monkeypatch.setattr(scorer, "resized_appearance", None)  # it renames WebP verdicts with the judge
    images = [resized(compress(draw_art(seed, (512, 448)), "JPEG", 85), 0.6) for seed in range(3)]
    without = [scorer.score(im).label for im in images]
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=1.0))
    assert [scorer.score(im).label for im in images] == without
    monkeypatch.setattr(scorer, "resized_judge", None)
    assert [scorer.score(im).label for im in images] == without


def test_rule_findings_keep_their_evidence(scorer, monkeypatch):
    """The judge asks only what the rules left clean: a grid the luma rule finds is not 'judged'."""
    damaged = resized(compress(draw_art(3, (768, 640)), "JPEG", 60), 0.7)
    monkeypatch.setattr(scorer, "resized_judge", flagging_everything(scorer))
    result = scorer.score(damaged)
    assert result.evidence.word == "downscaled" and result.details()["downscaled"]["judged"] is None


def test_fitting_gives_the_network_torch_fitted():
    pytest.importorskip("torch")
    from ccscore_export.resized_judge import check_against_torch, choose_threshold, fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = (x[:, 0] + 0.5 * x[:, 3] > 0.3).astype(int)
    spec = fit(x, y, hidden=8, epochs=200)  # raises where the runtime's pass is not torch's
    judge = ResizedJudge.from_spec({**spec, "threshold": 0.5})
    p = np.array([judge.probability(row) for row in x])
    assert ((p > 0.5) == y).mean() > 0.95
    with pytest.raises(RuntimeError, match="differs from torch"):
        check_against_torch(spec, x, 1 - p)
    clean = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert choose_threshold(clean, 0.2) == 0.7  # over 0.7: one of five
    assert (clean > choose_threshold(clean, 0.0)).sum() == 0


def test_the_threshold_keeps_every_clean_group_bar():
    from ccscore_export.resized_judge import choose_threshold_within_bars, within_bars

    # 100 downscaled clean images (bar 3%: 3 flagged at most), 2 already flagged; 100 originals (5%), none
    rows = ([{"kind": "downscaled", "verdict": "jpeg"}] * 2 + [{"kind": "downscaled", "verdict": "clean"}] * 98
            + [{"kind": "clean", "verdict": "clean"}] * 100)
    scores = np.zeros(200)
    scores[2:6] = [0.9, 0.8, 0.7, 0.6]  # downscaled art the judge likes
    scores[100:103] = [0.95, 0.85, 0.75]  # originals
    assert within_bars(rows, scores > 0.85) and not within_bars(rows, scores > 0.75)
    # at most 2% of the 198 still clean (3): 0.8 flags 0.95, 0.9, 0.85, one of them downscaled (its bar's last)
    assert choose_threshold_within_bars(rows, scores, 0.02) == 0.8
    assert choose_threshold_within_bars(rows, scores, 0.02, spare=1) == 0.9  # none of them more
    assert choose_threshold_within_bars(rows, np.zeros(200), 0.02) == 0.0  # nothing over 0 to flag
    # 5 of 100 downscaled flagged before the judge (over their 3): the judge may flag originals, never one more of
    # them (before session 30, a group over its bar before the judge left it no threshold: 1.0)
    over = ([{"kind": "downscaled", "verdict": "jpeg"}] * 5 + [{"kind": "downscaled", "verdict": "clean"}] * 95
            + [{"kind": "clean", "verdict": "clean"}] * 300)
    scores = np.zeros(400)
    scores[5], scores[100:103] = 0.9, [0.95, 0.85, 0.75]
    assert within_bars(over, np.zeros(400, bool)) and within_bars(over, scores > 0.9)
    assert not within_bars(over, scores > 0.85)  # the downscaled one at 0.9
    assert choose_threshold_within_bars(over, scores, 0.02) == 0.9


def test_the_fits_inputs_are_read_again_only_for_folders_whose_key_changed(tmp_path, monkeypatch):
    from ccscore_export import resized_judge

    read, saved = [], []
    monkeypatch.setattr(resized_judge, "collect", lambda roots, workers=2, log=print: read.append(roots[0].name)
                        or [{"path": f"{roots[0].name}/a.png", "read": len(read)}])
    folders = [tmp_path / "one", tmp_path / "two"]
    header = "path,label,quality,kind,source,detail\n"
    for folder in folders:
        folder.mkdir()
        (folder / "manifest.csv").write_text(header + "a.png,0,,clean,a.png,\n")

    def cached(roots, cache, reader="r1"):
        return resized_judge.collect_cached(roots, cache, reader, log=lambda *_: None, save=saved.append)

    # an earlier format's value, and an entry without this format's keys: both read again
    cache: dict = {str(folders[0]): "an earlier format's value", str(folders[1]): {"manifest": "x", "rows": []}}
    first = cached(folders, cache)
    assert read == ["one", "two"] and [r["read"] for r in first] == [1, 2] and len(saved) == 2  # saved one by one
    assert cached(folders, cache) == first and read == ["one", "two"]  # nothing read again
    (folders[1] / "manifest.csv").write_text(header + "x.png,0,,clean,x.png,\n")
    changed = cached(folders, cache)
    assert read == ["one", "two", "two"] and changed[0] == first[0] and changed[1]["read"] == 3
    (folders[0] / "manifest.csv").write_text(header + "b.png,1,80,another,b.png,\n")  # a kind not yet positive
    cached(folders, cache)
    assert read[-1] == "one"
    cached(folders, cache)  # nothing new
    assert read[-1] == "one" and len(read) == 4
    monkeypatch.setattr(resized_judge, "POSITIVE_KINDS", resized_judge.POSITIVE_KINDS + ("another",))
    cached(folders, cache)  # the same manifests: only the folder holding the new positive kind is read again
    assert read[4:] == ["one"]
    cached(folders[:1], cache, reader="r2")  # another model or runtime
    assert read[5:] == ["one"]
    (folders[1] / "manifest.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="no kind column"):
        cached(folders[1:], cache)


@pytest.mark.parametrize("args, says", [
    (["--cal", "CAL"], "--train is required"),
    (["--train", "CAL", "--cal", "CAL", "--spare", "-1"], "--spare must be 0 or more"),
    (["--train", "CAL", "--cal", "CAL", "--max-clean", "-0.1"], "--max-clean must be within [0, 1]"),
    (["--train", "CAL", "--cal", "CAL", "SMALL"], "SMALL")])  # every calibration folder is taken, and checked
def test_the_judges_fitting_arguments_are_checked_before_anything_is_read(tmp_path, capsys, args, says):
    from ccscore_export.resized_judge import main

    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    names = {"CAL": str(tmp_path / "cal"), "SMALL": str(tmp_path / "SMALL")}
    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "out.json"), *[names.get(arg, arg) for arg in args]])
    error = capsys.readouterr().err.splitlines()[-1]  # the usage line above it names every option
    assert stopped.value.code == 2 and says in error and not (tmp_path / "out.json").exists()
