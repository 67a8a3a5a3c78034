"""`ccscore act`: acting on saved scores copies, links or moves exactly what the saved run selected, safely."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from conftest import compress, draw_art, run_cli, run_python


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two folders holding files of the same names, some JPEG'd; scored once into scores.jsonl and s.csv."""
    root = tmp_path_factory.mktemp("act")
    data = root / "data"
    for folder, seeds in (("a", (1, 2, 3)), ("b", (4, 5, 6))):
        (data / folder).mkdir(parents=True)
        for k, seed in enumerate(seeds):
            art = draw_art(seed)
            (compress(art, "JPEG", 50) if k != 1 else art).save(data / folder / f"img{k}.png")
    for name in ("scores.jsonl", "s.csv"):
        run = run_cli(str(data), "--output", str(root / name), "--workers", "0")
        assert run.returncode == 0, run.stderr
    lines = (root / "scores.jsonl").read_text().splitlines()[1:]
    records = [json.loads(line) for line in lines]
    flagged = {Path(r["path"]) for r in records if r["label"] != "clean"}
    clean = {Path(r["path"]) for r in records if r["label"] == "clean"}
    assert flagged and clean and {p.name for p in flagged} & {p.name for p in flagged if p.parent.name == "b"}
    return root, data, flagged, clean


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_copy_takes_exactly_the_flagged_images_and_leaves_sources(scored, tmp_path):
    root, data, flagged, _ = scored
    before = snapshot(data)
    run = run_cli("act", str(root / "scores.jsonl"), "--copy-to", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    copied = snapshot(tmp_path / "out")
    # Same names in a/ and b/ stay apart: the layout under the destination is kept.
    assert set(copied) == {str(p.relative_to(data)) for p in flagged}
    assert all(copied[str(p.relative_to(data))] == digest(p) for p in flagged)
    assert snapshot(data) == before
    assert f"{len(flagged)} selected, {len(flagged)} copied" in run.stderr
    # Again: nothing new, nothing overwritten.
    again = run_cli("act", str(root / "scores.jsonl"), "--copy-to", str(tmp_path / "out"))
    assert again.returncode == 0 and snapshot(tmp_path / "out") == copied and "already in" in again.stderr


def test_csv_scores_and_select_clean_with_symlinks(scored, tmp_path):
    root, data, _, clean = scored
    run = run_cli("act", str(root / "s.csv"), "--select", "clean", "--symlink-to", str(tmp_path / "links"))
    assert run.returncode == 0, run.stderr
    links = sorted(p for p in (tmp_path / "links").rglob("*") if p.is_symlink())
    assert {os.readlink(p) for p in links} == {str(p.resolve()) for p in clean}


def test_dry_run_writes_nothing(scored, tmp_path):
    root, data, flagged, _ = scored
    before = snapshot(data)
    run = run_cli("act", str(root / "scores.jsonl"), "--move-to", str(tmp_path / "moved"), "--dry-run")
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "moved").exists() and snapshot(data) == before
    assert run.stdout.count("would move") == len(flagged)


def movable_copy(scored, tmp_path: Path, scores_name: str = "scores.jsonl") -> tuple[Path, Path]:
    """(a copy of the data set to move from, a copy of the saved scores naming it), dated as if scored an hour
    ago: the images older than their scores, as a scoring run leaves them."""
    root, data, _, _ = scored
    work = tmp_path / "data"
    work.mkdir()
    an_hour_ago = time.time() - 3600
    for p in data.rglob("*.png"):
        (work / p.relative_to(data)).parent.mkdir(exist_ok=True)
        (work / p.relative_to(data)).write_bytes(p.read_bytes())
        os.utime(work / p.relative_to(data), (an_hour_ago - 60, an_hour_ago - 60))
    scores = tmp_path / scores_name
    scores.write_text((root / scores_name).read_text().replace(str(data), str(work)))
    os.utime(scores, (an_hour_ago, an_hour_ago))
    return work, scores


