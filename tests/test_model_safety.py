"""Broken, hostile or mistaken models: refused at load in one line, or their unusable outputs recorded as errors.

Models are built here with `onnx.helper`: the tile's mean pixel value, times zero, plus a constant row, so each
test chooses exactly what the model outputs (a valid distribution, NaN, negatives, the wrong width), what its
graph declares and what its metadata says. Valid models are tampered with as a user's file could be: loaded,
metadata edited, saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import BUNDLED_MODEL, run_cli

VALID_ROW = (0.8, 0.15, 0.05)
META = {"name": "stub", "version": "0", "labels": ["clean", "jpeg", "webp"], "tile_size": 128, "tiling": "content",
        "tiling_params": {"max_tiles": 4}, "aggregation": "mean", "threshold": 0.5, "outputs": ["probs", "quality"]}


def build_model(path: Path, row=VALID_ROW, quality: float = 50.0, meta: dict | None = None,
                input_type: str = "UINT8", input_shape=("batch", 128, 128, 3), probs_shape=("batch", 3),
                outputs=("probs", "quality"), second_input: bool = False, nan_below: float | None = None) -> Path:
    """A model whose probs are `row` for every tile (NaN for tiles darker than `nan_below`) and quality `quality`.

    meta: overrides of META (a value of None drops the key); non-string values are stored as JSON.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = len(row)
    inits = [numpy_helper.from_array(np.zeros((1, width), np.float32), "zero_row"),
             numpy_helper.from_array(np.asarray(row, np.float32), "row"),
             numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero_q"),
             numpy_helper.from_array(np.asarray([quality], np.float32), "q"),
             numpy_helper.from_array(np.asarray([nan_below or 0.0], np.float32), "dark")]
    nodes = [helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["m"], ["level"], axis=1),  # [N, 1]: each tile's mean level
             # sqrt(level - dark) * 0 is 0, or NaN for tiles darker than `dark`
             helper.make_node("Sub", ["level", "dark"], ["above"]),
             helper.make_node("Sqrt" if nan_below is not None else "Identity", ["above"], ["root"]),
             helper.make_node("Mul", ["root", "zero_row"], ["zeros"]),
             helper.make_node("Add", ["zeros", "row"], ["probs"]),
             helper.make_node("Mul", ["root", "zero_q"], ["zq"]),
             helper.make_node("Add", ["zq", "q"], ["quality"])]
    inputs = [helper.make_tensor_value_info("pixels", getattr(TensorProto, input_type), list(input_shape))]
    if second_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.UINT8, ["batch"]))
    declared = {"probs": helper.make_tensor_value_info("probs", TensorProto.FLOAT, list(probs_shape)),
                "quality": helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["batch", 1])}
    graph = helper.make_graph(nodes, "stub", inputs, [declared[o] for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {**META, **(meta or {})}.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(model, str(path))
    return path


def tampered(source: Path, target: Path, **changes: str | None) -> Path:
    """`source` with metadata keys set to the raw strings given (None: removed), saved as `target`."""
    import onnx

    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    del model.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="module")
def valid_model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("valid") / "valid.onnx")


