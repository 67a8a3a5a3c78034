"""CityClassifiers import: a tiny random CLIP + reference-layout head, exported, then scored without torch.

The reference pipeline here is city96's `CityClassifierPipeline.get_clip_emb` with the slow (PIL) CLIP image
processor, written out independently of the runtime's `city96_fivecrop` strategy: torchvision's `resize` and
`five_crop` on PIL images are transcribed (torchvision is not a test dependency).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import draw_art, run_cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

END_TO_END_TOLERANCE = 2e-3
LABELS = {"0": "Pass", "1": "JPEG", "2": "WEBP"}
# width, height: every branch of the reference tiling
SIZES = {
    "whole": (400, 300),  # short side <= 672: the whole image
    "tall_odd": (301, 777),  # whole image, portrait, odd sizes
    "edge_672": (900, 672),  # short side exactly 672: not tiled (the reference wants > 672)
    "fivecrop_odd": (701, 689),  # five crops, centre offsets 14.5 / 8.5 round half to even
    "resize_fivecrop": (1601, 700),  # long side > 1536: short side upscaled to 1536, then five crops
    "resize_fivecrop_tall": (681, 1703),
}


@pytest.fixture(scope="module")
def city96_checkpoint(tmp_path_factory) -> dict[str, Path]:
    """A tiny CLIP folder (same architecture as clip-vit-large-patch14-336, tiny sizes) and a reference head."""
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel

    from ccscore_export.city96 import PredictorModel

    folder = tmp_path_factory.mktemp("city96")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=14, image_size=336, projection_dim=16),  # as the real config repeats it
        projection_dim=16,
    )
    clip = folder / "clip"
    CLIPModel(config).eval().save_pretrained(clip)
    (clip / "preprocessor_config.json").write_text(json.dumps({  # openai/clip-vit-large-patch14-336's, verbatim
        "crop_size": 336, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": 336}))
    torch.manual_seed(1)
    head = PredictorModel(features=16, outputs=3, hidden=64)
    with torch.no_grad():
        # A tiny random CLIP's embeddings barely move with the image: amplify so probabilities really vary.
        head.up[0].weight.mul_(30.0)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "CCTest-v1.2.safetensors"))
    (folder / "CCTest-v1.2.config.json").write_text(json.dumps({
        "name": "CCTest", "rev": "v1.2", "arch": "class", "labels": LABELS,
        "model_params": {"features": 16, "hidden": 64, "outputs": 3}}))
    return {"clip": clip, "head": folder / "CCTest-v1.2.safetensors", "folder": folder}


@pytest.fixture(scope="module")
def city96_onnx(city96_checkpoint) -> Path:
    """Exported through the `ccscore-export city96` command (config found beside the head)."""
    from typer.testing import CliRunner

    from ccscore_export.cli import app

    out = city96_checkpoint["folder"] / "cctest.onnx"
    result = CliRunner().invoke(app, ["city96", "--clip", str(city96_checkpoint["clip"]),
                                      "--head", str(city96_checkpoint["head"]), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "validated probs" in result.output
    return out


def _torchvision_resize_short(im: Image.Image, size: int) -> Image.Image:
    """torchvision.transforms.functional.resize(pil, size): bilinear, short side to `size`, long side truncated."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return im
    return im.resize((new_w, new_h), Image.BILINEAR)


def _torchvision_five_crop(im: Image.Image, size: int) -> list[Image.Image]:
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    boxes = [(0, 0), (w - size, 0), (0, h - size), (w - size, h - size), (left, top)]
    return [im.crop((x, y, x + size, y + size)) for x, y in boxes]