def test_never_overwrites_and_moves_only_sources(scored, tmp_path):
    root, data, flagged, _ = scored
    work, scores = movable_copy(scored, tmp_path)
    taken = sorted(flagged)[0].relative_to(data)
    dest = tmp_path / "damaged"
    (dest / taken).parent.mkdir(parents=True)
    (dest / taken).write_bytes(b"the user's own file")
    run = run_cli("act", str(scores), "--move-to", str(dest))
    assert run.returncode == 0, run.stderr
    assert (dest / taken).read_bytes() == b"the user's own file"
    suffixed = (dest / taken).with_name(taken.stem + "-1" + taken.suffix)
    assert digest(suffixed) == digest(data / taken)
    for p in flagged:
        assert not (work / p.relative_to(data)).exists()
    assert len(list(work.rglob("*.png"))) == len(list(data.rglob("*.png"))) - len(flagged)


def tree(folder: Path) -> dict[str, Optional[str]]:
    """Every name under `folder`, hidden ones too, with each file's digest: what a run must leave as it was."""
    return {str(p.relative_to(folder)): digest(p) if p.is_file() and not p.is_symlink() else None
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("scores_name", ["scores.jsonl", "s.csv"])
def test_a_finished_move_run_again_finds_the_images_already_in_dir(scored, tmp_path, scores_name):
    """The same --move-to again after it finished (its journal gone): each moved image is recognised where the
    first run put it (under -1 where the user's own file had its name) and counted as already there, exit 0;
    nothing is moved, written or created, and --dry-run says the same."""
    root, data, flagged, _ = scored
    work, scores = movable_copy(scored, tmp_path, scores_name)
    taken = sorted(flagged)[0].relative_to(data)
    dest = tmp_path / "damaged"
    (dest / taken).parent.mkdir(parents=True)
    (dest / taken).write_bytes(b"the user's own file")
    args = ("act", str(scores), "--move-to", str(dest))
    first = run_cli(*args)
    assert first.returncode == 0 and f"{len(flagged)} moved" in first.stderr, first.stderr
    before = tree(tmp_path)
    for dry_run in ((), ("--dry-run",)):
        again = run_cli(*args, *dry_run)
        assert again.returncode == 0 and "error" not in again.stderr, again.stderr
        assert f"{len(flagged)} selected, 0 {'to be moved' if dry_run else 'moved'}, {len(flagged)} already in " \
               f"{dest}" in again.stderr
        assert again.stdout.count("(already there)") == len(flagged)
        suffixed = (dest / taken).with_name(taken.stem + "-1" + taken.suffix)
        assert f"{work / taken} -> {suffixed} (already there)" in again.stdout
        assert tree(tmp_path) == before


def test_a_gone_source_counts_as_moved_only_when_its_image_is_in_dir(scored, tmp_path):
    """After a finished move, a source whose image is not in DIR as the record describes it is still an error:
    deleted without ever being moved; moved, then deleted from DIR; replaced in DIR by a different file of the
    same name (written since the scoring; or older, but another size; or the same size, but grey). Only the
    untouched one counts as already there, and nothing in DIR changes."""
    from PIL import Image

    root, data, _, _ = scored
    work, scores = movable_copy(scored, tmp_path)
    header, *lines = scores.read_text().splitlines()
    records = sorted((json.loads(line) | {"label": "jpeg"} for line in lines), key=lambda r: r["path"])
    assert len(records) == 6
    scored_at = scores.stat().st_mtime
    first = tmp_path / "first.jsonl"  # the first run: without the one deleted before it could be moved
    for path, chosen in ((scores, records), (first, records[1:])):
        path.write_text("\n".join([header, *map(json.dumps, chosen)]) + "\n")
        os.utime(path, (scored_at, scored_at))
    dest = tmp_path / "damaged"
    assert run_cli("act", str(first), "--move-to", str(dest)).returncode == 0
    never_moved, deleted, newer, other_size, grey, untouched = (Path(r["path"]).relative_to(work) for r in records)
    (work / never_moved).unlink()
    (dest / deleted).unlink()
    (dest / newer).write_bytes((data / untouched).read_bytes())  # another image of the same size and format
    draw_art(7, (320, 384)).save(dest / other_size)
    Image.open(dest / grey).convert("L").save(dest / grey)
    for older in (other_size, grey):
        os.utime(dest / older, (scored_at - 60, scored_at - 60))
    before = tree(dest)
    again = run_cli("act", str(scores), "--move-to", str(dest))
    assert again.returncode == 1
    errors = [line for line in again.stderr.splitlines() if "error" in line]
    assert len(errors) == 5 and all("no such file" in e for e in errors), again.stderr
    assert {Path(e.split(": ")[2]).relative_to(work) for e in errors} == {never_moved, deleted, newer, other_size, grey}
    assert "6 selected, 0 moved, 1 already in" in again.stderr and "5 failed" in again.stderr
    assert f"{dest / untouched} (already there)" in again.stdout
    assert tree(dest) == before


@pytest.mark.parametrize("name, orientation", [("turned.jpg", 6), ("upside-down.jpg", 3), ("turned.webp", 8),
                                               ("turned.png", 5), ("plain.png", None)])
def test_the_size_that_recognises_a_moved_image_is_the_size_it_was_scored_at(tmp_path, name, orientation):
    """Read from the header for speed, with EXIF orientation applied as decoding does: a turned photo's record
    has the turned size, and a re-run must not take it for another image."""
    from PIL import Image

    from ccscore.images import open_image, oriented_size

    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    draw_art(3, (96, 64)).save(tmp_path / name, exif=exif)
    decoded = open_image(tmp_path / name).size
    assert oriented_size(tmp_path / name) == decoded == ((64, 96) if orientation in (5, 6, 7, 8) else (96, 64))


def test_missing_files_and_bad_lines_get_one_line_errors_and_the_run_goes_on(scored, tmp_path):
    root, data, flagged, _ = scored
    lines = (root / "scores.jsonl").read_text().splitlines()
    gone = json.loads(lines[1]) | {"path": str(tmp_path / "gone.png"), "label": "jpeg"}
    (tmp_path / "s.jsonl").write_text("\n".join([lines[0], json.dumps(gone), "{not json", *lines[1:]]) + "\n")
    run = run_cli("act", str(tmp_path / "s.jsonl"), "--copy-to", str(tmp_path / "out"))
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 2 and "gone.png: no such file" in errors[0] and "line 3" in errors[1]
    assert len([p for p in (tmp_path / "out").rglob("*.png")]) == len(flagged)


def test_usage_errors(scored, tmp_path):
    root, data, _, _ = scored
    (tmp_path / "plain.jsonl").write_text('{"path": "x.png"}\n')
    assert run_cli("act", str(tmp_path / "plain.jsonl"), "--copy-to", str(tmp_path / "o")).returncode == 2
    assert run_cli("act", str(root / "scores.jsonl")).returncode == 2
    refused = run_cli("act", str(root / "scores.jsonl"), "--copy-to", str(data))
    assert refused.returncode == 2 and "choose a destination outside it" in refused.stderr
    assert run_cli("act", str(root / "scores.jsonl"), "--select", "bad", "--copy-to", "o").returncode == 2


def test_an_interrupted_act_is_finished_by_the_next_one(scored, tmp_path):
    """A kill between the journaled intent and the copy: the next run completes that copy exactly once."""
    root, data, flagged, _ = scored
    src = sorted(flagged)[0]
    dest = tmp_path / "out"
    dest.mkdir()
    target = dest / "elsewhere.png"
    intent = {"id": 1, "kind": "copy", "src": str(src), "dst": str(target), "path": str(src),
              "relative": "elsewhere.png", "already": False}
    (dest / ".ccscore-act-journal").write_text(json.dumps(intent) + "\n")
    run = run_cli("act", str(root / "scores.jsonl"), "--copy-to", str(dest))
    assert run.returncode == 0, run.stderr
    assert "finished 1 actions" in run.stderr and digest(target) == digest(src)
    assert not (dest / ".ccscore-act-journal").exists()
    # The finished copy counts for its source: it is not copied a second time under its own name.
    assert not (dest / src.relative_to(data)).exists()


def saved_scores(path: Path, files: list[Path], label: str = "jpeg") -> None:
    """A scores file naming `files` (any bytes: acting reads no image) with `label`."""
    from ccscore.outputs import JsonlWriter, header_bytes

    with open(path, "wb") as f:
        f.write(header_bytes(str(path), ["clean", "jpeg", "webp"]))
        JsonlWriter(f).write_batch([{"path": str(p), "label": label, "scores": {"clean": 0.1, "jpeg": 0.9, "webp": 0.0},
                                     "quality": 50.0, "width": 8, "height": 8} for p in files])


# Runs `ccscore act` and SIGKILLs it at the Nth call of a function: a move's link or unlink, a batch's journaling.
KILLED_ACT = """
import os, signal, sys
import ccscore.actions as actions
calls = [0]
def killing(real):
    def patched(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(os.environ["CCSCORE_TEST_KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return patched
owner, name = os.environ["CCSCORE_TEST_KILL_IN"].rsplit(".", 1)
owner = {"os": actions.os, "ActionJournal": actions.ActionJournal}[owner]
setattr(owner, name, killing(getattr(owner, name)))
from ccscore.cli import main; main(sys.argv[1:])
"""


@pytest.mark.parametrize("function, kill_at", [("os.link", 3), ("os.unlink", 10), ("os.link", 65),
                                               ("ActionJournal.record_intents", 2)])
def test_a_move_killed_anywhere_is_finished_by_the_same_command(tmp_path, monkeypatch, function, kill_at):
    """Killed mid-batch, between a move's link and unlink, or after a first batch that took a whole folder:
    the same command again moves every file exactly once, keeps the layout, and reports no error."""
    data = tmp_path / "data"
    files = [data / "a" / f"{n:03}.png" for n in range(64)] + [data / "b" / f"{n:03}.png" for n in range(5)]
    for n, p in enumerate(files):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"image %d" % n)
    saved_scores(tmp_path / "s.jsonl", files)
    dest = tmp_path / "damaged"
    args = ("act", str(tmp_path / "s.jsonl"), "--move-to", str(dest))
    monkeypatch.setenv("CCSCORE_TEST_KILL_AT", str(kill_at))
    monkeypatch.setenv("CCSCORE_TEST_KILL_IN", function)
    killed = run_python(KILLED_ACT, *args)
    assert killed.returncode == -9, killed.stderr
    monkeypatch.delenv("CCSCORE_TEST_KILL_AT")
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "error" not in again.stderr
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == \
        sorted(["a", "b"] + [str(p.relative_to(data)) for p in files])
    assert all((dest / p.relative_to(data)).read_bytes() == b"image %d" % n for n, p in enumerate(files))
    assert not [p for p in data.rglob("*") if p.is_file()]


