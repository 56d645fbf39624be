"""Face pieces of the ID metric: the IR-SE50 ArcFace backbone, 5-point alignment and box expansion.

The backbone is written here in plain torch so that ``model_ir_se50.pth`` (the TreB1eN/InsightFace_Pytorch
weights the authors use; the user supplies the file) loads into it as is: the attribute names and layer
positions follow that checkpoint's layout. Input: a 112x112 aligned face scaled to [-1, 1]; output: a
unit-length 512-d embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["IRSE", "STAGES", "ARCFACE_TEMPLATE", "Face", "expand_box", "similarity_matrix", "align_face", "to_input"]

# units per stage (widths 64, 128, 256, 512) for the 50-, 100- and 152-layer variants
STAGES: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
WIDTHS = (64, 128, 256, 512)
# The standard ArcFace 5-point layout (eyes, nose tip, mouth corners) in a 112x112 crop.
ARCFACE_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041))
FACE_SIZE = 112


@dataclass(frozen=True)
class Face:
    """A detected face: box (x1, y1, x2, y2) and five landmarks (x, y) in image pixels."""

    box: tuple[float, float, float, float]
    points: tuple[tuple[float, float], ...]
    score: float = 1.0


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class _Squeeze(nn.Module):
    """Squeeze-and-excitation gate over channels (1x1 convolutions, no bias)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class _Unit(nn.Module):
    """One improved-residual unit with an SE gate; the stride sits on the second 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_in == c_out:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            _Squeeze(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE(nn.Module):
    """IR-SE ArcFace backbone (50 layers by default); ``units`` overrides the stage depths (tests only)."""

    def __init__(self, num_layers: int = 50, *, units: Sequence[int] | None = None, drop_ratio: float = 0.6):
        super().__init__()
        if units is None:
            if num_layers not in STAGES:
                raise ValueError(f"IR-SE backbone: num_layers must be one of {sorted(STAGES)}, got {num_layers}")
            units = STAGES[num_layers]
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks: list[nn.Module] = []
        c_in = 64
        for width, n in zip(WIDTHS, units):
            for i in range(n):
                blocks.append(_Unit(c_in, width, 2 if i == 0 else 1))
                c_in = width
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(drop_ratio), _Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.output_layer(self.body(self.input_layer(x)))
        return y / y.norm(p=2, dim=1, keepdim=True)


def expand_box(box: Sequence[float], factor: float = 1.3) -> tuple[float, float, float, float]:
    """The box scaled by ``factor`` about its centre (the authors crop detected faces with 1.3)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * factor / 2, (y2 - y1) * factor / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


def similarity_matrix(src: Sequence[Sequence[float]], dst: Sequence[Sequence[float]]) -> Any:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) taking ``src`` points onto ``dst``."""
    import numpy as np

    s, d = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    ms, md = s.mean(0), d.mean(0)
    s0, d0 = s - ms, d - md
    cov = d0.T @ s0 / len(s)
    u, sig, vt = np.linalg.svd(cov)
    flip = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[1, 1] = -1
    rot = u @ flip @ vt
    scale = (sig * np.diag(flip)).sum() / s0.var(0).sum()
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = md - scale * rot @ ms
    return out


def align_face(image: Any, face: Face, size: int = FACE_SIZE) -> Any:
    """The face warped onto the ArcFace template: a ``size`` x ``size`` RGB PIL image (bilinear)."""
    import numpy as np
    from PIL import Image

    m = similarity_matrix(face.points, [(x * size / FACE_SIZE, y * size / FACE_SIZE) for x, y in ARCFACE_TEMPLATE])
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2].flatten()  # PIL maps output pixels back to input pixels
    return image.convert("RGB").transform((size, size), Image.Transform.AFFINE, data=tuple(inv),
                                          resample=Image.Resampling.BILINEAR)


def to_input(faces: Sequence[Any]) -> torch.Tensor:
    """Aligned faces as a batch in [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    import numpy as np

    arr = np.stack([np.asarray(f.convert("RGB"), dtype=np.float32) / 255.0 for f in faces])
    return (torch.from_numpy(arr).permute(0, 3, 1, 2) - 0.5) / 0.5
