"""`ccscore report SCORES.jsonl -o report.html`, or `ccscore report FOLDER -o report.html` (score, then report)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, command_app, fail_as, say
from ..providers import DEVICES
from ..report import HEATMAP_CHOICES

app = command_app()


def fail(message: str, code: int = EXIT_USAGE) -> None:
    fail_as("ccscore report", message, code)


@app.command()
def report(
    source: Path = typer.Argument(..., help="A run's records (the JSONL or CSV of 'ccscore --output'), or a "
                                  "folder to score first.", readable=False),
    output: Path = typer.Option(..., "--output", "-o", metavar="REPORT.html",
                                help="The report to write: one HTML file; never replaces an existing file."),
    scores: Optional[Path] = typer.Option(None, "--scores", metavar="FILE",
                                          help="With a folder: where its records go (default: REPORT.jsonl "
                                               "beside the report; an existing one is resumed)."),
    heatmaps: str = typer.Option("flagged", "--heatmaps", metavar="|".join(HEATMAP_CHOICES),
                                 help="Images whose heatmap the large view shows: every textured cell scored "
                                      "again, about 1 ms a cell (a 2 MP image ~0.15 s)."),
    model: Optional[Path] = typer.Option(None, "--model", help="The model the run used (default: the bundled one)."),
    device: str = typer.Option("auto", "--device", help=f"{', '.join(DEVICES)} (any case)."),
    base: Optional[Path] = typer.Option(None, "--base", metavar="DIR",
                                        help="Folder that relative paths in the records are relative to "
                                             "(default: the current one)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Thumbnail processes (default: cores)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse larger images."),
) -> None:
    """Writes one self-contained HTML file (inline CSS, JS and thumbnails; no network) to look at a run: a
    list sortable and filterable by label, P(lossy), quality, size and path; counts per label; histograms of
    P(lossy) and quality; a cut that says how many images it would flag; a click shows the image large under
    its heatmap. The large view links the original files (file:// paths), so keep them where they are.

    Exit status: 0 written, 1 some records unreadable or scoring failed for some images, 2 usage error.
    """
    from ..errors import CCScoreError, OnnxRuntimeMissing, one_line
    from ..outputs import OutputError, create_new_file
    from ..report import ReportOptions, build_report
    from ..scorer import Scorer

    if heatmaps not in HEATMAP_CHOICES:
        fail(f"--heatmaps must be one of {', '.join(HEATMAP_CHOICES)}, got {heatmaps!r}")
    out = os.fspath(output)
    if os.path.lexists(out):
        fail(f"{out} exists; choose another file (a report never replaces one)")
    if base is not None and not os.path.isdir(base):
        fail(f"--base {base} is not a folder")
    code = EXIT_OK
    records_path = os.fspath(source)
    if os.path.isdir(source):
        from . import score as score_command

        records_path = os.fspath(scores) if scores is not None else os.path.splitext(out)[0] + ".jsonl"
        if os.path.abspath(records_path) == os.path.abspath(out):  # found only after scoring, otherwise
            fail(f"the records would go to {out}, the report itself; name the report .html or give --scores FILE")
        args = [os.fspath(source), "--output", records_path, "--device", device, "--resume"]
        if model is not None:
            args += ["--model", os.fspath(model)]
        if max_pixels is not None:
            args += ["--max-pixels", str(max_pixels)]
        code = score_command.app(args=args, prog_name="ccscore", standalone_mode=False)
        if code not in (EXIT_OK, EXIT_SOME_FAILED):  # usage error, interrupted: no report
            raise typer.Exit(code)
    elif scores is not None:
        fail("--scores goes with a folder to score; SOURCE is already a records file")
    def make_scorer() -> Scorer:
        try:
            return Scorer(model, device=device, max_pixels=max_pixels)
        except (OnnxRuntimeMissing, CCScoreError, ValueError) as exc:
            fail(one_line(exc))

    if heatmaps != "none" and model is not None and not os.path.isfile(model):
        fail(f"model file not found: {model}")
    options = ReportOptions(heatmaps=heatmaps, base=os.fspath(base) if base else None,
                            workers=(os.cpu_count() or 1) if workers is None else workers, max_pixels=max_pixels,
                            title=f"ccscore report: {os.path.basename(os.path.normpath(os.fspath(source)))}")
    try:
        html, count, bad_lines = build_report(records_path, options, make_scorer)
    except OutputError as exc:
        fail(str(exc))
    for bad in bad_lines:
        say(f"ccscore report: error: {bad['path']}: {bad['error']}")
    try:
        if not create_new_file(out, html):
            fail(f"{out} exists; choose another file (a report never replaces one)")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    say(f"ccscore report: {out}: {count} images ({len(html) / 1e6:.1f} MB)")
    raise typer.Exit(EXIT_SOME_FAILED if bad_lines else code)