def test_odd_records_get_one_line_errors_and_are_never_acted_on(tmp_path):
    """A symlink that leaves the images' folder, the scores file itself, a file already in the destination, the
    same file named twice: one error line each (or one action), and nothing outside is touched."""
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "outside.png").write_bytes(b"the user's file elsewhere")
    (data / "a" / "link.png").symlink_to(tmp_path / "outside.png")
    dest = data / "damaged"
    dest.mkdir()
    (dest / "old.png").write_bytes(b"moved before")
    scores = data / "s.jsonl"
    saved_scores(scores, [data / "a" / "x.png", data / "a" / "x.png", data / "a" / "link.png", scores,
                          dest / "old.png"])
    run = run_cli("act", str(scores), "--move-to", str(dest))
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 3, run.stderr
    assert "link.png: lies outside" in errors[0] and "s.jsonl: is the scores file" in errors[1]
    assert "old.png: lies in" in errors[2]
    assert (tmp_path / "outside.png").read_bytes() == b"the user's file elsewhere" and scores.exists()
    assert (dest / "old.png").read_bytes() == b"moved before"
    assert (dest / "a" / "x.png").read_bytes() == b"x" and not (data / "a" / "x.png").exists()
    assert "5 selected, 1 moved, 1 already in" in run.stderr


