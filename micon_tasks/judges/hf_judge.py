"""``hf`` judge: an in-process transformers vision-language model (Qwen3-VL, Qwen2.5-VL, InternVL, ...).

Two modes. ``generate`` (default) writes the JSON reply like a served judge and goes through the
same parser. ``logits`` asks one checkpoint per prompt and compares the model's probabilities of the
continuations ``{"pass": 0`` and ``{"pass": 1`` (and of ``{"score": k,`` for k = 0..10 on the story
answer set) instead of generating: it always yields a verdict, which makes it useful to exercise the
whole pipeline with a tiny random model, but such verdicts carry no meaning.

Greedy decoding (``temperature=0``) and logits mode run batched. Sampling (``temperature > 0``)
runs one prompt at a time, each from torch's generator reseeded with that prompt's own seed
(``base.SEED_RULE``: judge seed, task, case id, prompt name) inside ``torch.random.fork_rng``: a
case's reply then does not depend on its batch mates (padding, RNG draws), hence not on the
sharding or ``batch_size``, and the caller's global RNG state is left as it was.
"""

from __future__ import annotations

import io
import math
from typing import Any

from micon_tasks.devices import check_dtype_name, resolve_device, resolve_dtype
from micon_tasks.errors import ConfigError
from micon_tasks.judges.base import SEED_RULE, Completion, Judge, JudgeUnreachableError
from micon_tasks.judges.images import ImageSpec, encode, fit
from micon_tasks.judges.prompts import Prompt
from micon_tasks.secrets import scrub_and_truncate
from micon_tasks.weights import weights_problem
from registry import register_judge

__all__ = ["HFJudge"]


