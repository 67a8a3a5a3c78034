"""The torch-free runtime: library API, CLI contract and clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from ccscore_export.labels import LABELS  # those of the tiny model, exported from the current config
from conftest import BUNDLED_MODEL, draw_art, run_cli, run_python


def test_import_needs_neither_torch_nor_onnxruntime():
    proc = run_python("import ccscore, sys; print('torch' in sys.modules, 'onnxruntime' in sys.modules)",
                      blocked=("torch", "onnxruntime"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_library_scores_in_a_process_where_torch_cannot_be_imported(tiny_model, image_files):
    code = (
        "import json, sys\n"
        "from ccscore import Scorer\n"
        "s = Scorer(sys.argv[1], device='cpu')\n"
        "r = s.score(sys.argv[2])\n"
        "print(json.dumps(r.to_dict(with_tiles=True)))\n"
    )
    proc = run_python(code, str(tiny_model), str(image_files["clean"]), blocked=("torch",))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["scores"]) == set(LABELS)
    assert abs(sum(result["scores"].values()) - 1) < 1e-6
    assert 1 <= len(result["tiles"]) <= 8


@pytest.mark.parametrize("many", [False, True])
def test_missing_onnxruntime_prints_install_hint_and_exits_2(image_files, many):
    # A folder: workers are started, and asked whether they will score, before any session exists.
    args = [str(image_files["clean"].parent), "--workers", str((os.cpu_count() or 1) + 1)] if many else \
        [str(image_files["clean"])]
    proc = run_cli(*args, blocked=("torch", "onnxruntime"))
    assert proc.returncode == 2
    assert "pip install 'ccscore[cpu]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scorer_accepts_path_pil_and_array_alike(tiny_model, image_files):
    from ccscore import Scorer

    scorer = Scorer(tiny_model, device="cpu")
    by_path = scorer.score(image_files["jpeg"])
    pil = Image.open(image_files["jpeg"])
    by_pil = scorer.score(pil)
    by_array = scorer.score(np.asarray(pil.convert("RGB")))
    for other in (by_pil, by_array):
        assert other.scores == pytest.approx(by_path.scores, abs=1e-6)
    assert by_path.path == str(image_files["jpeg"]) and by_pil.path is None
    # Tiles are taken at native resolution: every box lies inside the image and has the tile size.
    width, height = by_path.size
    for tile in by_path.tiles:
        left, top, right, bottom = tile.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert right - left == scorer.info.tile_size == bottom - top


def test_aggregations_differ_and_threshold_decides(tiny_model, image_files):
    from ccscore import Scorer
    from ccscore.scorer import aggregate, decide

    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3]])
    assert aggregate(probs, "mean") == pytest.approx(probs.mean(0))
    assert aggregate(probs, "max") == pytest.approx(np.array([0.9, 0.7, 0.3]) / 1.9)
    assert aggregate(probs, "min").sum() == pytest.approx(1.0)
    # worst_half: the mean of the ceil(N/2) tiles with the lowest P(clean), here rows 1 and 2.
    assert aggregate(probs, "worst_half", clean_index=0) == pytest.approx(probs[[1, 2]].mean(0))
    with pytest.raises(ValueError):
        aggregate(probs, "worst_half")
    scores = {"clean": 0.4, "jpeg": 0.35, "webp": 0.25}
    assert decide(scores, 0.5) == "jpeg"  # P(clean) 0.4 < 1 - 0.5
    assert decide(scores, 0.55) == "jpeg"  # 0.4 < 0.45
    assert decide(scores, 0.7) == "clean"  # 0.4 >= 0.3: not below 1 - T
    scorer = Scorer(tiny_model, device="cpu", aggregate="max", threshold=0.9)
    assert scorer.aggregation == "max" and scorer.threshold == 0.9
    with pytest.raises(ValueError):
        Scorer(tiny_model, device="cpu", aggregate="mode")


def test_small_images_are_padded_into_one_tile(tiny_model, image_files):
    from ccscore import Scorer

    result = Scorer(tiny_model, device="cpu").score(image_files["small"])
    assert len(result.tiles) == 1 and result.size == (40, 30)
    assert result.tiles[0].box == (0, 0, 40, 30)


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "LA", "P", "P+transparency", "L", "CMYK", "I;16"])
def test_tiles_read_in_parts_equal_tiles_of_the_whole_flattened_image(mode):
    """Tiling reads a decoded image in parts (sparse green plane, per-tile alpha flattening); the tiles must
    be bit-identical to those cut from the whole image converted and flattened first."""
    from ccscore.images import DecodedImage
    from ccscore.tiling import content_tiles

    rng = np.random.default_rng(3)
    art = np.asarray(draw_art(5, (517, 389)))
    alpha = rng.choice(np.array([0, 1, 90, 254, 255], np.uint8), size=art.shape[:2])
    im = Image.fromarray(np.dstack([art, alpha]), "RGBA")
    if mode == "P+transparency":
        im = im.convert("RGB").quantize(64)
        im.info["transparency"] = int(np.asarray(im)[0, 0])
    elif mode == "P":
        im = im.convert("RGBA").quantize(64, method=Image.Quantize.FASTOCTREE)
    elif mode == "I;16":  # the art's grey levels spread over 16 bits (a plain convert keeps 0-255: nearly black)
        im = Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
        assert im.mode == "I;16"
    elif mode != "RGBA":
        im = im.convert(mode)
    decoded = DecodedImage.from_pil(im)
    whole = DecodedImage.from_array(decoded.rgb().copy())
    in_parts, from_whole = content_tiles(decoded, 128, max_tiles=6), content_tiles(whole, 128, max_tiles=6)
    assert in_parts.boxes == from_whole.boxes and len(in_parts.boxes) >= 4
    assert np.array_equal(in_parts.pixels, from_whole.pixels)
    if mode in ("RGBA", "LA"):  # transparent pixels were composited over white
        assert (decoded.rgb()[alpha == 0] == 255).all()


def test_cli_jsonl_contract(tiny_model, image_files, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    missing = tmp_path / "missing.png"
    proc = run_cli("--model", str(tiny_model), "--jsonl", str(image_files["clean"]), str(not_an_image),
                   str(missing), str(image_files["webp"]))
    assert proc.returncode == 1, proc.stderr  # some files failed
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(image_files["clean"]), str(not_an_image), str(missing),
                                            str(image_files["webp"])]
    for r in (records[0], records[3]):
        assert r["label"] in LABELS
        assert set(r["scores"]) == set(LABELS)
        assert abs(sum(r["scores"].values()) - 1) < 1e-6
    for r in records[1:3]:
        assert set(r) == {"path", "error"} and "\n" not in r["error"]
    assert "no such file" in records[2]["error"]
    assert "Traceback" not in proc.stderr


def test_cli_readable_output_and_all_good_exit_0(tiny_model, image_files):
    proc = run_cli("--model", str(tiny_model), str(image_files["clean"]), "--aggregate", "median")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(image_files["clean"]) + ": ")
    assert "clean" in proc.stdout and "jpeg" in proc.stdout


@pytest.mark.parametrize("content", [None, b"", b"\x08\x01garbage that is not onnx" * 10])
def test_missing_or_corrupt_model_is_one_line_usage_error(tmp_path, image_files, content):
    model = tmp_path / "model.onnx"
    if content is not None:
        model.write_bytes(content)
    proc = run_cli("--model", str(model), str(image_files["clean"]))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "model" in proc.stderr


def test_cuda_request_that_falls_back_is_reported(tiny_model, image_files):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available here; there is no fallback to observe")
    proc = run_cli("--model", str(tiny_model), "--device", "cuda", str(image_files["clean"]))
    assert proc.returncode == 0
    assert "CUDAExecutionProvider requested but not usable" in proc.stderr


@pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="bundled model not built")
def test_bundled_model_separates_clean_from_compressed(tmp_path):
    from conftest import compress

    from ccscore import Scorer

    scorer = Scorer()  # the default model, found without a path
    assert scorer.info.path.name == BUNDLED_MODEL.name
    assert scorer.info.has_quality
    labels = []
    for seed in range(3):
        clean = draw_art(100 + seed, (640, 512))
        labels.append((scorer.score(clean).label, scorer.score(compress(clean, "JPEG", 50)).label,
                       scorer.score(compress(clean, "WEBP", 50)).label))
    assert [l[0] for l in labels].count("clean") >= 2
    assert [l[1] for l in labels].count("jpeg") >= 2
    assert [l[2] for l in labels].count("webp") >= 2


def test_early_stop_scores_fewer_tiles_only_where_the_first_are_decisive():
    from conftest import compress

    from ccscore import Scorer

    # Without the halved judgement (tests/test_upscaled.py): a soft picture judged clean and judged again halved
    # adds judgements of its halved tiles to the count below.
    early = Scorer(device="cpu", halve_upscaled=False)
    full = Scorer(device="cpu", all_tiles=True, halve_upscaled=False)
    stop = early.early_stop
    assert stop is not None and full.early_stop is None  # the bundled model asks for it; --all-tiles turns it off
    images = []
    for seed in range(4):
        clean = draw_art(200 + seed, (900, 700))
        images += [clean, compress(clean, "JPEG", 60), compress(clean, "WEBP", 95)]
    tiled = [(None, *early.tile(im)) for im in images]
    judged = []  # how many tiles each judgement reads: an image is judged once per tile set it is scored on
    judge = early.judge
    early.judge = lambda outputs, boxes: judged.append(len(boxes)) or judge(outputs, boxes)
    together = early.score_together(tiled)  # one batch for all: must equal scoring each image alone
    del early.judge
    expected = [stop.first_tiles] * len(images) + [len(r.tiles) for r in together if len(r.tiles) > stop.first_tiles]
    assert sorted(judged) == sorted(expected)
    stopped = 0
    for (_, tiles, _), im, result in zip(tiled, images, together):
        alone, every = early.score(im), full.score(im)
        assert alone.scores == pytest.approx(result.scores, abs=1e-6) and len(alone.tiles) == len(result.tiles)
        assert len(every.tiles) == len(tiles.boxes) > stop.first_tiles
        if len(result.tiles) == stop.first_tiles:  # stopped: its first tiles were decisive
            stopped += 1
            assert stop.decided(result.scores["clean"])
            assert [t.box for t in result.tiles] == [t.box for t in every.tiles[: stop.first_tiles]]
        else:  # undecided after the first tiles: every tile counts, as without early stop
            assert len(result.tiles) == len(tiles.boxes)
            assert result.scores == pytest.approx(every.scores, abs=1e-6)
    assert stopped >= len(images) // 2
    # A threshold too close to 0 or 1 for a safe stop scores every tile.
    assert Scorer(device="cpu", threshold=1.0 - stop.margin / 2).early_stop is None


def test_max_pixels_decides_over_pillows_own_limit(tiny_model, image_files, monkeypatch):
    from PIL import Image

    from ccscore import ImageError, Scorer

    width, height = Image.open(image_files["clean"]).size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse at 2000 pixels
    assert Scorer(tiny_model, device="cpu", max_pixels=width * height).score(image_files["clean"]).label
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored: the caller's setting is not changed behind its back
    with pytest.raises(ImageError, match=f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                                         f"{width * height - 1:,} "):  # exact: a small limit is not rounded to 0
        Scorer(tiny_model, device="cpu", max_pixels=width * height - 1).score(image_files["clean"])