def test_file_names_that_are_not_utf8_do_not_stop_the_run(tmp_path, monkeypatch):
    """Printed as they are, even where stdout would refuse them (a strict UTF-8 locale)."""
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")
    folder = tmp_path / "data"
    folder.mkdir()
    odd = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    odd.write_bytes(b"x")
    saved_scores(tmp_path / "s.jsonl", [odd, folder / "plain.png"])
    run = subprocess.run([sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])",
                          "act", str(tmp_path / "s.jsonl"), "--copy-to", str(tmp_path / "out")], capture_output=True)
    assert run.returncode == 1, run.stderr
    assert b"Traceback" not in run.stderr and b"plain.png: no such file" in run.stderr
    assert os.fsencode(odd) in run.stdout
    assert (tmp_path / "out" / odd.name).read_bytes() == b"x"
    assert not (tmp_path / "out" / ".ccscore-act-journal").exists()


def test_a_line_break_in_a_name_keeps_every_printed_line_one_line(tmp_path):
    """An action's line and an error's line name files whose names hold a line break (one crafted to look like
    another error line) escaped, as `ccscore` prints names: one line each; the files themselves are moved."""
    folder = tmp_path / "data"
    folder.mkdir()
    there = folder / "line\nbreak.png"
    there.write_bytes(b"x")
    gone = folder / "gone\nccscore act: error: fake.png"
    saved_scores(tmp_path / "s.jsonl", [there, gone])
    run = run_cli("act", str(tmp_path / "s.jsonl"), "--move-to", str(tmp_path / "out"))
    assert run.returncode == 1, run.stderr
    assert run.stdout.splitlines() == [f"move {folder}/line\\nbreak.png -> {tmp_path}/out/line\\nbreak.png"]
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert errors == [f"ccscore act: error: {folder}/gone\\nccscore act: error: fake.png: no such file (moved or deleted since it was scored?)"], run.stderr
    assert (tmp_path / "out" / there.name).read_bytes() == b"x" and not there.exists()


