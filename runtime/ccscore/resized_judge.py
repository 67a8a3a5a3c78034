"""The resized-damage judge: a one-hidden-layer network over `resized.resized_features`, its weights data
(`resized_judge.json`, fitted by export/ccscore_export/resized_judge.py for the bundled model: the head's lean is
one of its inputs). Scorer.find_downscaled asks it about images the rules left clean (evidence `downscaled`,
`details.downscaled.judged`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ModelError, one_line
from .resized import JUDGE_GLOBALS, JUDGE_PER_PLANE

BUNDLED_JUDGE = Path(__file__).with_name("resized_judge.json")


def sigmoid(logit: float) -> float:
    """1 / (1 + e^-logit), clipped where float64 would overflow."""
    return float(1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0))))


def fitted_for_of(spec: dict) -> tuple[str, str, str]:
    """The model (name, version, file SHA-256) a fitted JSON names under "model"; ValueError where it is no mapping."""
    model = spec.get("model", {})
    if not isinstance(model, dict):
        raise ValueError("model must name the model it was fitted for")
    return str(model.get("name", "")), str(model.get("version", "")), str(model.get("digest", ""))


@dataclass(frozen=True, eq=False)
class ResizedJudge:
    mean: np.ndarray  # [F] input standardisation
    scale: np.ndarray  # [F]
    hidden_weight: np.ndarray  # [H, F]
    hidden_bias: np.ndarray  # [H]
    out_weight: np.ndarray  # [H]
    out_bias: float
    threshold: float  # a probability over this flags
    fitted_for: tuple[str, str, str] = ("", "", "")  # the model (name, version, file SHA-256) whose head's lean it read

    def __eq__(self, other: object) -> bool:
        """By value (Scorer settings holding it are compared: `ScorerSettings`)."""
        if not isinstance(other, ResizedJudge):
            return NotImplemented
        return (all(np.array_equal(getattr(self, name), getattr(other, name))
                    for name in ("mean", "scale", "hidden_weight", "hidden_bias", "out_weight"))
                and (self.out_bias, self.threshold, self.fitted_for)
                == (other.out_bias, other.threshold, other.fitted_for))

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_spec(cls, spec: dict) -> "ResizedJudge":
        """From the fitted JSON's fields; ValueError where shapes or values do not fit together."""
        mean, scale = np.asarray(spec["mean"], np.float64), np.asarray(spec["scale"], np.float64)
        weight = np.asarray(spec["hidden"]["weight"], np.float64)
        bias = np.asarray(spec["hidden"]["bias"], np.float64)
        out = np.asarray(spec["out"]["weight"], np.float64)
        if mean.ndim != 1 or bias.ndim != 1:
            raise ValueError("mean and hidden bias must be lists")
        features, hidden = mean.shape[0], bias.shape[0]
        if (scale.shape != mean.shape or weight.shape != (hidden, features) or out.shape != (hidden,)
                or not np.all(scale > 0)):
            raise ValueError("inconsistent shapes or a scale that is not positive")
        if not 0.0 <= float(spec["threshold"]) <= 1.0:
            raise ValueError(f"threshold {spec['threshold']!r} is no probability")
        values = np.concatenate([mean, scale, weight.ravel(), bias, out, [spec["out"]["bias"], spec["threshold"]]])
        if not np.all(np.isfinite(values)):
            raise ValueError("values that are not finite")
        return cls(mean, scale, weight, bias, out, float(spec["out"]["bias"]), float(spec["threshold"]),
                   fitted_for_of(spec))

    @classmethod
    def bundled(cls) -> "ResizedJudge":
        """The judge shipped beside the runtime; ModelError (one line) where it is missing or broken."""
        try:
            judge = cls.from_spec(json.loads(BUNDLED_JUDGE.read_text()))
            if judge.features != JUDGE_GLOBALS + 3 * JUDGE_PER_PLANE:
                raise ValueError(f"{judge.features} inputs, where this runtime reads "
                                 f"{JUDGE_GLOBALS + 3 * JUDGE_PER_PLANE}")
            return judge
        except Exception as exc:  # any shape of broken file: one line
            raise ModelError(f"{BUNDLED_JUDGE}: unusable resized-damage judge: {one_line(exc)}") from None

    @property
    def features(self) -> int:
        return self.mean.shape[0]

    def probability(self, values: np.ndarray) -> float:
        """P(JPEG damage resized) for one input vector (`resized.resized_features`)."""
        if values.shape != self.mean.shape:
            raise ValueError(f"the judge reads {self.features} inputs, got {values.shape}")
        hidden = np.tanh(self.hidden_weight @ ((values - self.mean) / self.scale) + self.hidden_bias)
        return sigmoid(float(self.out_weight @ hidden + self.out_bias))

    def flags(self, probability: Optional[float]) -> bool:
        return probability is not None and probability > self.threshold
