"""Data pipeline: procedural art, lossless check, degradations, tile building. Offline and fast."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "export", ROOT / "runtime"):  # until the packages are installed
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from ccscore_export.data import degrade, wild  # noqa: E402
from ccscore_export.data.build import (  # noqa: E402
    ISSUE12_KINDS, WILD_JPEG_ENCODERS, build_eval_set, build_tiles, main as build_main, merge_tile_sets)
from ccscore_export.data.lossless_check import auroc, grid_score  # noqa: E402
from ccscore_export.data.procedural import draw_graphics, draw_illustration  # noqa: E402
from ccscore_export.data.sources import SOURCES, is_forbidden  # noqa: E402


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(123)
    return [draw_illustration(rng, 256 + 32 * i, 320 - 16 * i) for i in range(4)]


def test_procedural_shape_dtype_and_seed_dependence():
    a = draw_illustration(np.random.default_rng(1), 300, 260)
    b = draw_illustration(np.random.default_rng(1), 300, 260)
    c = draw_illustration(np.random.default_rng(2), 300, 260)
    assert a.shape == (300, 260, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 5  # not a blank canvas


def test_graphics_are_seeded_and_mostly_flat():
    a = draw_graphics(np.random.default_rng(5), 300, 260)
    assert a.shape == (300, 260, 3) and a.dtype == np.uint8
    assert np.array_equal(a, draw_graphics(np.random.default_rng(5), 300, 260))
    pictures = [draw_graphics(np.random.default_rng(k), 256, 256) for k in range(12)]
    # Flat backgrounds: in most pictures most pixels equal a neighbour (illustrations rarely do).
    flat = [np.mean(np.all(p[:, 1:] == p[:, :-1], axis=2)) for p in pictures]
    assert np.median(flat) > 0.8
    assert all(p.std() > 1 for p in pictures)  # something drawn on every one


def test_graphics_tiles_build_with_jpeg_and_webp_only(tmp_path):
    summary = build_tiles(tmp_path / "g.npz", "train", 8, seed=3, tiles_per_image=2, cache_dir=tmp_path / "none",
                          workers=1, log=lambda *_: None, mix="graphics", procedural_share=1.0,
                          procedural_style="graphics")
    data = np.load(tmp_path / "g.npz")
    assert summary["real_images"] == 0 and set(data["source"].tolist()) == {"procedural_graphics"}
    labels = set(data["label"].tolist())
    assert labels <= {degrade.CLEAN, degrade.JPEG, degrade.WEBP} and degrade.CLEAN in labels and len(labels) >= 2
    with pytest.raises(ValueError, match="procedural style"):
        build_tiles(tmp_path / "x.npz", "train", 1, procedural_style="photos", log=lambda *_: None)


def test_an_all_procedural_build_does_not_depend_on_the_sources_cache(tmp_path):
    """At --procedural-share 1 no real image is used: the tiles must be the same whether or not the cache
    lists verified sources (the recipe builds its graphics set after prepare-sources)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.csv").write_text("source,split,path,status\nwesnoth,train,wesnoth/a.png,kept\n")
    built = []
    for name, cache_dir in (("listed", cache), ("none", tmp_path / "none")):
        build_tiles(tmp_path / f"{name}.npz", "train", 3, seed=3, tiles_per_image=2, cache_dir=cache_dir, workers=1,
                    log=lambda *_: None, mix="graphics", procedural_share=1.0, procedural_style="graphics")
        built.append(np.load(tmp_path / f"{name}.npz"))
    assert len(built[0]["tiles"]) > 0
    for key in ("tiles", "label", "quality", "kind", "source", "image_id"):
        np.testing.assert_array_equal(built[0][key], built[1][key])


def test_lossless_check_separates_jpeg_from_clean(images):
    clean = [grid_score(x) for x in images]
    jpeg = [grid_score(degrade.encode_jpeg_pillow(x, 90, "420")) for x in images]
    webp = [grid_score(degrade.encode_webp_pillow(x, 90)) for x in images]
    assert auroc([c.score8 for c in clean], [j.score8 for j in jpeg]) == 1.0
    assert auroc([c.score4 for c in clean], [w.score4 for w in webp]) == 1.0
    assert all(c.is_lossless for c in clean)
    assert not any(j.is_lossless for j in jpeg)
    assert all(j.phase8 == (0, 0) for j in jpeg)  # the codec grid sits at the image origin


def test_grid_shift_moves_the_detected_phase(images):
    shifted = degrade.shift_grid(degrade.encode_jpeg_pillow(images[0], 80, "444"), 3, 5)
    # The crop keeps its origin, so the grid now starts at (8 - 3, 8 - 5).
    assert grid_score(shifted, max_crop=10_000).phase8 == (5, 3)


@pytest.mark.parametrize("encoder", degrade.jpeg_encoders())
def test_jpeg_encoders_decode_lossy(images, encoder):
    out, name = degrade.random_jpeg(np.random.default_rng(0), images[1], 75, encoder)
    assert name == encoder and out.shape == images[1].shape and out.dtype == np.uint8
    assert not np.array_equal(out, images[1])


