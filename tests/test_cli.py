"""The command line as a user meets it (issue 16): one-line errors, honest help, a summary, rounding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stub_model import STUB_LABELS, build_stub_model

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "export"),
                                                     os.environ.get("PYTHONPATH", "")]),
       "CCSCORE_THREADS": "1", "COLUMNS": "80"}
CLI = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])"]


def run(*args: str, cwd=None, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout,
                          **kwargs)


@pytest.fixture(scope="module")
def stub_model(tmp_path_factory) -> Path:
    return build_stub_model(tmp_path_factory.mktemp("stub") / "stub.onnx")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """A folder of textured pictures (the stub model flags the dark-red ones) and one broken file."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    for i in range(6):
        base = rng.integers(0, 256, (1, 1, 3))
        noise = rng.integers(-40, 40, (200, 260, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(root / f"p{i}.png")
    (root / "empty.png").write_bytes(b"")
    return root


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    assert lines[0].startswith("ccscore"), lines[0]
    return lines[0]


# ---------------------------------------------------------------- 1: numeric options


@pytest.mark.parametrize("args", [["--max-tiles", "0"], ["--max-tiles", "-3"], ["--max-tiles", "257"],
                                  ["--max-pixels", "0"], ["--threshold", "1.5"], ["--workers", "-1"],
                                  ["--batch-size", "0"], ["--max-tiles", "many"], ["--no-such-option"]])
def test_bad_numeric_options_are_one_line_exit_2(stub_model, pictures, args):
    line = assert_one_line_error(run(str(pictures / "p0.png"), "--model", str(stub_model), *args))
    assert args[0] in line


# ---------------------------------------------------------------- 3: paths and subcommands


def test_a_folder_named_like_a_command_is_never_taken_for_it(stub_model, pictures, tmp_path):
    work = tmp_path / "work"
    (work / "bench").mkdir(parents=True)
    Image.open(pictures / "p0.png").save(work / "bench" / "a.png")
    ambiguous = run("bench", "--model", str(stub_model), "--jsonl", cwd=work)
    line = assert_one_line_error(ambiguous)
    assert "./bench" in line and not ambiguous.stdout
    as_path = run("./bench", "--model", str(stub_model), "--jsonl", cwd=work)
    assert as_path.returncode == 0, as_path.stderr
    assert [json.loads(l)["path"] for l in as_path.stdout.splitlines()] == ["bench/a.png"]
    # Elsewhere the name is the command.
    assert "Times scoring" in run("bench", "--help", cwd=tmp_path).stdout


# ---------------------------------------------------------------- 4: Scorer.score_many


def test_score_many_gives_each_image_its_result_or_its_error(stub_model, pictures, tmp_path):
    from ccscore import ScoreFailure, ScoreResult, Scorer

    scorer = Scorer(stub_model, device="cpu", batch_size=4)
    images = [pictures / "p0.png", tmp_path / "missing.png", pictures / "empty.png",
              np.asarray(Image.open(pictures / "p1.png")), str(pictures / "p2.png")]
    results = list(scorer.score_many(images))
    assert [type(r) for r in results] == [ScoreResult, ScoreFailure, ScoreFailure, ScoreResult, ScoreResult]
    assert [r.path for r in results] == [str(images[0]), str(images[1]), str(images[2]), None, str(images[4])]
    assert results[1].error == "no such file"  # the record names the path already
    assert "cannot decode" in results[2].error
    assert results[0].scores == scorer.score(images[0]).scores  # neighbours' failures change nothing


# ---------------------------------------------------------------- 5: --device cuda without CUDA


def test_an_unusable_cuda_says_why_and_how_to_fix_it(stub_model, pictures):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is offered here")
    for device in ("cuda", "CUDA"):
        proc = run(str(pictures / "p0.png"), "--model", str(stub_model), "--device", device, "--jsonl")
        assert proc.returncode == 0, proc.stderr
        (warning,) = [l for l in proc.stderr.splitlines() if "warning" in l]
        assert "offers only" in warning and "CPUExecutionProvider" in warning  # this onnxruntime's providers
        assert "onnxruntime-gpu" in warning and "pip install" in warning  # the fix
    assert_one_line_error(run(str(pictures / "p0.png"), "--model", str(stub_model), "--device", "gpu"))


def test_missing_cuda_libraries_are_named():
    from ccscore.providers import CPU, CUDA, why_unusable

    absent = {"cudnn"}
    reason = why_unusable(CUDA, [CUDA, CPU], loadable=lambda short, names: short not in absent)
    assert "cudnn" in reason and "cudart" not in reason and "cuDNN 9" in reason
    assert "could not start" in why_unusable(CUDA, [CUDA, CPU], loadable=lambda short, names: True)


# ---------------------------------------------------------------- 9: digits that carry meaning


def decimals(value: float) -> int:
    text = repr(value)
    if "e-" in text:
        mantissa, exponent = text.split("e-")
        return int(exponent) + len(mantissa.partition(".")[2])
    return len(text.partition(".")[2])


def test_records_carry_rounded_scores_that_still_sum_to_one(stub_model, pictures, tmp_path):
    import csv

    files = [str(pictures / f"p{i}.png") for i in range(6)]
    proc = run(*files, "--model", str(stub_model), "--jsonl", "--tiles", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(l) for l in proc.stdout.splitlines()]
    assert any(r["label"] != "clean" for r in records) and any(r["quality"] is None for r in records)
    for r in records:
        for item in [r, *r["tiles"]]:
            assert all(decimals(p) <= 6 for p in item["scores"].values()), item["scores"]
            assert abs(sum(item["scores"].values()) - 1) <= 1e-9
            assert item.get("quality") is None or decimals(item["quality"]) <= 1, item
    out = tmp_path / "s.csv"
    assert run(*files, "--model", str(stub_model), "--output", str(out), "--workers", "0").returncode == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 6
    for row in rows:
        scores = [float(row[f"score_{label}"]) for label in STUB_LABELS]
        assert all(decimals(p) <= 6 for p in scores) and abs(sum(scores) - 1) <= 1e-9
        assert row["quality"] == "" or decimals(float(row["quality"])) <= 1


# ---------------------------------------------------------------- 10: errors name the path once; rates


def test_errors_name_the_path_once_and_short_runs_print_no_rate(stub_model, pictures, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{pictures}/./empty.png\n{tmp_path}/missing.png\n")
    for source in (["--from-list", str(listing), "--workers", "0"], ["--from-list", str(listing), "--workers", "1"],
                   [str(pictures / "empty.png"), str(tmp_path / "missing.png")]):
        proc = run(*source, "--model", str(stub_model))
        assert proc.returncode == 1
        errors = [l for l in proc.stderr.splitlines() if ": error: " in l]
        assert len(errors) == 2, proc.stderr
        for line in errors:
            path = line.split(": error: ")[0]
            assert line.count(os.path.basename(path)) == 1, line  # not "p: error: p: cannot decode (... 'p')"
        assert errors[1].endswith(": error: no such file")
        summary = proc.stderr.strip().splitlines()[-1]
        assert "0 scored, 2 failed" in summary and "images/s" not in summary
    jsonl = run(str(pictures / "empty.png"), "--model", str(stub_model), "--jsonl")
    record = json.loads(jsonl.stdout)
    assert record["path"] == str(pictures / "empty.png") and "empty.png" not in record["error"]


# ---------------------------------------------------------------- 12: the summary


def test_a_run_ends_with_a_summary_people_and_scripts_can_read(stub_model, pictures, tmp_path):
    out = tmp_path / "summary.json"
    proc = run(str(pictures), "--model", str(stub_model), "--jsonl", "--summary-json", str(out), "--workers", "0")
    assert proc.returncode == 1  # empty.png
    records = [json.loads(l) for l in proc.stdout.splitlines()]
    summary = json.loads(out.read_text())
    labels = {label: sum(r.get("label") == label for r in records) for label in STUB_LABELS}
    assert summary["labels"] == labels and summary["failed"] == 1 and summary["scored"] == 6
    assert summary["flagged"] == 6 - labels["clean"] > 0
    qualities = [r["quality"] for r in records if r.get("quality") is not None]
    assert sum(summary["quality"].values()) == len(qualities) > 0
    assert all(summary["quality"][f"{int(q // 10) * 10}-{int(q // 10) * 10 + 9}"] for q in qualities if q < 90)
    assert summary["exit_status"] == 1 and summary["interrupted"] is False and summary["already_done"] == 0
    detail = proc.stderr.strip().splitlines()[-1]
    assert detail.startswith("ccscore: labels: ") and f"clean {labels['clean']}" in detail and "quality: " in detail
    # An earlier summary is replaced; any other file is refused untouched.
    assert run(str(pictures / "p0.png"), "--model", str(stub_model), "--summary-json", str(out)).returncode == 0
    assert json.loads(out.read_text())["scored"] == 1
    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": 1}')
    assert_one_line_error(run(str(pictures / "p0.png"), "--model", str(stub_model), "--summary-json", str(precious)))
    assert precious.read_text() == '{"mine": 1}'
    # Neither file exists yet: the summary written at the end would replace the records.
    records = tmp_path / "new.jsonl"
    for same in (records, Path(str(records) + ".ccscore-journal")):
        assert_one_line_error(run(str(pictures / "p0.png"), "--model", str(stub_model), "--output", str(records),
                                  "--summary-json", str(same)))
        assert not records.exists() and not same.exists()


def test_a_summary_json_that_is_no_regular_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    """A FIFO (read, it would hang the run), a device (read whole, /dev/zero fills memory) or a file too large to be
    a summary: refused in one line, never read whole. Checked on check_summary_path, as the CLI calls it."""
    from ccscore import summary

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        assert summary.check_summary_path(str(path)) == f"--summary-json {path} is not a regular file; choose another file"
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({summary.SUMMARY_MARKER: 1, "scored": 3}))
    assert summary.check_summary_path(str(earlier)) is None
    reads = []
    real_fdopen = os.fdopen

    def counted(fd, *args, **kwargs):  # how much of the file the check reads
        f = real_fdopen(fd, *args, **kwargs)
        read = f.read
        f.read = lambda n=-1: reads.append(n) or read(n)
        return f

    monkeypatch.setattr(summary, "SUMMARY_MAX_BYTES", 16)
    monkeypatch.setattr(os, "fdopen", counted)
    assert "is not a ccscore summary" in summary.check_summary_path(str(earlier))  # larger than the limit
    assert reads == [17]


def test_the_summary_counts_evidence_words():
    from ccscore.summary import RunSummary

    summary = RunSummary(["clean", "jpeg", "webp"])
    for record in ({"label": "jpeg", "quality": 95.0, "evidence": "grid"}, {"label": "clean", "evidence": "none"},
                   {"label": "clean", "evidence": "grid"}, {"error": "no such file"}):
        summary.add(record)
    d = summary.to_dict()
    assert d["evidence"] == {"grid": 2, "none": 1} and d["quality"]["90-100"] == 1 and d["failed"] == 1
    assert "evidence: grid 2, none 1" in summary.detail_line()


# ---------------------------------------------------------------- 13: --aggregate says what max means


def test_help_says_max_is_per_label_not_the_worst_tile():
    help_text = " ".join(run("--help").stdout.replace("│", " ").split())
    assert "max is each label's highest tile probability, not the worst tile" in help_text
    assert "worst_half" in help_text
    readme = (REPO / "README.md").read_text()
    assert "### Choosing the threshold" in readme and "benchmarks/accuracy.py" in readme


# ---------------------------------------------------------------- 8: version, help, completion


def test_version_names_the_model(stub_model):
    from ccscore import __version__

    proc = run("--version", "--model", str(stub_model))
    assert proc.returncode == 0 and proc.stdout.startswith(f"ccscore {__version__}; model stub 0 ("), proc.stdout
    assert "model ccscore-detector " in run("--version").stdout


def test_help_lists_every_command_and_fits_80_columns():
    from ccscore.cli import COMMANDS

    for args in (["--help"], ["bench", "--help"], ["heatmap", "--help"], ["report", "--help"], ["act", "--help"],
                 ["ray", "--help"]):
        text = run(*args).stdout
        assert "…" not in text and max(map(len, text.splitlines())) <= 80, text
    text = run("--help").stdout
    for name in COMMANDS:
        assert f"'ccscore {name} " in text, name
    for option in ("--copy-to", "--symlink-to", "--move-to", "--dry-run", "--summary-json", "--version",
                   "--install-completion"):
        assert f"  {option}" in text, option  # listed in full, not cut


def test_shell_completion_completes_options():
    proc = subprocess.run(CLI, capture_output=True, text=True, timeout=60,
                          env={**ENV, "_CCSCORE_COMPLETE": "complete_bash", "COMP_WORDS": "ccscore --max-t",
                               "COMP_CWORD": "1"})
    assert proc.stdout.split() == ["--max-tiles"], (proc.stdout, proc.stderr)


# ---------------------------------------------------------------- 6: --tiles beyond JSONL


def test_tiles_show_in_readable_output_and_csv_refuses_them(stub_model, pictures, tmp_path):
    image = str(pictures / "p0.png")
    (record,) = [json.loads(l) for l in run(image, "--model", str(stub_model), "--tiles", "--jsonl").stdout.splitlines()]
    lines = run(image, "--model", str(stub_model), "--tiles").stdout.splitlines()
    assert lines[0].startswith(f"{image}: ") and len(lines) == 1 + len(record["tiles"]) > 1
    for line, tile in zip(lines[1:], record["tiles"]):
        left, top, right, bottom = tile["box"]
        assert line.startswith(f"  tile {left},{top}-{right},{bottom}: "), line
    out = tmp_path / "s.csv"
    assert_one_line_error(run(image, "--model", str(stub_model), "--tiles", "--output", str(out)))
    assert not out.exists()


# ---------------------------------------------------------------- 7: every format Pillow opens; skipped files


def test_the_walk_takes_every_extension_pillow_opens():
    from PIL import Image

    from ccscore.inputs import IMAGE_EXTENSIONS, PILLOW_SKIPPED

    Image.init()
    opened = {ext for ext, fmt in Image.registered_extensions().items()
              if fmt in Image.OPEN and fmt not in PILLOW_SKIPPED}
    assert opened <= IMAGE_EXTENSIONS, sorted(opened - IMAGE_EXTENSIONS)


def test_folder_walks_score_jfif_jpe_tga_and_count_skipped_files(stub_model, pictures, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    picture = Image.open(pictures / "p0.png").convert("RGB")
    for name, fmt in (("a.jfif", "JPEG"), ("b.JPE", "JPEG"), ("c.tga", "TGA"), ("d.ppm", "PPM"), ("e.qoi", "QOI")):
        picture.save(root / name, fmt)
    (root / "notes.txt").write_text("not an image")
    (root / "thumbs.db").write_bytes(b"\0" * 10)
    summary = tmp_path / "summary.json"
    proc = run(str(root), "--model", str(stub_model), "--jsonl", "--summary-json", str(summary))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(l) for l in proc.stdout.splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == ["a.jfif", "b.JPE", "c.tga", "d.ppm", "e.qoi"]
    assert all("label" in r for r in records)
    assert "2 files skipped (not images)" in proc.stderr
    assert json.loads(summary.read_text())["skipped_not_images"] == 2


# ---------------------------------------------------------------- 11: library warnings go into records


def _with_corrupt_exif(picture: Image.Image, path: Path) -> Path:
    import struct

    # One IFD entry whose data lies past the end of the EXIF block: Pillow warns "Tag data larger than file".
    exif = (b"Exif\x00\x00MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHII", 0x010F, 2, 100, 0x1000)
            + struct.pack(">I", 0))
    picture.save(path, exif=exif)
    return path


@pytest.mark.parametrize("workers", ["0", "2"])
def test_library_warnings_go_into_the_image_record_not_stderr(stub_model, pictures, tmp_path, workers):
    picture = Image.open(pictures / "p0.png").convert("RGB")
    bad = [_with_corrupt_exif(picture, tmp_path / "bad-exif.png"), _with_corrupt_exif(picture, tmp_path / "bad-exif.jpg")]
    proc = run(*map(str, bad), str(pictures / "p1.png"), "--model", str(stub_model), "--jsonl", "--workers", workers)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "warnings.warn" not in proc.stderr, proc.stderr
    records = [json.loads(l) for l in proc.stdout.splitlines()]
    for record in records[:2]:
        assert "label" in record and record["warnings"] == ["UserWarning: Tag data larger than file. Skipping tag 271"]
    assert "warnings" not in records[2]


# ---------------------------------------------------------------- 2: ccscore-export without the [train] extra


@pytest.mark.parametrize("args", [["build-data", "--help"], ["build-data", "--split", "val", "--images", "1", "--out", "x.npz"],
                                  ["train", "--train", "x.pt", "--val", "x.pt"], ["export", "x.pt", "--output", "x.onnx"]])
def test_export_commands_without_torch_say_they_need_the_train_extra(args, tmp_path):
    (tmp_path / "x.pt").write_bytes(b"")
    absent = ["torch", "onnx", "tqdm", "matplotlib", "imagecodecs", "cv2", "safetensors", "transformers", "jpeglib"]
    code = (f"import sys; sys.modules.update(dict.fromkeys({absent!r}))  # as in a runtime-only install\n"
            "from ccscore_export.cli import main; sys.argv = ['ccscore-export', *sys.argv[1:]]; main()")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("ccscore-export: error: this command needs the [train] extra (") and line.endswith(
        " is not installed): pip install 'ccscore[train]' (on CPU machines, pip install torch==2.13.0 first)"), line


# ---------------------------------------------------------------- labels come from the model (issue #12)


@pytest.mark.parametrize("labels", [STUB_LABELS, ("clean", "jpeg", "webp")], ids=["five_labels", "three_labels_v06"])
def test_records_carry_every_label_of_the_model(labels, pictures, tmp_path):
    import csv

    model = build_stub_model(tmp_path / "stub.onnx", labels)
    files = [str(pictures / f"p{i}.png") for i in range(6)]
    out = tmp_path / "s.jsonl"
    assert run(*files, "--model", str(model), "--output", str(out), "--tiles", "--workers", "0").returncode == 0
    header, *records = [json.loads(l) for l in out.read_text().splitlines()]
    assert header["labels"] == list(labels)
    assert len(records) == 6 and {r["label"] for r in records} <= set(labels)
    for r in records:
        for item in [r, *r["tiles"]]:
            assert list(item["scores"]) == list(labels)
    if "avif" in labels:
        assert any(r["label"] == "avif" for r in records)  # a label past webp reaches the records
    csv_out = tmp_path / "s.csv"
    assert run(*files, "--model", str(model), "--output", str(csv_out), "--workers", "0").returncode == 0
    columns = next(csv.reader(csv_out.open(newline="")))
    assert [c for c in columns if c.startswith("score_")] == [f"score_{label}" for label in labels]


# ---------------------------------------------------------------- the program's exit (issue #10: speed)

# What the `ccscore` script and `python -m ccscore` run; an object that reports the interpreter's teardown if it happens.
PROGRAM = [sys.executable, "-c", """
import os, sys
class Teardown:
    def __del__(self):
        os.write(2, b"interpreter teardown\\n")
sys.modules["__main__"].witness = Teardown()
from ccscore.cli import run
run()
"""]


def test_the_program_skips_the_teardown_but_keeps_records_and_exit_status(stub_model, pictures, tmp_path):
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run([*PROGRAM, str(pictures), "--model", str(stub_model), "--jsonl", "--output", str(out),
                           "--workers", "2"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 1, proc.stderr  # empty.png fails: the command's own status
    assert "interpreter teardown" not in proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    written = [json.loads(line) for line in out.read_text().splitlines()][1:]  # after the header
    assert len(printed) == 7 and printed == written  # every record flushed to stdout and to --output
    assert "scored, 1 failed" in proc.stderr
    for args, status in ((["--help"], 0), (["--no-such-option"], 2), ([str(pictures / "p0.png"), "--model",
                                                                        str(stub_model), "--jsonl"], 0)):
        proc = subprocess.run([*PROGRAM, *args], capture_output=True, text=True, env=ENV, timeout=120)
        assert proc.returncode == status, (args, proc.stderr)
        assert "interpreter teardown" not in proc.stderr
        assert bool(proc.stdout) == (status == 0)  # the help, or the record, reached stdout


def test_the_fast_exit_waits_like_the_interpreter_for_a_running_thread():
    code = ("import threading, time\nfrom ccscore.cli import exit_without_teardown\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()\n"
            "exit_without_teardown(3)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 3 and proc.stdout == "thread done\n", proc


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_run_with_stdout_closed_writes_its_output_and_exits_with_its_status(stub_model, pictures, tmp_path, workers):
    # cron and daemons may start ccscore with no stdout at all (the interpreter's sys.stdout is then None)
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run([*PROGRAM, str(pictures), "--model", str(stub_model), "--output", str(out),
                           "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                          timeout=120, preexec_fn=lambda: os.close(1))
    assert "Traceback" not in proc.stderr and "scored, 1 failed" in proc.stderr, proc.stderr
    assert proc.returncode == 1  # empty.png fails: the command's own status
    assert len(out.read_text().splitlines()) == 1 + 7


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_run_with_stderr_closed_keeps_stdout_to_its_records_and_exits_with_its_status(stub_model, pictures,
                                                                                          workers):
    # `2>&-`: the interpreter's sys.stderr is None, and print(file=None) would write the summary into stdout
    proc = subprocess.run([*PROGRAM, str(pictures), "--model", str(stub_model), "--jsonl", "--workers", workers],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120,
                          preexec_fn=lambda: os.close(2))
    lines = proc.stdout.splitlines()
    assert len(lines) == 7 and all(json.loads(line).get("path") for line in lines), proc.stdout
    assert proc.returncode == 1 and proc.stderr == ""  # empty.png fails: the command's own status


def test_the_command_turns_off_onnxruntimes_telemetry_unless_asked(tmp_path):
    """onnxruntime keeps a device id and usage events under ~/.cache/Microsoft where telemetry is on (its default
    on Linux since 1.2x, where the build has it); the command sets ORT_DISABLE_TELEMETRY=1 unless it is set."""
    image = Path(__file__).resolve().parents[1] / "examples" / "art-clean.png"
    homes = {}
    for setting in (None, "0"):
        home = homes[setting] = tmp_path / f"home-{setting}"
        home.mkdir()
        env = {k: v for k, v in ENV.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(home)}
        env |= {"ORT_DISABLE_TELEMETRY": setting} if setting is not None else {}
        proc = subprocess.run([*CLI, str(image), "--jsonl"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert not (homes[None] / ".cache" / "Microsoft").exists()
    if not (homes["0"] / ".cache" / "Microsoft").exists():
        pytest.skip("this onnxruntime keeps no telemetry store (a build without telemetry)")
