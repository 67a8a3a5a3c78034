"""Speed benchmark: end-to-end CPU scoring against the decoding floor, and the session-tuning sweep.

One command reproduces the README's numbers (Debian/Ubuntu with apt, about 650 MB of downloads):

    python benchmarks/speed.py --debian-art /tmp/ccscore-art --model models/ccscore-detector.onnx

--debian-art DEST fetches free game-art packages (freedroidrpg-data, hedgewars-data, supertux-data, flare-game)
with `apt-get download`, unpacks them under DEST and keeps their 0.9-4.5 MP PNG illustrations (sprite masks
and light maps left out) in DEST/set; pass an existing folder as DIR instead to time your own images.

Sections (each prints a table; --json FILE keeps everything):
  bar      `ccscore DIR --jsonl` with defaults vs Pillow decoding the same files on all cores, interleaved
           runs, best of --repeats; and vs the reference architecture (CLIP ViT-L/14-336 x 5 crops,
           random weights) timed on 1 image when torch is installed.
  e2e      the CLI end to end under each candidate setting: intra-op threads, spinning, batch size,
           max tiles, decode workers.
  session  the ONNX session alone on the images' tiles: threads x batch size, sequential vs parallel
           execution mode, graph optimisation levels; wall and CPU ms per tile.
  stages   single-process cost per image of each stage: decode, RGB conversion/alpha flattening, tiling,
           model.
  profile  onnxruntime's per-operator profile of one batch: which ops dominate the model's time.

Timings on a shared machine are noisy: every number is the best of --repeats runs, and the bar's ratio is
taken against the decode floor measured between the same runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))

import numpy as np  # noqa: E402

from ccscore import bench  # noqa: E402

ART_PACKAGES = ("freedroidrpg-data", "hedgewars-data", "supertux-data", "flare-game")
SKIP_PARTS = ("mask.png", "tux_motion_parts", "shadows", "lightmap", "spotlight")


def debian_art(dest: Path) -> Path:
    """Downloads and unpacks the art packages once; returns DEST/set with the chosen PNGs."""
    from PIL import Image

    chosen = dest / "set"
    if chosen.is_dir() and any(chosen.iterdir()):
        return chosen
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *ART_PACKAGES], cwd=debs, check=True)
    tree = dest / "tree"
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
    chosen.mkdir(parents=True, exist_ok=True)
    for p in sorted(tree.rglob("*.png")):
        if any(s in str(p) for s in SKIP_PARTS):
            continue
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception:
            continue
        if 0.9 <= w * h / 1e6 <= 4.5:
            shutil.copy(p, chosen / "_".join(p.parts[-3:]))
    return chosen


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "  ".join(f"{title:>{len(title) if i == 0 else max(len(title), 9)}}" for i, (title, _, _) in enumerate(columns))
    lines = [head]
    for r in rows:
        cells = []
        for i, (title, key, fmt) in enumerate(columns):
            v = r.get(key)
            text = format(v, fmt) if isinstance(v, (int, float)) and fmt else str(v if v is not None else "-")
            cells.append(f"{text:>{len(title) if i == 0 else max(len(title), 9)}}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------- sections


def section_bar(folder: Path, model: str, paths, repeats: int, reference: bool) -> dict:
    runs, floors = [], [bench.decode_floor(paths)["seconds"]]
    for _ in range(repeats):
        runs.append(bench.time_cli(folder, model, "cpu"))
        floors.append(bench.decode_floor(paths)["seconds"])
    best = min(runs, key=lambda r: r["seconds"])
    floor = min(floors)
    out = {"end_to_end": best, "end_to_end_all_s": [r["seconds"] for r in runs], "decode_floor_s": floor,
           "decode_floor_all_s": floors, "ratio": best["seconds"] / floor,
           "e2e_ms_per_image": 1000 * best["seconds"] / max(1, best["images"])}
    if reference:
        out["reference"] = bench.time_reference(1)
        if out["reference"].get("timed"):
            out["speedup_vs_reference"] = out["reference"]["seconds_per_image"] * 1000 / out["e2e_ms_per_image"]
    else:
        out["reference"] = {"gflops_per_image": bench.reference_flops() / 1e9, "timed": False}
    print(f"\n== bar: {best['images']} images, `{best['command']}`")
    print(f"end to end {best['seconds']:.2f} s (runs {', '.join(f'{s:.2f}' for s in out['end_to_end_all_s'])}), "
          f"decode floor {floor:.2f} s (runs {', '.join(f'{s:.2f}' for s in floors)}) -> ratio {out['ratio']:.2f} "
          f"(bar: <= 1.5); peak RSS {best['peak_rss_mb']:.0f} MB; "
          f"bytecode {'compiled, as pip install leaves it' if best['bytecode'] else 'NOT compiled (read-only package?)'}")
    ref = out["reference"]
    if ref.get("timed"):
        print(f"reference: {ref['seconds_per_image']:.1f} s/image; ccscore {out['e2e_ms_per_image']:.1f} ms/image "
              f"end to end -> {out['speedup_vs_reference']:.0f}x faster (bar: >= 100x)")
    else:
        print(f"reference: {ref['gflops_per_image']:.0f} GFLOP/image (not timed)")
    return out


def section_e2e(folder: Path, model: str, paths, repeats: int) -> list[dict]:
    cpus = os.cpu_count() or 1
    configs = [
        ("defaults", [], {}),
        ("untuned**", [], {"CCSCORE_CPU_BATCH": "1000000", "CCSCORE_THREADS": "0", "CCSCORE_SPIN": "1"}),
        ("cpu batch 4", [], {"CCSCORE_CPU_BATCH": "4"}),
        ("threads=1", [], {"CCSCORE_THREADS": "1"}),
        (f"threads={cpus}", [], {"CCSCORE_THREADS": str(cpus)}),
        ("spin on", [], {"CCSCORE_SPIN": "1"}),
        ("batch 8", ["--batch-size", "8"], {}),
        ("batch 16", ["--batch-size", "16"], {}),
        ("batch 32", ["--batch-size", "32"], {}),
        ("batch 64", ["--batch-size", "64"], {}),
        ("all tiles", ["--all-tiles"], {}),
        ("max_tiles 4", ["--max-tiles", "4"], {}),
        ("max_tiles 16", ["--max-tiles", "16"], {}),
        (f"workers {max(1, cpus - 1)}", ["--workers", str(max(1, cpus - 1))], {}),
    ]
    results = {name: [] for name, _, _ in configs}
    floors = []
    for _ in range(repeats):  # round-robin so that load changes hit every config alike
        floors.append(bench.decode_floor(paths)["seconds"])
        for name, extra, env in configs:
            results[name].append(bench.time_cli(folder, model, "cpu", extra, env))
    floor = min(floors)
    rows = []
    for name, _, _ in configs:
        best = min(results[name], key=lambda r: r["seconds"])
        rows.append({"config": name, "seconds": best["seconds"], "images_per_s": best["images_per_s"],
                     "vs_floor": best["seconds"] / floor, "cpu_s": best["cpu_seconds"], "peak_mb": best["peak_rss_mb"],
                     "all_s": " ".join(f"{r['seconds']:.1f}" for r in results[name])})
    print(f"\n== e2e: `ccscore DIR --jsonl` per setting (best of {repeats}); decode floor {floor:.2f} s")
    print(table(rows, [("config", "config", ""), ("seconds", "seconds", ".2f"), ("img/s", "images_per_s", ".2f"),
                       ("vs floor", "vs_floor", ".2f"), ("cpu s*", "cpu_s", ".1f"), ("peak MB", "peak_mb", ".0f"),
                       ("runs", "all_s", "")]))
    print("* CPU seconds of the command and the children it reaped (its decode workers)\n"
          "** the session settings before tuning: whole batches per run, onnxruntime's thread count, spinning on")
    return rows


def _tiles(model: str, paths, max_tiles=None) -> np.ndarray:
    from ccscore import Scorer

    s = Scorer(model, device="cpu", max_tiles=max_tiles)
    return np.concatenate([s.tile(p)[0].pixels for p in paths])


def section_session(model: str, pixels: np.ndarray, repeats: int) -> list[dict]:
    import onnxruntime as ort

    L, M = ort.GraphOptimizationLevel, ort.ExecutionMode
    cpus = os.cpu_count() or 1
    configs = []
    for threads in sorted({1, cpus}):
        for batch in (1, 8, 16, 64):
            configs.append((f"t{threads} b{batch}", threads, batch, L.ORT_ENABLE_ALL, M.ORT_SEQUENTIAL, False))
    configs += [
        (f"t{cpus} b16 spin", cpus, 16, L.ORT_ENABLE_ALL, M.ORT_SEQUENTIAL, True),
        (f"t{cpus} b16 parallel", cpus, 16, L.ORT_ENABLE_ALL, M.ORT_PARALLEL, False),
        (f"t{cpus} b16 basic", cpus, 16, L.ORT_ENABLE_BASIC, M.ORT_SEQUENTIAL, False),
        (f"t{cpus} b16 extended", cpus, 16, L.ORT_ENABLE_EXTENDED, M.ORT_SEQUENTIAL, False),
        ("t1 b16 extended", 1, 16, L.ORT_ENABLE_EXTENDED, M.ORT_SEQUENTIAL, False),
    ]
    sessions = {}
    for name, threads, batch, level, mode, spin in configs:
        so = ort.SessionOptions()
        so.graph_optimization_level, so.execution_mode = level, mode
        so.intra_op_num_threads, so.inter_op_num_threads = threads, (2 if mode == M.ORT_PARALLEL else 1)
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions[name] = (ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]), batch)
    inp = next(iter(sessions.values()))[0].get_inputs()[0].name
    best = {name: (float("inf"), float("inf")) for name in sessions}
    for _ in range(repeats):
        for name, (s, batch) in sessions.items():
            s.run(None, {inp: pixels[:batch]})
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(pixels), batch):
                s.run(None, {inp: pixels[i:i + batch]})
            best[name] = min(best[name], (time.perf_counter() - t0, time.process_time() - c0))
    rows = [{"config": n, "tiles_per_s": len(pixels) / w, "wall_ms_per_tile": 1000 * w / len(pixels),
             "cpu_ms_per_tile": 1000 * c / len(pixels)} for n, (w, c) in best.items()]
    print(f"\n== session: the model alone on {len(pixels)} tiles (best of {repeats}, round-robin)")
    print(table(rows, [("config", "config", ""), ("tiles/s", "tiles_per_s", ".0f"),
                       ("wall ms/tile", "wall_ms_per_tile", ".2f"), ("cpu ms/tile", "cpu_ms_per_tile", ".2f")]))
    return rows


def section_stages(model: str, paths) -> dict:
    from PIL import Image

    from ccscore import Scorer
    from ccscore.images import DecodedImage, load_image, open_image
    from ccscore.tiling import halvings, make_tiles

    s = Scorer(model, device="cpu", intra_op_threads=1)
    t = collections.Counter()
    tiles = halved_tiles = scored = 0
    for p in paths:
        t0 = time.perf_counter()
        with Image.open(p) as im:
            im.load()
        t1 = time.perf_counter()
        im = open_image(p)
        t2 = time.perf_counter()
        DecodedImage.from_pil(im)
        t3 = time.perf_counter()
        decoded = load_image(p)
        t3b = time.perf_counter()
        tl = make_tiles(decoded, s.info.tiling, s.info.tile_size, s.tiling_params, s.halve_upscaled)
        t4 = time.perf_counter()
        (result,) = s.score_together([(str(p), tl, decoded.size)])
        t5 = time.perf_counter()
        t["decode (Pillow load)"] += t1 - t0
        t["open_image (decode + EXIF)"] += t2 - t1
        t["mode conversion (rare modes only)"] += t3 - t2
        t["load_image (as scoring decodes: libspng)"] += t3b - t3
        t["tiling (incl. alpha flattening, halving)"] += t4 - t3b
        t["scoring (1 thread, early stop, halved)"] += t5 - t4
        tiles += len(tl.boxes)
        halved_tiles += sum(len(t.boxes) for level in halvings(tl) for t in level)  # where it looks upscaled
        scored += len(result.tiles)
    n = len(paths)
    out = {k: 1000 * v / n for k, v in t.items()}
    print(f"\n== stages: ms per image, one process ({n} images, {tiles / n:.1f} tiles cut, {halved_tiles / n:.1f} "
          f"more halved, {scored / n:.1f} in the result per image)")
    for k, v in out.items():
        print(f"  {k:<38} {v:7.1f}")
    return out


def section_profile(model: str, pixels: np.ndarray, batch: int = 16, runs: int = 5) -> list[dict]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "prof")
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0].name
        for _ in range(runs):
            s.run(None, {inp: pixels[:batch]})
        events = json.load(open(s.end_profiling()))
    agg = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            agg[(e["args"]["op_name"], e["name"][: -len("_kernel_time")])] += e["dur"]
    total = sum(agg.values())
    by_type = collections.Counter()
    for (op, _), v in agg.items():
        by_type[op] += v
    rows = [{"op": op, "node": node, "share": v / total, "ms_per_tile": v / 1000 / runs / batch}
            for (op, node), v in agg.most_common(12)]
    print(f"\n== profile: 1 thread, batch {batch}: {total / 1000 / runs / batch:.2f} ms per tile in kernels")
    print(table(rows, [("op", "op", ""), ("node", "node", ""), ("share", "share", ".1%"), ("ms/tile", "ms_per_tile", ".3f")]))
    print("by op type: " + ", ".join(f"{op} {v / total:.0%}" for op, v in by_type.most_common(8)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, help="images to time (default: --debian-art set, else synthetic)")
    ap.add_argument("--debian-art", type=Path, metavar="DEST", help="fetch and use Debian game art (see above)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    ap.add_argument("--sections", default="bar,e2e,session,stages,profile")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--no-reference", action="store_true", help="do not time the reference architecture")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args()

    from ccscore.model_info import default_model_path

    model = str(args.model or default_model_path())
    tmp = None
    if args.folder:
        folder = args.folder
    elif args.debian_art:
        folder = debian_art(args.debian_art)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ccscore-speed-")
        folder = Path(tmp.name)
        bench.synthetic_images(folder, 12)
    paths = bench.list_images(folder)
    if args.limit:
        keep = tempfile.TemporaryDirectory(prefix="ccscore-speed-subset-")
        folder = Path(keep.name)
        for p in paths[: args.limit]:
            os.symlink(p.resolve(), folder / p.name)
        paths = bench.list_images(folder)
    sections = args.sections.split(",")
    report = {"machine": bench.machine_info(), "command": " ".join(sys.argv), "model": model,
              "folder": str(folder), "images": len(paths)}
    print(f"{len(paths)} images in {folder}; model {model}; {report['machine']}")
    if "bar" in sections:
        report["bar"] = section_bar(folder, model, paths, args.repeats, not args.no_reference)
    if "e2e" in sections:
        report["e2e"] = section_e2e(folder, model, paths, args.repeats)
    pixels = _tiles(model, paths) if {"session", "profile"} & set(sections) else None
    if "session" in sections:
        report["session"] = section_session(model, pixels, args.repeats)
    if "stages" in sections:
        report["stages"] = section_stages(model, paths)
    if "profile" in sections:
        report["profile"] = section_profile(model, pixels)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
