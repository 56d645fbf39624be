"""How XVerseBench metric results travel: one Verdict per metric entry, named ``METRIC/image[/role]``.

Why one verdict per entry: the authors pool ID and IP over (generated image, reference) pairs and DPG
over generated images, so the scoring kind needs every entry, not a case mean, to pool them the same
way. A verdict is ``scored`` with its 0-100 ``value`` (a "no face" / "no object found" entry scores 0,
as the authors score it, and says so in ``rationale``) or ``error`` when the metric could not be
computed (never given a stand-in value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from micon_tasks.types import Case

__all__ = [
    "METRICS",
    "METRIC_KEYS",
    "NO_FACE",
    "NO_OBJECT",
    "HUMAN",
    "Subject",
    "entry_id",
    "parse_entry_id",
    "subjects_of",
    "AES_ON",
    "aes_grid",
    "expected_entries",
]

METRICS = ("DPG", "ID", "IP", "AES")  # the paper's column order
METRIC_KEYS = {"dpg": "DPG", "id": "ID", "ip": "IP", "aes": "AES"}
NO_FACE = "no face"
NO_OBJECT = "no object found"
HUMAN = "human"
GRID = "grid"
AES_ON = ("auto", GRID, "image")  # how AES sees a case's images: auto (grid for four), grid, or each image
ROLES = tuple(f"R{chr(ord('A') + i)}" for i in range(8))  # reference roles in order


@dataclass(frozen=True)
class Subject:
    """One reference of a case: its role (RA, RB, ...), type (human / object / animal) and detection label."""

    role: str
    type: str
    label: str
    caption: str = ""

    @property
    def is_human(self) -> bool:
        return self.type == HUMAN


def entry_id(metric: str, image: int | str, role: str | None = None) -> str:
    """``DPG/0``, ``ID/2/RA``, ``IP/0/RB``, ``AES/grid`` or ``AES/3``."""
    if metric not in METRICS:
        raise ValueError(f"unknown XVerseBench metric {metric!r}; known: {', '.join(METRICS)}")
    return f"{metric}/{image}" if role is None else f"{metric}/{image}/{role}"


def parse_entry_id(cid: str) -> tuple[str, str, str | None]:
    """(metric, image, role or None) of an entry id; a malformed id raises ValueError naming it."""
    parts = cid.split("/")
    if len(parts) not in (2, 3) or parts[0] not in METRICS or not parts[1]:
        raise ValueError(f"{cid!r} is not an XVerseBench metric entry (METRIC/image[/role])")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def subjects_of(case: Case) -> list[Subject]:
    """The case's subjects in reference order, from ``case.extra['subjects']`` (set by the task)."""
    raw: Any = case.extra.get("subjects")
    if not isinstance(raw, list) or len(raw) != len(case.ref_roles):
        raise ValueError(
            f"task {case.task!r}, case {case.case_id!r}, field 'subjects': expected one subject per reference "
            f"({len(case.ref_roles)}), got {raw!r:.80}"
        )
    return [Subject(role, str(s["type"]), str(s["label"]), str(s.get("caption") or "")) for role, s in zip(case.ref_roles, raw)]


def aes_grid(n_images: int, aes_on: str) -> bool:
    """Whether AES scores the 2x2 grid of four images as one picture (the authors' way) or each image."""
    if aes_on not in AES_ON:
        raise ValueError(f"aes_on must be 'auto', 'grid' or 'image', got {aes_on!r}")
    if aes_on == GRID and n_images != 4:
        raise ValueError(f"aes_on='grid' needs 4 images per case (a 2x2 grid), got {n_images}")
    return aes_on == GRID or (aes_on == "auto" and n_images == 4)


def expected_entries(subjects: list[Subject], n_images: int, *, grid: bool) -> dict[str, list[str]]:
    """Every entry id a case yields, per metric: what a judge reports, and what a failed case counts."""
    ks = range(n_images)
    return {
        "DPG": [entry_id("DPG", k) for k in ks],
        "ID": [entry_id("ID", k, s.role) for k in ks for s in subjects if s.is_human],
        "IP": [entry_id("IP", k, s.role) for k in ks for s in subjects if not s.is_human],
        "AES": [entry_id("AES", GRID)] if grid else [entry_id("AES", k) for k in ks],
    }
