"""`ccscore report`: one self-contained HTML file, checked in headless Chromium (skipped without one)."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import compress, draw_art, run_cli

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("report_load", ROOT / "benchmarks" / "report_load.py")
report_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_load)
BROWSER_MISSING = report_load.browser_missing()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A scored folder (same file names in two folders, some JPEG'd) and its report with every heatmap."""
    root = tmp_path_factory.mktemp("report")
    for folder, seeds in (("a", range(4)), ("b", range(4, 8))):
        (root / "data" / folder).mkdir(parents=True)
        for k, seed in enumerate(seeds):
            art = draw_art(seed)
            (compress(art, "JPEG", 40 + 10 * k) if k % 2 else art).save(root / "data" / folder / f"img{k}.png")
    scored = run_cli(str(root / "data"), "--output", str(root / "scores.jsonl"), "--workers", "0")
    assert scored.returncode == 0, scored.stderr
    made = run_cli("report", str(root / "scores.jsonl"), "-o", str(root / "report.html"), "--heatmaps", "all",
                   "--workers", "0")
    assert made.returncode == 0, made.stderr
    records = [json.loads(line) for line in (root / "scores.jsonl").read_text().splitlines()[1:]]
    return root, records


def test_the_report_is_one_file_that_needs_no_network(run):
    root, records = run
    html = (root / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from elsewhere
    assert "url(http" not in html and "@import" not in html
    assert html.count("data:image/webp;base64,") == len(records)
    assert sorted(p.name for p in root.iterdir()) == ["data", "report.html", "scores.jsonl"]


def test_report_never_replaces_a_file_and_reports_bad_lines(run, tmp_path):
    root, records = run
    before = (root / "report.html").read_bytes()
    again = run_cli("report", str(root / "scores.jsonl"), "-o", str(root / "report.html"))
    assert again.returncode == 2 and "exists" in again.stderr and (root / "report.html").read_bytes() == before
    lines = (root / "scores.jsonl").read_text().splitlines()
    saved = tmp_path / "s\nccscore report: error: fake.jsonl"  # a line break in its name: still one error line
    saved.write_text("\n".join([lines[0], "{broken", *lines[1:]]) + "\n")
    made = run_cli("report", str(saved), "-o", str(tmp_path / "r.html"), "--heatmaps", "none")
    assert made.returncode == 1
    assert [line for line in made.stderr.splitlines() if "error" in line] == [
        f"ccscore report: error: {tmp_path}/s\\nccscore report: error: fake.jsonl:2: line 2 is not a ccscore record (not JSON)"]
    assert (tmp_path / "r.html").read_text().count('"path":') == len(records)
    not_ours = run_cli("report", str(tmp_path / "r.html"), "-o", str(tmp_path / "x.html"))
    assert not_ours.returncode == 2 and not (tmp_path / "x.html").exists()


def test_report_from_a_folder_scores_it_first(tmp_path):
    (tmp_path / "d").mkdir()
    draw_art(3).save(tmp_path / "d" / "clean.png")
    compress(draw_art(4), "JPEG", 50).save(tmp_path / "d" / "jpeg.png")
    made = run_cli("report", str(tmp_path / "d"), "-o", str(tmp_path / "r.html"), "--workers", "0")
    assert made.returncode == 0, made.stderr
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert sorted(Path(r["path"]).name for r in records) == ["clean.png", "jpeg.png"]
    assert (tmp_path / "r.html").read_text().count("data:image/webp;base64,") == 2


@pytest.fixture(scope="module")
def browser():
    if BROWSER_MISSING:
        pytest.skip(f"no headless browser here: {BROWSER_MISSING}")
    driver = report_load.headless_chromium()
    yield driver
    driver.quit()


def shown(browser) -> list[str]:
    return browser.execute_script("return window.ccscoreReport.shownPaths()")


def set_value(browser, element_id: str, value: str) -> None:
    browser.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input'));", element_id, value)


def test_in_chromium_one_entry_per_image_sort_filter_and_heatmap_view(run, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root, records = run
    report_load.load_report(browser, root / "report.html")
    paths = [r["path"] for r in records]
    assert sorted(shown(browser)) == sorted(paths)  # one entry per image
    rows = browser.find_elements(By.CSS_SELECTOR, ".row")
    assert len(rows) == len(records)

    # Default order: P(lossy), highest first; sorting by path changes it, and the rows drawn follow.
    p_lossy = {r["path"]: 1 - r["scores"]["clean"] for r in records}
    by_p = shown(browser)
    assert [p_lossy[p] for p in by_p] == sorted(p_lossy.values(), reverse=True)
    set_value(browser, "sortKey", "path")
    browser.find_element(By.ID, "sortDir").click()  # ascending
    assert shown(browser) == sorted(paths) != by_p
    first_row = min(browser.find_elements(By.CSS_SELECTOR, ".row"), key=lambda r: r.location["y"])
    assert first_row.find_element(By.CSS_SELECTOR, ".path").text == sorted(paths)[0]

    # Filters: by label, by path, by quality.
    clean = sorted(r["path"] for r in records if r["label"] == "clean")
    set_value(browser, "fLabel", "clean")
    assert shown(browser) == clean and len(browser.find_elements(By.CSS_SELECTOR, ".row")) == len(clean)
    set_value(browser, "fLabel", "")
    set_value(browser, "fPath", "/b/")
    assert shown(browser) == sorted(p for p in paths if "/b/" in p)
    set_value(browser, "fPath", "")
    set_value(browser, "fQ", "60")
    assert shown(browser) == sorted(r["path"] for r in records if r["quality"] is not None and r["quality"] <= 60)
    set_value(browser, "fQ", "")

    # The cut: how many a P(lossy) >= 0.5 cut flags is what the run flagged; a quality cut keeps the heavier
    # damage, and "Show these" lists exactly those.
    flagged = sum(r["label"] != "clean" for r in records)
    assert f"This cut flags {flagged} of {len(records)}" in browser.find_element(By.ID, "cutResult").text
    heavy = sorted(r["path"] for r in records if 1 - r["scores"]["clean"] >= 0.5 and r["quality"] is not None
                   and r["quality"] <= 55)
    assert 0 < len(heavy) < flagged
    set_value(browser, "cutQ", "55")
    assert f"This cut flags {len(heavy)} of" in browser.find_element(By.ID, "cutResult").text
    browser.find_element(By.ID, "cutShow").click()
    assert shown(browser) == heavy
    set_value(browser, "cutQ", "")

    # A click opens the large view with the heatmap drawn over the image.
    jpeg = next(p for p in sorted(paths) if p_lossy[p] > 0.9)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, ".row")
               if r.find_element(By.CSS_SELECTOR, ".path").text == jpeg)
    row.click()
    assert "open" in browser.find_element(By.ID, "view").get_attribute("class")
    deadline = time.time() + 10
    painted = 0
    while time.time() < deadline and not painted:
        painted = browser.execute_script(
            "const c = document.getElementById('heat'); if (!c.width) return 0;"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let k = 3; k < d.length; k += 4) n += d[k] > 0; return n;")
        time.sleep(0.05)
    assert painted > 0, "no heatmap cell drawn"
    assert browser.find_element(By.ID, "big").get_attribute("naturalWidth") == str(records[0]["width"])
    assert "jpeg" in browser.find_element(By.ID, "legend").text
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert "open" not in browser.find_element(By.ID, "view").get_attribute("class")
    assert report_load.console_errors(browser) == []