def reference_scores(images: list[Image.Image], checkpoint: dict[str, Path]) -> list[np.ndarray]:
    """city96's CityClassifierPipeline (tiling=True, tile_strat='mean'), one probability vector per image."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionModelWithProjection
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from ccscore_export.city96 import PredictorModel

    proc = CLIPImageProcessorPil.from_pretrained(str(checkpoint["clip"]))
    size = proc.size.shortest_edge
    clip = CLIPVisionModelWithProjection.from_pretrained(str(checkpoint["clip"])).eval()
    sd = load_file(str(checkpoint["head"]))
    head = PredictorModel(outputs=int(sd["down.5.bias"].shape[0]), features=16, hidden=64).eval()
    head.load_state_dict(sd)
    out = []
    for raw in images:
        if min(raw.size) > size * 2:
            if max(raw.size) > 1536:
                raw = _torchvision_resize_short(raw, 1536)
            raw = _torchvision_five_crop(raw, size * 2)
        pixel_values = proc(images=raw, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            emb = clip(pixel_values=pixel_values)["image_embeds"].to(torch.float32)
            pred = head(emb)
        out.append(pred.mean(dim=0).numpy())
    return out


@pytest.fixture(scope="module")
def city96_images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("city96_images")
    files = {}
    for seed, (key, size) in enumerate(SIZES.items()):
        files[key] = folder / f"{key}.png"
        im = draw_art(10 + seed, size)
        if key == "whole":  # strong noise: a very different embedding from the flat drawings
            rng = np.random.default_rng(seed)
            im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        im.save(files[key])
    return files


def test_export_is_validated_and_self_describing(city96_onnx, city96_checkpoint):
    from ccscore_export.city96 import export_city96

    props = {p.key: p.value for p in onnx.load(str(city96_onnx), load_external_data=False).metadata_props}
    assert props["name"] == "CCTest-v1.2" and props["version"] == "1.2"
    assert json.loads(props["labels"]) == ["clean", "jpeg", "webp"]
    assert props["tiling"] == "city96_fivecrop" and int(props["tile_size"]) == 336
    params = json.loads(props["tiling_params"])
    assert params["crop"] == 672 and params["resize_to"] == 1536 and params["resample"] == "bicubic"
    assert json.loads(props["validation_max_abs_diff"])["probs"] <= 1e-4
    # The export itself compares onnxruntime with torch and fails past 1e-4; run it again to read the diff.
    diffs = export_city96(city96_checkpoint["clip"], city96_checkpoint["head"], city96_checkpoint["folder"] / "b.onnx")
    assert diffs["probs"] <= 1e-4


def test_fp16_export_within_its_tolerance(city96_checkpoint):
    from ccscore_export.city96 import FP16_TOLERANCE, export_city96

    out = city96_checkpoint["folder"] / "fp16.onnx"
    diffs = export_city96(city96_checkpoint["clip"], city96_checkpoint["head"], out, fp16=True)
    assert diffs["probs"] <= FP16_TOLERANCE
    graph = onnx.load(str(out))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)


def test_bad_head_is_refused(city96_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    from ccscore_export.city96 import export_city96

    sd = load_file(str(city96_checkpoint["head"]))
    del sd["down.4.weight"]
    save_file(sd, str(tmp_path / "broken.safetensors"))
    with pytest.raises(RuntimeError):
        export_city96(city96_checkpoint["clip"], tmp_path / "broken.safetensors", tmp_path / "x.onnx")


def test_tiling_branches():
    from ccscore.tiling import make_tiles

    params = {"shortest_edge": 336, "crop": 672, "long_side_limit": 1536, "resize_to": 1536,
              "presize_resample": "bilinear", "resample": "bicubic"}
    for key, (w, h) in SIZES.items():
        tiles = make_tiles(np.zeros((h, w, 3), np.uint8), "city96_fivecrop", 336, params)
        assert tiles.pixels.shape[1:] == (336, 336, 3)
        assert len(tiles.boxes) == (5 if "fivecrop" in key else 1), key
        for left, top, right, bottom in tiles.boxes:
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
    # Five crops at native resolution: the centre view of a 701x689 image starts at (14, 8), 672 wide, and
    # CLIP keeps its middle after halving it: box (14, 8, 686, 680).
    tiles = make_tiles(np.zeros((689, 701, 3), np.uint8), "city96_fivecrop", 336, params)
    assert tiles.boxes[4] == (14, 8, 686, 680)


def test_cli_matches_reference_pipeline(city96_onnx, city96_checkpoint, city96_images):
    paths = list(city96_images.values())
    proc = run_cli("--model", str(city96_onnx), *map(str, paths), "--jsonl", "--tiles", timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    expected = reference_scores([Image.open(p).convert("RGB") for p in paths], city96_checkpoint)
    labels = ["clean", "jpeg", "webp"]
    worst = 0.0
    for key, row, ref in zip(city96_images, rows, expected):
        assert len(row["tiles"]) == (5 if "fivecrop" in key else 1), key
        got = np.array([row["scores"][label] for label in labels])
        worst = max(worst, float(np.max(np.abs(got - ref))))
    assert worst <= END_TO_END_TOLERANCE, worst
    # Not vacuous: the images' probabilities differ by far more than the tolerance.
    spread = np.ptp(np.stack(expected), axis=0).max()
    assert spread > 25 * END_TO_END_TOLERANCE, spread
    print(f"end-to-end max |ccscore - reference| = {worst:.2e}, spread across images = {spread:.3f}")