@pytest.mark.parametrize("encode", [degrade.encode_webp_pillow, degrade.encode_webp_imagecodecs, degrade.encode_webp_cv2])
def test_webp_encoders_decode_lossy(images, encode):
    out = encode(images[1], 75)
    assert out.shape == images[1].shape and out.dtype == np.uint8
    assert not np.array_equal(out, images[1])  # a lossless default would silently poison the labels


def test_each_degradation_label_and_decode(images):
    rng = np.random.default_rng(5)
    x = images[2]
    for variant in ["plain", *degrade.HARD_NEGATIVES, *degrade.WILD_NEGATIVES]:
        d = degrade.degrade_clean(rng, x, variant)
        assert d.label == degrade.CLEAN and np.isnan(d.quality) and d.rgb.dtype == np.uint8 and d.rgb.ndim == 3
        assert d.rgb.shape[2] == 3 and d.kind.startswith("clean"), d.kind
    for content in degrade.WILD_CONTENT:
        for codec in ("jpeg", "webp"):
            d = degrade.degrade_lossy(rng, x, codec, quality=60, content=content)
            assert d.kind.startswith(codec) and f"on_{content}" in d.kind and d.rgb.shape == x.shape
    for codec, label in (("jpeg", degrade.JPEG), ("webp", degrade.WEBP), ("avif", degrade.AVIF), ("jxl", degrade.JXL)):
        d = degrade.degrade_lossy(rng, x, codec, quality=70, double=True, shift=(1, 2))
        assert d.label == label and d.quality == pytest.approx(70.0)
        assert d.kind.startswith(codec) and "double" in d.kind and "shift" in d.kind
        assert d.rgb.dtype == np.uint8 and d.rgb.shape[2] == 3
        # Resized after compression: the codec's label, but no quality (the pixels no longer show it).
        d = degrade.degrade_lossy(rng, x, codec, quality=70, scale=0.6)
        assert d.label == label and np.isnan(d.quality) and "resized_from_q70" in d.kind
        assert d.rgb.shape == (round(x.shape[0] * 0.6), round(x.shape[1] * 0.6), 3)


def test_random_degradation_mix():
    rng = np.random.default_rng(0)
    x = draw_illustration(rng, 160, 160)
    samples = [degrade.random_degradation(rng, x) for _ in range(160)]
    counts = np.bincount([d.label for d in samples], minlength=5) / len(samples)
    assert 0.36 < counts[0] < 0.56 and 0.15 < counts[1] < 0.38 and 0.05 < counts[2] < 0.25
    assert 0.02 < counts[3] < 0.16 and 0.02 < counts[4] < 0.16
    resized = [d for d in samples if "resized" in d.kind]
    assert resized and all(d.label in (degrade.JPEG, degrade.WEBP) and np.isnan(d.quality) for d in resized)
    kinds = [d.kind for d in samples]
    assert any(k.startswith("clean:") and k.split(":")[1] in degrade.WILD_NEGATIVES for k in kinds)
    assert any("on_grey" in k for k in kinds)  # wild-looking positives too


def test_build_tiles_valid_and_deterministic(tmp_path):
    kwargs = dict(split="train", n_images=6, seed=7, tiles_per_image=2, cache_dir=tmp_path / "no_cache", log=lambda *_: None)
    build_tiles(tmp_path / "a.npz", workers=2, **kwargs)
    build_tiles(tmp_path / "b.npz", workers=1, **kwargs)  # same data whatever the worker count
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    n = len(a["label"])
    assert 0 < n <= 12  # up to 2 tiles per image; flat tiles are dropped
    assert a["tiles"].shape == (n, 128, 128, 3) and a["tiles"].dtype == np.uint8
    assert a["label"].dtype == np.int64 and a["quality"].dtype == np.float32
    assert a["kind"].shape == (n,) and a["image_id"].shape == (n,)
    assert set(a["label"].tolist()) <= set(degrade.LABEL_NAMES)
    assert np.all(np.isnan(a["quality"][a["label"] == 0]))
    rated = a["quality"][(a["label"] > 0) & np.isfinite(a["quality"])]
    assert np.all(rated >= 20)
    for key in ("tiles", "label", "kind", "image_id"):
        assert np.array_equal(a[key], b[key]), key
    assert np.array_equal(a["quality"], b["quality"], equal_nan=True)


def test_chroma_twins_keep_luma_and_change_only_chroma(images):
    rng = np.random.default_rng(0)
    ycc = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    for rgb in images:
        tile = np.ascontiguousarray(rgb[:128, :128])
        twin, kind = degrade.chroma_only_jpeg(rng, tile)
        assert twin.shape == tile.shape and twin.dtype == np.uint8 and kind.startswith("jpeg:")
        luma_diff = np.abs((twin.astype(float) - tile) @ ycc[0])
        chroma_diff = np.abs((twin.astype(float) - tile) @ ycc[1:].T)
        assert luma_diff.mean() < 0.6  # rounding back to RGB only
        assert chroma_diff.mean() > 2 * luma_diff.mean()


