"""The artifact detector: a fixed, codec-aware encoder plus a small learned head.

JPEG quantises the 8x8 DCT of luma blocks on a fixed grid; VP8 (WebP) quantises a 4x4 transform. After
decoding, coefficients taken *on* the codec's grid cluster at zero far more often than those taken off it.
The encoder measures exactly that, at native resolution and at every offset, so it needs no training:

  uint8 RGB tiles -> luma -> block DCT at every offset (separable convolutions)
  -> soft "near zero" indicators at a few thresholds -> mean per grid phase
  -> the best phase (soft argmax) against the mean phase, plus coefficient energies.

Only the head (feature standardisation + MLP) is learned. Everything, preprocessing included, lives in one
module so it exports as one ONNX graph that takes raw pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

LABELS = ("clean", "jpeg", "webp")


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II basis, rows are frequencies."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    basis[0] /= math.sqrt(2.0)
    return (basis * math.sqrt(2.0 / n)).float()


@dataclass
class EncoderConfig:
    block_sizes: tuple[int, ...] = (8, 4)
    # Thresholds on |coefficient| in 0-255 luma units. Decoding rounds pixels to integers, which leaves
    # orthonormal-DCT noise of std ~0.3 on quantised-to-zero coefficients: the smallest threshold sits just
    # above it; larger ones let the head see how wide the zero bin is (the quantisation step, so the quality).
    thresholds: tuple[float, ...] = (1.0, 3.0)
    # Sharpness of the soft argmax over phases (phase scores are shares in [0, 1]).
    phase_sharpness: float = 200.0
    # 1-D DCT frequencies kept per direction, one tuple per block size (empty: all of them, the shipped
    # encoder). The block's coefficients are then every (u, v) with u and v in the tuple, DC excluded. The
    # transform stays separable (the row pass emits only these horizontal frequencies, the column pass only
    # these vertical ones), so the cost drops with the square of the tuple's length.
    frequencies: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        self.frequencies = tuple(tuple(int(f) for f in fs) for fs in self.frequencies)
        if self.frequencies and len(self.frequencies) != len(self.block_sizes):
            raise ValueError("frequencies: one tuple per block size (an empty tuple keeps all)")
        for n, fs in zip(self.block_sizes, self.frequencies):
            if list(fs) != sorted(set(fs)) or any(not 0 <= f < n for f in fs) or fs == (0,):
                raise ValueError(f"frequencies {fs} for block {n}: distinct, ascending, in [0, {n}), not DC only")

    def block_frequencies(self, index: int) -> tuple[int, ...]:
        fs = self.frequencies[index] if self.frequencies else ()
        return fs or tuple(range(self.block_sizes[index]))


class PhaseStatistics(nn.Module):
    """Near-zero statistics of an n x n block DCT taken at every offset, summarised per grid phase.

    The near-zero share at threshold t is the mean of relu(1 - |c| / t), computed as 1 - mean(min(|c|, t)) / t:
    the same number with one Abs for all thresholds and one Min per threshold, which onnxruntime's CPU kernels
    run much faster than 5-D broadcasts. The per-phase mean is two plain sums over reshaped axes (a 6-D
    ReduceMean is ~4x slower).
    """

    def __init__(self, block: int, thresholds: tuple[float, ...], phase_sharpness: float,
                 frequencies: tuple[int, ...] | None = None):
        super().__init__()
        self.block = block
        self.thresholds = tuple(float(t) for t in thresholds)
        self.phase_sharpness = phase_sharpness
        self.frequencies = tuple(frequencies) if frequencies else tuple(range(block))
        basis = dct_matrix(block)[list(self.frequencies)]  # [k, n]
        k = len(self.frequencies)
        # Rows first (horizontal frequency v), then per v the columns (vertical frequency u):
        # output channel j * k + i holds coefficient (u, v) = (frequencies[i], frequencies[j]).
        self.register_buffer("row_kernel", basis[:, None, None, :].clone(), persistent=False)
        self.register_buffer("col_kernel", basis.repeat(k, 1)[:, None, :, None].clone(), persistent=False)
        self.has_dc = self.frequencies[0] == 0

    @property
    def n_coefficients(self) -> int:
        return len(self.frequencies) ** 2 - int(self.has_dc)

    @property
    def feature_size(self) -> int:
        # Best-phase and mean-phase near-zero shares per (coefficient, threshold), log energy per
        # coefficient, and the best-minus-mean phase contrast.
        return 2 * self.n_coefficients * len(self.thresholds) + self.n_coefficients + 1

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        n = self.block
        # Keep a whole number of grid periods so every phase has the same count of samples; crop the
        # one-channel input rather than the many-channel output (a copy of the whole tensor).
        h = ((y.shape[-2] - n + 1) // n) * n
        w = ((y.shape[-1] - n + 1) // n) * n
        y = y[:, :, : h + n - 1, : w + n - 1]
        k = len(self.frequencies)
        coeffs = F.conv2d(F.conv2d(y, self.row_kernel), self.col_kernel, groups=k)  # [B, k*k, h, w]
        if self.has_dc:
            coeffs = coeffs[:, 1:]  # drop DC: brightness says nothing about quantisation
        magnitude = coeffs.abs()
        b, c = magnitude.shape[0], magnitude.shape[1]
        samples = float((h // n) * (w // n))
        shares = []
        for t in self.thresholds:
            clipped = torch.clamp(magnitude, max=t)
            per_phase = clipped.reshape(b, c, h // n, n * w).sum(dim=2).reshape(b, c, n, w // n, n).sum(dim=3)
            shares.append(1.0 - per_phase.reshape(b, c, n * n) / (samples * t))
        per_phase = torch.stack(shares, dim=2).reshape(b, c * len(self.thresholds), n * n)  # (coefficient, t)
        phase_score = per_phase.mean(dim=1)  # [B, phases]
        weights = torch.softmax(phase_score * self.phase_sharpness, dim=1)
        best = (per_phase * weights[:, None, :]).sum(dim=2)
        mean = per_phase.mean(dim=2)
        contrast = (phase_score * weights).sum(dim=1, keepdim=True) - phase_score.mean(dim=1, keepdim=True)
        # Texture energy from one phase only: it needs no phase detail, and 1/n^2 of the samples suffice.
        # (In units of the first threshold, as the shipped heads were trained.)
        energy = magnitude[:, :, ::n, ::n].mean(dim=(2, 3)) / self.thresholds[0]
        return torch.cat([best, mean, torch.log1p(energy), contrast], dim=1)


class ArtifactEncoder(nn.Module):
    """uint8 RGB tiles [B, H, W, 3] -> fixed feature vector [B, F]."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.register_buffer("luma_weights", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        self.stats = nn.ModuleList(
            PhaseStatistics(b, config.thresholds, config.phase_sharpness, config.block_frequencies(i))
            for i, b in enumerate(config.block_sizes)
        )

    @property
    def feature_size(self) -> int:
        return sum(s.feature_size for s in self.stats)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        rgb = pixels.permute(0, 3, 1, 2).to(torch.float32)
        y = (rgb * self.luma_weights).sum(dim=1, keepdim=True)
        return torch.cat([s(y) for s in self.stats], dim=1)


