"""Judge prompts: load the versioned templates and render one request's prompts (PROTOCOL 5).

A prompt is backend-neutral: the instructions text, then labelled images (references in order, the
generated image last). Backends turn it into chat messages; the cache key is built from it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import string
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.types import DIMENSIONS, Case, Checkpoint

__all__ = ["Template", "Prompt", "load_template", "TEMPLATE_FILES", "render_prompts", "GENERATED_LABEL"]

# version -> role -> file in micon_tasks/judges/templates/
TEMPLATE_FILES: dict[str, dict[str, str]] = {
    "v1": {
        "checkpoints": "checkpoints_v1.txt",
        "checkpoint_single": "checkpoint_single_v1.txt",
        "answer_set": "answer_set_v1.txt",
    }
}
GENERATED_LABEL = "Generated image"


@dataclass(frozen=True)
class Template:
    role: str
    version: str
    filename: str
    text: str
    sha256: str

    def render(self, **values: Any) -> str:
        try:
            return string.Template(self.text).substitute(values)
        except KeyError as exc:  # a template names a field nobody fills: a packaging bug
            raise ConfigError(f"judge template {self.filename}: no value for ${exc.args[0]}") from None

    def describe(self) -> dict[str, str]:
        return {"file": self.filename, "version": self.version, "sha256": self.sha256}


@cache
def load_template(role: str, version: str = "v1") -> Template:
    files = TEMPLATE_FILES.get(version)
    if files is None:
        raise ConfigError(f"unknown judge template version {version!r}; known: {', '.join(TEMPLATE_FILES)}")
    if role not in files:
        raise ConfigError(f"judge template version {version!r} has no {role!r} template")
    data = importlib.resources.files("micon_tasks.judges.templates").joinpath(files[role]).read_bytes()
    return Template(role, version, files[role], data.decode("utf-8"), hashlib.sha256(data).hexdigest())


@dataclass
class Prompt:
    """One judge call. ``name`` is "checkpoints", a checkpoint id (per-checkpoint mode) or "answer_set".

    ``prefix``/``candidates`` are set in logits mode: the backend scores each candidate as the
    continuation of the assistant reply ``prefix`` instead of generating free text.
    """

    name: str
    text: str
    images: list[tuple[str, Any]]  # (label, PIL image); generated image last
    prefix: str = ""
    candidates: list[str] = field(default_factory=list)
    # Sampling seed of this call, derived by the Judge from (judge seed, task, case id, name): never
    # from the prompt's position in a batch, so a case gets the same reply whatever its batch mates.
    seed: int | None = None
    #: per-prompt request options a request kind may ask for: ``image_format`` ("jpeg"/"png"),
    #: ``max_image_pixels``, ``max_ref_pixels``, ``ref_multiple``, ``temperature`` (None = leave it to
    #: the server's default), ``max_tokens``
    options: dict[str, Any] = field(default_factory=dict)
    #: how many of the last ``images`` are generated images (the rest are references)
    n_generated: int = 1
    #: 0 for the first request; k for the k-th re-ask after an unreadable reply
    attempt: int = 0


def _bullets(items: list[str], *, label: str | None = None, empty: str = "(none)") -> str:
    if not items:
        return empty
    if label:
        return "\n".join(f"{label}{i}: {t}" for i, t in enumerate(items, 1))
    return "\n".join(f"- {t}" for t in items)


def _checkpoint_lines(checkpoints: list[Checkpoint]) -> str:
    lines: list[str] = []
    current = None
    for cp in checkpoints:
        if cp.dimension != current:
            current = cp.dimension
            if lines:
                lines.append("")
            lines.append(f"{cp.dimension}. {DIMENSIONS.get(cp.dimension, cp.dimension)}")
        lines.append(f"- {cp.id}{' [hard]' if cp.hard else ''}: {cp.question}")
    return "\n".join(lines)


def _context(case: Case) -> dict[str, Any]:
    roles = list(case.ref_roles) or [f"R{chr(ord('A') + i)}" for i in range(len(case.refs))]
    return {
        "instruction": case.prompt.strip() or "(none)",
        "goal": case.goal.strip() or "(not given)",
        "hard_constraints": _bullets(list(case.constraints_hard), label="H"),
        "soft_constraints": _bullets(list(case.constraints_soft)),
        "n_refs": len(case.refs),
        "ref_roles": ", ".join(roles) if roles else "(none)",
    }


def _images(case: Case, image: Any) -> list[tuple[str, Any]]:
    roles = list(case.ref_roles) or [f"R{chr(ord('A') + i)}" for i in range(len(case.refs))]
    if len(roles) != len(case.refs):
        raise ValueError(
            f"task {case.task!r}, case {case.case_id!r}, field 'ref_roles': "
            f"{len(roles)} roles for {len(case.refs)} references"
        )
    out = [(f"Reference {role}", ref) for role, ref in zip(roles, case.refs)]
    out.append((GENERATED_LABEL, image))
    return out


def render_prompts(
    case: Case,
    image: Any,
    checkpoints: list[Checkpoint],
    *,
    story: bool,
    request_mode: str = "case",
    logits: bool = False,
    version: str = "v1",
) -> list[Prompt]:
    """All prompts of one request: the checkpoint prompt(s), then the story answer-set prompt.

    ``request_mode`` "case" asks every checkpoint in one call; "checkpoint" asks one per call (for
    judges weak at long JSON). ``logits`` implies one checkpoint per call. A story case without an
    answer set gets its checkpoint prompts only (no answer-set prompt): the Judge then marks the
    answer-set part ``error`` ("case has no answer set") and still judges the checkpoints.
    """
    if request_mode not in ("case", "checkpoint"):
        raise ConfigError(f"request_mode must be 'case' or 'checkpoint', got {request_mode!r}")
    ctx = _context(case)
    images = _images(case, image)
    prompts: list[Prompt] = []
    if request_mode == "case" and not logits:
        text = load_template("checkpoints", version).render(
            **ctx,
            checkpoints=_checkpoint_lines(checkpoints),
            checkpoint_ids=", ".join(cp.id for cp in checkpoints),
        )
        prompts.append(Prompt("checkpoints", text, images))
    else:
        tpl = load_template("checkpoint_single", version)
        for cp in checkpoints:
            text = tpl.render(
                **ctx,
                checkpoint_id=cp.id,
                dimension_name=DIMENSIONS.get(cp.dimension, cp.dimension),
                hard_note=", hard" if cp.hard else "",
                question=cp.question,
            )
            p = Prompt(cp.id, text, images)
            if logits:
                p.prefix, p.candidates = '{"pass": ', ["0", "1"]
            prompts.append(p)
    ans = case.answer_set
    if story and ans is not None:
        text = load_template("answer_set", version).render(
            **ctx,
            background=ans.background_summary.strip() or "(not given)",
            positives=_bullets(list(ans.positive_candidates)),
            negatives=_bullets(list(ans.negative_candidates)),
        )
        p = Prompt("answer_set", text, images)
        if logits:
            # The comma closes the number, so "1" does not swallow the probability of "10".
            p.prefix, p.candidates = '{"score": ', [f"{k}," for k in range(11)]
        prompts.append(p)
    return prompts


def template_provenance(*, story: bool, request_mode: str, logits: bool, version: str) -> dict[str, Any]:
    roles = ["checkpoints"] if request_mode == "case" and not logits else ["checkpoint_single"]
    if story:
        roles.append("answer_set")
    return {role: load_template(role, version).describe() for role in roles}
