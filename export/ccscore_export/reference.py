"""Timing of the reference architecture (CLIP ViT-L/14-336 vision tower, random weights), for `ccscore bench`.

Lives on the torch side so the runtime never imports torch; `ccscore.bench` uses it when it is importable.
"""

from __future__ import annotations

import time
from typing import Optional

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel


def time_vision_tower(config: dict, crops: int, images: int = 1, threads: Optional[int] = None) -> dict:
    """Seconds per image (best of `images` runs) of the vision tower on `crops` random crops."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(**config)).eval()
    pixels = torch.rand(crops, 3, config["image_size"], config["image_size"])
    times = []
    with torch.inference_mode():
        for _ in range(max(1, images)):
            t0 = time.perf_counter()
            model(pixel_values=pixels)
            times.append(time.perf_counter() - t0)
    return {"timed": True, "images": len(times), "seconds_per_image": min(times),
            "torch_threads": torch.get_num_threads(),
            "note": "random weights (cost only), float32, torch.inference_mode"}