def test_add_chroma_twins_appends_labelled_twins(tmp_path):
    from ccscore_export.data.build import add_chroma_twins

    # Seed 4: its 8 images include plain clean ones, whose tiles get twins.
    kwargs = dict(split="train", n_images=8, seed=4, tiles_per_image=2, cache_dir=tmp_path / "no_cache", log=lambda *_: None)
    build_tiles(tmp_path / "a.npz", workers=1, **kwargs)
    a = np.load(tmp_path / "a.npz")
    clean = int(((a["label"] == 0) & (a["kind"] == "clean")).sum())
    assert clean >= 1
    added = add_chroma_twins(tmp_path / "a.npz", tmp_path / "b.npz", count=50)
    b = np.load(tmp_path / "b.npz")
    assert added == clean and len(b["label"]) == len(a["label"]) + added
    assert np.array_equal(b["tiles"][: len(a["label"])], a["tiles"])
    assert set(b["label"][-added:].tolist()) == {1} and np.all(b["quality"][-added:] == 100)


def test_build_eval_set(tmp_path):
    from PIL import Image

    clean_dir = tmp_path / "clean_in"
    clean_dir.mkdir()
    Image.fromarray(draw_illustration(np.random.default_rng(3), 200, 240)).save(clean_dir / "one.png")
    manifest = build_eval_set(clean_dir, tmp_path / "eval", seed=0, log=lambda *_: None)
    rows = list(csv.DictReader(open(manifest)))
    kinds = {r["kind"] for r in rows}
    assert {"clean", "palette", "jpeg_q90", "webp_q90", "grid_shift", "double"} <= kinds
    wild_kinds = {"grey", "lineart", "manga", "downscaled", "downscaled_lanczos", "upscaled_x2", "upscaled_other",
                  "smooth_render", "small", "flat", "blurred", "noisy", "sharpened", "jpeg_pillow", "jpeg_grey",
                  "jpeg_lineart", "jpeg_manga", "jpeg_small", "webp_grey"}
    wild_kinds |= {f"jpeg_{e}" for e in WILD_JPEG_ENCODERS} | ({"webp_cwebp"} if "cwebp" in degrade.webp_encoders() else set())
    assert wild_kinds <= kinds
    for r in rows:
        with Image.open(tmp_path / "eval" / r["path"]) as im:
            im.load()  # every file, RGBA and 1-px strips included, is a loadable image
        lossy = r["quality"] != ""
        assert (int(r["label"]) > 0) == lossy
        if r["kind"].startswith(("jpeg_", "webp_")) and r["kind"] not in ("jpeg_q50", "jpeg_q70"):
            assert r["detail"] == "" or f"q{r['quality']}" in r["detail"]  # the drawn quality is the one recorded
        if r["kind"] in ("jpeg_cjpeg", "jpeg_lineart", "jpeg_grey", "jpeg_small"):
            assert 30 <= int(r["quality"]) <= 98
        if r["kind"] == "jpeg_small":
            with Image.open(tmp_path / "eval" / r["path"]) as im:
                assert max(im.size) <= 120  # smaller than a tile
    again = build_eval_set(clean_dir, tmp_path / "eval2", seed=0, log=lambda *_: None)
    first, second = tmp_path / "eval" / "palette_dither" / "one.png", again.parent / "palette_dither" / "one.png"
    assert first.read_bytes() == second.read_bytes()  # deterministic


def test_sources_never_include_reserved_material():
    assert is_forbidden("games/RenPy/foo.png") and is_forbidden("Live2D_model.png") and is_forbidden("ren'py")
    assert not any(is_forbidden(s.name) or any(is_forbidden(g) for g in s.globs) for s in SOURCES)
    train = {s.name for s in SOURCES if s.split == "train"}
    val = {s.name for s in SOURCES if s.split == "val"}
    assert train and val and not train & val


@pytest.fixture(scope="module")
def small_art() -> np.ndarray:
    return draw_illustration(np.random.default_rng(11), 160, 200)


@pytest.mark.parametrize("transform", [wild.random_grey, wild.random_line_art, wild.random_manga])
def test_grey_kinds_are_grey_and_keep_the_size(small_art, transform):
    for seed in range(6):
        v = transform(np.random.default_rng(seed), small_art)
        assert v.image.shape == small_art.shape[:2] and v.image.dtype == np.uint8, v.detail
        assert v.image.std() > 2, v.detail  # the art's structure survives, not a blank page


def test_manga_at_1x_is_two_level(small_art):
    seen = 0
    for seed in range(12):
        v = wild.random_manga(np.random.default_rng(seed), small_art)
        if v.detail.endswith(":aa1"):
            assert set(np.unique(v.image).tolist()) <= {0, 255}, v.detail
            seen += 1
    assert seen


@pytest.mark.parametrize("kernel", wild.ALL_KERNELS)
def test_resample_kernels(small_art, kernel):
    assert wild.resample(small_art, 0.5, kernel).shape == (80, 100, 3)
    assert wild.resample(small_art, 2.0, kernel).shape == (320, 400, 3)


