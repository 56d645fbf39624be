"""AES: the aesthetic predictor v2.5 (a SigLIP so400m vision tower and a small linear head), x 10.

The head is five linear layers (1152 -> 1024 -> 128 -> 64 -> 16 -> 1, dropout between them at training
time, no activation) applied to the unit-length pooled SigLIP output; it is re-created here and loads
the user's ``aesthetic_predictor_v2_5.pth`` (its upstream package is AGPL-3.0, so neither its code nor
its weights ship with this project). The authors score the 2x2 grid of a prompt's four images as one
picture (the processor resizes it to 384 px): with four images per case the grid is scored, otherwise
each image (and results say so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from micon_tasks.devices import check_dtype_name, resolve_dtype

__all__ = ["AestheticHead", "AestheticScorer", "tile_grid", "OFFICIAL_SIGLIP", "SCALE"]

OFFICIAL_SIGLIP = "google/siglip-so400m-patch14-384"
SCALE = 10.0  # the predictor's ~1-10 score times 10
HEAD_WIDTHS = (1024, 128, 64, 16, 1)


class AestheticHead(nn.Module):
    """Linear stack over the unit-length embedding (no activations, as in the trained predictor)."""

    def __init__(self, hidden_size: int = 1152):
        super().__init__()
        dims = (hidden_size, *HEAD_WIDTHS)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled / pooled.norm(dim=-1, keepdim=True)
        for layer in self.linears:
            x = layer(x)
        return x.squeeze(-1)

    def load_predictor_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the upstream file: its keys are ``scoring_head.{0,2,4,6,8}.{weight,bias}`` (dropouts between),
        optionally behind a ``layers.`` prefix."""
        mine: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "layers":
                parts = parts[1:]
            if len(parts) != 3 or parts[0] != "scoring_head" or not parts[1].isdigit() or int(parts[1]) % 2:
                raise ValueError(f"unexpected key {key!r} in the aesthetic head weights")
            mine[f"linears.{int(parts[1]) // 2}.{parts[2]}"] = value
        self.load_state_dict(mine)


def tile_grid(images: Sequence[Any]) -> Any:
    """Four images as a 2x2 grid (first row 0, 1; second row 2, 3), each cell the size of image 0."""
    from PIL import Image

    if len(images) != 4:
        raise ValueError(f"a 2x2 grid needs 4 images, got {len(images)}")
    w, h = images[0].size
    grid = Image.new("RGB", (2 * w, 2 * h))
    for i, im in enumerate(images):
        cell = im.convert("RGB") if im.size == (w, h) else im.convert("RGB").resize((w, h))
        grid.paste(cell, ((i % 2) * w, (i // 2) * h))
    return grid


class AestheticScorer:
    """SigLIP vision tower + the head, loaded lazily once; ``score(pictures)`` -> values x 10, in batches."""

    def __init__(self, head: str | None, model: str = OFFICIAL_SIGLIP, device: str = "cuda:0", *,
                 batch_size: int = 16, dtype: str = "bfloat16"):
        from micon_tasks.errors import ConfigError

        if not head:
            raise ConfigError(
                "the AES metric needs the aesthetic predictor v2.5 head weights (aesthetic_predictor_v2_5.pth, "
                "AGPL-3.0, from discus0434/aesthetic-predictor-v2-5): pass aes_head=/path/to/aesthetic_predictor_v2_5.pth"
            )
        self.head_path, self.model_id, self.device = str(head), model, device
        self.batch_size = batch_size
        self.dtype = check_dtype_name(dtype, what="judge argument aes_dtype")
        self._tower: Any = None
        self._head: AestheticHead | None = None
        self._processor: Any = None

    @property
    def random(self) -> bool:
        return self.head_path == "micon-random"

    def load(self) -> None:
        if self._tower is not None:
            return
        from transformers import SiglipImageProcessor, SiglipVisionModel

        from micon_tasks.errors import ConfigError

        dtype = resolve_dtype(self.dtype, self.device, what="judge argument aes_dtype")
        self._processor = SiglipImageProcessor.from_pretrained(self.model_id)
        tower = SiglipVisionModel.from_pretrained(self.model_id, dtype=dtype)
        torch.manual_seed(0)
        head = AestheticHead(tower.config.hidden_size)
        if not self.random:
            try:
                head.load_predictor_state(torch.load(self.head_path, map_location="cpu", weights_only=True))
            except OSError as exc:
                raise ConfigError(f"aes_head {self.head_path!r}: cannot read ({exc.strerror or exc})") from None
        self._tower, self._head = tower.to(self.device).eval(), head.to(self.device, dtype).eval()

    def score(self, pictures: Sequence[Any]) -> list[float]:
        self.load()
        assert self._head is not None
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(pictures), self.batch_size):
                chunk = [p.convert("RGB") for p in pictures[i : i + self.batch_size]]
                px = self._processor(images=chunk, return_tensors="pt").pixel_values.to(self.device, self._head.linears[0].weight.dtype)
                pooled = self._tower(pixel_values=px).pooler_output
                out.extend((SCALE * self._head(pooled).float().cpu()).tolist())
        return out

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.model_id, "head": "micon-random (scores MEAN NOTHING)" if self.random
                else self.head_path.rsplit("/", 1)[-1], "dtype": self.dtype, "scale": SCALE}
