"""Data safety of folder runs (issue 15): symlinks, odd names, foreign outputs, kills mid-action, two writers,
dry runs, full disks, unreadable folders, a destination that overlaps the inputs.

Runs the CLI in subprocesses with the stub model. Kills at exact points are made by a prelude that patches
one function to SIGKILL the process when it is reached.
"""

from __future__ import annotations

import csv
import errno
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stub_model import STUB_LABELS, build_stub_model

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]),
       "CCSCORE_THREADS": "1"}
MAIN = "import sys; from ccscore.cli import main; main(sys.argv[1:])"
FLAG_ALL = ("--threshold", "0")  # every image flagged: every one is acted on


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_stub_model(tmp_path_factory.mktemp("stub") / "stub.onnx")


def run(*args: str, prelude: str = "", timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + "\n" + MAIN, *map(str, args)], capture_output=True,
                          env=ENV, timeout=timeout)


def image(path: Path, seed: int = 0, size: tuple[int, int] = (150, 140)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def records_of(out: Path) -> list[dict]:
    if out.suffix == ".csv":
        with open(out, newline="", encoding="utf-8", errors="surrogateescape") as f:
            return list(csv.DictReader(f))
    header, *records = [json.loads(l.decode("utf-8", "surrogateescape")) for l in out.read_bytes().split(b"\n") if l]
    assert header == {"ccscore_records": 1, "labels": list(STUB_LABELS)}
    return records


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


# ---------------------------------------------------------------- 1. symlinks


def test_actions_take_the_real_file_inside_the_inputs_never_a_link_or_an_outside_file(model, tmp_path):
    root, outside, dest = tmp_path / "data", tmp_path / "elsewhere", tmp_path / "moved"
    real = image(root / "real" / "x.png", 1)
    os.makedirs(root / "links")
    os.symlink(real, root / "links" / "alias.png")  # walked before real/ (sorted): the record must still say real/
    far = image(outside / "far.png", 2)
    far_bytes = far.read_bytes()
    os.symlink(outside, root / "a-door-out")  # a folder link leaving the inputs
    out = tmp_path / "r.jsonl"
    proc = run(root, "--model", model, "--output", out, "--move-to", dest, *FLAG_ALL, "--workers", "0")
    err = proc.stderr.decode()
    assert proc.returncode == 1, err  # the outside file could not be acted on
    assert "outside the input folders" in err and "Traceback" not in err
    records = records_of(out)
    assert sorted(r["path"] for r in records) == sorted([str(real), str(far.resolve())])
    assert files_under(dest) == {"real/x.png": image(tmp_path / "again.png", 1).read_bytes()}
    assert not real.exists()  # the real file moved, not its link
    assert far.read_bytes() == far_bytes and not (dest / "a-door-out").exists()


def test_a_file_named_twice_or_through_a_link_is_acted_on_once(model, tmp_path):
    real = image(tmp_path / "in" / "x.png", 3)
    content = real.read_bytes()
    os.symlink(real, tmp_path / "link.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{real}\n{tmp_path / 'link.png'}\n{real}\n")
    dest = tmp_path / "copies"
    proc = run("--from-list", listing, "--model", model, "--copy-to", dest, *FLAG_ALL, "--jsonl", "--workers", "0")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == 3  # a list is a job spec: one record per entry
    assert files_under(dest) == {"x.png": content}  # but one copy of the one real file


# ---------------------------------------------------------------- 2. any character in a name


ODD_NAMES = ["carriage\rreturn.png", "line\nfeed.png", "comma, \"quote\".png", "both\r\n.png", "tab\t.png"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_names_with_cr_lf_quotes_round_trip_through_resume(model, tmp_path, suffix):
    root = tmp_path / "odd"
    paths = [image(root / name, i) for i, name in enumerate(ODD_NAMES)]
    paths.append(image(Path(os.fsdecode(bytes(root) + b"/latin1-\xe9.png")), 9))  # not UTF-8
    out = tmp_path / f"r{suffix}"
    first = run(root, "--model", model, "--output", out, "--workers", "0", "--batch-size", "2")
    assert first.returncode == 0, first.stderr.decode()
    complete = out.read_bytes()
    for _ in range(2):  # every resume keeps every complete record
        again = run(root, "--model", model, "--output", out, "--resume", "--workers", "0")
        assert again.returncode == 0, again.stderr.decode()
        assert b"cut" not in again.stderr and out.read_bytes() == complete
    assert sorted(r["path"] for r in records_of(out)) == sorted(map(str, paths))
    with open(out, "ab") as f:  # a kill in the middle of a record holding a CR
        f.write(b'"' + bytes(root) + b'/cut\rshort.png","cl' if suffix == ".csv" else b'{"path": "half\\r')
    again = run(root, "--model", model, "--output", out, "--resume", "--workers", "0")
    assert again.returncode == 0 and b"cut" in again.stderr
    assert out.read_bytes() == complete


def test_a_malformed_row_before_the_tail_is_refused_not_cut(tmp_path):
    sys.path.insert(0, str(REPO / "runtime"))
    from ccscore.outputs import OutputError, open_output

    out = tmp_path / "r.csv"
    writer, _, _ = open_output(str(out), ["clean", "jpeg"], resume=False)
    writer.write_batch([{"path": f"{i}.png", "error": "e"} for i in range(3)])
    writer.close()
    data = out.read_bytes()
    broken = data.replace(b'"1.png"', b'"1.png', 1)  # an unterminated quote in the middle
    out.write_bytes(broken)
    with pytest.raises(OutputError):
        open_output(str(out), ["clean", "jpeg"], resume=True)
    assert out.read_bytes() == broken


# ---------------------------------------------------------------- 3. files ccscore did not write


FOREIGN = {
    "one-json-line.jsonl": b'{"path": "a.png", "label": "clean"}',
    "json-lines.jsonl": b'{"path": "a.png", "error": "x"}\n{"path": "b.png", "error": "x"}\n',
    "notes.txt": b"my notes\nline two",
    "short.txt": b"x",
    "foreign.csv": b"name,size\na.png,12\n",
    "half-header.csv": b"path,label,score_cl",
    "other-labels.csv": b'"path","label","score_clean","quality","width","height","error"\n',
    "other-labels.jsonl": b'{"ccscore_records": 1, "labels": ["clean", "blur"]}\n',
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_resume_refuses_a_file_ccscore_did_not_write_and_leaves_it_alone(model, tmp_path, name):
    img = image(tmp_path / "a.png")
    out = tmp_path / name
    out.write_bytes(FOREIGN[name])
    err = one_line_error(run(img, "--model", model, "--output", out, "--resume"))
    assert "refusing to resume" in err
    assert out.read_bytes() == FOREIGN[name]


# ---------------------------------------------------------------- 4. kills in the middle of an action


def _kill_at(target: str, after: int = 0, partial: bool = False, when: str = "before", match: str = "") -> str:
    """A prelude that SIGKILLs the run at call number `after` + 1 of `target` ("module:attr" or
    "module:Class.attr"), `when` "before" or "after" the call runs; only calls whose first argument contains
    `match` (and that exist) count. `partial`: the target is shutil.copyfileobj, killed after writing half the bytes."""
    module, attr = target.split(":")
    owner, _, name = attr.rpartition(".")
    return f"""
import importlib, os, signal, functools
_owner = importlib.import_module({module!r})
for _part in {owner!r}.split(".") if {owner!r} else []:
    _owner = getattr(_owner, _part)
_orig = getattr(_owner, {name!r}); _calls = [0]
@functools.wraps(_orig)
def _killer(*a, **k):
    if {match!r} not in str(a[0] if a else "") or ({match!r} and not os.path.lexists(a[0])):
        return _orig(*a, **k)
    _calls[0] += 1
    if _calls[0] <= {after}:
        return _orig(*a, **k)
    if {partial}:
        data = a[0].read()
        a[1].write(data[: len(data) // 2]); a[1].flush()
    if {when!r} == "after":
        _orig(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(_owner, {name!r}, _killer)
"""


KILL_POINTS = {  # (target, calls let through, partial copy, before/after the call, argument match)
    "after the intents, before the records": ("ccscore.actions:ActionJournal.record_intents", 2, False, "after", ""),
    "after the records, before the action": ("ccscore.actions:Mover._carry_out_once", 2, False, "before", ""),
    "between a move's link and unlink": ("os:unlink", 2, False, "before", "/data/"),
    "halfway through a copy": ("shutil:copyfileobj", 2, True, "before", ""),
    "after a copy is linked, before its temporary goes": ("os:unlink", 0, False, "before", "ccscore-partial"),
    "after the action, before its done mark": ("ccscore.actions:ActionJournal.record_done", 2, False, "before", ""),
}


@pytest.mark.parametrize("kind", ["move", "copy"])
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_kill_at_any_point_of_an_action_is_completed_once_by_resume(model, tmp_path, kind, point):
    target, after, partial, when, match = KILL_POINTS[point]
    if (kind == "move" and (partial or match == "ccscore-partial")) or (kind == "copy" and match == "/data/"):
        pytest.skip("a move on one file system never copies; a copy unlinks no source")
    root, dest = tmp_path / "data", tmp_path / "flagged"
    originals = {p.name: p.read_bytes() for p in (image(root / f"{i}.png", i) for i in range(5))}
    out = tmp_path / "r.jsonl"
    args = [root, "--model", model, "--output", out, f"--{kind}-to", dest, *FLAG_ALL, "--workers", "0",
            "--batch-size", "1"]
    killed = run(*args, prelude=_kill_at(target, after, partial, when, match))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    resumed = run(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert Counter(r["path"] for r in records_of(out)) == Counter(str(root / n) for n in originals)
    assert files_under(dest) == originals  # complete, under their own names, once (no NAME-1)
    assert files_under(root) == ({} if kind == "move" else originals)
    assert not [p for p in tmp_path.rglob("*") if "ccscore-journal" in p.name or "ccscore-partial" in p.name]


SMALL_JOURNAL = "import ccscore.actions as _actions; _actions.JOURNAL_COMPACT_BYTES = 0\n"


@pytest.mark.parametrize("kind", ["move", "copy"])
def test_the_action_journal_stays_one_batch_long_and_a_kill_after_emptying_it_loses_nothing(model, tmp_path, kind):
    """A run over millions of files must not keep a journal line per action it ever took: with nothing pending
    after a batch, the journal is emptied (here at any size). The journal never holds more than one batch, and a
    kill right after it was emptied leaves a run that --resume completes exactly once."""
    root, dest = tmp_path / "data", tmp_path / "flagged"
    originals = {p.name: p.read_bytes() for p in (image(root / f"{i}.png", i) for i in range(8))}
    out = tmp_path / "r.jsonl"
    sizes = tmp_path / "sizes.json"
    args = [root, "--model", model, "--output", out, f"--{kind}-to", dest, *FLAG_ALL, "--workers", "0",
            "--batch-size", "1"]
    spy = SMALL_JOURNAL + f"""
import atexit, json, os
_sizes = []
_write = _actions.ActionJournal._write
def _spy(self, entries, durable):
    _write(self, entries, durable)
    _sizes.append(os.path.getsize(self.path))
_actions.ActionJournal._write = _spy
atexit.register(lambda: open({str(sizes)!r}, "w").write(json.dumps(_sizes)))
"""
    whole = run(*args, prelude=spy)
    assert whole.returncode == 0, whole.stderr.decode()
    written = json.loads(sizes.read_text())
    assert len(written) == 16  # an intent and a done mark per image
    one_batch = max(written[:2])
    assert max(written) <= one_batch + 64, written  # never the 8 images' entries together
    assert files_under(dest) == originals

    for folder in (root, dest):
        shutil.rmtree(folder)
    out.unlink()
    for p in (image(root / f"{i}.png", i) for i in range(8)):
        assert p.read_bytes() == originals[p.name]
    killed = run(*args, prelude=SMALL_JOURNAL + _kill_at("ccscore.actions:ActionJournal.compact", 3, False, "after", ""))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    resumed = run(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert Counter(r["path"] for r in records_of(out)) == Counter(str(root / n) for n in originals)
    assert files_under(dest) == originals
    assert files_under(root) == ({} if kind == "move" else originals)
    assert not [p for p in tmp_path.rglob("*") if "ccscore-journal" in p.name or "ccscore-partial" in p.name]


def test_random_kills_during_move_and_copy_runs_lose_nothing(model, tmp_path):
    """The attacker's check of benchmarks/kill_resume.py, smaller: 150 images + 2 large files, 3 kills each."""
    spec = importlib.util.spec_from_file_location("kill_resume", REPO / "benchmarks" / "kill_resume.py")
    kill_resume = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kill_resume)
    for kind in ("move", "copy"):
        result = kill_resume.trial(tmp_path, model, kind, images=150, kills=3, big=2, big_mb=8, seed=1, workers=2)
        assert result["problems"] == [], (kind, result["log"], result["problems"][:10])
        assert result["records"] == result["files"] == 152 and result["in_dest"] == result["flagged"] > 0


# ---------------------------------------------------------------- 5. one writer per output


def test_a_second_run_on_a_locked_output_is_refused(model, tmp_path):
    sys.path.insert(0, str(REPO / "runtime"))
    from ccscore.outputs import open_output

    img = image(tmp_path / "a.png")
    out = tmp_path / "r.jsonl"
    writer, _, _ = open_output(str(out), list(STUB_LABELS), resume=False)  # a run in progress
    try:
        writer.write_batch([{"path": "first.png", "error": "e"}])
        before = out.read_bytes()
        err = one_line_error(run(img, "--model", model, "--output", out, "--resume"))
        assert "another ccscore run" in err and out.read_bytes() == before
    finally:
        writer.close()
    assert run(img, "--model", model, "--output", out, "--resume").returncode == 0  # free again


# ---------------------------------------------------------------- 6. dry runs


@pytest.mark.parametrize("resume", [False, True])
def test_a_dry_run_changes_nothing_and_the_real_run_then_acts(model, tmp_path, resume):
    root, dest, out = tmp_path / "data", tmp_path / "copies", tmp_path / "r.csv"
    originals = {p.name: p.read_bytes() for p in (image(root / f"{i}.png", i) for i in range(3))}
    args = [root, "--model", model, "--output", out, "--copy-to", dest, *FLAG_ALL, "--workers", "0"]
    dry = run(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert dry.stdout.decode().count("would copy") == 3
    assert not out.exists() and not dest.exists()
    real = run(*args, *(["--resume"] if resume else []))
    assert real.returncode == 0, real.stderr.decode()
    assert files_under(dest) == originals and len(records_of(out)) == 3


# ---------------------------------------------------------------- 14. full disks, unreadable folders, overlaps


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_output_to_a_full_disk_is_one_line(model, tmp_path, name):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    img = image(tmp_path / "a.png")
    out = tmp_path / name
    os.symlink("/dev/full", out)
    err = one_line_error(run(img, "--model", model, "--output", out), code=2)
    assert "No space left" in err


def test_a_full_disk_mid_run_is_one_line(model, tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        image(root / f"{i}.png", i)
    out = tmp_path / "r.csv"
    prelude = """
import errno
from ccscore import outputs as _o
_orig = _o.JsonlWriter.write_batch; _calls = [0]
def _full(self, *a, **k):
    _calls[0] += 1
    if _calls[0] > 1:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _orig(self, *a, **k)
_o.JsonlWriter.write_batch = _full
"""
    proc = run(root, "--model", model, "--output", out, "--workers", "0", "--batch-size", "2", prelude=prelude)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err and "No space left" in err, err
    assert len(records_of(out)) == 2


def test_unreadable_folders_are_reported_and_fail_the_run(model, tmp_path):
    root = tmp_path / "data"
    image(root / "ok" / "a.png")
    image(root / "locked" / "b.png", 1)
    # Root reads any folder whatever its mode, so the refusal is simulated where the walk meets it.
    prelude = f"""
import os
_scandir = os.scandir
def _scandir_denied(path="."):
    if os.fspath(path).endswith("locked"):
        raise PermissionError(13, "Permission denied", os.fspath(path))
    return _scandir(path)
os.scandir = _scandir_denied
"""
    proc = run(root, "--model", model, "--jsonl", "--workers", "0", prelude=prelude)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"cannot read folder {root / 'locked'}: Permission denied" in err and "1 folders unreadable" in err
    assert [json.loads(l)["path"] for l in proc.stdout.splitlines()] == [str(root / "ok" / "a.png")]


@pytest.mark.parametrize("where", ["the input itself", "a folder holding the input"])
def test_a_destination_that_is_or_holds_an_input_folder_is_refused(model, tmp_path, where):
    root = tmp_path / "data"
    files = {p.name: p.read_bytes() for p in (image(root / f"{i}.png", i) for i in range(3))}
    dest = root if where == "the input itself" else tmp_path
    err = one_line_error(run(root, "--model", model, "--move-to", dest, *FLAG_ALL, "--workers", "0"))
    assert "choose a destination outside it" in err
    assert files_under(root) == files


def test_a_file_named_inside_the_destination_stays_where_it_is(model, tmp_path):
    dest = tmp_path / "flagged"
    img = image(dest / "x.png", 4)
    content = img.read_bytes()
    proc = run(img, "--model", model, "--move-to", dest, *FLAG_ALL, "--workers", "0")
    assert proc.returncode == 0, proc.stderr.decode()
    assert files_under(dest) == {"x.png": content}


def test_a_move_across_file_systems_makes_the_copys_name_durable_before_the_source_goes(tmp_path, monkeypatch):
    """Across file systems a move is a copy, then the source's unlink. The two file systems commit apart: the
    copy's name (its folder) must be on disk before the source is unlinked, or a power loss between the two
    commits keeps neither. The same when a resumed move finds the copy complete."""
    import errno

    from ccscore.actions import Mover

    real_link, real_fsync, real_unlink = os.link, os.fsync, os.unlink
    events: list[tuple[str, str]] = []

    def link(a, b, *args, **kwargs):
        if os.path.basename(os.fspath(a)) == "x.png":  # the source: on "another file system"
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(a, b, *args, **kwargs)

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def unlink(path, *args, **kwargs):
        events.append(("unlink", os.fspath(path)))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    for resumed in (False, True):
        src = tmp_path / f"from{resumed}" / "x.png"
        src.parent.mkdir()
        src.write_bytes(b"the image")
        dest = tmp_path / f"to{resumed}"
        mover = Mover("move", str(dest))
        action = mover.plan(str(src), "x.png", str(src))
        if resumed:  # killed after the copy was complete, before the source's unlink
            dest.mkdir()
            shutil.copyfile(src, dest / "x.png")
        events.clear()
        assert mover.carry_out(action, resuming=resumed)
        assert (dest / "x.png").read_bytes() == b"the image" and not src.exists()
        gone = events.index(("unlink", str(src)))
        assert ("fsync", str(dest)) in events[:gone], (resumed, events)


def test_a_move_killed_across_file_systems_before_its_unlink_is_finished_by_a_run_without_output(tmp_path, monkeypatch):
    """Killed between its copy to another file system and the source's unlink, with no --output (no journal): the
    same command again finds the source's bytes under the name and unlinks the source (its name made durable first),
    instead of copying it again under x-1.png. A name holding other bytes is someone else's; a symlink to the source
    leaves the source where it is."""
    from ccscore.actions import Mover

    real_fsync = os.fsync
    synced: list[str] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    src = tmp_path / "from" / "x.png"
    src.parent.mkdir()
    src.write_bytes(b"the image")
    dest = tmp_path / "to"
    dest.mkdir()
    shutil.copyfile(src, dest / "x.png")  # what the killed run left: a complete copy, the source still there
    mover = Mover("move", str(dest))
    action = mover.plan(str(src), "x.png", str(src))
    assert (action.dst, action.already) == (str(dest / "x.png"), True)
    assert mover.carry_out(action) and not src.exists() and str(dest) in synced
    assert sorted(p.name for p in dest.iterdir()) == ["x.png"] and (dest / "x.png").read_bytes() == b"the image"

    src = tmp_path / "other" / "y.png"
    src.parent.mkdir()
    src.write_bytes(b"the image")
    dest = tmp_path / "to other"
    dest.mkdir()
    (dest / "y.png").write_bytes(b"the user's own file")
    mover = Mover("move", str(dest))
    action = mover.plan(str(src), "y.png", str(src))
    assert action.dst == str(dest / "y-1.png") and not action.already
    assert mover.carry_out(action) and not src.exists()
    assert (dest / "y-1.png").read_bytes() == b"the image" and (dest / "y.png").read_bytes() == b"the user's own file"

    src = tmp_path / "linked" / "z.png"  # a symlink to the source under the name: its bytes are the source's own
    src.parent.mkdir()
    src.write_bytes(b"the image")
    dest = tmp_path / "to linked"
    dest.mkdir()
    (dest / "z.png").symlink_to(src)
    mover = Mover("move", str(dest))
    action = mover.plan(str(src), "z.png", str(src))
    assert not mover.carry_out(action) and src.read_bytes() == b"the image"  # in place already: never unlinked


@pytest.mark.parametrize("across_file_systems", [False, True])
def test_a_move_whose_source_cannot_be_unlinked_leaves_the_file_in_one_place(tmp_path, monkeypatch, across_file_systems):
    """A source in a read-only folder (its unlink refused): the move fails with one error and takes back the link or
    copy it made, so the file is never left under two names (one file two names share, or a copy beside it); once the
    folder is writable the same move completes."""
    from ccscore.actions import ActionError, Mover

    real_unlink, real_link = os.unlink, os.link
    read_only = {"on": True}
    src = tmp_path / "from" / "x.png"
    src.parent.mkdir()
    src.write_bytes(b"the image")

    def unlink(path, *args, **kwargs):
        if read_only["on"] and os.fspath(path) == str(src):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_unlink(path, *args, **kwargs)

    def link(a, b, *args, **kwargs):
        if across_file_systems:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(a, b, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "link", link)
    dest = tmp_path / "to"
    mover = Mover("move", str(dest))
    action = mover.plan(str(src), "x.png", str(src))
    with pytest.raises(ActionError, match="Permission denied"):
        mover.carry_out(action)
    assert src.read_bytes() == b"the image" and src.stat().st_nlink == 1
    assert [p.name for p in dest.iterdir()] == []
    read_only["on"] = False
    assert mover.carry_out(action) and not src.exists()
    assert [p.name for p in dest.iterdir()] == ["x.png"] and (dest / "x.png").read_bytes() == b"the image"

    # A second name of the source that stood in DIR before the plan (a backup's hard link) is the user's: a move
    # that finds it and cannot unlink the source leaves it.
    src = tmp_path / "again" / "z.png"
    src.parent.mkdir()
    src.write_bytes(b"the image")
    real_link(src, dest / "z.png")
    read_only["on"] = True
    action = mover.plan(str(src), "z.png", str(src))
    assert action.already
    with pytest.raises(ActionError, match="Permission denied"):
        mover.carry_out(action)
    assert (dest / "z.png").exists() and src.read_bytes() == b"the image"

    # A link a killed attempt of this very move made (the name was free when planned): taken back.
    src = tmp_path / "killed" / "w.png"
    src.parent.mkdir()
    src.write_bytes(b"the image")
    action = mover.plan(str(src), "w.png", str(src))
    assert not action.already
    real_link(src, dest / "w.png")  # what the killed attempt left
    with pytest.raises(ActionError, match="Permission denied"):
        mover.carry_out(action, resuming=True)
    assert not (dest / "w.png").exists() and src.stat().st_nlink == 1


def test_a_failed_action_leaves_its_image_in_place_and_says_resume_will_not_retry_it(model, tmp_path):
    """A move that fails (a file stands where DIR needs a folder) leaves its image in place, exits 1 and says that
    --resume does not act on it again (its record is written); --resume then scores and moves nothing, loses
    nothing and leaves no journal."""
    root = tmp_path / "in"
    files = [image(root / "a" / "x0.png", 0), image(root / "a" / "x1.png", 1), image(root / "y.png", 2)]
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a").write_bytes(b"the user's file where a folder would go")
    out = tmp_path / "scores.jsonl"
    args = (root, "--model", model, "--threshold", "0", "--move-to", dest, "--output", out, "--workers", "0")
    first = run(*args)
    assert first.returncode == 1 and b"2 actions failed" in first.stderr
    assert b"the 2 images whose actions failed stay where they are, and --resume does not act on them again" in \
        first.stderr
    assert files[0].exists() and files[1].exists() and not files[2].exists() and (dest / "y.png").exists()
    assert (dest / "a").read_bytes() == b"the user's file where a folder would go"
    assert not Path(f"{out}.ccscore-journal").exists()
    (dest / "a").unlink()
    again = run(*args, "--resume")
    assert again.returncode == 0 and b"0 scored" in again.stderr and b"2 already in" in again.stderr  # y.png moved
    assert files[0].exists() and files[1].exists() and sorted(p.name for p in dest.rglob("*")) == ["y.png"]
    assert len(records_of(out)) == 3 and not Path(f"{out}.ccscore-journal").exists()
