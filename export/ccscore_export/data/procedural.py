"""Procedurally drawn illustration-like art: clean training images that never went through a lossy codec.

Each picture is a background (flat, sky / linear / radial gradient, two-tone split) with cel-shaded
shapes and character-like blobs outlined in anti-aliased line art, tapered strokes (hair, folds),
hatching, screentone, airbrush blobs, text and sometimes film grain. Vector parts are drawn by Pillow at
2-3x and reduced with a box filter, which is how anti-aliased edges look in real art; sometimes they are
drawn at 1x (aliased, pixel-art-like edges), which real datasets also hold.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Anime palettes lean on saturated mid tones and skin / hair tones; sample hue/sat/value in HSV.
_SKIN_TONES = np.array([[255, 224, 200], [250, 210, 180], [240, 195, 165], [200, 150, 120], [255, 236, 222]])


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.15:
        base = _SKIN_TONES[rng.integers(len(_SKIN_TONES))].astype(float)
        return np.clip(base + rng.normal(0, 8, 3), 0, 255)
    h = rng.random()
    s = rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.3, 1.0)], p=[0.3, 0.7])
    v = rng.uniform(0.25, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255


def _shade(colour: np.ndarray, factor: float, hue_shift: np.ndarray | None = None) -> tuple[int, int, int]:
    """Cel-shading tone: darker/lighter copy, shadows slightly tinted (blue/purple) as painters do."""
    c = colour * factor
    if hue_shift is not None:
        c = c + hue_shift
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _as_tuple(colour: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(colour, 0, 255))


# ---------------------------------------------------------------- backgrounds (numpy, 1x resolution)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.choice(["flat", "linear", "radial", "sky", "split"], p=[0.25, 0.25, 0.15, 0.2, 0.15])
    c0, c1 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "flat":
        return np.broadcast_to(c0, (h, w, 3)).astype(np.float32).copy()
    if kind in ("linear", "sky"):
        angle = rng.uniform(0, 2 * np.pi) if kind == "linear" else np.pi / 2 + rng.normal(0, 0.1)
        t = (xx * np.cos(angle) + yy * np.sin(angle))
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
        if kind == "sky":
            c0 = np.array([rng.uniform(40, 120), rng.uniform(100, 180), rng.uniform(200, 255)])
            c1 = np.array([rng.uniform(200, 255), rng.uniform(200, 250), rng.uniform(220, 255)])
        t = t ** rng.uniform(0.5, 2.0)
    elif kind == "radial":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / np.hypot(h, w)
        t = np.clip(t * rng.uniform(1.0, 2.5), 0, 1)
    else:  # two flat tones split by a straight edge, as in cel-painted backdrops
        angle = rng.uniform(0, np.pi)
        d = (xx - w * rng.uniform(0.2, 0.8)) * np.cos(angle) + (yy - h * rng.uniform(0.2, 0.8)) * np.sin(angle)
        t = np.clip(d + 0.5, 0, 1)  # one pixel of anti-aliasing
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


def _soft_ellipse_mask(rng: np.random.Generator, h: int, w: int, softness: float) -> np.ndarray:
    """Ellipse coverage in [0, 1]; `softness` = edge width in pixels (0.7 ~ anti-aliased hard edge)."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.08, 0.4) * h, rng.uniform(0.08, 0.4) * w
    yy, xx = np.ogrid[0:h, 0:w]
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1 - d) * min(ry, rx) / softness + 0.5, 0, 1).astype(np.float32)


