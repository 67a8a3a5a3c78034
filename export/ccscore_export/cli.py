"""`ccscore-export`: build data, train, and export models to the single ONNX graph the runtime loads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command("build-data", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def build_data(ctx: typer.Context) -> None:
    """Builds tile sets (--split train|val) or evaluation folders (--eval-from, --export-clean); --help for all."""
    from .data.build import main as build_main

    raise typer.Exit(build_main(ctx.args))


@app.command("calibrate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def calibrate(ctx: typer.Context) -> None:
    """Chooses an exported model's grid gate on a calibration evaluation set; --help for all."""
    from .calibrate import main as calibrate_main

    raise typer.Exit(calibrate_main(ctx.args))


@app.command("resized-judge", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def resized_judge(ctx: typer.Context) -> None:
    """Fits the runtime's resized-damage judge on training-source folders, its threshold on the calibration set."""
    from .resized_judge import main as judge_main

    raise typer.Exit(judge_main(ctx.args))


@app.command("resized-appearance", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def resized_appearance(ctx: typer.Context) -> None:
    """Trains the runtime's resized-damage appearance network on training-source folders, its threshold on the
    calibration set."""
    from .resized_appearance import main as appearance_main

    raise typer.Exit(appearance_main(ctx.args))


@app.command()
def train(
    train_data: Path = typer.Option(..., "--train", exists=True, dir_okay=False),
    val_data: Path = typer.Option(..., "--val", exists=True, dir_okay=False),
    out: Path = typer.Option(Path("runs/default"), help="Run folder: log.csv, loss.png, last.pt, best.pt."),
    epochs: int = typer.Option(80),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(True, help="Continue from OUT/last.pt when present."),
    training_data: str = typer.Option("", help="One-line training-data summary stored in the model."),
    frequencies: Optional[list[str]] = typer.Option(
        None, help="DCT frequencies the encoder keeps per direction, once per block size (8, then 4): "
                   "comma-separated, or 'all'. E.g. --frequencies 0,1,3,5,7 --frequencies all."),
    chroma: bool = typer.Option(False, "--chroma/--no-chroma",
                                help="Add the fixed chroma-subsampling feature block to the encoder."),
    labels: Optional[str] = typer.Option(
        None, help="The head's labels, comma-separated: clean first, then any of jpeg,webp,avif,jxl (in that "
                   "order); default: all. E.g. clean,jpeg,webp for data without AVIF or JPEG XL."),
) -> None:
    """Trains the detector head (the encoder is fixed) with a seeded, resumable recipe."""
    from .labels import LABELS
    from .model import DetectorConfig, EncoderConfig
    from .train import Recipe, train as run_training

    head_labels = LABELS
    if labels is not None:
        head_labels = tuple(v.strip() for v in labels.split(","))
        if head_labels != tuple(name for name in LABELS if name in head_labels) or head_labels[0] != LABELS[0] \
                or len(head_labels) < 2:
            typer.echo(f"error: --labels must be clean and at least one of {','.join(LABELS[1:])}, in that order, "
                       f"got {labels}", err=True)
            raise typer.Exit(2)
    config = None
    if frequencies or chroma or labels is not None:
        try:
            kept = tuple(() if f.strip() == "all" else tuple(int(v) for v in f.split(",")) for f in frequencies or ())
            encoder = EncoderConfig(frequencies=kept, chroma=chroma) if frequencies or chroma else EncoderConfig()
            config = DetectorConfig(labels=head_labels, encoder=encoder)
        except ValueError as exc:
            typer.echo(f"error: --frequencies: {exc}", err=True)
            raise typer.Exit(2)
    try:
        best = run_training(train_data, val_data, out, Recipe(epochs=epochs, seed=seed), config=config,
                            training_data=training_data, resume=resume)
    except ValueError as exc:  # a tile set the head cannot learn (labels beyond --labels)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"best checkpoint: {best}")


@app.command("export")
def export(
    checkpoint: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Option(..., "--output", "-o"),
    validation_data: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                   help="A tile .npz whose tiles join the validation."),
    max_tiles: int = typer.Option(8, help="Tiles per image the runtime takes by default."),
    first_tiles: Optional[int] = typer.Option(None, help="Early stop: tiles scored first (default 2; 0: the "
                                              "runtime scores every tile)."),
    stop_margin: Optional[float] = typer.Option(None, help="Early stop: no more tiles once P(clean) is this close "
                                                "to 0 or 1 (default 0.05)."),
    grid_gate: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                             help="The grid gate as JSON, as `python -m ccscore_export.calibrate "
                                             "--json` writes it (default: the recipe's, DEFAULT_GRID_GATE)."),
    version: Optional[str] = typer.Option(None),
) -> None:
    """Exports a checkpoint to one ONNX graph and validates it against torch (fails past tolerance)."""
    import json

    import numpy as np

    from .detector_export import DEFAULT_EARLY_STOP, export_detector
    from .onnx_export import ExportValidationError

    real = np.load(validation_data)["tiles"] if validation_data else None
    try:
        given = {"first_tiles": first_tiles, "margin": stop_margin}
        early_stop = {**DEFAULT_EARLY_STOP, **{k: v for k, v in given.items() if v is not None}}
        diffs = export_detector(checkpoint, output, real_tiles=real, max_tiles=max_tiles, version=version,
                                early_stop=early_stop if early_stop["first_tiles"] > 0 else {},
                                grid_gate=json.loads(grid_gate.read_text()) if grid_gate else None)
    except ExportValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for name, diff in diffs.items():
        typer.echo(f"validated {name}: max |onnx - torch| = {diff:.2e}")
    typer.echo(f"wrote {output}")


@app.command("city96")
def city96(
    clip: Path = typer.Option(..., "--clip", exists=True, file_okay=False,
                              help="Local Hugging Face CLIP folder (openai/clip-vit-large-patch14-336)."),
    head: Path = typer.Option(..., "--head", exists=True, dir_okay=False, help="CityClassifiers head .safetensors."),
    config: Optional[Path] = typer.Option(None, "--config", exists=True, dir_okay=False,
                                          help="The head's .config.json (default: beside the head)."),
    output: Path = typer.Option(..., "--output", "-o"),
    fp16: bool = typer.Option(False, "--fp16", help="CLIP tower in fp16 (uint8 input, fp32 probs)."),
    name: Optional[str] = typer.Option(None, help="Model name (default: from the config)."),
    version: Optional[str] = typer.Option(None, help="Model version (default: the config's rev)."),
) -> None:
    """Imports a CityClassifiers checkpoint: CLIP vision + head as one ONNX graph, validated against torch."""
    from .city96 import export_city96
    from .onnx_export import ExportValidationError

    try:
        diffs = export_city96(clip, head, output, config=config, fp16=fp16, name=name, version=version)
    except (ExportValidationError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for key, diff in diffs.items():
        typer.echo(f"validated {key}: max |onnx - torch| = {diff:.2e}")
    typer.echo(f"wrote {output}")


# Top-level modules of the [train] extra: a command that needs one in a runtime-only install says so in a line.
TRAIN_MODULES = frozenset({"torch", "onnx", "onnxruntime", "tqdm", "matplotlib", "imagecodecs", "cv2",
                           "safetensors", "transformers", "jpeglib"})


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in TRAIN_MODULES:
            raise
        typer.echo(f"ccscore-export: error: this command needs the [train] extra ({missing} is not installed): "
                   f"pip install 'ccscore[train]' (on CPU machines, pip install torch==2.13.0 first)", err=True)
        raise SystemExit(2) from None