def bright_and_dark(folder: Path, n: int = 3) -> tuple[list[Path], list[Path]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bright, dark = [], []
    for k in range(n):
        for level, group in ((200, bright), (40, dark)):
            pixels = np.clip(level + rng.normal(0, 8, (160, 200, 3)), 0, 255).astype(np.uint8)
            path = folder / f"{'bright' if group is bright else 'dark'}-{k}.png"
            Image.fromarray(pixels).save(path)
            group.append(path)
    return bright, dark


def image(level: int = 200) -> np.ndarray:
    """A textured image (a flat one gives no tile to run the model on)."""
    noise = np.random.default_rng(level).integers(-20, 21, (150, 170, 1))
    return np.clip(level + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)


# ---------------------------------------------------------------- metadata, checked at load

BAD_METADATA = [
    ("labels", '["clean", "jpeg", "jpeg"]'),  # duplicate
    ("labels", "clean"),  # not a list: was read as the labels c, l, e, a, n
    ("labels", "[1, 2, 3]"),
    ("labels", '["clean"]'),
    ("labels", None),
    ("tile_size", "big"),
    ("tile_size", "128.5"),
    ("tile_size", "true"),
    ("tiling", "spiral"),
    ("tiling", "[1]"),
    ("tiling_params", "[4]"),
    ("tiling_params", '{"max_tiles": "4"}'),
    ("tiling_params", '{"max_tiles": 100000}'),
    ("tiling_params", '{"max_tiles": 0}'),
    ("tiling_params", '{"spiral_turns": 3}'),
    ("tiling_params", '{"texture_step": 0}'),
    ("tiling_params", '{"min_texture": NaN}'),
    ("aggregation", "average"),
    ("aggregation", "[1]"),
    ("threshold", "high"),
    ("threshold", "1.5"),
    ("threshold", "NaN"),
    ("outputs", '"probs"'),
    ("outputs", '["quality"]'),
    ("outputs", '["probs", "logits"]'),
    ("early_stop", '{"first_tiles": 2}'),
    ("early_stop", '{"first_tiles": "2", "margin": 0.05}'),
    ("early_stop", '{"first_tiles": 2, "margin": 0.9}'),
    ("early_stop", "[2, 0.05]"),
    ("name", ""),
    # hostile JSON: integers too long to read, nesting too deep to parse, unhashable items, a huge list
    ("tile_size", "1" + "0" * 5000),
    ("tile_size", "1" + "0" * 400),
    ("labels", "[" * 100_000 + "]" * 100_000),
    ("outputs", '["probs", ["quality"]]'),
]


@pytest.mark.parametrize("key,value", BAD_METADATA)
def test_bad_metadata_is_a_model_error_at_load_naming_the_key(valid_model, tmp_path, key, value):
    from ccscore import ModelError, Scorer

    model = tampered(valid_model, tmp_path / "bad.onnx", **{key: value})
    with pytest.raises(ModelError) as caught:
        Scorer(model, device="cpu")
    message = str(caught.value)
    assert key in message and "\n" not in message


def test_a_huge_label_list_is_checked_in_linear_time(valid_model, tmp_path):
    import time

    from ccscore import ModelError, Scorer

    labels = json.dumps(["clean", *[f"label{k}" for k in range(100_000)], "clean"])
    model = tampered(valid_model, tmp_path / "bad.onnx", labels=labels)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="labels repeat 'clean'"):
        Scorer(model, device="cpu")
    assert time.perf_counter() - start < 10  # a generous bound: ~0.1 s; comparing every pair took minutes


def test_valid_stub_and_bundled_model_load(valid_model):
    from ccscore import Scorer

    scorer = Scorer(valid_model, device="cpu")
    assert scorer.score(image()).label == "clean"
    if BUNDLED_MODEL.exists():
        assert Scorer(device="cpu").info.has_quality


def test_huge_tile_size_is_refused_at_load_not_allocated(tmp_path):
    """A graph that takes tiles of any size, with metadata asking for 30,000 px tiles (2.7 GB each)."""
    from ccscore import ModelError, Scorer

    model = build_model(tmp_path / "huge.onnx", input_shape=("batch", "h", "w", 3), meta={"tile_size": 30000})
    with pytest.raises(ModelError, match=r"tile_size must be within \[16, 2048\], got 30000"):
        Scorer(model, device="cpu")
    resized = build_model(tmp_path / "resize.onnx", input_shape=("batch", "h", "w", 3),
                          meta={"tile_size": 336, "tiling": "city96_fivecrop",
                                "tiling_params": {"shortest_edge": 336, "resize_to": 30000}})
    with pytest.raises(ModelError, match="resize_to"):
        Scorer(resized, device="cpu")


def test_tiling_parameters_that_only_the_strategy_refuses_fail_at_load(tmp_path):
    from ccscore import ModelError, Scorer

    model = build_model(tmp_path / "city.onnx", input_shape=("batch", 336, 336, 3),
                        meta={"tile_size": 336, "tiling": "city96_fivecrop", "tiling_params": {"shortest_edge": 224}})
    with pytest.raises(ModelError, match="shortest_edge 224 is below the tile size 336"):
        Scorer(model, device="cpu")


def test_every_tiling_parameter_has_bounds():
    """A strategy parameter added without bounds would be refused in every model that uses it."""
    from ccscore.model_info import TILING_PARAMS, strategy_params
    from ccscore.tiling import STRATEGIES

    for name in STRATEGIES:
        assert set(strategy_params(name)) <= set(TILING_PARAMS), name


def test_max_tiles_override_is_bounded(valid_model):
    from ccscore import Scorer

    with pytest.raises(ValueError, match="max_tiles"):
        Scorer(valid_model, device="cpu", max_tiles=10**6)
    assert Scorer(valid_model, device="cpu", max_tiles=2).tiling_params["max_tiles"] == 2


# ---------------------------------------------------------------- the graph against its metadata

BAD_GRAPHS = {
    "float input": dict(input_type="FLOAT"),
    "tile size differs": dict(input_shape=("batch", 64, 64, 3)),
    "four channels": dict(input_shape=("batch", 128, 128, 4)),
    "channels first": dict(input_shape=("batch", 3, 128, 128)),
    "fixed batch of one": dict(input_shape=(1, 128, 128, 3)),
    "two inputs": dict(second_input=True),
    "four columns for three labels": dict(row=(0.7, 0.1, 0.1, 0.1), probs_shape=("batch", 4)),
    "quality named but missing": dict(outputs=("probs",)),
    "no probs": dict(outputs=("quality",), meta={"outputs": ["quality"]}),
}


