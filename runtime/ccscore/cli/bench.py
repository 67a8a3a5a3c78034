"""`ccscore bench [DIR]`: speed per execution provider next to the decoding floor and the reference model."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, rich_markup_mode=None)  # plain help: nothing cut at 80 columns


def _own_args() -> list[str]:
    args = sys.argv[1:]
    return args[1:] if args[:1] == ["bench"] else args


@app.command()
def bench(
    folder: Optional[Path] = typer.Argument(None, help="Images to time on (walked recursively). "
                                            "Default: synthetic 1-4 MP illustrations in a temporary folder."),
    providers: str = typer.Option("cpu,cuda,tensorrt", "--providers",
                                  help="Comma-separated: cpu, cuda, tensorrt. Unavailable ones are reported as such."),
    model: Optional[Path] = typer.Option(None, "--model", help="A ccscore ONNX model (default: the bundled one)."),
    synthetic: int = typer.Option(6, "--synthetic", min=1, help="How many synthetic images without DIR."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Tiles per session run for the model timing."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timings are the best of this many runs."),
    reference: bool = typer.Option(True, "--reference/--no-reference",
                                   help="Time the reference architecture when torch is installed."),
    reference_images: int = typer.Option(1, "--reference-images", min=1, help="Images (x5 crops) to time it on."),
    end_to_end: bool = typer.Option(True, "--end-to-end/--no-end-to-end",
                                    help="Time `ccscore DIR --jsonl` as a subprocess."),
    as_json: bool = typer.Option(False, "--json", help="One JSON report on stdout instead of the table."),
) -> None:
    """Times scoring per execution provider: tiles/s, images/s end to end, model ms per image, peak memory,
    the decode-only floor on the same images, and the reference architecture's cost."""
    from ..bench import PROVIDER_NAMES, BenchOptions, format_report, run_bench
    from ..blas import limit_blas_threads
    from ..errors import CCScoreError

    names: List[str] = [p.strip().lower() for p in providers.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROVIDER_NAMES]
    if unknown or not names:
        typer.echo(f"ccscore bench: error: unknown provider(s) {', '.join(unknown) or '(none)'}: "
                   f"use {', '.join(PROVIDER_NAMES)}", err=True)
        raise typer.Exit(2)
    if folder is not None and not folder.is_dir():
        typer.echo(f"ccscore bench: error: {folder} is not a folder", err=True)
        raise typer.Exit(2)
    opts = BenchOptions(folder=folder, providers=names, model=str(model) if model else None, synthetic=synthetic,
                        batch_size=batch_size, repeats=repeats, reference=reference,
                        reference_images=reference_images, end_to_end=end_to_end,
                        command=" ".join(["ccscore bench"] + [shlex.quote(a) for a in _own_args()]))
    limit_blas_threads(1)  # the model is timed in this process: as the scoring command runs it (ccscore.blas)
    try:
        report = run_bench(opts, log=lambda msg: typer.echo(f"ccscore bench: {msg}", err=True))
    except (CCScoreError, ValueError) as exc:
        typer.echo(f"ccscore bench: error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
