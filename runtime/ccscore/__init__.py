"""ccscore: tells whether an image carries lossy compression artifacts (JPEG, WebP), how strong, and where.

    from ccscore import Scorer
    scorer = Scorer()                      # the bundled model, best available device
    result = scorer.score("image.png")
    print(result.label, result.scores, result.quality)

Importing this package needs neither torch nor onnxruntime; creating a `Scorer` needs onnxruntime
(`pip install "ccscore[cpu]"` or `"ccscore[gpu]"`).
"""

from .errors import CCScoreError, ImageError, ModelError, ModelOutputError, OnnxRuntimeMissing
from .results import ScoreFailure, ScoreResult, TileScore
from .scorer import AGGREGATIONS, Scorer

__version__ = "0.1.0"

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