def test_upscales_stay_within_max_side(small_art):
    v = wild.random_resample(np.random.default_rng(0), small_art, 4.0, wild.ALL_KERNELS, 1.0, max_side=300)
    assert max(v.image.shape[:2]) <= 300 and "unsharp" in v.detail


def test_small_and_flat_kinds(small_art):
    rng = np.random.default_rng(0)
    for _ in range(5):
        small = wild.random_small(rng, small_art).image
        assert max(small.shape[:2]) <= 120 and min(small.shape[:2]) >= 8
    flats = {kind: wild.flat_canvas(rng, small_art, kind) for kind in wild.FLAT_KINDS}
    assert (flats["white"] == 255).all()
    assert np.ptp(flats["single_colour"].reshape(-1, 3), axis=0).max() == 0
    assert np.ptp(flats["near_flat"].astype(int).reshape(-1, 3), axis=0).max() <= 2
    assert flats["transparent"].shape[2] == 4 and (flats["transparent"][..., 3] == 0).all()
    assert (wild.as_rgb(flats["transparent"]) == 255).all()  # what a viewer shows: white
    assert flats["strip"].shape == (1, small_art.shape[1], 3)


def test_smooth_render_is_smooth_and_seeded():
    a = wild.smooth_render(np.random.default_rng(4), 120, 150)
    b = wild.smooth_render(np.random.default_rng(4), 120, 150)
    assert a.shape == (120, 150, 3) and np.array_equal(a, b)
    steps = np.abs(np.diff(a.astype(int), axis=1))
    assert np.median(steps) <= 1 and a.std() > 5  # gradients, not texture, yet not flat


@pytest.mark.parametrize("encoder", degrade.jpeg_encoders())
def test_jpeg_encoders_take_grey_input(small_art, encoder):
    g = wild.grey(small_art)
    out, _ = degrade.random_jpeg(np.random.default_rng(0), g, 60, encoder)
    assert out.shape == (*g.shape, 3) and not np.array_equal(out[..., 0], g)
    assert np.abs(out[..., 0].astype(int) - g).mean() < 8  # still the same picture


@pytest.mark.skipif(shutil.which("cjpeg") is None, reason="cjpeg (libjpeg-turbo-progs) not installed")
def test_cjpeg_grayscale_writes_one_component(small_art):
    out = degrade.encode_jpeg_cjpeg(small_art, 70, grayscale=True)
    assert not np.ptp(out, axis=2).any()


@pytest.mark.skipif(shutil.which("cwebp") is None, reason="cwebp (webp) not installed")
@pytest.mark.parametrize("preset", degrade.WEBP_PRESETS)
def test_cwebp_presets_are_lossy(small_art, preset):
    out = degrade.encode_webp_cwebp(small_art, 80, preset, sharp_yuv=preset == "drawing")
    assert out.shape == small_art.shape and not np.array_equal(out, small_art)


def write_sources(cache: Path, images: list[tuple[str, str, int]]) -> None:
    """A sources cache as `sources.prepare_sources` leaves it: each (source, path, side) an illustration of that side
    (10 px taller), kept for the val split in manifest.csv."""
    rows = []
    for i, (source, rel, side) in enumerate(images):
        (cache / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_illustration(np.random.default_rng(i), side, side + 10)).save(cache / rel)
        rows.append({"source": source, "split": "val", "status": "kept", "path": rel})
    with open(cache / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["source", "split", "status", "path"])
        writer.writeheader()
        writer.writerows(rows)


def test_export_clean_images_unique_names_and_disjoint_sets(tmp_path):
    from ccscore_export.data.build import export_clean_images

    cache = tmp_path / "cache"
    write_sources(cache, [("src", rel, 260) for rel in ["pkgs/src/a/sprites/img.png", "pkgs/src/b/sprites/img.png",
                                                         "pkgs/src/c/one.png", "pkgs/src/d/two.png"]])
    first = export_clean_images("val", tmp_path / "first", 3, seed=0, cache_dir=cache)
    assert len({p.name for p in first}) == 3 == len(list((tmp_path / "first").glob("*.png")))  # none overwritten
    second = export_clean_images("val", tmp_path / "second", 3, seed=1, cache_dir=cache, exclude=(tmp_path / "first",))
    assert len(second) == 1 and second[0].name not in {p.name for p in first}


def test_export_clean_images_by_source_and_side(tmp_path):
    from ccscore_export.data.build import export_clean_images

    cache = tmp_path / "cache"
    write_sources(cache, [(source, f"pkgs/{source}/{i}.png", side) for i, (source, side)
                          in enumerate([("big", 260), ("small", 140), ("small", 300), ("other", 140)])])
    assert len(export_clean_images("val", tmp_path / "default", 9, cache_dir=cache)) == 2  # the two of 256 px or more
    small = export_clean_images("val", tmp_path / "small", 9, cache_dir=cache, min_side=128, sources=("small",))
    assert sorted(p.name.split("__")[-1] for p in small) == ["1.png", "2.png"]
    only_small = export_clean_images("val", tmp_path / "only-small", 9, cache_dir=cache, min_side=128, max_side=255)
    assert sorted(p.name.split("__")[-1] for p in only_small) == ["1.png", "3.png"]  # 140 px a side, no 260 or 300