@pytest.mark.parametrize("case", BAD_GRAPHS)
def test_graph_that_does_not_match_its_metadata_is_refused_at_load(tmp_path, case):
    from ccscore import ModelError, Scorer

    model = build_model(tmp_path / "bad.onnx", **BAD_GRAPHS[case])
    with pytest.raises(ModelError) as caught:
        Scorer(model, device="cpu")
    assert "\n" not in str(caught.value)


def renamed_quality(path: Path, name: str) -> Path:
    import onnx

    model = onnx.load(str(path))
    (node,) = [n for n in model.graph.node if n.output[0] == "quality"]
    node.output[0] = model.graph.output[1].name = name
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case,make", [
    ("tile size 30000", lambda d: build_model(d / "m.onnx", input_shape=("batch", "h", "w", 3),
                                              meta={"tile_size": 30000})),
    ("duplicate labels", lambda d: build_model(d / "m.onnx", meta={"labels": ["clean", "jpeg", "clean"]})),
    ("uint8 input expected", lambda d: build_model(d / "m.onnx", input_type="FLOAT")),
    ("unknown tiling", lambda d: build_model(d / "m.onnx", meta={"tiling": "spiral"})),
    ("a PNG", lambda d: (d / "m.onnx").write_bytes(bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64) or d / "m.onnx"),
    ("a folder", lambda d: (d / "m.onnx").mkdir() or d / "m.onnx"),
    ("an output name with a line break", lambda d: renamed_quality(build_model(d / "m.onnx"), "quality\nsecond line")),
])
def test_cli_refuses_a_bad_model_in_one_line_with_exit_2(tmp_path, case, make):
    model = make(tmp_path)
    bright, _ = bright_and_dark(tmp_path / "images", 1)
    proc = run_cli("--model", str(model), str(bright[0]))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("ccscore: error: ")


def test_load_checks_cost_little(valid_model):
    """Validation runs at every start: metadata, graph and a 1 x 1 tiling, nothing through the model."""
    import time

    from ccscore import Scorer
    from ccscore.model_info import ModelInfo

    scorer = Scorer(valid_model, device="cpu")
    session = scorer._session.session
    start = time.perf_counter()
    for _ in range(20):
        info = ModelInfo.from_metadata(scorer.info.path, session.get_modelmeta().custom_metadata_map)
        info.check_graph(session.get_inputs(), session.get_outputs())
    assert (time.perf_counter() - start) / 20 < 0.05  # a generous safety bound; ~1 ms measured


# ---------------------------------------------------------------- outputs that are not probabilities

BAD_OUTPUTS = {
    "nan": dict(row=(float("nan"), 0.5, 0.5)),
    "infinity": dict(row=(float("inf"), 0.0, 0.0)),
    "negative": dict(row=(1.2, -0.1, -0.1)),
    "not summing to 1": dict(row=(0.5, 0.5, 0.5)),
    "all zero": dict(row=(0.0, 0.0, 0.0)),
    "quality nan": dict(quality=float("nan")),
}


