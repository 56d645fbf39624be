"""DAR layouts of the diffusers transformers: OmniGen, QwenImage(Edit Plus), FLUX.2 (klein), FLUX.1 (Kontext).

Each layout reads the transformer call's keyword arguments and says where the reference and
generated-image tokens sit in the joint attention sequence (TINY_MODELS.md 2.3), and which module-level
name the attention goes through: ``dispatch_attention_fn`` (Flux, Flux2, QwenImage) or ``F`` (OmniGen
calls ``F.scaled_dot_product_attention`` directly). The wrapping, scoping and counting are
:mod:`dar.routing`'s; attention processors are never replaced, so user processors survive.

Layer index = position of the attention module in ``transformer.modules()`` order. Step = the pipeline
scheduler's ``step_index / len(timesteps)`` (or ``dar.denoising_step`` for a bare transformer).
"""

from __future__ import annotations

import torch

from .layouts import ModelLayout, Placement, Route, coord_grid, register_layout
from .routing import dispatch_router, functional_router

__all__ = ["DiffusersLayout"]


def _scheduler_step(scheduler) -> tuple[float | None, int | None, tuple]:
    """(fraction i/N of the schedule, step index, a key identifying the step) from a diffusers scheduler."""
    timesteps = getattr(scheduler, "timesteps", None)
    if scheduler is None or timesteps is None or len(timesteps) == 0:
        return None, None, (None,)
    index = getattr(scheduler, "step_index", None)
    index = 0 if index is None else int(index)
    return index / len(timesteps), index, (id(timesteps), index)


class DiffusersLayout(ModelLayout):
    """Shared by the diffusers families: scheduler steps and classifier-free-guidance branches.

    ``batched_cfg``: the branches are rows of one forward (OmniGen: ``[cond | negative text | image CFG]``,
    the conditional rows being those before the first row without references); otherwise one forward per
    branch, conditional first, so the first forward of a denoising step is the conditional one. A bare
    transformer (no scheduler) treats every forward as conditional."""

    batched_cfg = False
    attribute = "dispatch_attention_fn"

    def __init__(self, model, config, *, scheduler=None, **options):
        super().__init__(model, config, scheduler=scheduler, **options)
        self.last_step_key, self.calls_in_step = None, 0

    def get_routes(self) -> tuple[Route, ...]:
        router = functional_router if self.attribute == "F" else dispatch_router
        return (Route(type(self.model).__module__, self.attribute, router),)

    def attention_modules(self) -> list[torch.nn.Module]:
        return [m for m in self.model.modules() if hasattr(m, "processor") and hasattr(m, "set_processor")]

    def tokens(self, call: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """(ref_mask, query_mask, ref_ids, grids of the conditional row's references) of one forward."""
        raise NotImplementedError

    def locate(self, call: dict) -> Placement:
        ref, query, ids, grids = self.tokens(call)
        fraction, index, step_key = _scheduler_step(self.scheduler)
        batch = ref.shape[0]
        if self.batched_cfg:
            no_ref = (~ref.any(dim=1)).nonzero()
            first = int(no_ref[0]) if len(no_ref) else batch
            cond_rows, branch, map_row = torch.arange(batch) < first, 0, 0
        else:
            if step_key != self.last_step_key or step_key == (None,):
                self.last_step_key, self.calls_in_step = step_key, 0
            self.calls_in_step += 1
            branch = self.calls_in_step - 1
            cond_rows = torch.full((batch,), branch == 0)
            map_row = 0 if branch == 0 else None
        return Placement(ref, query, ids, step=fraction, step_index=index, branch=branch, grids=grids,
                         map_row=map_row, cond_rows=cond_rows)


@register_layout("OmniGenTransformer2DModel")
class OmniGenLayout(DiffusersLayout):
    """[condition tokens (refs written over their placeholders) | time token | output latents]."""

    batched_cfg, attribute = True, "F"

    def tokens(self, call):
        latents, input_ids = call["hidden_states"], call["input_ids"]
        batch, patch = latents.shape[0], self.model.config.patch_size
        n_out = (latents.shape[-2] // patch) * (latents.shape[-1] // patch)
        length = (input_ids.shape[1] + 1 if input_ids is not None else 1) + n_out
        ref = torch.zeros(batch, length, dtype=torch.bool)
        ids = torch.full((batch, length), -1, dtype=torch.long)
        grids, index = {}, 0
        images = call.get("input_img_latents") or []
        for row, spans in (call.get("input_image_sizes") or {}).items():
            for k, (start, end) in enumerate(spans):
                ref[row, start:end] = True
                ids[row, start:end] = k
                if row == 0 and index < len(images):
                    grids[k] = (images[index].shape[-2] // patch, images[index].shape[-1] // patch)
                index += 1
        query = torch.zeros(batch, length, dtype=torch.bool)
        query[:, length - n_out:] = True
        return ref, query, ids, grids


@register_layout("QwenImageTransformer2DModel")
class QwenImageLayout(DiffusersLayout):
    """[text | output latents | ref 1 latents | ref 2 ...], sizes from ``img_shapes``."""

    def tokens(self, call):
        latents, text = call["hidden_states"], call["encoder_hidden_states"]
        batch, n_text = latents.shape[0], text.shape[1]
        length = n_text + latents.shape[1]
        shapes = call.get("img_shapes") or []
        ref = torch.zeros(batch, length, dtype=torch.bool)
        query = torch.zeros(batch, length, dtype=torch.bool)
        ids = torch.full((batch, length), -1, dtype=torch.long)
        grids = {}
        for row in range(batch):
            row_shapes = shapes[row] if row < len(shapes) else shapes[-1]
            if row_shapes and isinstance(row_shapes[0], int):  # a single (f, h, w): no references
                row_shapes = [row_shapes]
            offset = n_text
            for k, (frames, height, width) in enumerate(row_shapes):
                n = frames * height * width
                if k == 0:
                    query[row, offset:offset + n] = True
                else:
                    ref[row, offset:offset + n] = True
                    ids[row, offset:offset + n] = k - 1
                    if row == 0:
                        grids[k - 1] = (frames * height, width)
                offset += n
        return ref, query, ids, grids


@register_layout("Flux2Transformer2DModel", "FluxTransformer2DModel")
class FluxLayout(DiffusersLayout):
    """[text | output latents | ref latents]; ``img_ids[..., 0]`` is 0 for output tokens and a per-reference
    time/index coordinate for reference tokens (Kontext: 1; FLUX.2: 10, 20, ...); the next two coordinates
    are the token's row and column."""

    def tokens(self, call):
        latents, text, img_ids = call["hidden_states"], call["encoder_hidden_states"], call["img_ids"]
        batch, n_text = latents.shape[0], text.shape[1]
        coords = (img_ids if img_ids.dim() == 3 else img_ids.unsqueeze(0)).cpu()
        coord = coords[..., 0].expand(batch, -1)
        is_ref = coord != 0
        pad = torch.zeros(batch, n_text, dtype=torch.bool)
        ref = torch.cat([pad, is_ref], dim=1)
        query = torch.cat([pad, ~is_ref], dim=1)
        ids = torch.cat([torch.full((batch, n_text), -1, dtype=torch.long), coord.round().long()], dim=1)
        grids = {}
        for value in torch.unique(coords[0, :, 0][coords[0, :, 0] != 0]).tolist():
            tokens = coords[0, coords[0, :, 0] == value]
            shape = coord_grid(tokens[:, 1], tokens[:, 2])
            if shape is not None:
                grids[round(value)] = shape
        return ref, query, ids, grids
