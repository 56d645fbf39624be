"""DAR attention maps: where in each reference image the generated image looked, per case.

Why: the paper's diagnosis is that models attend to irrelevant reference regions. With
``DARConfig(record_maps=True)`` the routing core (:mod:`dar.routing`) hands every rebalanced call's
normalised scores r^ and weights w to a :class:`MapRecorder`, which averages them per reference token over
layers and steps (the conditional branch only) and lays them on the reference's token grid. With gamma 0
this diagnoses a model without changing its output. :func:`save_maps` writes one ``<role>.npz`` (float16
r_hat and w, the grid, layers and steps counted) and one ``<role>.png`` (the r^ heat map over the
reference) per reference, and returns the case record's ``dar_maps`` entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MapRecorder", "attach_maps", "save_maps", "split_columns"]


class MapRecorder:
    """Running sums of r^ and w per reference token (on the model's device; read back once, at the end)."""

    def __init__(self) -> None:
        self.sums: dict[int, dict[str, Any]] = {}
        self.unavailable: str | None = None

    @staticmethod
    def _positions(place, device) -> dict:
        """Reference id -> its token positions in the key sequence, computed once per forward (on the placement)."""
        cached = place.__dict__.get("_map_positions")
        if cached is None:
            ids = place.map_ids if place.map_ids is not None else place.ref_ids
            row = ids[place.map_row].cpu()
            cached = place.__dict__["_map_positions"] = {k: (row == k).nonzero().flatten().to(device)
                                                         for k in place.grids}
        return cached

    def add(self, state, layer: int | None, w, r_hat) -> None:
        place = state.placement
        if place is None or place.map_row is None:
            return
        if not place.grids or (place.ref_ids is None and place.map_ids is None):
            self.unavailable = place.maps_unavailable or "the model's layout gives no token grid for its references"
            return
        import torch

        for k, positions in self._positions(place, w.device).items():
            grid = place.grids[k]
            if positions.numel() != grid[0] * grid[1]:
                self.unavailable = f"reference {k}: {positions.numel()} tokens do not fill its {grid} grid"
                continue
            r = r_hat[place.map_row].index_select(0, positions)
            entry = self.sums.get(k)
            if entry is None or entry["grid"] != grid:
                entry = self.sums[k] = {"grid": grid, "r": torch.zeros_like(r), "r_n": torch.zeros_like(r),
                                        "w": torch.zeros_like(r), "calls": 0, "layers": set(), "steps": set()}
            entry["r"] += torch.nan_to_num(r, nan=0.0)
            entry["r_n"] += (~r.isnan()).float()
            entry["w"] += w[place.map_row].index_select(0, positions).float()
            entry["calls"] += 1
            entry["layers"].add(layer)
            entry["steps"].add(place.step_index if place.step_index is not None else state.step)

    def result(self) -> list[dict[str, Any]] | dict[str, str]:
        """One entry per reference in order: ``{"r_hat", "w"}`` float32 arrays of the grid's shape, ``grid``,
        ``layers``, ``steps``, ``calls``; or ``{"unavailable": why}`` for the whole case. r_hat is NaN at
        tokens whose scores were never defined (every call had max == min)."""
        if not self.sums:
            return {"unavailable": self.unavailable or "no attention call with references was recorded"}
        out = []
        for k in sorted(self.sums):
            e = self.sums[k]
            n = e["r_n"].clamp(min=1.0)
            r = (e["r"] / n).where(e["r_n"] > 0, float("nan"))
            shape = e["grid"]
            out.append({"r_hat": r.reshape(shape).cpu().float().numpy(),
                        "w": (e["w"] / e["calls"]).reshape(shape).cpu().float().numpy(),
                        "grid": list(shape), "layers": len(e["layers"]), "steps": len(e["steps"]),
                        "calls": e["calls"]})
        return out


def attach_maps(image: Any, handle: Any) -> Any:
    """Put the maps a ``dar.enable`` handle recorded on the generated image (``image.info["dar_maps"]``),
    where the runner finds them (as it finds ``dar_stats``); returns the image."""
    maps = getattr(handle, "maps", None)
    if maps is not None and image is not None and hasattr(image, "info"):
        image.info["dar_maps"] = maps.result()
    return image


def split_columns(maps: list[dict] | dict, widths: list[int]) -> list[dict] | dict:
    """One map of references stitched left to right (FLUX.1 Kontext's canvas) -> one map per panel, the grid's
    columns shared out in proportion to the panels' pixel ``widths``."""
    if isinstance(maps, dict) or len(maps) != 1:
        return maps
    whole = maps[0]
    cols, total, out, start = whole["grid"][1], sum(widths), [], 0
    for i in range(len(widths)):
        end = cols if i == len(widths) - 1 else round(cols * sum(widths[:i + 1]) / total)
        part = {**whole, "r_hat": whole["r_hat"][:, start:end], "w": whole["w"][:, start:end],
                "grid": [whole["grid"][0], end - start]}
        out.append(part)
        start = end
    return out


def _heat(values, size: tuple[int, int]):
    """An RGBA heat layer (blue low, red high) for a 2-D array in [0, 1] (NaN transparent), resized to ``size``."""
    import numpy as np
    from PIL import Image

    v = np.nan_to_num(values.astype("float32"), nan=-1.0)
    alpha = np.where(v < 0, 0, 150).astype("uint8")
    v = np.clip(v, 0.0, 1.0)
    rgb = np.stack([255 * v, 255 * (1 - np.abs(2 * v - 1)), 255 * (1 - v)], axis=-1).astype("uint8")
    layer = Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=-1), "RGBA")
    return layer.resize(size, Image.Resampling.NEAREST)


def save_maps(maps: list[dict] | dict, folder: str | Path, refs: list, roles: list[str], *,
              root: str | Path | None = None) -> dict[str, Any]:
    """Write ``<role>.npz`` and ``<role>.png`` per reference into ``folder`` (``maps/<task>/<case_id>`` of a
    run) and return the record entry ``{role: {"npz", "png", "grid"}}`` (paths relative to ``root``,
    default the run folder three levels above ``folder``), or ``{"unavailable": why}``."""
    import numpy as np
    from PIL import Image

    if isinstance(maps, dict):
        return {"unavailable": str(maps.get("unavailable", "no maps recorded"))}
    if len(maps) != len(roles):
        return {"unavailable": f"{len(maps)} maps recorded for {len(roles)} references ({', '.join(roles)})"}
    folder = Path(folder)
    root = Path(root) if root is not None else folder.parent.parent.parent
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {}
    for m, ref, role in zip(maps, refs, roles):
        npz, png = folder / f"{role}.npz", folder / f"{role}.png"
        np.savez_compressed(npz, r_hat=m["r_hat"].astype(np.float16), w=m["w"].astype(np.float16),
                            grid=np.asarray(m["grid"]), layers=m["layers"], steps=m["steps"])
        base = ref.convert("RGBA")
        Image.alpha_composite(base, _heat(m["r_hat"], base.size)).convert("RGB").save(png)
        entry[role] = {"npz": npz.relative_to(root).as_posix(), "png": png.relative_to(root).as_posix(),
                       "grid": list(m["grid"])}
    return entry