def test_an_empty_export_or_evaluation_set_is_an_error_not_a_built_set(tmp_path, capsys):
    # A fresh machine without fetched sources once "wrote 0 clean val images" and exit 0, and the recipe's next steps
    # took the empty folders for built sets.
    cache = tmp_path / "cache"
    cache.mkdir()
    out = tmp_path / "clean"
    assert build_main(["--split", "val", "--export-clean", "5", "--out", str(out), "--cache", str(cache)]) == 2
    assert "--prepare-sources" in capsys.readouterr().err and not out.exists()
    write_sources(cache, [("src", "pkgs/src/one.png", 260)])  # sources, but none that fits the request
    assert build_main(["--split", "val", "--export-clean", "5", "--out", str(out), "--cache", str(cache),
                       "--sources", "no-such-package"]) == 2
    assert "no verified val image fits" in capsys.readouterr().err and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_main(["--eval-from", str(empty), "--out", str(tmp_path / "eval"), "--workers", "1"]) == 2
    assert "holds no clean image" in capsys.readouterr().err and not (tmp_path / "eval").exists()


def test_prepare_sources_runs_before_an_export_of_clean_images(tmp_path, monkeypatch):
    # `--export-clean N --prepare-sources` on a fresh machine: the sources are fetched and verified first, then exported
    # (the flag was only honoured when building tiles).
    from ccscore_export.data import sources

    cache = tmp_path / "cache"

    def prepare(cache_dir, workers=2):
        write_sources(Path(cache_dir), [("src", "pkgs/src/one.png", 260)])
        return Path(cache_dir) / "manifest.csv"

    monkeypatch.setattr(sources, "prepare_sources", prepare)
    out = tmp_path / "clean"
    assert build_main(["--split", "val", "--export-clean", "1", "--out", str(out), "--cache", str(cache),
                       "--prepare-sources"]) == 0
    assert len(list(out.glob("*.png"))) == 1


# ---------------------------------------------------------------- AVIF and JPEG XL (issue #12)

AVIF_ENCODE = {"pillow": lambda x: degrade.encode_avif_pillow(x, 60, 8, "4:2:0"),
               "imagecodecs": lambda x: degrade.encode_avif_imagecodecs(x, 60, 8, "4:4:4"),
               "avifenc": lambda x: degrade.encode_avif_avifenc(x, 30, 8)}
JXL_ENCODE = {"imagecodecs": lambda x: degrade.encode_jxl_imagecodecs(x, 2.0, 3),
              "cjxl": lambda x: degrade.encode_jxl_cjxl(x, 2.0, 3)}


@pytest.mark.parametrize("family, encoder", [("avif", e) for e in AVIF_ENCODE] + [("jxl", e) for e in JXL_ENCODE])
def test_avif_and_jxl_encoders_round_trip(images, small_art, family, encoder):
    available = degrade.avif_encoders() if family == "avif" else degrade.jxl_encoders()
    if encoder not in available:
        pytest.skip(f"{family} encoder {encoder} is not installed here")
    encode = (AVIF_ENCODE if family == "avif" else JXL_ENCODE)[encoder]
    x = images[1]
    out = encode(x)
    assert out.shape == x.shape and out.dtype == np.uint8
    error = np.abs(out.astype(int) - x).mean()
    assert 0 < error < 12, error  # lossy (a lossless default would poison the labels), yet the same picture
    grey = encode(wild.grey(small_art))  # grey art is written as such and comes back as RGB
    assert grey.shape == small_art.shape and not np.ptp(grey.astype(int), axis=2).max() > 2


def test_codec_quality_scales():
    assert degrade.jxl_distance_quality(1.0) == pytest.approx(90.0)  # cjxl -q 90 is distance 1
    assert degrade.jxl_distance_quality(0.1 + (100 - 75) * 0.09) == pytest.approx(75.0)
    assert degrade.avif_quantizer_quality(0) == 100.0 and degrade.avif_quantizer_quality(63) == 0.0


def _tiny_clean_dir(tmp_path: Path) -> Path:
    from PIL import Image

    clean_dir = tmp_path / "clean_in"
    clean_dir.mkdir()
    for i, size in enumerate([(136, 150), (120, 128)]):
        Image.fromarray(draw_illustration(np.random.default_rng(10 + i), *size)).save(clean_dir / f"c{i}.png")
    return clean_dir


