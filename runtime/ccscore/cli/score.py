"""`ccscore IMAGE...`: score images and print a readable line or one JSON object each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import CCScoreError, ImageError
from ..results import ScoreResult
from ..scorer import AGGREGATIONS

app = typer.Typer(add_completion=False)

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def readable(path: str, result: ScoreResult) -> str:
    ranked = sorted(result.scores.items(), key=lambda kv: -kv[1])
    probs = ", ".join(f"{label} {p:.3f}" for label, p in ranked)
    quality = f", quality ~{result.quality:.0f}" if result.quality is not None else ""
    return f"{path}: {result.label.upper() if result.flagged else result.label}{quality}  ({probs})"


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"ccscore: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def score(
    images: List[Path] = typer.Argument(..., help="Image files to score."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per line on stdout."),
    model: Optional[Path] = typer.Option(None, "--model", help="A ccscore ONNX model (default: the bundled one)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    aggregate: Optional[str] = typer.Option(None, "--aggregate", help=f"One of {', '.join(AGGREGATIONS)} (default: the model's)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag when P(clean) < 1 - T (default 0.5)."),
    max_tiles: Optional[int] = typer.Option(None, "--max-tiles", help="Tiles per image (default: the model's)."),
    tiles: bool = typer.Option(False, "--tiles", help="Include per-tile scores and boxes."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse larger images (default: Pillow's limit)."),
) -> None:
    """Tells whether each image carries JPEG or WebP compression artifacts, how strong, and where.

    Exit status: 0 all scored, 1 some files failed, 2 usage error (bad option, unusable model).
    """
    from ..errors import OnnxRuntimeMissing
    from ..scorer import Scorer

    try:
        scorer = Scorer(model, device=device, aggregate=aggregate, threshold=threshold, max_tiles=max_tiles,
                        max_pixels=max_pixels)
    except OnnxRuntimeMissing as exc:
        fail(str(exc))
    except (CCScoreError, ValueError) as exc:
        fail(str(exc))
    if scorer.fallback_note:
        typer.echo(f"ccscore: warning: {scorer.fallback_note}", err=True)

    failed = 0
    for path in images:
        try:
            result = scorer.score(path)
        except ImageError as exc:
            failed += 1
            if jsonl:
                print(json.dumps({"path": str(path), "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                typer.echo(f"{path}: error: {exc}", err=True)
            continue
        if jsonl:
            print(json.dumps(result.to_dict(with_tiles=tiles), ensure_ascii=False), flush=True)
        else:
            print(readable(str(path), result), flush=True)
            if tiles:
                for t in result.tiles:
                    print(f"  tile {t.box}: " + ", ".join(f"{k} {v:.3f}" for k, v in t.scores.items()))
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)
