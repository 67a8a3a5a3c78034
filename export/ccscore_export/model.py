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

from .labels import LABELS  # the head's class order


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
    # Chroma-subsampling block (ChromaStatistics): off in every shipped model up to 0.4.0.
    chroma: bool = False

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
    run much faster than 5-D broadcasts. The per-phase mean is a plain sum over reshaped rows, then a matrix
    product over columns (a 6-D ReduceMean is ~4x slower).
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

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Luma [B, 1, H, W] -> (features [B, feature_size], quadrant phase scores [B, 4 * n * n]).

        Phase score p = r * n + s is the mean near-zero share of blocks whose top-left pixel sits at (row, column)
        = (r, s) modulo n in the input: a codec's grid is the phase that stands out. It is given per quadrant
        of the input (top-left, top-right, bottom-left, bottom-right; split on block boundaries, so phases mean
        the same in each). The runtime turns phases into image coordinates and asks whether the quadrants of an
        image's tiles agree on one grid.
        """
        n = self.block
        # Keep a whole number of grid periods so every phase has the same count of samples; crop the
        # one-channel input rather than the many-channel output (a copy of the whole tensor).
        # An even number of blocks per axis, so the quadrants are equal halves: plain reshapes and sums.
        # Sizes are Python ints and reshapes keep the batch as -1: the exported graph then has fixed shapes
        # after the batch, without the ~170 small shape-computing nodes a traced y.shape leaves in it.
        h = ((int(y.shape[-2]) - n + 1) // (2 * n)) * 2 * n
        w = ((int(y.shape[-1]) - n + 1) // (2 * n)) * 2 * n
        y = y[:, :, : h + n - 1, : w + n - 1]
        k = len(self.frequencies)
        coeffs = F.conv2d(F.conv2d(y, self.row_kernel), self.col_kernel, groups=k)  # [B, k*k, h, w]
        magnitude = coeffs.abs()
        # DC (channel 0) says nothing about quantisation. It is dropped from the small per-phase sums, not from
        # this tensor: slicing it off here copies the whole tensor, ~20% of the encoder's time on CPU.
        first = 1 if self.has_dc else 0
        channels = k * k
        c = channels - first
        rows, cols = h // n, w // n  # whole blocks per axis, both even
        samples = float(rows * cols)
        # Column x -> (left/right half, phase x mod n), one-hot: the per-quadrant sums over columns as one matrix
        # product on a small tensor (a 6-D ReduceSum and a Transpose of it cost onnxruntime ~4x more).
        x = torch.arange(w, device=y.device)
        columns = torch.zeros(w, 2 * n, device=y.device)
        columns[x, (x // (w // 2)) * n + x % n] = 1.0
        # Quadrants split the block rows and columns in two (top/bottom, left/right), so one tile still gives
        # several independent grid votes; the whole tile's sums are the quadrants' sums.
        shares, quadrant_shares = [], []
        for t in self.thresholds:
            clipped = torch.clamp(magnitude, max=t)
            per_half = clipped.reshape(-1, channels, 2, rows // 2, n * w).sum(dim=3)  # [B, C, 2, n * w]
            # [B, C, (top/bottom, row phase), (left/right, column phase)] -> [B, c, 2, n, 2, n], DC left out
            per_quadrant = torch.matmul(per_half.reshape(-1, channels, 2 * n, w), columns)[:, first:]
            per_quadrant = per_quadrant.reshape(-1, c, 2, n, 2, n)
            shares.append(1.0 - per_quadrant.sum(dim=(2, 4)).reshape(-1, c, n * n) / (samples * t))
            quadrant_mean = per_quadrant.mean(dim=1).permute(0, 1, 3, 2, 4).reshape(-1, 4, n * n)  # quadrant, phase
            quadrant_shares.append(1.0 - quadrant_mean / (samples / 4 * t))  # [B, 4, n * n]
        per_phase = torch.stack(shares, dim=2).reshape(-1, c * len(self.thresholds), n * n)  # (coefficient, t)
        phase_score = per_phase.mean(dim=1)  # [B, phases]
        quadrant_phase_score = torch.stack(quadrant_shares, dim=1).mean(dim=1).reshape(-1, 4 * n * n)
        weights = torch.softmax(phase_score * self.phase_sharpness, dim=1)
        best = (per_phase * weights[:, None, :]).sum(dim=2)
        mean = per_phase.mean(dim=2)
        contrast = (phase_score * weights).sum(dim=1, keepdim=True) - phase_score.mean(dim=1, keepdim=True)
        # Texture energy from one phase only: it needs no phase detail, and 1/n^2 of the samples suffice. Those
        # blocks are transformed again by strided convolutions (tiny) rather than sliced out of `magnitude`
        # (two strided copies of the large tensor). (In units of the first threshold, as the heads were trained.)
        origin_blocks = F.conv2d(F.conv2d(y, self.row_kernel, stride=(1, n)), self.col_kernel, groups=k, stride=(n, 1))
        energy = origin_blocks[:, first:].abs().mean(dim=(2, 3)) / self.thresholds[0]
        return torch.cat([best, mean, torch.log1p(energy), contrast], dim=1), quadrant_phase_score


class ChromaStatistics(nn.Module):
    """Fixed chroma-vs-luma phase statistics of finite differences: the chroma-subsampling trace.

    JPEG 4:2:0 / 4:2:2 and WebP (always 4:2:0) store chroma at half resolution, and decoders upsample it with
    the "fancy" triangle filter (libjpeg-turbo, libwebp: 3/4 nearer + 1/4 farther sample, separable), i.e. zero
    insertion then G(z) = (1 + z^-1)^3 / 4. The third difference (1 - z^-1)^3 turns that into (1 - z^-2)^3 / 4,
    a polynomial in z^-2: on an upsampled axis every other third difference of chroma is zero (up to rounding),
    at any quality, whatever the luma does. Nearest-neighbour upsampling zeroes every other first difference
    the same way. Clean art has no such 2-periodic null in chroma.

    Per direction (horizontal, vertical), from the uint8 RGB tile: Y, Cb, Cr (BT.601 full range, 0-255);
    mean |first| and |third| difference per 2-periodic phase; the phase contrast log(min + eps) - log(max + eps)
    (<= 0; both phases treated alike, so the tile's offset to the chroma grid does not matter). Chroma
    contrasts are also given relative to luma's (a 2x upscale of clean art nulls both), plus chroma's detail
    relative to luma's. Flat or grey chroma gives contrasts ~0, the clean value. 24 features.
    """

    EPS = 1.0  # 0-255 units: the order of the rounding noise decoded RGB leaves in third differences of Cb / Cr
    STRIDE = 4  # horizontal differences on every 4th row, vertical on every 4th column: a quarter of the cost

    def __init__(self, tile_size: int = 128):
        super().__init__()
        # Rows: Y, Cb, Cr (JFIF / BT.601 full range; offsets cancel in differences); columns: R, G, B.
        ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
        # One 4-tap convolution per direction straight from RGB: output channels 0-2 the first difference of
        # Y, Cb, Cr, 3-5 their third difference. (Cheaper in onnxruntime than colour conversion plus slices.)
        taps = torch.tensor([[0.0, 0.0, -1.0, 1.0], [-1.0, 3.0, -3.0, 1.0]])
        kernel = (taps[:, None, None, :] * ycc[None, :, :, None]).reshape(6, 3, 4)  # [order*channel, rgb, tap]
        self.register_buffer("row_kernel", kernel[:, :, None, :].clone(), persistent=False)
        self.register_buffer("col_kernel", kernel[:, :, :, None].clone(), persistent=False)
        # Per-phase mean as a matrix product: column p averages positions of parity p.
        n = tile_size - 3
        phases = torch.zeros(n, 2)
        phases[0::2, 0] = 1.0 / len(range(0, n, 2))
        phases[1::2, 1] = 1.0 / len(range(1, n, 2))
        self.register_buffer("phases", phases, persistent=False)
        # The 12 (direction, order, Y/Cb/Cr) rows -> 16 (direction, order, Y/Cb/Cr/Cb+Cr).
        channels = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1]])
        self.register_buffer("with_chroma_t", torch.block_diag(*[channels] * 4).t().contiguous(), persistent=False)
        # Phase contrasts log(min + eps) - log(max + eps) (16) -> per (direction, order): Y, Cb+Cr, Cb - Y,
        # Cr - Y, (Cb+Cr) - Y; log detail log(mean + eps) (16) -> per direction: luma's first difference and
        # chroma's (Cb+Cr) relative to it. As one matrix on the logs of [min, max, mean] (16 x 3 -> 24).
        contrasts = torch.block_diag(*[torch.tensor([[1.0, 0, -1, -1, -1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0],
                                                     [0, 1, 0, 0, 1]])] * 4)  # [16, 20]
        detail = torch.zeros(16, 4)
        for d in range(2):
            detail[8 * d, 2 * d], detail[8 * d, 2 * d + 1], detail[8 * d + 3, 2 * d + 1] = 1.0, -1.0, 1.0
        features = torch.zeros(16, 3, 24)  # rows: (channel, statistic) as the logs come, flattened
        features[:, 0, :20], features[:, 1, :20], features[:, 2, 20:] = contrasts, -contrasts, detail
        self.register_buffer("features", features.reshape(48, 24), persistent=False)

    @property
    def feature_size(self) -> int:
        return 4 * 5 + 4

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb: float [B, 3, H, W] in 0-255 (H = W = tile size) -> [B, 24]."""
        s = self.STRIDE
        horizontal = torch.matmul(F.conv2d(rgb, self.row_kernel, stride=(s, 1)).abs(), self.phases).mean(dim=2)
        vertical = torch.matmul(F.conv2d(rgb, self.col_kernel, stride=(1, s)).abs().mean(dim=3), self.phases)
        per_phase = torch.cat([horizontal, vertical], dim=1)  # [B, 12, 2]: mean |difference| per phase
        # min and max over the phases treat both alike, whatever the tile's offset to the chroma grid.
        stats = torch.cat([per_phase.amin(dim=2, keepdim=True), per_phase.amax(dim=2, keepdim=True),
                           per_phase.mean(dim=2, keepdim=True)], dim=2)  # [B, 12, 3]
        logs = torch.log(torch.matmul(self.with_chroma_t, stats) + self.EPS)  # [B, 16, 3]
        return torch.matmul(logs.reshape(logs.shape[0], 48), self.features)


class ArtifactEncoder(nn.Module):
    """uint8 RGB tiles [B, H, W, 3] -> fixed feature vector [B, F] (H = W = tile_size with config.chroma)."""

    def __init__(self, config: EncoderConfig, tile_size: int = 128):
        super().__init__()
        self.config = config
        self.register_buffer("luma_weights", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        self.stats = nn.ModuleList(
            PhaseStatistics(b, config.thresholds, config.phase_sharpness, config.block_frequencies(i))
            for i, b in enumerate(config.block_sizes)
        )
        self.chroma = ChromaStatistics(tile_size) if config.chroma else None

    @property
    def feature_size(self) -> int:
        return sum(s.feature_size for s in self.stats) + (self.chroma.feature_size if self.chroma is not None else 0)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features_and_phases(pixels)[0]

    def features_and_phases(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (features [B, F], phase scores of every block size, concatenated [B, sum of n * n])."""
        rgb = pixels.permute(0, 3, 1, 2).to(torch.float32)
        y = (rgb * self.luma_weights).sum(dim=1, keepdim=True)
        features, phases = zip(*(s(y) for s in self.stats))
        features = list(features)
        if self.chroma is not None:
            features.append(self.chroma(rgb))
        return torch.cat(features, dim=1), torch.cat(phases, dim=1)


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
    """The exported graph: uint8 tiles -> (probs [B, C], quality [B, 1], phases [B, 4 * (64 + 16)])."""

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config or DetectorConfig()
        self.encoder = ArtifactEncoder(self.config.encoder, self.config.tile_size)
        self.head = DetectorHead(self.encoder.feature_size, len(self.config.labels), self.config.head)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, phases = self.encoder.features_and_phases(pixels)
        logits, quality = self.head(features)
        return torch.softmax(logits, dim=1), quality, phases