def _airbrush(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    for _ in range(rng.integers(1, 5)):
        mask = _soft_ellipse_mask(rng, h, w, softness=rng.uniform(20, 120)) * rng.uniform(0.2, 0.7)
        img += (_random_colour(rng) - img) * mask[..., None]


def add_screentone(rng: np.random.Generator, img: np.ndarray) -> None:
    """Manga halftone dots inside an (anti-aliased) ellipse region."""
    h, w = img.shape[:2]
    region = _soft_ellipse_mask(rng, h, w, softness=0.7)
    period = rng.uniform(3.0, 10.0)
    angle = rng.choice([0.0, np.pi / 4, rng.uniform(0, np.pi)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
    dist = np.hypot(u - np.round(u), v - np.round(v)) * period  # pixels to nearest dot centre
    radius = period * rng.uniform(0.15, 0.45)
    dots = np.clip(radius - dist + 0.5, 0, 1) * region
    ink = np.array([20.0, 20.0, 30.0]) if rng.random() < 0.7 else _random_colour(rng)
    img += (ink - img) * dots[..., None]


def add_film_grain(rng: np.random.Generator, img: np.ndarray) -> None:
    sigma = rng.uniform(1.0, 6.0)
    grain = rng.normal(0, sigma, img.shape[:2]).astype(np.float32)
    img += grain[..., None] if rng.random() < 0.7 else rng.normal(0, sigma, img.shape).astype(np.float32)


# ---------------------------------------------------------------- vector layer (Pillow, supersampled)


def _blob_polygon(rng: np.random.Generator, cx: float, cy: float, r: float, n: int = 72) -> np.ndarray:
    """Smooth star-convex outline: a circle perturbed by a few low harmonics (heads, bodies, clouds)."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = np.ones(n)
    for k in range(2, 6):
        radius += rng.uniform(0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    sx, sy = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4)
    return np.stack([cx + r * sx * radius * np.cos(theta), cy + r * sy * radius * np.sin(theta)], 1)


def _shape_polygon(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    kind = rng.choice(["blob", "ellipse", "rect", "star", "triangle"], p=[0.45, 0.2, 0.15, 0.1, 0.1])
    if kind == "blob":
        return _blob_polygon(rng, cx, cy, r)
    if kind == "ellipse":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([cx + r * rng.uniform(0.5, 1.5) * np.cos(t), cy + r * rng.uniform(0.5, 1.5) * np.sin(t)], 1)
    if kind == "star":
        k = int(rng.integers(4, 9))
        t = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
        rad = np.where(np.arange(2 * k) % 2 == 0, r, r * rng.uniform(0.35, 0.6))
        return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)
    n = 4 if kind == "rect" else 3
    t = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, np.pi)
    pts = np.stack([np.cos(t), np.sin(t)], 1) * r * rng.uniform(0.7, 1.3, size=(1, 2))
    return pts + [cx, cy]


def _scaled(poly: np.ndarray, centre: np.ndarray, factor: float, offset: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in (centre + (poly - centre) * factor + offset)]


def _tapered_stroke(rng: np.random.Generator, p0, p1, p2, width: float, n: int = 24) -> list[tuple[float, float]]:
    """Quadratic Bezier stroke whose width swells and tapers like a pen stroke (hair, folds, speed lines)."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, float) for p in (p0, p1, p2))
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    d = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    normal = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-6)
    half = width * np.sin(np.pi * t.clip(0.02, 0.98)) ** rng.uniform(0.5, 1.5) / 2
    left, right = pts + normal * half, pts - normal * half
    return [tuple(p) for p in np.concatenate([left, right[::-1]])]


def _draw_vector_layer(rng: np.random.Generator, h: int, w: int, scale: int) -> Image.Image:
    """Shapes, cel shading, outlines, strokes and hatching on a transparent RGBA canvas at `scale`x."""
    layer = Image.new("RGBA", (w * scale, h * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ink = (int(rng.integers(0, 60)), int(rng.integers(0, 50)), int(rng.integers(0, 70)), 255)
    line_w = max(1, int(round(rng.uniform(0.7, 4.0) * scale)))
    shadow_tint = np.array([-10.0, -5.0, 15.0]) * rng.uniform(0, 1.5)
    size = min(h, w) * scale
    for _ in range(int(rng.integers(3, 12))):
        cx, cy = rng.uniform(0, w * scale), rng.uniform(0, h * scale)
        r = rng.uniform(0.06, 0.35) * size
        poly = _shape_polygon(rng, cx, cy, r)
        colour = _random_colour(rng)
        centre = poly.mean(0)
        tones = int(rng.choice([1, 2, 3], p=[0.25, 0.5, 0.25]))
        # Cel shading: shadow tone fills the shape, the lit tone is a shrunk copy shifted towards the light.
        light_dir = rng.normal(0, 1, 2)
        light_dir /= np.linalg.norm(light_dir) + 1e-6
        if tones == 1:
            draw.polygon([tuple(p) for p in poly], fill=_as_tuple(colour))
        else:
            draw.polygon([tuple(p) for p in poly], fill=_shade(colour, rng.uniform(0.55, 0.8), shadow_tint))
            draw.polygon(_scaled(poly, centre, rng.uniform(0.75, 0.92), light_dir * r * 0.12), fill=_as_tuple(colour))
            if tones == 3:
                hl = _scaled(poly, centre, rng.uniform(0.2, 0.4), light_dir * r * 0.45)
                draw.polygon(hl, fill=_shade(colour, 1.0, np.array([60.0, 60.0, 60.0])))
        if rng.random() < 0.8:
            closed = [tuple(p) for p in np.concatenate([poly, poly[:1]])]
            draw.line(closed, fill=ink, width=max(1, int(line_w * rng.uniform(0.6, 1.4))), joint="curve")
    for _ in range(int(rng.integers(0, 25))):  # hair strands, folds, speed lines
        p0 = rng.uniform(0, 1, 2) * (w * scale, h * scale)
        p2 = p0 + rng.normal(0, 0.15, 2) * size
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.08, 2) * size
        col = ink if rng.random() < 0.7 else (*_as_tuple(_random_colour(rng)), 255)
        draw.polygon(_tapered_stroke(rng, p0, p1, p2, line_w * rng.uniform(1.0, 3.0)), fill=col)
    if rng.random() < 0.4:  # hatching: parallel strokes over a rectangle patch
        x0, y0 = rng.uniform(0, w * scale * 0.8), rng.uniform(0, h * scale * 0.8)
        pw, ph = rng.uniform(0.1, 0.4) * w * scale, rng.uniform(0.1, 0.4) * h * scale
        spacing = rng.uniform(3, 9) * scale
        slope = rng.uniform(-1.5, 1.5)
        hatch_w = max(1, int(scale * rng.uniform(0.6, 1.5)))
        for i in range(int(pw / spacing)):
            x = x0 + i * spacing
            draw.line([(x, y0), (x + slope * ph * 0.3, y0 + ph)], fill=ink, width=hatch_w)
    return layer


def _draw_text(rng: np.random.Generator, img: Image.Image) -> None:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(10, max(12, min(64, h // 5))))
        font = ImageFont.load_default(size=size)
        text = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!?…0123 ")) for _ in range(rng.integers(3, 16)))
        xy = (float(rng.uniform(0, w * 0.8)), float(rng.uniform(0, h * 0.9)))
        fill = _as_tuple(_random_colour(rng)) if rng.random() < 0.5 else (0, 0, 0)
        stroke = int(rng.integers(0, 3))
        draw.text(xy, text, font=font, fill=fill, stroke_width=stroke, stroke_fill=(255, 255, 255))


def draw_illustration(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A new illustration-like picture, uint8 RGB [height, width, 3], fully determined by `rng`."""
    img = _background(rng, height, width)
    if rng.random() < 0.5:
        _airbrush(rng, img)
    # Pillow draws without anti-aliasing; draw larger and reduce. scale=1 keeps aliased (pixel-art) edges.
    scale = int(rng.choice([1, 2, 3], p=[0.1, 0.6, 0.3]))
    if height * width * scale * scale > 4_000_000:
        scale = min(scale, 2)
    layer = _draw_vector_layer(rng, height, width, scale)
    if scale > 1:
        layer = layer.reduce(scale)  # box filter == coverage-based anti-aliasing
    if rng.random() < 0.15:  # soft painterly edges
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    base = Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")
    if rng.random() < 0.5:
        _draw_text(rng, base)
    img = np.asarray(base, dtype=np.float32).copy()
    if rng.random() < 0.3:
        add_screentone(rng, img)
    if rng.random() < 0.3:
        _airbrush(rng, img)
    if rng.random() < 0.2:
        add_film_grain(rng, img)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- UI and retro-game graphics

_GRAPHICS_GLYPHS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!?.,:;+-*/()[]#%&@")


def _graphics_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Black, one solid colour, a dark smooth gradient or glow (night skies, vignettes), or a solid colour with
    faint noise or dither: backgrounds where a codec's trace shows only next to the few edges."""
    kind = rng.choice(["black", "solid", "dark_gradient", "glow", "faint_noise"], p=[0.3, 0.25, 0.2, 0.1, 0.15])
    if kind == "black":
        return np.zeros((h, w, 3), np.float32)
    colour = _random_colour(rng)
    if kind == "solid":
        return np.broadcast_to(colour, (h, w, 3)).astype(np.float32).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dark = colour * rng.uniform(0.05, 0.4)
    if kind == "dark_gradient":
        t = (yy / h if rng.random() < 0.7 else xx / w)[..., None]
        return dark * (1 - t) + dark * rng.uniform(0.2, 2.5) * t
    if kind == "glow":
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.3, 1.0) * max(h, w)
        t = np.clip(1 - np.hypot(yy - cy, xx - cx) / r, 0, 1)[..., None] ** 2
        return dark + (colour - dark) * t * rng.uniform(0.3, 1.0)
    return colour + rng.normal(0, rng.uniform(0.3, 1.5), (h, w, 1)).astype(np.float32)


def _draw_maze(rng: np.random.Generator, draw: ImageDraw.ImageDraw, h: int, w: int) -> None:
    """Walls on a cell grid, 1-3 px, aliased (tile-based game maps, pipes, circuit-like UI)."""
    cell = int(rng.integers(4, 25))
    colour = _as_tuple(_random_colour(rng))
    width = int(rng.integers(1, 4))
    x0, y0 = int(rng.integers(0, cell)), int(rng.integers(0, cell))
    for _ in range(int(rng.integers(20, 120))):
        cx, cy = x0 + cell * int(rng.integers(0, max(1, w // cell))), y0 + cell * int(rng.integers(0, max(1, h // cell)))
        length = cell * int(rng.integers(1, 8))
        end = (cx + length, cy) if rng.random() < 0.5 else (cx, cy + length)
        draw.line([(cx, cy), end], fill=colour, width=width)
    if rng.random() < 0.5:  # pellets
        dot = _as_tuple(_random_colour(rng))
        for _ in range(int(rng.integers(20, 200))):
            px, py = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(1, 3))
            draw.rectangle([px, py, px + r, py + r], fill=dot)


def _draw_frames(rng: np.random.Generator, draw: ImageDraw.ImageDraw, h: int, w: int) -> None:
    """Panels and buttons: flat fills, 1-2 px borders, bevels."""
    for _ in range(int(rng.integers(1, 8))):
        x0, y0 = int(rng.integers(0, max(1, w - 16))), int(rng.integers(0, max(1, h - 16)))
        x1, y1 = x0 + int(rng.integers(16, max(17, w // 2))), y0 + int(rng.integers(12, max(13, h // 3)))
        fill = _random_colour(rng)
        draw.rectangle([x0, y0, x1, y1], fill=_as_tuple(fill) if rng.random() < 0.7 else None,
                       outline=_as_tuple(_random_colour(rng)), width=int(rng.integers(1, 3)))
        if rng.random() < 0.4:  # bevel: light top-left, dark bottom-right
            draw.line([(x0, y1), (x0, y0), (x1, y0)], fill=_shade(fill, 1.4))
            draw.line([(x0, y1), (x1, y1), (x1, y0)], fill=_shade(fill, 0.5))


def _draw_glyphs(rng: np.random.Generator, img: Image.Image) -> None:
    """Text lines or a font sheet (a grid of glyphs), aliased or anti-aliased."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1" if rng.random() < 0.5 else "L"  # "1": bitmap-font look, no anti-aliasing
    size = int(rng.integers(8, 33))
    font = ImageFont.load_default(size=size)
    fill = _as_tuple(_random_colour(rng)) if rng.random() < 0.7 else (255, 255, 255)
    if rng.random() < 0.5:  # font sheet
        step = size + int(rng.integers(0, 8))
        for y in range(int(rng.integers(0, step)), h - size, step):
            for x in range(int(rng.integers(0, step)), w - size, step):
                draw.text((x, y), str(rng.choice(_GRAPHICS_GLYPHS)), font=font, fill=fill)
        return
    for _ in range(int(rng.integers(1, 10))):
        text = "".join(rng.choice(_GRAPHICS_GLYPHS + [" "]) for _ in range(int(rng.integers(3, 30))))
        draw.text((float(rng.uniform(0, w * 0.7)), float(rng.uniform(0, h * 0.95))), text, font=font, fill=fill)


def draw_graphics(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """UI and retro-game graphics, uint8 RGB [height, width, 3]: mostly flat or dark backgrounds with thin
    aliased lines, panels, glyphs and small flat sprites. Lossy codecs leave their trace on such pictures only
    around the few edges (and clip it on black): these teach that trace, and that the clean edges are clean."""
    img = _graphics_background(rng, height, width)
    base = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(base)
    parts = [p for p, share in (("maze", 0.5), ("frames", 0.5), ("glyphs", 0.5), ("sprites", 0.3))
             if rng.random() < share] or ["glyphs"]
    if "maze" in parts:
        _draw_maze(rng, draw, height, width)
    if "frames" in parts:
        _draw_frames(rng, draw, height, width)
    if "sprites" in parts:  # small flat shapes, aliased
        for _ in range(int(rng.integers(1, 12))):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 40)
            draw.polygon([tuple(p) for p in _shape_polygon(rng, cx, cy, r)], fill=_as_tuple(_random_colour(rng)))
    if "glyphs" in parts:
        _draw_glyphs(rng, base)
    return np.asarray(base, dtype=np.uint8).copy()


PROCEDURAL_STYLES = {"illustration": draw_illustration, "graphics": draw_graphics}
