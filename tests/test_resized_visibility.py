"""benchmarks/resized_visibility.py: the damage of a resized kind measured against its clean source resampled the same
way (PSNR), with the runtime's label."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import compress, draw_art

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("resized_visibility", ROOT / "benchmarks" / "resized_visibility.py")
visibility = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(visibility)


def test_psnr_and_the_builds_kernel():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert visibility.psnr(a, a) == float("inf")
    assert abs(visibility.psnr(a, a + 1) - 10 * np.log10(255.0**2)) < 1e-9  # one level everywhere: 48.1 dB
    assert visibility.kernel_of("cjpeg:q62:x0.56:cv2_area") == "cv2_area"
    assert visibility.kernel_of("jpegli:q85:x0.85:pil_lanczos:pil_unsharp") == "pil_lanczos"


def test_a_set_prints_each_image_and_the_misses_per_band(tmp_path, capsys):
    art = draw_art(3, (320, 256))
    (tmp_path / "clean").mkdir()
    (tmp_path / "jpeg_downscaled").mkdir()
    art.save(tmp_path / "clean" / "a.png")
    size = (224, 179)
    exact = Image.fromarray(np.asarray(art.resize(size, Image.LANCZOS)))  # no damage: infinite PSNR
    exact.save(tmp_path / "jpeg_downscaled" / "exact.png")
    damaged = compress(art, "JPEG", 50).resize(size, Image.LANCZOS)
    damaged.save(tmp_path / "jpeg_downscaled" / "damaged.png")
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "quality", "kind", "source", "detail"])
        writer.writeheader()
        for name, quality in (("exact", 95), ("damaged", 50)):
            writer.writerow(dict(path=f"jpeg_downscaled/{name}.png", label=1, quality=quality, kind="jpeg_downscaled",
                                 source="a.png", detail=f"pillow:q{quality}:x0.70:pil_lanczos"))
    assert visibility.main(["--eval-set", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] != "inf" and "damaged.png" in out[0]  # sorted: the damaged one first
    assert out[1].startswith("   inf dB") and "exact.png" in out[1]
    assert "2 images" in out[3] and out[-1].split()[-1] == "1"  # the exact one in the top band
    value, label = float(out[0].split()[0]), out[0].split()[2]  # the damaged one, as the runtime labels it
    bands = [line.split() for line in out[4:]]  # low - high dB: missed / other codec / all
    row = next(b for b in bands if float(b[0]) <= value < float(b[2]))
    assert (int(row[4]), int(row[6]), int(row[8])) == (label == "clean", label not in ("clean", "jpeg"), 1)
    assert sum(int(b[8]) for b in bands) == 2