@dataclass
class HeadConfig:
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1


@dataclass
class DetectorConfig:
    tile_size: int = 128
    labels: tuple[str, ...] = LABELS
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        return cls(
            tile_size=d["tile_size"],
            labels=tuple(d["labels"]),
            encoder=EncoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["encoder"].items()}),
            head=HeadConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["head"].items()}),
        )


class DetectorHead(nn.Module):
    """Standardised features -> class logits and quality (0-100) per tile."""

    def __init__(self, n_features: int, n_labels: int, config: HeadConfig):
        super().__init__()
        # Standardisation is fitted on training features (see train.py) and travels inside the graph.
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(config.dropout)]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.classify = nn.Linear(width, n_labels)
        self.quality = nn.Linear(width, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.trunk((features - self.feature_mean) / self.feature_std)
        return self.classify(z), torch.sigmoid(self.quality(z)) * 100.0


class ArtifactDetector(nn.Module):
    """The exported graph: uint8 tiles -> (probs [B, C], quality [B, 1])."""

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config or DetectorConfig()
        self.encoder = ArtifactEncoder(self.config.encoder)
        self.head = DetectorHead(self.encoder.feature_size, len(self.config.labels), self.config.head)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, quality = self.head(self.encoder(pixels))
        return torch.softmax(logits, dim=1), quality