@register_judge("hf", aliases=("transformers",))
class HFJudge(Judge):
    """Judge with ``AutoModelForImageTextToText`` + ``AutoProcessor`` loaded from ``pretrained``."""

    backend = "hf"
    default_image_format = "png"  # how images travel unless image_format says otherwise

    def __init__(
        self,
        pretrained: str,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 4,
        max_new_tokens: int = 800,
        temperature: float = 0.0,
        mode: str = "generate",
        seed: int = 0,
        trust_remote_code: bool = False,
        **common: Any,
    ):
        super().__init__(**common)  # request_mode, cache_path, template_version, reask, max_image_pixels, image_format
        if mode not in ("generate", "logits"):
            raise ConfigError(f"judge 'hf': mode must be 'generate' or 'logits', got {mode!r}")
        check_dtype_name(dtype, what="judge 'hf' dtype")
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("judge 'hf': batch_size and max_new_tokens must be >= 1")
        self.pretrained = str(pretrained)
        self.dtype = dtype
        self.device = device
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.mode = mode
        self.logits = mode == "logits"
        self.seed = int(seed)
        self.trust_remote_code = bool(trust_remote_code)
        self._model: Any = None
        self._processor: Any = None
        self._load_error: str | None = None  # a failed load is not retried for every batch

    def _describe(self) -> dict[str, Any]:
        decoding: dict[str, Any] = {"mode": self.mode}
        if self.mode == "generate":
            decoding.update(max_new_tokens=self.max_new_tokens, temperature=self.temperature)
            if self.temperature > 0:
                decoding["seed"] = self.seed
                decoding["seed_rule"] = SEED_RULE
        return {
            "backend": self.backend,
            "model": self.pretrained,
            "endpoint_host": None,
            "decoding": decoding,
            "dtype": self.dtype,
        }

    # -- start-up -------------------------------------------------------------------------------
    def preflight(self) -> None:
        """The code imports and the weights are cached or reachable; one line if not (nothing is loaded)."""
        import importlib.util

        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                raise JudgeUnreachableError(f"judge 'hf' needs {module}: pip install 'micon-bench[hf]'")
        from micon_tasks.judges.tiny import TINY_JUDGE_NAME

        if self.pretrained == TINY_JUDGE_NAME:
            return  # built locally on first use
        problem = weights_problem(self.pretrained, "config.json")
        if problem:
            raise JudgeUnreachableError(f"judge 'hf' cannot get pretrained={self.pretrained}: {problem}")

    def load(self) -> None:
        """Load the weights once, when the judge stage starts; a failure stops the run in one line."""
        self._ensure_loaded()
        if self._load_error:
            raise JudgeUnreachableError(self._load_error)

    def _ensure_loaded(self) -> None:
        if self._model is not None or self._load_error:
            return
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 - one line, kept for every later batch
            text = scrub_and_truncate(" ".join(str(exc).split()), 300)  # an error raised, not only stored
            self._load_error = f"cannot load judge model {self.pretrained!r}: {type(exc).__name__}: {text}"

    def _prepare_image(self, image: Any, spec: ImageSpec) -> Any:
        """The image the model sees: fitted to max_image_pixels; with image_format=jpeg, the pixels a served
        judge would decode (a JPEG round trip), so both backends see the same thing."""
        fitted = fit(image, spec)
        if spec.fmt != "jpeg":
            return fitted
        from PIL import Image

        with Image.open(io.BytesIO(encode(fitted, spec))) as im:
            return im.convert("RGB")

    def _images(self, p: Prompt) -> list[Any]:
        return [f.result() for f in self.prepared_images(p)]

    def _temperature(self, p: Prompt) -> float | None:
        return p.options.get("temperature", self.temperature) if p.options else self.temperature

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device, what="judge 'hf' dtype")
        from micon_tasks.judges.tiny import resolve_pretrained

        source = resolve_pretrained(self.pretrained)  # "micon-tiny-random": the offline demo judge
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=self.trust_remote_code)
        if getattr(processor, "chat_template", None) is None:
            raise ConfigError(f"judge 'hf': the processor at {self.pretrained!r} has no chat template")
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # generated / scored tokens then end every row at the same column
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, trust_remote_code=self.trust_remote_code
        )
        model.to(device).eval()
        self._model, self._processor, self._device = model, processor, device

    def _chat_text(self, p: Prompt) -> str:
        content: list[dict[str, Any]] = [{"type": "text", "text": p.text}]
        for label, _ in p.images:
            content.append({"type": "text", "text": f"{label}:"})
            content.append({"type": "image"})
        messages = [{"role": "user", "content": content}]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _inputs(self, texts: list[str], images: list[list[Any]]) -> Any:
        rgb = [[im if im.mode == "RGB" else im.convert("RGB") for im in row] for row in images]
        return self._processor(text=texts, images=rgb, padding=True, return_tensors="pt").to(self._device)

    # -- completion -----------------------------------------------------------------------------
    def _complete(self, prompts: list[Prompt]) -> list[Completion]:
        self._ensure_loaded()
        if self._load_error:
            return [Completion(error=self._load_error) for _ in prompts]
        self.reserve_images(prompts)  # prepared once for this call, dropped at its end
        try:
            return self._score_candidates(prompts) if self.logits else self._generate_all(prompts)
        finally:
            for p in prompts:
                self.release_images(p)

    def _generate_all(self, prompts: list[Prompt]) -> list[Completion]:
        out: dict[int, Completion] = {}
        greedy: list[int] = []
        sampled: list[int] = []
        for i, p in enumerate(prompts):
            (greedy if self._temperature(p) == 0 else sampled).append(i)
        for i in sampled:
            # Sampling: one prompt per call, from its own seed, so its reply cannot depend on batch mates.
            p = prompts[i]
            try:
                (out[i],) = self._generate([p], seed=self.seed if p.seed is None else p.seed)
            except Exception as exc:  # noqa: BLE001
                out[i] = Completion(error=f"generation failed: {type(exc).__name__}: {exc}")
        for start in range(0, len(greedy), self.batch_size):
            chunk = greedy[start : start + self.batch_size]
            try:
                out.update(zip(chunk, self._generate([prompts[i] for i in chunk])))
            except Exception:  # noqa: BLE001 - retry one by one so one bad prompt marks only itself
                for i in chunk:
                    try:
                        (out[i],) = self._generate([prompts[i]])
                    except Exception as exc:  # noqa: BLE001
                        out[i] = Completion(error=f"generation failed: {type(exc).__name__}: {exc}")
        return [out[i] for i in range(len(prompts))]

    def _rng_devices(self) -> list[int]:
        """CUDA devices whose RNG state a seeded generation touches (restored afterwards by fork_rng)."""
        import torch

        if not str(self._device).startswith("cuda") or not torch.cuda.is_available():
            return []
        return list(range(torch.cuda.device_count()))

    def _generate(self, prompts: list[Prompt], seed: int | None = None) -> list[Completion]:
        """Generate replies; ``seed`` (sampling only, one prompt) seeds the sampling of this call alone."""
        import torch

        temperature = self._temperature(prompts[0])
        sample = temperature is None or temperature > 0  # None: the model's own generation config decides
        if sample and (len(prompts) != 1 or seed is None):
            raise ValueError("sampling generates one prompt at a time, from that prompt's seed")
        inputs = self._inputs([self._chat_text(p) for p in prompts], [self._images(p) for p in prompts])
        max_new = int((prompts[0].options or {}).get("max_tokens", self.max_new_tokens))
        kwargs: dict[str, Any] = {"max_new_tokens": max_new}
        if temperature is not None:
            kwargs["do_sample"] = sample
            if sample:
                kwargs["temperature"] = temperature
        tok = getattr(self._processor, "tokenizer", self._processor)
        if tok.pad_token_id is not None:
            kwargs["pad_token_id"] = tok.pad_token_id
        with torch.inference_mode():
            if sample:
                # transformers samples from torch's global generator: fork it, seed it for this
                # prompt, and give the caller's state back untouched.
                with torch.random.fork_rng(devices=self._rng_devices()):
                    torch.manual_seed(int(seed))  # type: ignore[arg-type]
                    out = self._model.generate(**inputs, **kwargs)
            else:
                out = self._model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        texts = self._processor.batch_decode(new, skip_special_tokens=True)
        done = []
        for row, text in zip(new, texts):
            ended = tok.eos_token_id is not None and int(row[-1]) == tok.eos_token_id
            hit_limit = row.shape[0] >= max_new and not ended
            done.append(Completion(text=text, note="hit max_new_tokens" if hit_limit else None))
        return done

    def _tail_ids(self, base: str, candidates: list[str]) -> list[list[int]]:
        """Token ids each candidate adds after ``base`` (checked to extend the base's tokens)."""
        tok = getattr(self._processor, "tokenizer", self._processor)
        a = tok(base, add_special_tokens=False)["input_ids"]  # once per prompt, not once per candidate
        return [self._tail(tok, a, base, c) for c in candidates]

    @staticmethod
    def _tail(tok: Any, a: list[int], base: str, candidate: str) -> list[int]:
        b = tok(base + candidate, add_special_tokens=False)["input_ids"]
        if b[: len(a)] != a or len(b) == len(a):
            raise ValueError(f"candidate {candidate!r} does not tokenize as a clean continuation of the prompt")
        return list(b[len(a) :])

    def _score_candidates(self, prompts: list[Prompt]) -> list[Completion]:
        """Log-probability of every candidate continuation; one forward pass per prompt when all are single tokens."""
        import torch

        # A unit is one forward pass: (text, images, prompt index, [(candidate index, target ids)], teacher_forced)
        units: list[tuple[str, list[Any], int, list[tuple[int, list[int]]], bool]] = []
        logprobs: list[list[float]] = [[math.nan] * len(p.candidates) for p in prompts]
        errors: dict[int, str] = {}
        for pi, p in enumerate(prompts):
            try:
                base = self._chat_text(p) + p.prefix
                ids = self._tail_ids(base, p.candidates)
            except Exception as exc:  # noqa: BLE001
                errors[pi] = f"cannot build the scoring prompt: {type(exc).__name__}: {exc}"
                continue
            imgs = self._images(p)
            if all(len(t) == 1 for t in ids):
                units.append((base, imgs, pi, list(enumerate(ids)), False))
            else:
                units.extend((base + c, imgs, pi, [(ci, ids[ci])], True) for ci, c in enumerate(p.candidates))
        for start in range(0, len(units), self.batch_size):
            chunk = units[start : start + self.batch_size]
            try:
                inputs = self._inputs([u[0] for u in chunk], [u[1] for u in chunk])
                keep = max(len(t) for u in chunk for _, t in u[3]) + 1
                with torch.inference_mode():
                    logits = self._model(**inputs, logits_to_keep=keep).logits
                lp = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
                for b, (_, _, pi, targets, forced) in enumerate(chunk):
                    for ci, t in targets:
                        if forced:  # the candidate's tokens are the last len(t) inputs
                            pos = range(keep - 1 - len(t), keep - 1)
                            logprobs[pi][ci] = float(sum(lp[b, q, tid] for q, tid in zip(pos, t)))
                        else:  # next-token distribution after the prompt
                            logprobs[pi][ci] = float(lp[b, keep - 1, t[0]])
            except Exception as exc:  # noqa: BLE001
                for u in chunk:
                    errors.setdefault(u[2], f"scoring failed: {type(exc).__name__}: {exc}")
        return [
            Completion(error=errors[pi]) if pi in errors else Completion(logprobs=logprobs[pi])
            for pi in range(len(prompts))
        ]
