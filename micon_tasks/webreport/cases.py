"""Gallery cards: one compact dict per (run, case) from its samples record, plus the case's shared
part (prompt, references) read once for every run.

Keys are short on purpose: a full benchmark report embeds about 2,000 cards in the page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from micon_tasks.runner.generate import record_images
from micon_tasks.webreport.refs import CaseData, TaskData
from micon_tasks.webreport.runs import Run, inside
from micon_tasks.webreport.thumbs import ThumbMaker, ThumbSource

__all__ = ["CheckpointInfo", "CardBuilder", "case_key"]

#: (dimension, question, hard, caps) of a checkpoint id, from the task card.
CheckpointInfo = tuple[str, str, bool, "str | None"]


def case_key(task: str, case_id: str) -> str:
    return f"{task}/{case_id}"


def _url(path: Path, base: Path) -> str:
    """A relative URL from the report folder to ``path`` (file:// resolves it beside index.html)."""
    return quote(Path(os.path.relpath(path, base)).as_posix())


class CardBuilder:
    """Registers every image with the thumbnail maker first, then fills the cards once thumbnails exist."""

    def __init__(self, report_dir: Path, thumbs: ThumbMaker, checkpoints: dict[str, dict[str, CheckpointInfo]]):
        self.report_dir = report_dir
        self.thumbs = thumbs
        self.checkpoints = checkpoints
        self._pending: list[tuple[dict[str, Any], str, str | None]] = []  # (image slot, thumb key, expected sha)

    # -- images -------------------------------------------------------------------------------
    def _image(self, source: ThumbSource, *, expected_sha: str | None = None, label: str = "") -> dict[str, Any]:
        slot: dict[str, Any] = {"label": label}
        if source.path is not None:
            slot["full"] = _url(source.path, self.report_dir)
        self._pending.append((slot, self.thumbs.want(source), expected_sha))
        return slot

    def _run_file(self, run: Run, rel: Any, what: str) -> tuple[Path | None, str | None]:
        if not isinstance(rel, str) or not rel:
            return None, f"{what}: the record names no file"
        path = run.root / rel
        if not inside(path, run.root):
            return None, f"{what}: {rel!r} leads outside the run folder (refused)"
        return path, None

    def finish(self) -> None:
        """Fill every image slot from the finished thumbnails (call after ``thumbs.run()``)."""
        for slot, key, expected in self._pending:
            thumb = self.thumbs.get(key)
            if thumb.name:
                slot["th"] = f"assets/thumbs/{thumb.name}"
                slot["w"], slot["h"] = thumb.width, thumb.height
            if thumb.error:
                slot["note"] = thumb.error
            elif expected and thumb.sha256 and expected != thumb.sha256:
                slot["note"] = "the file on disk differs from the one the run recorded (sha256 mismatch)"
            if "th" not in slot:
                slot.pop("full", None)  # nothing to show full size either

    # -- shared case part ---------------------------------------------------------------------
    def shared(self, task: str, record: dict[str, Any] | None, data: TaskData, case_id: str) -> dict[str, Any]:
        case: CaseData | None = data.cases.get(case_id)
        out: dict[str, Any] = {"prompt": (record or {}).get("prompt") or (case.texts.get("prompt") if case else None)}
        if case is not None:
            out.update({k: v for k, v in case.texts.items() if k != "prompt"})
        if data.unavailable:
            out["refs_note"] = f"references unavailable: {data.unavailable}"
        elif case is None:
            out["refs_note"] = "references unavailable: the data holds no case with this id"
        elif case.error:
            out["refs_note"] = f"references unavailable: {case.error}"
        else:
            out["refs"] = []
            for role, ref in zip(case.roles, case.refs):
                src = ThumbSource(path=ref) if isinstance(ref, Path) else ThumbSource(data=ref)
                out["refs"].append(self._image(src, label=role))
        return out

    # -- one run's card -----------------------------------------------------------------------
    def card(self, run: Run, record: dict[str, Any]) -> dict[str, Any]:
        task, cid = record.get("task"), str(record.get("case_id"))
        score = record.get("score") or {}
        judge = record.get("judge") or {}
        cps = self.checkpoints.get(task, {})
        card: dict[str, Any] = {"k": case_key(task, cid), "t": task, "id": cid, "i": record.get("index"),
                                "s": score.get("score"), "d": score.get("dimensions") or {},
                                "clean": score.get("clean"), "ne": score.get("n_checkpoint_errors") or 0,
                                "notes": []}
        err = record.get("generation_error")
        if score.get("reason") or err:
            card["fail"] = score.get("reason") or f"generation failed ({err.get('reason')}): {err.get('message')}"
        if not score:
            card["notes"].append("no score in the record (the case was not judged or aggregated)")
        card["imgs"] = self._generated(run, record, card["notes"])
        verdicts, failing, capped = [], set(), []
        for v in judge.get("verdicts") or []:
            info = cps.get(v.get("checkpoint_id"))
            status = v.get("status")
            entry = {"id": v.get("checkpoint_id"), "st": status, "r": v.get("rationale"), "e": v.get("error")}
            if v.get("salvaged"):
                entry["sv"] = True
            if v.get("value") is not None:
                entry["val"] = v["value"]
            verdicts.append(entry)
            if status in ("fail", "error"):
                failing.add(info[0] if info else str(v.get("checkpoint_id", "?")).split("_")[0])
                if info and info[2]:
                    capped.append({"id": entry["id"], "caps": info[3] or info[0]})
        if card.get("fail"):
            failing.update(card["d"])
        card.update({"v": verdicts, "fd": sorted(failing), "caps": capped})
        if judge.get("answer_set_status") is not None or judge.get("answer_set_score") is not None:
            card["ans"] = {"score": judge.get("answer_set_score"), "status": judge.get("answer_set_status"),
                           "reason": (judge.get("details") or {}).get("answer_set_rationale")}
        details = judge.get("details") or {}
        if details.get("rationale"):
            card["why"] = details["rationale"]
        if details.get("flags"):
            card["flags"] = details["flags"]
        if score.get("extra"):
            card["extra"] = score["extra"]
        if "dar_maps" in record:
            card["maps"] = self._maps(run, record["dar_maps"], card["notes"])
        return card

    def _generated(self, run: Run, record: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
        entries = record_images(record)
        out = []
        for k, entry in enumerate(entries):
            rel, sha = (entry.get("path"), entry.get("sha256")) if isinstance(entry, dict) else (entry, None)
            path, problem = self._run_file(run, rel, f"image {k}")
            if problem:
                notes.append(problem)
                continue
            if not path.exists():  # type: ignore[union-attr]
                notes.append(f"image file missing: {rel} (in {run.root})")
                continue
            out.append(self._image(ThumbSource(path=path), expected_sha=sha, label="" if len(entries) == 1 else f"#{k}"))
        return out

    def _maps(self, run: Run, maps: Any, notes: list[str]) -> dict[str, Any]:
        if not isinstance(maps, dict):
            return {"unavailable": "the record's dar_maps is not a mapping"}
        if "unavailable" in maps:
            return {"unavailable": str(maps["unavailable"])}
        shown = []
        for role, entry in sorted(maps.items()):
            path, problem = self._run_file(run, (entry or {}).get("png"), f"DAR map {role}")
            if problem or not path.exists():  # type: ignore[union-attr]
                notes.append(problem or f"DAR map {role}: file missing: {entry.get('png')}")
                continue
            slot = self._image(ThumbSource(path=path), label=role)
            slot["grid"] = entry.get("grid")
            shown.append(slot)
        return {"maps": shown}