def test_in_chromium_a_report_of_2000_images_loads_fast(tmp_path, browser):
    """The bar: 2,000 entries, one HTML file, loaded without a console error (the benchmark measures the time
    on real scored images: benchmarks/report_load.py)."""
    from ccscore.outputs import JsonlWriter, header_bytes

    rng = np.random.default_rng(0)
    records = []
    for n in range(2000):
        path = tmp_path / "img" / f"d{n % 20}" / f"{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, compress_level=1)
        p = float(rng.random())
        label = "clean" if p < 0.5 else "jpeg"
        records.append({"path": str(path), "label": label, "scores": {"clean": 1 - p, "jpeg": p, "webp": 0.0},
                        "quality": None if label == "clean" else float(rng.integers(30, 99)),
                        "width": 32, "height": 24, "evidence": "grid"})
    with open(tmp_path / "s.jsonl", "wb") as f:
        f.write(header_bytes("s.jsonl", ["clean", "jpeg", "webp"]))
        JsonlWriter(f).write_batch(records)
    made = run_cli("report", str(tmp_path / "s.jsonl"), "-o", str(tmp_path / "r.html"), "--heatmaps", "none")
    assert made.returncode == 0, made.stderr
    seconds = report_load.load_report(browser, tmp_path / "r.html")
    assert seconds < 15, f"loaded in {seconds:.1f} s"  # generous: the bar (5 s) is measured by the benchmark
    assert sorted(shown(browser)) == sorted(r["path"] for r in records)
    # Virtualised: only the rows in view exist, and scrolling to the end draws the last ones.
    assert len(browser.execute_script("return document.querySelectorAll('.row')")) < 100
    browser.execute_script("const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight;")
    time.sleep(0.3)
    drawn = browser.execute_script("return [...document.querySelectorAll('.row .path')].map(e => e.textContent)")
    assert shown(browser)[-1] in drawn
    assert report_load.console_errors(browser) == []


