"""How fast the HTML report of a run opens in headless Chromium, and a screenshot of it for the README.

    python benchmarks/report_load.py [--images 2000] [--repeats 3] [--screenshot docs/report.png]

Draws N procedural illustrations (export/ccscore_export/data/procedural.py; about half JPEG'd or WebP'd at
random qualities, stored as PNG), scores them with `ccscore DIR --output`, writes `ccscore report`, then
loads the file in headless Chromium (Debian's chromium + chromium-driver, through selenium, no network) and
prints: time to write the report, its size, the load time (navigation start to the list drawn) per repeat,
the entries the page holds, and the browser console's errors. Needs the [train] extra (the art) and selenium.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why headless Chromium cannot be driven here (one line), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    if not any(os.path.exists(p) for p in CHROMIUM):
        return "no Chromium (Debian: apt-get install chromium chromium-driver; tests/install_browser.sh)"
    if not (shutil.which("chromedriver") or os.path.exists(CHROMEDRIVER)):
        return "no chromedriver (Debian: apt-get install chromium-driver; tests/install_browser.sh)"
    return None


def headless_chromium(width: int = 1400, height: int = 900):
    """A headless Chromium driven by selenium that never reaches the network (no Selenium Manager, no stats),
    logging the browser console."""
    os.environ["SE_AVOID_STATS"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    options.binary_location = next(p for p in CHROMIUM if os.path.exists(p))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")
    return webdriver.Chrome(service=Service(driver_path), options=options)


def load_report(driver, path: str | os.PathLike, timeout: float = 60.0) -> float:
    """Opens the report and waits until its list is drawn; returns seconds from navigation start to then."""
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    driver.get(Path(path).resolve().as_uri())
    WebDriverWait(driver, timeout, poll_frequency=0.02).until(
        lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'"))
    wall = time.perf_counter() - start
    # The page's own clock: navigation start to the end of the script that draws the list, where available.
    inside = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n && n.loadEventEnd > 0 ? n.loadEventEnd / 1000 : null;")
    return max(wall, inside or 0.0)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def draw_images(folder: Path, count: int, size: tuple[int, int] = (320, 256), seed: int = 0) -> None:
    """`count` procedural illustrations: ~45% JPEG'd (quality 30-95), ~10% WebP'd, the rest clean, as PNG."""
    import numpy as np
    from PIL import Image

    from ccscore_export.data.procedural import draw_illustration

    rng = np.random.default_rng(seed)
    for n in range(count):
        art = Image.fromarray(draw_illustration(np.random.default_rng(seed * 100_003 + n), size[1], size[0]))
        kind = rng.random()
        if kind < 0.55:
            buf = io.BytesIO()
            art.save(buf, "JPEG" if kind < 0.45 else "WEBP", quality=int(rng.integers(30, 96)))
            art = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        sub = folder / f"part{n % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        art.save(sub / f"img{n:05d}.png", compress_level=1)


def ccscore(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "export"),
                                                      os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "ccscore", *args], capture_output=True, text=True, env=env)


def save_screenshots(driver, report: Path, out: Path) -> None:
    """The list with a cut applied, and the large view of the first flagged image, each a small PNG."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    driver.set_window_size(1280, 760)
    load_report(driver, report)
    driver.find_element(By.ID, "cutQ").send_keys("80")
    shots = [(out, None)]
    shots.append((out.with_name(out.stem + "-view" + out.suffix), "view"))
    for path, what in shots:
        if what == "view":
            driver.find_elements(By.CSS_SELECTOR, ".row")[0].click()
            time.sleep(0.5)
        png = driver.get_screenshot_as_png()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image = image.quantize(colors=128)  # a small file for the repository
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, optimize=True)
        print(f"screenshot: {path} ({path.stat().st_size / 1024:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heatmaps", default="flagged", choices=("all", "flagged", "none"))
    parser.add_argument("--work", type=Path, help="Keep the images, records and report here (default: a "
                                                  "temporary folder).")
    parser.add_argument("--screenshot", type=Path, help="Save the report's screenshots here (PNG).")
    args = parser.parse_args()
    if problem := browser_missing():
        sys.exit(f"report_load: {problem}")
    sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "export")]
    work = args.work or Path(tempfile.mkdtemp(prefix="ccscore-report-"))
    images, records, report = work / "images", work / "scores.jsonl", work / "report.html"
    if not records.exists():
        start = time.perf_counter()
        draw_images(images, args.images)
        print(f"drew {args.images} images in {time.perf_counter() - start:.1f}s")
        start = time.perf_counter()
        run = ccscore(str(images), "--output", str(records))
        print(f"scored in {time.perf_counter() - start:.1f}s: {run.stderr.strip().splitlines()[0]}")
    if report.exists():
        report.unlink()
    start = time.perf_counter()
    run = ccscore("report", str(records), "-o", str(report), "--heatmaps", args.heatmaps)
    if run.returncode:
        sys.exit(f"report_load: ccscore report failed: {run.stderr.strip()}")
    print(f"ccscore report (heatmaps: {args.heatmaps}): {time.perf_counter() - start:.1f}s, "
          f"{report.stat().st_size / 1e6:.1f} MB")
    records_count = sum(1 for _ in open(records, "rb")) - 1
    driver = headless_chromium()
    try:
        times = [load_report(driver, report) for _ in range(args.repeats)]
        entries = driver.execute_script("return window.ccscoreReport.shownPaths().length")
        errors = console_errors(driver)
        print(f"load in headless Chromium (navigation to list drawn): "
              f"{', '.join(f'{t:.2f}s' for t in times)}; best {min(times):.2f}s, worst {max(times):.2f}s "
              f"(bar: < 5 s)")
        print(f"entries: {entries} of {records_count} records; console errors: {len(errors)}")
        for error in errors[:5]:
            print(f"  {error}")
        if args.screenshot:
            save_screenshots(driver, report, args.screenshot)
    finally:
        driver.quit()
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
