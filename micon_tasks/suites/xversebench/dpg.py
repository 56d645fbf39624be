"""DPG: a visual-question-answering model answers each case's DSG questions about a generated image.

A question scores 1 only if the answer is "yes" and none of its parent questions (``parents``; 0 means
none) was answered otherwise; the image's DPG is the mean over all its questions x 100 (the denominator
counts every question, gated or not). As in the authors' evaluator the gate reads the parents' raw
answers (one level, not transitive) and a parent id missing from the list is ignored.

The authors' VQA is mPLUG-large through ``modelscope`` and a match is the exact string ``yes``. Any
registered VLM judge may answer instead (``vqa=hf`` etc.): a chat model says "Yes." so its reply is
normalised (case, surrounding spaces, trailing punctuation) before the match, and its scores are not
comparable with published ones.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from micon_tasks.errors import ConfigError
from micon_tasks.types import Case

__all__ = [
    "Question",
    "Answer",
    "VQA",
    "questions_of",
    "is_yes",
    "gated_scores",
    "image_dpg",
    "MplugVQA",
    "JudgeVQA",
    "OFFICIAL_VQA",
    "VQA_PROMPT",
]

OFFICIAL_VQA = "xingjianleng/mplug_visual-question-answering_coco_large_en"
# Our wording: a judge model answering a DSG question is asked for one word.
VQA_PROMPT = "Look at the image and answer the question with one word, yes or no.\nQuestion: {question}"


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    parents: tuple[str, ...] = ()
    tuple: str = ""


@dataclass(frozen=True)
class Answer:
    """A VQA reply, or the reason there is none."""

    text: str | None = None
    error: str | None = None


class VQA(Protocol):
    exact: bool  # True: only the string "yes" matches (mPLUG); False: normalised (chat models)

    def answer(self, items: Sequence[tuple[Any, str]]) -> list[Answer]: ...

    def load(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def questions_of(case: Case) -> list[Question]:
    """The case's DSG questions from ``case.extra['questions']`` (set by the task), in file order."""
    raw = case.extra.get("questions")
    where = f"task {case.task!r}, case {case.case_id!r}, field 'questions'"
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: no DPG questions")
    out = []
    for q in raw:
        try:
            out.append(Question(str(q["id"]), str(q["question"]), tuple(str(p) for p in q.get("parents") or ()),
                                str(q.get("tuple") or "")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: malformed question {q!r:.80} ({exc})") from None
    return out


_TRAILING = string.punctuation + string.whitespace


def is_yes(answer: str | None, *, exact: bool) -> bool:
    """The authors' match is ``answer == 'yes'``; ``exact=False`` first lowercases and strips spaces and
    trailing punctuation ("Yes." -> "yes"), for chat models."""
    if answer is None:
        return False
    return answer == "yes" if exact else answer.strip().lower().rstrip(_TRAILING) == "yes"


def gated_scores(questions: Sequence[Question], yes: Mapping[str, bool]) -> dict[str, float]:
    """Per question 1.0 / 0.0 after the dependency gate (a parent answered other than yes zeroes it)."""
    raw = {q.id: 1.0 if yes[q.id] else 0.0 for q in questions}
    out = {}
    for q in questions:
        failed_parent = any(p != "0" and p in raw and raw[p] == 0.0 for p in q.parents)
        out[q.id] = 0.0 if failed_parent else raw[q.id]
    return out


def image_dpg(questions: Sequence[Question], yes: Mapping[str, bool]) -> float:
    """One image's DPG (0-100): gated question scores summed over all questions."""
    if not questions:
        raise ValueError("DPG needs at least one question")
    return 100.0 * sum(gated_scores(questions, yes).values()) / len(questions)


class MplugVQA:
    """The authors' VQA: mPLUG-large through ``modelscope`` (loaded on first use, once)."""

    exact = True

    def __init__(self, model: str = OFFICIAL_VQA, device: str = "cuda:0"):
        from micon_tasks.suites.xversebench.deps import require

        require("modelscope", what="the DPG metric's mPLUG VQA model (vqa=mplug)")
        self.model, self.device = model, device
        self._pipe: Any = None

    def load(self) -> None:
        if self._pipe is None:
            from modelscope.pipelines import pipeline
            from modelscope.utils.constant import Tasks

            device = str(self.device).replace("cuda", "gpu")  # modelscope names devices gpu / gpu:N / cpu
            self._pipe = pipeline(Tasks.visual_question_answering, model=self.model, device=device)

    def answer(self, items: Sequence[tuple[Any, str]]) -> list[Answer]:
        self.load()
        out = []
        for image, question in items:  # the modelscope pipeline takes one (image, question) at a time
            try:
                out.append(Answer(text=str(self._pipe({"image": image, "question": question})["text"])))
            except Exception as exc:  # noqa: BLE001 - one failed question marks its image, not the batch
                out.append(Answer(error=f"mPLUG failed: {type(exc).__name__}: {exc}"))
        return out

    def describe(self) -> dict[str, Any]:
        return {"vqa": "mplug", "model": self.model, "match": "exact 'yes'", "comparable": True}


class JudgeVQA:
    """Any registered VLM judge as the VQA model: one prompt per (image, question) through its backend.

    A judge in logits mode chooses between the candidates "yes" and "no"; otherwise its free reply is
    matched after normalisation.
    """

    exact = False

    def __init__(self, name: str, args: Mapping[str, Any] | str | None = None):
        from micon_tasks.judges import load_judge

        if str(name).startswith("xverse"):
            raise ConfigError(f"vqa={name!r}: the DPG VQA must be a VLM judge (e.g. hf, openai), not a metric judge")
        self.name = str(name)
        self.judge = load_judge(self.name, _args(args))

    def load(self) -> None:
        load = getattr(self.judge, "load", None)
        if callable(load):
            load()

    def answer(self, items: Sequence[tuple[Any, str]]) -> list[Answer]:
        from micon_tasks.judges.base import request_seed
        from micon_tasks.judges.prompts import GENERATED_LABEL, Prompt

        logits = bool(getattr(self.judge, "logits", False))
        prompts = []
        for i, (image, question) in enumerate(items):
            p = Prompt(name=f"dpg_vqa_{i}", text=VQA_PROMPT.format(question=question), images=[(GENERATED_LABEL, image)],
                       candidates=["yes", "no"] if logits else [])
            p.seed = request_seed(getattr(self.judge, "seed", None), "xversebench", question, "dpg_vqa")
            prompts.append(p)
        try:
            completions = self.judge._complete(prompts)  # the backend contract every VLM judge implements
        except Exception as exc:  # noqa: BLE001
            return [Answer(error=f"VQA judge {self.name!r} failed: {type(exc).__name__}: {exc}") for _ in items]
        out = []
        for c in completions:
            if c.error is not None:
                out.append(Answer(error=c.error))
            elif logits:  # candidates ["yes", "no"]: the likelier one is the answer
                lp = c.logprobs or []
                if len(lp) != 2 or not all(math.isfinite(x) for x in lp):
                    out.append(Answer(error=f"logits mode: unusable candidate log-probabilities {lp}"))
                else:
                    out.append(Answer(text="yes" if lp[0] >= lp[1] else "no"))
            else:
                out.append(Answer(text=c.text))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "vqa": self.name,
            "judge": self.judge.provenance(),
            "match": "normalised 'yes' (case, spaces, trailing punctuation)",
            "comparable": False,
            "note": "DPG answered by a VLM judge instead of mPLUG: not comparable with published XVerseBench scores",
        }


def _args(args: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str | None:
    """``vqa_args`` given inside another k=v string use ';' between pairs (``pretrained=x;mode=logits``)."""
    if isinstance(args, str) and not args.lstrip().startswith("{"):
        return args.replace(";", ",")
    return args
