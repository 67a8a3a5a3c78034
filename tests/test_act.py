"""`ccscore act`: acting on saved scores copies, links or moves exactly what the saved run selected, safely."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import compress, draw_art, run_cli


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


def test_never_overwrites_and_moves_only_sources(scored, tmp_path):
    root, data, flagged, _ = scored
    work = tmp_path / "data"
    work.mkdir()
    for p in data.rglob("*.png"):  # a copy of the data set to move from, and a scores file naming it
        (work / p.relative_to(data)).parent.mkdir(exist_ok=True)
        (work / p.relative_to(data)).write_bytes(p.read_bytes())
    lines = (root / "scores.jsonl").read_text().splitlines()
    (tmp_path / "s.jsonl").write_text("\n".join([lines[0]] + [line.replace(str(data), str(work)) for line in lines[1:]])
                                      + "\n")
    taken = sorted(flagged)[0].relative_to(data)
    dest = tmp_path / "damaged"
    (dest / taken).parent.mkdir(parents=True)
    (dest / taken).write_bytes(b"the user's own file")
    run = run_cli("act", str(tmp_path / "s.jsonl"), "--move-to", str(dest))
    assert run.returncode == 0, run.stderr
    assert (dest / taken).read_bytes() == b"the user's own file"
    suffixed = (dest / taken).with_name(taken.stem + "-1" + taken.suffix)
    assert digest(suffixed) == digest(data / taken)
    for p in flagged:
        assert not (work / p.relative_to(data)).exists()
    assert len(list(work.rglob("*.png"))) == len(list(data.rglob("*.png"))) - len(flagged)


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
