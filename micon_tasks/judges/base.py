"""The Judge base class: one shared path from requests to JudgeResults, for every backend.

A backend only turns prompts into completions (``_complete``). Rendering, the cache, parsing, error
results and provenance live here once, so every backend fails the same visible way: a request that
cannot be judged gives ``error`` verdicts carrying the reason, never an exception for the batch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import micon_tasks
from micon_tasks.checkpoints import checkpoint_identity
from micon_tasks.errors import ConfigError, MiconError
from micon_tasks.hashing import sha256_bytes
from micon_tasks.judges.cache import VerdictCache, cache_key, image_digest
from micon_tasks.judges.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImagePrep,
    ImageSpec,
    check_format,
    encode,
    prompt_specs,
)
from micon_tasks.judges.kinds import request_kind
from micon_tasks.judges.parser import PARSER_VERSION
from micon_tasks.judges.prompts import Prompt, template_provenance
from micon_tasks.judges.reask import DEFAULT_REASK, attempt_record, n_errors, reask_prompts
from micon_tasks.judges.safe_text import clean_completion, safe_result
from micon_tasks.judges.seeds import SEED_RULE, request_seed
from micon_tasks.types import Case, Checkpoint, JudgeResult, Verdict

__all__ = ["JudgeRequest", "Completion", "Judge", "error_result", "endpoint_host", "request_seed", "SEED_RULE",
           "JudgeUnreachableError", "DEFAULT_REASK"]


class JudgeUnreachableError(MiconError):
    """The judge cannot work at all (server not answering, weights not resolvable); nothing was judged."""


@dataclass
class JudgeRequest:
    """One case to judge: its generated image(s) and what its task's scoring kind asks about it.

    ``kind`` is the task card's ``scoring.kind`` and ``scoring`` its ScoringConfig; ``checkpoints`` and
    ``story`` serve the checkpoint kind. ``images`` holds every generated image of the case when the task
    asks for several (``image`` is the first).
    """

    task: str
    case: Case
    image: Any  # PIL.Image.Image
    checkpoints: list[Checkpoint] = field(default_factory=list)
    story: bool = False
    kind: str = "checkpoints"
    scoring: Any = None
    images: list[Any] | None = None


@dataclass
class Completion:
    """A backend's answer to one prompt: reply text, or an error saying why there is none."""

    text: str | None = None
    error: str | None = None
    note: str | None = None  # e.g. "finish_reason=length": appended to parse errors
    attempts: int = 1
    logprobs: list[float] | None = None  # logits mode: one log-probability per candidate


def endpoint_host(url: str | None) -> str | None:
    """Host[:port] of an endpoint, with any user:password part removed."""
    if not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def error_result(request: JudgeRequest, message: str, provenance: dict[str, Any] | None = None,
                 names: list[str] | None = None) -> JudgeResult:
    """Every checkpoint (or the parts ``names``, for other kinds) ``error`` with the same message, and the
    answer set too for the story task."""
    names = [cp.id for cp in request.checkpoints] if names is None else names
    return JudgeResult(
        verdicts=[Verdict(name, "error", error=message) for name in names],
        answer_set_score=None,
        answer_set_status="error" if request.story else None,
        raw=None,
        provenance={**(provenance or {}), "cached": False},
    )


def _pick_candidate(prompt: Prompt, completion: Completion) -> Completion:
    """Logits mode: turn candidate log-probabilities into a reply text the parser reads like any other."""
    lp = completion.logprobs
    if completion.error is not None:
        return completion
    if not lp or len(lp) != len(prompt.candidates) or not all(math.isfinite(x) for x in lp):
        return Completion(error=f"logits mode: unusable candidate log-probabilities {lp}", attempts=completion.attempts)
    best = max(range(len(lp)), key=lambda i: lp[i])
    top = max(lp)
    norm = math.log(sum(math.exp(x - top) for x in lp)) + top
    probs = {c.rstrip(","): round(math.exp(x - norm), 4) for c, x in zip(prompt.candidates, lp)}
    value = int(prompt.candidates[best].rstrip(","))
    key = "pass" if prompt.name != "answer_set" else "score"
    text = json.dumps({key: value, "reason": f"logits mode, candidate probabilities {probs}"})
    return Completion(text=text, attempts=completion.attempts)