HOSTILE_NAMES = ["x<!--<script>y.png", "</script><img src=x onerror=window.pwned=1>.png", "a&amp;<b>\u2028.png",
                 "<!--", "-->"]


def test_hostile_file_names_are_only_text(tmp_path, browser):
    """File names are data: none can end the data's script element, open a comment-like script state that
    swallows the page (`<!--<script`), or add markup; each shows as its own text."""
    from ccscore.outputs import JsonlWriter, header_bytes

    records = [{"path": str(tmp_path / name), "label": "jpeg", "scores": {"clean": 0.1, "jpeg": 0.9, "webp": 0.0},
                "quality": 50.0, "width": 8, "height": 8} for name in HOSTILE_NAMES]
    with open(tmp_path / "s.jsonl", "wb") as f:
        f.write(header_bytes("s.jsonl", ["clean", "jpeg", "webp"]))
        JsonlWriter(f).write_batch(records)
    made = run_cli("report", str(tmp_path / "s.jsonl"), "-o", str(tmp_path / "r.html"), "--heatmaps", "none")
    assert made.returncode == 0, made.stderr
    html = (tmp_path / "r.html").read_text()
    data = html.split('<script type="application/json" id="ccscore-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    report_load.load_report(browser, tmp_path / "r.html")
    assert sorted(shown(browser)) == sorted(r["path"] for r in records)
    assert browser.execute_script("return window.pwned === undefined && document.querySelectorAll('img[src=x]')"
                                  ".length === 0")


def test_malformed_records_are_error_lines_not_crashes(tmp_path):
    """NaN, null or text for numbers, a NUL in a path: one error line each, and the report of the rest."""
    good = {"path": str(tmp_path / "x.png"), "label": "jpeg", "scores": {"clean": 0.1, "jpeg": 0.9, "webp": 0.0},
            "quality": 50.0, "width": 8, "height": 8}
    lines = [json.dumps(good).replace("50.0", "NaN"), json.dumps(good | {"scores": {"clean": None}}),
             json.dumps(good | {"path": "nul\0.png"}), json.dumps(good | {"height": "<b>"}), json.dumps(good)]
    (tmp_path / "s.jsonl").write_text('{"ccscore_records": 1, "labels": ["clean", "jpeg", "webp"]}\n'
                                      + "\n".join(lines) + "\n")
    made = run_cli("report", str(tmp_path / "s.jsonl"), "-o", str(tmp_path / "r.html"), "--heatmaps", "none")
    assert made.returncode == 1 and "Traceback" not in made.stderr, made.stderr
    assert made.stderr.count("is not a ccscore record") == 4 and "1 images" in made.stderr


def test_a_report_named_like_its_records_is_refused_before_scoring(tmp_path):
    (tmp_path / "d").mkdir()
    draw_art(3).save(tmp_path / "d" / "a.png")
    made = run_cli("report", str(tmp_path / "d"), "-o", str(tmp_path / "r.jsonl"), "--workers", "0")
    assert made.returncode == 2 and "the report itself" in made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_without_hard_links_a_killed_write_never_leaves_part_of_a_file(tmp_path, monkeypatch):
    """Where hard links fail (FAT, some shares), the report, heatmap or output header is still written under a
    temporary name and renamed: the real name is never opened for writing, so a kill cannot leave it partial."""
    import errno
    import os

    from ccscore.outputs import create_new_file

    opened = []
    real_open = os.open

    def no_link(*args, **kwargs):
        raise OSError(errno.EPERM, "no hard links here")

    def watching_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(os, "open", watching_open)
    assert create_new_file(str(tmp_path / "r.html"), b"<html>" * 1000)
    assert not create_new_file(str(tmp_path / "r.html"), b"other")
    monkeypatch.undo()
    assert (tmp_path / "r.html").read_bytes() == b"<html>" * 1000
    assert str(tmp_path / "r.html") not in opened
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_one(tmp_path):
    """A report or heatmap killed mid-write leaves .NAME.ccscore-new-PID; the next writer of NAME removes it once
    its process is gone, and leaves a live writer's temporary (and other files) alone."""
    import os
    import subprocess
    import sys

    from ccscore.outputs import create_new_file

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".r.html.ccscore-new-{gone.pid}"
        live = tmp_path / f".r.html.ccscore-new-{alive.pid}"
        other = tmp_path / f".s.html.ccscore-new-{gone.pid}"
        for p in (stale, live, other):
            p.write_bytes(b"<html> half")
        assert create_new_file(str(tmp_path / "r.html"), b"<html>")
        assert (tmp_path / "r.html").read_bytes() == b"<html>"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.html", live.name, other.name])
    finally:
        alive.kill()
        alive.wait()


def test_a_temporary_that_a_live_writer_elsewhere_holds_is_left_alone(tmp_path):
    """A writer on another machine (a shared folder) or in another PID namespace (a container) has a PID that
    this machine does not see running: its temporary, which it holds open (and locked, as create_new_file does),
    is not a killed writer's and must stay (removed, that writer's report would fail at its last step). Once
    that writer is gone, the next writer of the name removes it."""
    import os
    import subprocess
    import sys

    from ccscore.outputs import create_new_file

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    elsewhere = tmp_path / f".r.html.ccscore-new-{gone.pid}"  # a PID this machine does not run
    writer = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, time\n"
         f"f = open({str(elsewhere)!r}, 'wb')\n"
         "fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "f.write(b'<html> half'); f.flush(); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == b"open\n"
        assert create_new_file(str(tmp_path / "r.html"), b"<html>")
        assert elsewhere.read_bytes() == b"<html> half"
    finally:
        writer.kill()
        writer.wait()
    assert create_new_file(str(tmp_path / "r.html"), b"again") is False  # never replaced
    assert (tmp_path / "r.html").read_bytes() == b"<html>" and not elsewhere.exists()


def test_a_temporary_name_with_an_impossible_pid_is_left_alone(tmp_path):
    """A name that only looks like a writer's temporary (its PID past any the system gives) is not ours to judge:
    the report is written and that file stays (probing such a PID raised OverflowError: no report at all)."""
    from ccscore.outputs import create_new_file

    odd = tmp_path / f".r.html.ccscore-new-{2**64}"
    odd.write_bytes(b"someone's")
    assert create_new_file(str(tmp_path / "r.html"), b"<html>")
    assert odd.read_bytes() == b"someone's" and (tmp_path / "r.html").read_bytes() == b"<html>"