def test_malformed_records_are_error_lines_not_crashes(tmp_path):
    """Records a ccscore run never writes (a NUL in the path, NaN or null scores, text for numbers, an error
    record with a label, a stray `line` field): one error line each, the run goes on, nothing of them acted on."""
    (tmp_path / "x.png").write_bytes(b"x")
    good = {"path": str(tmp_path / "x.png"), "label": "jpeg", "scores": {"clean": 0.1, "jpeg": 0.9, "webp": 0.0},
            "quality": 50.0, "width": 8, "height": 8}
    bad = [good | {"path": str(tmp_path / "nul\0.png")}, good | {"scores": {"clean": None}},
           good | {"width": "8"}, {"path": str(tmp_path / "x.png"), "error": 3}]
    lines = [json.dumps(r) for r in bad] + [json.dumps(good).replace("50.0", "NaN")]
    (tmp_path / "y.png").write_bytes(b"y")
    errored = {"path": str(tmp_path / "y.png"), "error": "unreadable", "label": "jpeg"}
    stray = good | {"line": 2}
    with open(tmp_path / "s.jsonl", "w") as f:
        f.write('{"ccscore_records": 1, "labels": ["clean", "jpeg", "webp"]}\n')
        f.write("\n".join(lines + [json.dumps(errored), json.dumps(stray)]) + "\n")
    run = run_cli("act", str(tmp_path / "s.jsonl"), "--copy-to", str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 5 and all("is not a ccscore record" in e for e in errors), run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
    assert "1 selected, 1 copied, 5 failed" in run.stderr


def test_a_file_the_scoring_run_reached_outside_its_folders_is_never_acted_on(tmp_path):
    """The score command scores a file reached through a symlink that leaves the input folders but never acts on
    it; acting on the saved records leaves it alone too (its record names its real path, outside)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    compress(draw_art(1), "JPEG", 50).save(tmp_path / "elsewhere" / "theirs.png")
    compress(draw_art(2), "JPEG", 50).save(tmp_path / "data" / "ours.png")
    (tmp_path / "data" / "link.png").symlink_to(tmp_path / "elsewhere" / "theirs.png")
    scored = run_cli(str(tmp_path / "data"), "--output", str(tmp_path / "s.jsonl"), "--workers", "0")
    assert scored.returncode == 0, scored.stderr
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()[1:]]
    theirs = next(r for r in records if r["path"].endswith("theirs.png"))
    assert theirs.get("outside") is True and not any(r.get("outside") for r in records if r is not theirs)
    select = "clean" if theirs["label"] == "clean" else "flagged"
    before = digest(tmp_path / "elsewhere" / "theirs.png")
    run = run_cli("act", str(tmp_path / "s.jsonl"), "--select", select, "--move-to", str(tmp_path / "moved"))
    assert run.returncode == 1 and "theirs.png: lay outside the scored folders" in run.stderr, run.stderr
    assert digest(tmp_path / "elsewhere" / "theirs.png") == before
    assert not list((tmp_path / "moved").rglob("theirs.png"))


def test_a_journal_line_cut_by_a_kill_is_dropped_before_more_is_written(tmp_path):
    """A kill (or power loss) mid-write leaves a cut last line; the next run appends to the journal: the cut
    line must not become a corrupt line in the middle that makes every later run refuse the journal."""
    from ccscore.actions import Action, ActionJournal

    first, second = (Action(n, "copy", f"/src/{n}.png", f"/dst/{n}.png", f"{n}.png", f"{n}.png") for n in (1, 2))
    journal = ActionJournal(str(tmp_path / "journal"))
    journal.record_intents([first, second])
    journal.close()
    with open(tmp_path / "journal", "ab") as f:
        f.write(b'{"id": 3, "kind": "co')  # a third intent, cut
    resumed = ActionJournal(str(tmp_path / "journal"))
    assert [a.id for a in resumed.pending()] == [1, 2]
    resumed.record_done(first)
    resumed.close()
    assert [a.id for a in ActionJournal(str(tmp_path / "journal")).pending()] == [2]


def test_every_error_line_shows_names_escaped(tmp_path):
    """Usage errors and summaries name files as records do: a line break, an escape sequence or a right-to-left
    override in a name is escaped (one line, shown in its own order); undecodable bytes are kept."""
    from ccscore.outputs import shown_path

    assert shown_path("a\nb\u2028c\x1b[2Kd\u202egnp.exe\u200f") == "a\\nb\\u2028c\\x1b[2Kd\\u202egnp.exe\\u200f"
    assert shown_path("caf\udce9 \u00e9t\u00e9 \U0001f600") == "caf\udce9 \u00e9t\u00e9 \U0001f600"
    odd = tmp_path / "no\nccscore report: error: such\u202e.jsonl"
    for command in (["report", str(odd), "-o", str(tmp_path / "r.html")], ["act", str(odd), "--copy-to", "d"],
                    ["--output", str(odd / "x.jsonl"), str(tmp_path)]):  # in a folder that is not there
        proc = run_cli(*command)
        assert proc.returncode in (1, 2) and len(proc.stderr.splitlines()) == 1, (command, proc.stderr)
        assert "no\\nccscore report: error: such\\u202e.jsonl" in proc.stderr


def test_a_second_run_acting_into_the_same_folder_is_refused(tmp_path):
    """Two runs into one destination would race: the second finishes the first's journaled actions and links
    its half-written copies. While one holds the folder, another is refused and changes nothing."""
    from ccscore.actions import ActionError, Mover

    (tmp_path / "x.png").write_bytes(b"x")
    saved_scores(tmp_path / "s.jsonl", [tmp_path / "x.png"])
    dest = tmp_path / "out"
    running = Mover("copy", str(dest))
    running.claim_destination()  # a run in progress, here in this process
    with pytest.raises(ActionError):
        Mover("copy", str(dest)).claim_destination()  # flock: another open of the folder does not hold it
    refused = run_cli("act", str(tmp_path / "s.jsonl"), "--copy-to", str(dest))
    assert refused.returncode == 1 and "another ccscore run is acting into" in refused.stderr
    assert list(dest.iterdir()) == []
    running.release_destination()
    assert run_cli("act", str(tmp_path / "s.jsonl"), "--copy-to", str(dest)).returncode == 0


def test_a_quality_cut_selects_as_the_score_command_does(scored, tmp_path):
    """--flag-below Q: the same rule (selection.Selection) as `ccscore --flag-below Q` on the saved records."""
    from ccscore.selection import Selection

    root, data, flagged, _ = scored
    records = [json.loads(line) for line in (root / "scores.jsonl").read_text().splitlines()[1:]]
    qualities = sorted(r["quality"] for r in records if r["label"] != "clean")
    cut = (qualities[0] + qualities[-1]) / 2 if qualities[0] < qualities[-1] else qualities[0] + 0.5
    expected = {str(Path(r["path"]).relative_to(data)) for r in records if Selection("flagged", cut).flagged(r)}
    assert expected and len(expected) <= len(flagged)
    run = run_cli("act", str(root / "scores.jsonl"), "--flag-below", str(cut), "--copy-to", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert set(snapshot(tmp_path / "out")) == expected
    bad = run_cli("act", str(root / "scores.jsonl"), "--flag-below", "500", "--copy-to", str(tmp_path / "o2"))
    assert bad.returncode == 2 and "--flag-below" in bad.stderr and not (tmp_path / "o2").exists()