def with_width_known_only_when_run(path: Path) -> Path:
    """Reshapes probs [N, 4] to [-1, channels + 1], a width onnxruntime cannot infer from the graph."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    model.graph.initializer.extend([numpy_helper.from_array(np.array([3], np.int64), "channel_axis"),
                                    numpy_helper.from_array(np.array([1], np.int64), "one"),
                                    numpy_helper.from_array(np.array([-1], np.int64), "any")])
    (add,) = [n for n in model.graph.node if n.output[0] == "probs"]
    add.output[0] = "probs_fixed"
    model.graph.node.extend([helper.make_node("Shape", ["pixels"], ["shape"]),
                             helper.make_node("Gather", ["shape", "channel_axis"], ["channels"]),
                             helper.make_node("Add", ["channels", "one"], ["width"]),
                             helper.make_node("Concat", ["any", "width"], ["new_shape"], axis=0),
                             helper.make_node("Reshape", ["probs_fixed", "new_shape"], ["probs"])])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case", [*BAD_OUTPUTS, "width known only when run"])
def test_invalid_outputs_are_a_model_error_never_a_decision(tmp_path, case):
    from ccscore import ModelOutputError, Scorer, ScoreFailure
    from ccscore.tiling import make_tiles

    if case == "width known only when run":
        model = with_width_known_only_when_run(build_model(tmp_path / "bad.onnx", row=(0.7, 0.1, 0.1, 0.1),
                                                           probs_shape=("batch", "classes")))
    else:
        model = build_model(tmp_path / "bad.onnx", **BAD_OUTPUTS[case])
    scorer = Scorer(model, device="cpu")
    with pytest.raises(ModelOutputError, match="^model produced invalid output: "):
        scorer.score(image())
    failures = list(scorer.score_many([image(), image(90)]))  # each image gets its error; nothing raises
    assert [type(f) for f in failures] == [ScoreFailure, ScoreFailure]
    assert all(f.error.startswith("model produced invalid output: ") for f in failures)
    tiles = make_tiles(image(), scorer.info.tiling, scorer.info.tile_size, scorer.tiling_params)
    (failure,) = scorer.score_together([("a.png", tiles, (170, 150))])
    assert isinstance(failure, ScoreFailure) and not hasattr(failure, "label")
    assert failure.to_dict() == {"path": "a.png", "error": failure.error}


def test_a_model_that_fails_to_run_is_an_error_for_its_images(tmp_path):
    """A graph whose declared input passes the checks but whose body cannot take it (a Reshape to a fixed
    size): onnxruntime raises at the first batch."""
    import onnx
    from onnx import helper, numpy_helper

    from ccscore import ModelOutputError, Scorer

    path = build_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 7, 128, 3], np.int64), "fixed"))
    model.graph.node.insert(1, helper.make_node("Reshape", ["x", "fixed"], ["x_fixed"]))
    for node in model.graph.node[2:]:
        node.input[:] = ["x_fixed" if i == "x" else i for i in node.input]
    onnx.save(model, str(path))
    scorer = Scorer(path, device="cpu")
    with pytest.raises(ModelOutputError, match="^model failed to run: "):
        scorer.score(image())


def test_only_the_images_with_invalid_outputs_fail_and_nothing_is_moved(tmp_path):
    """Tiles darker than 100 get NaN: those images get one-line error records, the others are scored, the run
    exits 1, the JSON is strict and no image is moved on the strength of NaN."""
    model = build_model(tmp_path / "m.onnx", nan_below=100.0)
    bright, dark = bright_and_dark(tmp_path / "images")
    out = tmp_path / "scores.jsonl"
    proc = run_cli("--model", str(model), str(tmp_path / "images"), "--output", str(out),
                   "--move-to", str(tmp_path / "damaged"), "--workers", "0")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr

    def strict(constant):
        raise ValueError(f"not strict JSON: {constant}")

    records = {Path(r["path"]).name: r for r in map(lambda l: json.loads(l, parse_constant=strict),
                                                     out.read_text().splitlines()[1:])}  # after the header
    assert set(records) == {p.name for p in bright + dark}
    for p in dark:
        assert records[p.name] == {"path": str(p), "error": "model produced invalid output: probs hold NaN or infinity"}
        assert p.exists()
    for p in bright:
        assert records[p.name]["label"] == "clean"
    assert not (tmp_path / "damaged").exists() or not any((tmp_path / "damaged").rglob("*.png"))
    assert f"{len(dark)} failed" in proc.stderr


def test_early_stop_keeps_invalid_outputs_an_error(tmp_path):
    """With early stop the first tiles and the rest run separately: either run's bad outputs fail the image."""
    from ccscore import ModelOutputError, Scorer

    meta = {"early_stop": {"first_tiles": 1, "margin": 0.05}, "tiling_params": {"max_tiles": 4, "min_texture": 0.0}}
    scorer = Scorer(build_model(tmp_path / "m.onnx", row=(0.6, 0.3, 0.1), nan_below=100.0, meta=meta), device="cpu")
    assert scorer.early_stop is not None
    texture = np.random.default_rng(0).integers(-10, 11, (256, 256, 1))  # flat tiles are never scored
    half = np.full((256, 256, 1), 200) + texture
    half[128:] -= 180  # first tiles bright (undecided: P(clean) 0.6), the others dark: NaN
    with pytest.raises(ModelOutputError, match="NaN"):
        scorer.score(half.astype(np.uint8).repeat(3, axis=2))
    assert scorer.score((200 + texture).astype(np.uint8).repeat(3, axis=2)).label == "clean"


def test_aggregation_that_leaves_nothing_falls_back_to_the_mean():
    """min over tiles that disagree completely is all zero: that is no evidence for a uniform 'jpeg'."""
    from ccscore.scorer import aggregate, decide

    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.9, 0.1]])
    dist = aggregate(probs, "min")
    np.testing.assert_allclose(dist, [0.5, 0.45, 0.05])
    assert decide(dict(zip(("clean", "jpeg", "webp"), dist)), 0.5) == "clean"


def test_json_records_are_strict():
    from ccscore.outputs import encode_jsonl

    assert json.loads(encode_jsonl({"path": "a", "scores": {"clean": 1.0}}))["scores"] == {"clean": 1.0}
    with pytest.raises(ValueError):
        encode_jsonl({"path": "a", "scores": {"clean": float("nan")}})