def test_kinds_are_added_to_an_existing_set_untouched(tmp_path):
    """build-data --kinds builds only the named kinds into an existing set: the other files and manifest rows
    stay byte for byte, the new rows are appended, and they equal what a whole build gives."""
    clean_dir = _tiny_clean_dir(tmp_path)
    new = ["jpeg_downscaled", "jpeg_upscaled_x2"]
    first = ["clean", "jpeg_q50", "webp_q75"]
    full = build_eval_set(clean_dir, tmp_path / "full", seed=4, log=lambda *_: None)
    # An "older" set: a full build's rows for the first kinds only, their files alone.
    old = tmp_path / "old"
    rows = [r for r in csv.DictReader(open(full)) if r["kind"] in first]
    for r in rows:
        (old / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(full.parent / r["path"], old / r["path"])
    header = open(full).readline()
    old_text = header + "".join(f"{r['path']},{r['label']},{r['quality']},{r['kind']},{r['source']},{r['detail']}\n" for r in rows)
    (old / "manifest.csv").write_text(old_text)
    before = {p: p.read_bytes() for p in old.rglob("*.png")}
    args = ["--eval-from", str(clean_dir), "--out", str(old), "--seed", "4", "--workers", "1", "--kinds", ",".join(new)]
    assert build_main(args) == 0
    text = (old / "manifest.csv").read_text()
    assert text.startswith(old_text)  # the old rows are kept as they were, the new ones come after
    added = list(csv.DictReader(open(old / "manifest.csv")))[len(rows):]
    assert sorted(r["kind"] for r in added) == sorted(new * 2)
    assert all(p.read_bytes() == b for p, b in before.items())
    wanted = {r["path"]: r for r in csv.DictReader(open(full)) if r["kind"] in new}
    assert {r["path"]: r for r in added} == wanted  # as the whole build made them
    assert all((old / p).read_bytes() == (full.parent / p).read_bytes() for p in wanted)
    # A kind the set already lists is refused; an unknown kind too.
    assert build_main(args) == 2 and (old / "manifest.csv").read_text() == text
    assert build_main(args[:-1] + ["no_such_kind"]) == 2
    # A folder without a manifest becomes a set of these kinds alone, as the whole build made them.
    assert build_main(["--eval-from", str(clean_dir), "--out", str(tmp_path / "new"), "--seed", "4", "--workers", "1",
                       "--kinds", "jpeg_q50"]) == 0
    alone = list(csv.DictReader(open(tmp_path / "new" / "manifest.csv")))
    assert alone == [r for r in csv.DictReader(open(full)) if r["kind"] == "jpeg_q50"]
    assert all((tmp_path / "new" / r["path"]).read_bytes() == (full.parent / r["path"]).read_bytes() for r in alone)


def test_issue12_eval_kinds(tmp_path):
    clean_dir = _tiny_clean_dir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    kinds = tuple(k for k, *_ in ISSUE12_KINDS)
    manifest = build_eval_set(clean_dir, tmp_path / "eval", seed=0, log=lambda *_: None, kinds=kinds)
    rows = list(csv.DictReader(open(manifest)))
    assert len(rows) == 2 * len(kinds)
    names = dict(enumerate(degrade.LABEL_NAMES.values()))
    for r in rows:
        assert names[int(r["label"])] == r["kind"].split("_")[0] and r["quality"] != ""
        if r["kind"] == "jpeg_upscaled_x2":
            assert 50 <= int(r["quality"]) <= 75 and ":x2.00:" in r["detail"]


def test_jpeg_upscaled_by_other_factors_kind(tmp_path):
    """Issue #12's "upscaled 1.25-4 with the common kernels" beside x2: JPEG q50-90, then a smoothing kernel."""
    clean_dir = _tiny_clean_dir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    manifest = build_eval_set(clean_dir, tmp_path / "eval", seed=3, log=lambda *_: None, kinds=("jpeg_upscaled_other",))
    rows = list(csv.DictReader(open(manifest)))
    assert len(rows) == 2
    for r in rows:
        scale = float(r["detail"].split(":x")[1].split(":")[0])
        kernel = r["detail"].rsplit(":", 1)[1]
        assert r["label"] == str(degrade.JPEG) and 50 <= int(r["quality"]) <= 90
        assert 1.25 <= scale <= 4.0 and kernel in degrade.SMOOTH_KERNELS
        source = Image.open(clean_dir / r["source"])
        shown = Image.open(tmp_path / "eval" / r["path"]).width / min(source.width, int(1600 / scale))
        assert abs(shown - scale) <= 0.01  # (the detail rounds the factor to 0.01)


def test_jpeg_then_downscaled_on_grey_art_and_line_art_kinds(tmp_path):
    """Session 22's kinds: the art made grey or line art first (no chroma), then JPEG q50-90 downscaled by 0.5-0.9;
    their clean controls downscaled alike; each kind in a benchmark group."""
    from ccscore_export.bars import CLEAN_GROUPS, RESIZED_GROUPS

    clean_dir = _tiny_clean_dir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    kinds = ("jpeg_grey_downscaled", "jpeg_lineart_downscaled", "grey_downscaled", "lineart_downscaled")
    manifest = build_eval_set(clean_dir, tmp_path / "eval", seed=3, log=lambda *_: None, kinds=kinds)
    rows = list(csv.DictReader(open(manifest)))
    assert sorted(r["kind"] for r in rows) == sorted(kinds * 2)
    for r in rows:
        art = "grey" if "grey" in r["kind"] else "lineart"
        scale = float(r["detail"].split(":x")[1].split(":")[0])
        assert r["detail"].startswith(f"{art}:") and 0.5 <= scale <= 0.9
        assert r["detail"].rsplit(":", 1)[1] in wild.DOWNSCALE_KERNELS
        image = np.asarray(Image.open(tmp_path / "eval" / r["path"]).convert("RGB")).astype(int)
        assert np.abs(image - image[..., :1]).max() <= 1  # no chroma to read (a JPEG's rounding aside)
        source = Image.open(clean_dir / r["source"])
        assert abs(image.shape[1] / source.width - scale) <= 0.01
        if r["kind"].startswith("jpeg_"):
            assert r["label"] == str(degrade.JPEG) and 50 <= int(r["quality"]) <= 90 and ":q" in r["detail"]
        else:
            assert r["label"] == str(degrade.CLEAN) and r["quality"] == ""
    assert {"jpeg_grey_downscaled", "jpeg_lineart_downscaled"} <= {k for _, ks, *_ in RESIZED_GROUPS for k in ks}
    assert {"grey_downscaled", "lineart_downscaled"} <= {k for _, ks, _ in CLEAN_GROUPS for k in ks or ()}


def test_the_texture_kinds_are_named_alike_everywhere():
    from ccscore_export.bars import CLEAN_GROUPS, TEXTURE_KINDS

    assert set(TEXTURE_KINDS) == set(degrade.TEXTURE_NEGATIVES)
    grouped = {kind for _, kinds, _ in CLEAN_GROUPS for kind in kinds or ()}
    from ccscore_export.data.build import EVAL_VARIANTS

    assert set(TEXTURE_KINDS) <= grouped and set(TEXTURE_KINDS) <= {kind for kind, *_ in EVAL_VARIANTS}


def test_texture_negatives_and_their_mix():
    """Issue #12's precision: clean textures and resizes (evaluation kinds and the textures mix's negatives) stay
    clean and drawn as said; the textures mix draws half its lossy images on them."""
    rng = np.random.default_rng(3)
    x = draw_illustration(rng, 160, 192)
    for name, transform in degrade.TEXTURE_NEGATIVES.items():
        v = transform(np.random.default_rng(5), x)
        assert v.image.dtype == np.uint8 and v.image.ndim in (2, 3) and v.detail
        d = degrade.degrade_clean(np.random.default_rng(5), x, name)
        assert d.label == degrade.CLEAN and d.kind == f"clean:{name}:{v.detail}" and d.rgb.shape[2] == 3
    canvas = wild.canvas_texture(np.random.default_rng(1), x)
    depth = float(canvas.detail.split(":d")[1])
    shade = canvas.image.astype(int) - x.astype(int)
    assert shade.max() <= 1 and shade.min() >= -depth - 1 and shade.min() < 0  # faint, and only darker
    mix = degrade.MIXES["textures"]
    samples = [degrade.random_degradation(rng, x, mix) for _ in range(120)]
    clean = [d for d in samples if d.label == degrade.CLEAN]
    assert 0.35 < len(clean) / len(samples) < 0.65
    assert {d.kind.split(":")[1] for d in clean if d.kind != "clean"} == set(degrade.TEXTURE_NEGATIVES)
    lossy = [d for d in samples if d.label != degrade.CLEAN]
    drawn_on = [d for d in lossy if any(f"on_{k}" in d.kind for k in degrade.TEXTURE_NEGATIVES)]
    assert 0.25 < len(drawn_on) / len(lossy) < 0.75 and not any("resized_from" in d.kind for d in lossy)


def test_merge_keeps_images_apart(tmp_path):
    kwargs = dict(split="train", n_images=3, tiles_per_image=2, cache_dir=tmp_path / "no_cache", log=lambda *_: None,
                  workers=1)
    build_tiles(tmp_path / "a.npz", seed=1, **kwargs)
    build_tiles(tmp_path / "b.npz", seed=2, mix="issue12", **kwargs)
    n = merge_tile_sets([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "m.npz")
    a, b, m = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz"), np.load(tmp_path / "m.npz")
    assert n == len(a["label"]) + len(b["label"]) == len(m["label"])
    assert np.array_equal(m["tiles"][len(a["label"]):], b["tiles"])
    assert not set(m["image_id"][: len(a["label"])]) & set(m["image_id"][len(a["label"]):])


def test_merge_leaves_out_tiles_by_a_word_of_their_kind(tmp_path):
    """`--leave-out resized_from` drops JPEG/WebP resized after compression (kind words like resized_from_q64)
    from a merged set, and nothing else."""
    kinds = np.array(["jpeg:pillow:resized_from_q64:x2.00:pil_box", "jpeg:pillow", "clean:resampled",
                      "webp:cwebp:text:resized_from_q71:x0.59:pil_hamming", "avif:pillow:s6:420"])
    n = len(kinds)
    np.savez(tmp_path / "a.npz", tiles=np.arange(n * 12, dtype=np.uint8).reshape(n, 2, 2, 3),
             label=np.array([1, 1, 0, 2, 3]), quality=np.zeros(n, np.float32), kind=kinds,
             source=np.array(["procedural"] * n), image_id=np.arange(n))
    assert build_main(["--merge", str(tmp_path / "a.npz"), "--leave-out", "resized_from,nothing",
                       "--out", str(tmp_path / "m.npz")]) == 0
    m = np.load(tmp_path / "m.npz")
    assert list(m["kind"]) == ["jpeg:pillow", "clean:resampled", "avif:pillow:s6:420"]
    assert list(m["label"]) == [1, 0, 3] and np.array_equal(m["tiles"][0], np.load(tmp_path / "a.npz")["tiles"][1])
    with pytest.raises(SystemExit):  # --leave-out means nothing without --merge: refused, not ignored
        build_main(["--leave-out", "resized_from", "--out", str(tmp_path / "x.npz")])


def test_a_png_made_from_a_high_quality_jpeg_is_not_kept_as_clean(tmp_path):
    """At quality 100 the block grid barely shows (grid_score passes it); its colours still lie in libjpeg's
    output set, so the source scan rejects it. Clean art, and WebP-free sprites with soft alpha edges, are kept."""
    import io

    from PIL import Image

    from ccscore_export.data.sources import inspect_file

    art = draw_illustration(np.random.default_rng(3), 512, 512)
    Image.fromarray(art).save(tmp_path / "clean.png")
    buf = io.BytesIO()
    Image.fromarray(art).save(buf, "JPEG", quality=100, subsampling=0)
    Image.open(buf).convert("RGB").save(tmp_path / "from_jpeg.png")
    sprite = Image.fromarray(art).convert("RGBA")
    sprite.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))))
    sprite.save(tmp_path / "sprite.png")
    assert inspect_file(tmp_path / "clean.png")["status"] == "kept"
    assert inspect_file(tmp_path / "sprite.png")["status"] == "kept"
    row = inspect_file(tmp_path / "from_jpeg.png")
    assert row["status"] == "rejected_decoded", row
    # Its opaque pixels are read, not the image flattened on white: soft edges blend colours off the subset.
    decoded = Image.open(tmp_path / "from_jpeg.png").convert("RGBA")
    yy, xx = np.mgrid[0:512, 0:512]
    decoded.putalpha(Image.fromarray(np.clip(600 - 2.5 * np.hypot(yy - 256, xx - 256), 0, 255).astype(np.uint8)))
    decoded.save(tmp_path / "sprite_from_jpeg.png")
    assert inspect_file(tmp_path / "sprite_from_jpeg.png")["status"] == "rejected_decoded"


