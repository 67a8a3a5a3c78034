"""`ccscore heatmap IMAGE -o OUT.png`: every textured cell of the model's grid scored, drawn over the image."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Optional

import typer

from . import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, command_app, fail_as
from ..providers import DEVICES

app = command_app()


def fail(message: str, code: int = EXIT_USAGE) -> None:
    fail_as("ccscore heatmap", message, code)


@app.command()
def heatmap(
    image: Path = typer.Argument(..., help="The image.", readable=False),
    output: Path = typer.Option(..., "--output", "-o", metavar="OUT.png",
                                help="The picture to write (PNG); never replaces an existing file."),
    model: Optional[Path] = typer.Option(None, "--model", help="A ccscore ONNX model (default: the bundled one)."),
    device: str = typer.Option("auto", "--device", help=f"{', '.join(DEVICES)} (any case)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                              help="A cell is coloured when its P(clean) < 1 - T (default: the "
                                                   "model's, 0.5); the image's label uses it too."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse larger images."),
    size: int = typer.Option(1024, "--size", min=64, max=8192, help="Long side of the picture at most (px)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the image's record and its coloured cells as "
                                 "one JSON object on stdout."),
) -> None:
    """Scores every textured cell of the model's tile grid and draws the image with lossy cells coloured by
    P(lossy) (JPEG red, WebP blue, stronger when surer); cells without texture, and cells scored clean, stay
    uncoloured. The legend gives the image's label, quality and probabilities, as the score command decides.

    Exit status: 0 written, 1 the image cannot be scored, 2 usage error (an existing OUT, a bad option or model).
    """
    from ..errors import CCScoreError, ImageError, OnnxRuntimeMissing, one_line
    from ..outputs import create_new_file
    from ..scorer import Scorer

    out = os.fspath(output)
    if os.path.lexists(out):
        fail(f"{out} exists; choose another file (a heatmap never replaces one)")
    try:
        scorer = Scorer(model, device=device, threshold=threshold, max_pixels=max_pixels)
    except (OnnxRuntimeMissing, CCScoreError, ValueError) as exc:
        fail(one_line(exc))
    try:
        heat = scorer.heatmap(image, size)
    except (ImageError, CCScoreError) as exc:
        fail(one_line(exc), EXIT_SOME_FAILED)
    buf = io.BytesIO()
    heat.picture.save(buf, "PNG")
    try:
        if not create_new_file(out, buf.getvalue()):
            fail(f"{out} exists; choose another file (a heatmap never replaces one)")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    if as_json:
        from ..outputs import rounded

        typer.echo(json.dumps({**rounded(heat.result.to_dict()), "cells": [
            {"box": list(c[:4]), "label": c[4], "p_lossy": round(c[5], 4),
             "quality": None if c[6] is None else round(c[6], 1)} for c in heat.cells()]}))
    rows, cols = heat.scored.shape
    typer.echo(f"ccscore heatmap: {out}: {heat.result.label}, {int(heat.coloured.sum())} of "
               f"{int(heat.scored.sum())} textured cells lossy ({rows}x{cols} grid)", err=True)
    raise typer.Exit(EXIT_OK)
