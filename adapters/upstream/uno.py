"""UNO (bytedance/UNO) through its own pipeline, imported from a checkout.

Why build the parts here: upstream's ``UNOPipeline.__init__`` finds every weight through environment
variables and Hub downloads. The adapter builds the same parts with the upstream classes (``Flux`` with
the UNO LoRA processors from ``set_lora``, the FLUX autoencoder, T5 and CLIP ``HFEmbedder``s) from
``pretrained`` (the UNO LoRA), ``flux`` (FLUX.1-dev), ``t5`` and ``clip``, then calls the pipeline's
own ``__call__`` with the references resized by upstream ``preprocess_ref``, as ``inference.py`` does.

DAR: UNO is FLUX-based; :class:`UNOLayout` tells :mod:`dar.routing` where the reference tokens sit
(after the image tokens). UNO is guidance-distilled: one transformer call per step, no unconditional branch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.upstream._common import UpstreamAdapter, UpstreamSpec, merge_settings, resolve_weights, upstream_imports
from dar.layouts import ModelLayout, Placement, Route, StepCounter, coord_grid, register_layout
from dar.maps import attach_maps
from micon_tasks.errors import ConfigError
from registry import register_adapter

__all__ = ["UNOAdapter", "UNOLayout", "SPEC"]

SPEC = UpstreamSpec(adapter="uno", env_var="MICON_UNO_CODE", repo="bytedance/UNO",
                    probe="uno/flux/pipeline.py", top_level=("uno",))


@register_adapter("uno")
class UNOAdapter(UpstreamAdapter):
    """UNO (FLUX.1-dev + the UNO LoRA); the demo takes up to 4 references.

    Also takes the common ``dtype`` (bfloat16 only), ``device``, ``height``, ``width``."""

    spec = SPEC
    max_refs = 4
    default_size = (512, 512)
    bfloat16_only = "the upstream sampler makes bfloat16 latents"

    def __init__(
        self,
        code_path: str | None = None,
        pretrained: str = "bytedance-research/UNO",
        flux: str = "black-forest-labs/FLUX.1-dev",
        t5: str = "xlabs-ai/xflux_text_encoders",
        clip: str = "openai/clip-vit-large-patch14",
        model_type: str = "flux-dev",
        lora_rank: int = 512,
        steps: int = 25,
        guidance: float = 4.0,
        ref_size: int = -1,
        pe: str = "d",
        seed: int = 3407,
        flux_params: dict | None = None,
        ae_params: dict | None = None,
        **common: Any,
    ):
        super().__init__(code_path, pretrained=pretrained, steps=steps, seed=seed, **common)
        if pe not in ("d", "h", "w", "o"):
            raise ConfigError(f"adapter 'uno': pe must be one of d, h, w, o, not {pe!r}")
        self.flux, self.t5, self.clip = flux, t5, clip
        self.model_type, self.lora_rank = model_type, int(lora_rank)
        self.guidance, self.ref_size, self.pe = float(guidance), int(ref_size), pe
        self.flux_params, self.ae_params = dict(flux_params or {}), dict(ae_params or {})

    def _load(self) -> Any:
        import torch
        from safetensors.torch import load_file

        lora_dir = resolve_weights(self.pretrained, adapter=SPEC.adapter, allow_patterns=["dit_lora.safetensors"])
        flux_file = "flux1-schnell.safetensors" if self.model_type == "flux-schnell" else "flux1-dev.safetensors"
        flux_dir = resolve_weights(self.flux, adapter=SPEC.adapter, allow_patterns=[flux_file, "ae.safetensors"])
        t5_dir = resolve_weights(self.t5, adapter=SPEC.adapter)
        clip_dir = resolve_weights(self.clip, adapter=SPEC.adapter)
        with upstream_imports(SPEC, self.code_path):
            from uno.flux.model import Flux
            from uno.flux.modules.autoencoder import AutoEncoder
            from uno.flux.modules.conditioner import HFEmbedder
            from uno.flux.pipeline import UNOPipeline
            from uno.flux.util import configs, set_lora

            if self.model_type not in configs:
                raise ConfigError(f"adapter 'uno': model_type must be one of {sorted(configs)}, "
                                  f"not {self.model_type!r}")
            spec = configs[self.model_type]
            params = dataclasses.replace(spec.params, **self.flux_params)
            ae_params = dataclasses.replace(spec.ae_params, **self.ae_params)
            with torch.device("meta"):
                model = set_lora(Flux(params), self.lora_rank, device="meta")
                ae = AutoEncoder(ae_params)
            state = load_file(str(flux_dir / flux_file))
            state.update(load_file(str(lora_dir / "dit_lora.safetensors")))
            _load_strict(model, state, "flux + dit_lora")
            _load_strict(ae, load_file(str(flux_dir / "ae.safetensors")), "ae")
            pipe = UNOPipeline.__new__(UNOPipeline)  # its __init__ downloads; the parts are set below
            pipe.device, pipe.offload, pipe.model_type, pipe.use_fp8 = torch.device(self.device), False, \
                self.model_type, False
            pipe.model = model.to(self.device, torch.bfloat16).eval()
            pipe.ae = ae.to(self.device, torch.float32).eval()
            pipe.t5 = HFEmbedder(str(t5_dir), max_length=512, torch_dtype=torch.bfloat16).to(self.device)
            pipe.clip = _clip_embedder(HFEmbedder, clip_dir).to(self.device)
        return pipe

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        pipe = self.model
        with upstream_imports(SPEC, self.code_path):
            from uno.flux.pipeline import preprocess_ref
        settings = {"width": self.width, "height": self.height, "guidance": self.guidance,
                    "num_steps": self.steps, "pe": self.pe, "ref_size": self.ref_size}
        settings = merge_settings(SPEC.adapter, settings, gen_kwargs)
        ref_size = settings.pop("ref_size")
        if ref_size == -1:  # upstream inference.py: 512 for one reference, 320 for several
            ref_size = 512 if len(refs) == 1 else 320
        ref_imgs = [preprocess_ref(img, ref_size) for img in refs]
        seed = self.seeded(seed)
        hook = self.dar_hook(pipe.model, dar, num_steps=settings["num_steps"])
        with hook:
            return attach_maps(pipe(prompt=prompt, seed=seed, ref_imgs=ref_imgs, **settings), hook)

    def model_info(self) -> dict[str, Any]:
        return {**super().model_info(), "flux": self.flux, "t5": self.t5, "clip": self.clip,
                "model_type": self.model_type, "guidance": self.guidance, "ref_size": self.ref_size, "pe": self.pe}


def _load_strict(module: Any, state: dict, what: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    if missing:
        raise ConfigError(f"adapter 'uno': the {what} weights lack {len(missing)} parameters, e.g. {missing[:3]}")
    if unexpected:
        raise ConfigError(f"adapter 'uno': the {what} weights have {len(unexpected)} unknown parameters, "
                          f"e.g. {unexpected[:3]}")


def _clip_embedder(cls: Any, path: Any) -> Any:
    """Upstream HFEmbedder tells CLIP from T5 by "clip" in the path; a local CLIP folder may lack it."""
    import torch

    if "clip" in str(path).lower():
        return cls(str(path), max_length=77, torch_dtype=torch.bfloat16)
    raise ConfigError(f"adapter 'uno': the CLIP folder {str(path)!r} must have 'clip' in its path (upstream "
                      f"HFEmbedder picks the CLIP classes by that)")


@register_layout("uno.flux.model.Flux")
class UNOLayout(ModelLayout):
    """FLUX double and single blocks attend over ``[text | image | ref 1 | ... | ref n]``. Upstream's
    ``attention(q, k, v, pe)`` rotates q and k with ``apply_rope`` and then runs SDPA; the route wraps that
    ``apply_rope`` (its only caller), so DAR analyses the rotated q and k that attention then uses and scales
    the rotated keys: RoPE runs once per call, as without DAR, whether DAR analyses, reuses or skips the call.
    Layers count double blocks first. One call per step."""

    strict = True

    def __init__(self, model: Any, config: Any, *, num_steps: int, scheduler: Any = None):
        super().__init__(model, config, scheduler=scheduler)
        self.num_steps, self.steps = num_steps, StepCounter()

    def get_routes(self) -> tuple:
        from dar.routing import key_weights

        def router(original):
            def apply_rope(xq, xk, freqs_cis):
                xq, xk = original(xq, xk, freqs_cis)
                w = key_weights(xq, xk)
                return (xq, xk) if w is None else (xq, xk * w.to(xk.dtype)[:, None, :, None])

            return apply_rope

        return (Route("uno.flux.math", "apply_rope", router),)

    def attention_modules(self) -> list:
        return [*self.model.double_blocks, *self.model.single_blocks]

    def locate(self, call: dict) -> Placement:
        import torch

        txt, img, refs, ref_pos = call["txt"], call["img"], call.get("ref_img"), call.get("ref_img_ids")
        step, _ = self.steps.see(float(call["timesteps"].flatten()[0]))
        refs = [] if refs is None else list(refs) if isinstance(refs, (list, tuple)) else [refs]
        ref_pos = [] if ref_pos is None else list(ref_pos) if isinstance(ref_pos, (list, tuple)) else [ref_pos]
        rows, start = txt.shape[0], txt.shape[1] + img.shape[1]
        ref_ids = torch.full((rows, start + sum(r.shape[1] for r in refs)), -1, dtype=torch.long)
        grids = {}
        for j, ref in enumerate(refs):
            ref_ids[:, start:start + ref.shape[1]] = j
            start += ref.shape[1]
            if j < len(ref_pos) and (grid := coord_grid(ref_pos[j][0, :, 1], ref_pos[j][0, :, 2])) is not None:
                grids[j] = grid
        query_mask = torch.zeros_like(ref_ids, dtype=torch.bool)
        query_mask[:, txt.shape[1]:txt.shape[1] + img.shape[1]] = True
        return Placement(ref_ids >= 0, query_mask, ref_ids, step=step / self.num_steps, step_index=step, grids=grids)
