"""ccscore: tells whether an image carries lossy compression artifacts (JPEG, WebP, AVIF, JPEG XL), how strong, and where.

    from ccscore import Scorer
    scorer = Scorer()                      # the bundled model, best available device
    result = scorer.score("image.png")
    print(result.label, result.scores, result.quality)

Importing this package needs neither torch nor onnxruntime; creating a `Scorer` needs onnxruntime
(`pip install "ccscore[cpu]"` or `"ccscore[gpu]"`).
"""

import importlib

__version__ = "0.1.0"

# Imported on first use (not even `typing` here): `import ccscore.cli` must not wait for numpy and Pillow
# (~0.3 s) before the command can install its Ctrl-C handler.
_LAZY = {"CCScoreError": "errors", "ImageError": "errors", "ModelError": "errors", "ModelOutputError": "errors",
         "OnnxRuntimeMissing": "errors", "ScoreFailure": "results", "ScoreResult": "results", "TileScore": "results",
         "AGGREGATIONS": "scorer", "Scorer": "scorer"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "AGGREGATIONS",
    "CCScoreError",
    "ImageError",
    "ModelError",
    "ModelOutputError",
    "OnnxRuntimeMissing",
    "ScoreFailure",
    "ScoreResult",
    "Scorer",
    "TileScore",
    "__version__",
]