class Judge:
    """Base class of the judge backends. Subclasses implement ``_complete`` and ``_describe``.

    ``request_mode`` "case" (one call per case, all checkpoints) or "checkpoint" (one call per
    checkpoint); ``cache_path`` an SQLite file or None for no cache; ``template_version`` picks the
    packaged templates; ``reask`` how many more requests a prompt gets after an unreadable or incomplete
    reply; ``max_image_pixels`` and ``image_format`` how images are sized and encoded for the judge.
    """

    backend = "base"
    default_image_format = "jpeg"  # the backends set theirs
    #: the scoring kinds this judge can score (the runner refuses a task of another kind)
    kinds: ClassVar[tuple[str, ...]] = ("checkpoints", "rubric")
    logits = False  # set by a backend that scores candidates instead of generating
    seed: int | None = None  # the judge's seed arg; every prompt gets request_seed(seed, task, case id, name)

    def __init__(self, *, request_mode: str = "case", cache_path: str | None = None, template_version: str = "v1",
                 reask: int = DEFAULT_REASK, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 image_format: str | None = None):
        if request_mode not in ("case", "checkpoint"):
            raise ConfigError(
                f"judge {self.backend!r}: request_mode must be 'case' or 'checkpoint', got {request_mode!r}"
            )
        if int(reask) < 0 or int(max_image_pixels) < 1024:
            raise ConfigError(f"judge {self.backend!r}: reask must be >= 0 and max_image_pixels >= 1024")
        self.request_mode = request_mode
        self.template_version = template_version
        self.reask = int(reask)
        fmt = self.default_image_format if image_format is None else image_format
        self.image_spec = ImageSpec(check_format(fmt, f"judge {self.backend!r}"), int(max_image_pixels))
        self.cache = VerdictCache(cache_path) if cache_path else None
        self._image_prep = ImagePrep(self._prepare_image)

    # -- to implement ---------------------------------------------------------------------------
    def _complete(self, prompts: list[Prompt]) -> list[Completion]:
        """One completion per prompt, same order; must not raise for one bad prompt."""
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        """Backend, model id, endpoint host and decoding settings (never a secret)."""
        raise NotImplementedError

    def _prepare_image(self, image: Any, spec: ImageSpec) -> Any:
        """What the backend sends for one image (runs in the worker pool, once per batch)."""
        return encode(image, spec)

    def preflight(self) -> None:
        """Check, before any work, that this judge can work at all; raise JudgeUnreachableError in one line."""

    def load(self) -> None:
        """Load what the judge needs (weights) once, when the judge stage starts; one-line error if it cannot."""

    # -- shared ---------------------------------------------------------------------------------
    def prepared_images(self, prompt: Prompt) -> list[Any]:
        """Futures of the prepared images of ``prompt`` (shared by every prompt that shows them); a backend
        that calls ``release_images`` when the prompt is done keeps only in-flight images in memory."""
        return [self._image_prep.get(img, spec) for (_, img), spec in zip(prompt.images, prompt_specs(prompt, self.image_spec))]

    def reserve_images(self, prompts: list[Prompt]) -> None:
        """Announce every prompt that will show each image, so ``release_images`` can drop an image after
        its last prompt (and not before: a case's references are prepared once for all its prompts)."""
        for prompt in prompts:
            for (_, img), spec in zip(prompt.images, prompt_specs(prompt, self.image_spec)):
                self._image_prep.reserve(img, spec)

    def release_images(self, prompt: Prompt) -> None:
        for (_, img), spec in zip(prompt.images, prompt_specs(prompt, self.image_spec)):
            self._image_prep.release(img, spec)

    def provenance(self) -> dict[str, Any]:
        d = self._describe()
        return {
            **d,
            "request_mode": "checkpoint" if self.logits else self.request_mode,
            "template_version": self.template_version,
            # Every template this judge may use (the answer-set one serves only the story task).
            "templates": template_provenance(
                story=True, request_mode=self.request_mode, logits=self.logits, version=self.template_version
            ),
            "parser_version": PARSER_VERSION,
            "micon_version": micon_tasks.__version__,
            "images": self.image_spec.describe(),
            "reask": self.reask,
        }

    def _key(self, request: JudgeRequest, prompts: list[Prompt], prov: dict[str, Any]) -> str:
        # A request's seed changes a sampled reply; it means nothing to greedy or logits decoding.
        seeded = "seed_rule" in (prov.get("decoding") or {})
        return cache_key(
            {
                "backend": prov.get("backend"),
                "model": prov.get("model"),
                "decoding": prov.get("decoding"),
                "templates": prov.get("templates"),
                "parser": PARSER_VERSION,
                "image_encoding": prov.get("images"),
                "task": request.task,
                "case_id": request.case.case_id,
                "story": request.story,
                "checkpoints": checkpoint_identity(request.checkpoints),
                "prompts": [[p.name, p.text, p.prefix, p.candidates, p.seed if seeded else None,
                             *([p.options, p.n_generated] if p.options or p.n_generated != 1 else [])]
                            for p in prompts],
                "images": _image_digests(prompts),
            }
        )

    def judge(self, request: JudgeRequest) -> JudgeResult:
        return self.judge_batch([request])[0]

    def judge_batch(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        """Judge many cases at once; same order; a bad case gives an all-error result, never a raise."""
        try:
            return self._judge_batch(requests)
        finally:
            self._image_prep.clear()

    def _judge_batch(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        prov = self.provenance()
        results: list[JudgeResult | None] = [None] * len(requests)
        rendered: dict[int, list[Prompt]] = {}
        keys: dict[int, str] = {}
        for i, req in enumerate(requests):
            try:
                if req.image is None:
                    raise ValueError("no generated image")
                rendered[i] = request_kind(req.kind).render(req, self)
                for p in rendered[i]:
                    p.seed = request_seed(self.seed, req.task, req.case.case_id, p.name)
                if self.cache is not None:
                    keys[i] = self._key(req, rendered[i], prov)
            except Exception as exc:  # noqa: BLE001 - one bad case must not sink the batch
                where = f"task {req.task!r}, case {req.case.case_id!r}"
                results[i] = error_result(req, f"{where}: cannot build the judge request: {exc}", prov)
                rendered.pop(i, None)

        if self.cache is not None and keys:
            try:
                hits = self.cache.get_many(list(keys.values()))
            except Exception as exc:  # noqa: BLE001 - a broken cache slows a run, it does not stop it
                import warnings

                warnings.warn(f"judge cache {self.cache.path} unreadable ({exc}); judging without it", stacklevel=2)
                hits = {}
            for i, key in keys.items():
                if key in hits:
                    hit = hits[key]
                    kept = {k: v for k, v in hit.provenance.items() if k in ("attempts", "latency_s")}
                    hit.provenance = {**prov, **kept, "cached": True}
                    results[i] = hit
                    rendered.pop(i)

        t0 = time.perf_counter()
        pairs = self._run(list(rendered.items()))
        calls = {i: sum(c.attempts for _, c in pairs[i]) for i in rendered}
        history: dict[int, dict[str, list[dict[str, Any]]]] = {i: {} for i in rendered}
        current: dict[int, JudgeResult] = {i: self._assemble(requests[i], pairs[i], prov) for i in rendered}
        for attempt in range(1, self.reask + 1):
            asks = [(i, again) for i, res in current.items()
                    if (again := self._reask_prompts(requests[i], res, pairs[i], rendered[i], attempt))]
            if not asks:
                break
            answers = self._run(asks)
            for i, _ in asks:
                for p, c in answers[i]:
                    calls[i] += c.attempts
                    slot = next(n for n, (q, _) in enumerate(pairs[i]) if q.name == p.name)
                    trial = list(pairs[i])
                    trial[slot] = (p, c)
                    res = self._assemble(requests[i], trial, prov)
                    tries = history[i].setdefault(p.name, [attempt_record(pairs[i][slot], current[i], requests[i])])
                    tries.append(attempt_record((p, c), res, requests[i]))
                    if n_errors(res, requests[i]) < n_errors(current[i], requests[i]):
                        pairs[i], current[i] = trial, res
        elapsed = time.perf_counter() - t0

        to_store = []
        for i, res in current.items():
            req = requests[i]
            if history[i]:
                # Every attempt's reply is kept, and which one the verdicts come from.
                used = {name: next(p.attempt for p, _ in pairs[i] if p.name == name) for name in history[i]}
                res.details = {**res.details, "reask": {"attempts": history[i], "used": used}}
                res.provenance["attempts"] = calls[i]
            res.provenance["latency_s"] = round(elapsed, 4)
            results[i] = res = safe_result(res)
            if self.cache is not None and i in keys and _is_clean(res, req):
                to_store.append((keys[i], str(prov.get("model")), req.case.case_id, res))
        if self.cache is not None and to_store:
            try:
                self.cache.put_many(to_store)
            except Exception as exc:  # noqa: BLE001
                import warnings

                warnings.warn(f"judge cache {self.cache.path} not written ({exc})", stacklevel=2)
        # Judged results were made safe above (before caching); cache hits and error results are made safe here.
        return [r if i in current else safe_result(r) for i, r in enumerate(_fill(results, requests, prov))]

    def _run(self, work: list[tuple[int, list[Prompt]]]) -> dict[int, list[tuple[Prompt, Completion]]]:
        """Complete every prompt of ``work`` in one backend call; (prompt, completion) pairs per owner."""
        flat = [p for _, prompts in work for p in prompts]
        try:
            completions = self._complete(flat) if flat else []
            if len(completions) != len(flat):
                raise RuntimeError(f"backend returned {len(completions)} completions for {len(flat)} prompts")
        except Exception as exc:  # noqa: BLE001 - a backend crash marks its cases, it never drops them
            completions = [Completion(error=f"judge backend failed: {type(exc).__name__}: {exc}") for _ in flat]
        it = iter(completions)
        out: dict[int, list[tuple[Prompt, Completion]]] = {}
        for i, prompts in work:
            out[i] = [(p, clean_completion(_pick_candidate(p, c) if p.candidates else c))
                      for p, c in zip(prompts, it)]
        return out

    def _reask_prompts(self, req: JudgeRequest, res: JudgeResult, pairs: list[tuple[Prompt, Completion]],
                       originals: list[Prompt], attempt: int) -> list[Prompt]:
        return reask_prompts(self.seed, req, res, pairs, originals, attempt)

    def _assemble(self, req: JudgeRequest, pairs: list[tuple[Prompt, Completion]], prov: dict[str, Any]) -> JudgeResult:
        """The request kind reads the replies; a reply that breaks it is the case's error result, never a raise."""
        try:
            return request_kind(req.kind).assemble(req, pairs, prov)
        except Exception as exc:  # noqa: BLE001
            where = f"task {req.task!r}, case {req.case.case_id!r}"
            return error_result(req, f"{where}: cannot read the judge reply: {exc}", prov)

    def close(self) -> None:
        self._image_prep.close()
        if self.cache is not None:
            self.cache.close()


def _image_digests(prompts: list[Prompt]) -> list[str]:
    """One digest per distinct image: of its stored bytes when it has them (nothing decoded), else its pixels."""
    from micon_tasks.images import encoded_source

    seen: dict[int, str] = {}
    out = []
    for p in prompts:
        for _, img in p.images:
            if id(img) not in seen:
                src = encoded_source(img)
                seen[id(img)] = f"bytes:{sha256_bytes(src[0])}" if src is not None else image_digest(img)
                out.append(seen[id(img)])
    return out


def _is_clean(result: JudgeResult, req: JudgeRequest) -> bool:
    if any(v.status == "error" for v in result.verdicts):
        return False
    return not req.story or (result.answer_set_status != "error" and result.answer_set_score is not None)


def _fill(results: list[JudgeResult | None], requests: list[JudgeRequest], prov: dict[str, Any]) -> list[JudgeResult]:
    return [
        r if r is not None else error_result(q, "internal error: no result was produced", prov)
        for r, q in zip(results, requests)
    ]