def textured_parchment(seed: int, width: int = 620, height: int = 460) -> Image.Image:
    """Paper-like texture, textured everywhere: blurred noise at three scales, tinted."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    base = np.full((height, width), 190.0, np.float32)
    for sigma, amplitude in ((12, 30), (4, 14), (1.2, 8)):
        noise = Image.fromarray(rng.normal(128, 40, (height, width)).clip(0, 255).astype(np.uint8))
        layer = np.asarray(noise.filter(ImageFilter.GaussianBlur(sigma)), np.float32)
        base += (layer - layer.mean()) / (layer.std() + 1e-6) * amplitude
    return Image.fromarray(np.stack([base, base * 0.88, base * 0.66], -1).clip(0, 255).astype(np.uint8))


def test_a_png_made_from_a_jpeg_downscaled_afterwards_is_not_kept_as_clean(tmp_path):
    """Downscaled by 0.757 its grid no longer shows at 8 px (grid_score passes it) and its colours are resampled (no
    decoder trace), but its quantisation reads back through the downscale; the clean texture downscaled alike, and at
    its own size, is kept."""
    import io

    from ccscore_export.data.lossless_check import RESIZED_JPEG_MIN_AGREEMENT, resized_jpeg_agreement
    from ccscore_export.data.sources import inspect_file

    scale = 0.757
    for seed, quality in ((1, 75), (2, 90)):
        texture = textured_parchment(seed)
        size = (round(texture.width * scale), round(texture.height * scale))
        buf = io.BytesIO()
        texture.save(buf, "JPEG", quality=quality)
        Image.open(buf).convert("RGB").resize(size, Image.BICUBIC).save(tmp_path / "from_jpeg.png")
        texture.resize(size, Image.BICUBIC).save(tmp_path / "clean_downscaled.png")
        texture.save(tmp_path / "clean.png")
        row = inspect_file(tmp_path / "from_jpeg.png")
        assert row["status"] == "rejected_resized", row
        assert grid_score(np.asarray(Image.open(tmp_path / "from_jpeg.png"))).is_lossless  # what the grid missed
        for name in ("clean_downscaled.png", "clean.png"):
            assert inspect_file(tmp_path / name)["status"] == "kept", name
            assert resized_jpeg_agreement(np.asarray(Image.open(tmp_path / name))).read >= 12, name  # judged
        read = resized_jpeg_agreement(np.asarray(texture))  # windows enough, scattered
        assert read.read >= 12 and read.agreeing <= 0.5 * RESIZED_JPEG_MIN_AGREEMENT * read.read
