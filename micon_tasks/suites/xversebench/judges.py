"""The XVerseBench metric judges: ``xverse_dpg``, ``xverse_id``, ``xverse_ip``, ``xverse_aes`` and
``xversebench`` (all four), for tasks whose scoring kind is ``metrics``.

A metric judge reads from each JudgeRequest its ``case`` (subjects and DPG questions in ``case.extra``,
references in ``case.refs``) and ``images`` (all N generated images; ``image`` when ``images`` is None),
and returns one Verdict per metric entry (see ``entries``). A metric that fails on a case marks every
entry it owed ``error`` with the reason, and the other metrics of that case still count.
"""

from __future__ import annotations

from typing import Any, ClassVar

import micon_tasks
from micon_tasks.errors import MiconError
from micon_tasks.images import to_rgb  # 8-bit RGB (16-bit greyscale scaled, not clipped white)
from micon_tasks.judges.base import Judge, JudgeRequest, JudgeUnreachableError
from micon_tasks.suites.xversebench import entries as E
from micon_tasks.suites.xversebench.parts import AESPart, DPGPart, IDPart, IPPart, MetricPart
from micon_tasks.types import JudgeResult, Verdict
from registry import register_judge

__all__ = ["MetricJudge", "XVerseDPGJudge", "XVerseIDJudge", "XVerseIPJudge", "XVerseAESJudge", "XVerseBenchJudge"]


class MetricJudge(Judge):
    """Runs metric parts over each request's images; never raises for one case."""

    kinds: ClassVar[tuple[str, ...]] = ("metrics",)
    backend = "xversebench"

    def __init__(self, parts: list[MetricPart], batch_size: int = 8):
        super().__init__()
        self.parts = parts
        self.batch_size = batch_size  # cases per judge_batch call the runner sends

    def provenance(self) -> dict[str, Any]:
        metrics = {p.metric: p.describe() for p in self.parts}
        prov: dict[str, Any] = {"backend": self.backend, "model": "+".join(metrics), "metrics": metrics,
                                "micon_version": micon_tasks.__version__}
        notes = [d["note"] for d in metrics.values() if d.get("note")]
        if any("MEAN NOTHING" in str(v) for d in metrics.values() for v in d.values()):
            notes.append("stub or random-weight metric models: these scores MEAN NOTHING")
        if notes:
            prov["notes"] = notes
        return prov

    def load(self) -> None:
        """Load every metric model once, when the judge stage starts; a failure stops the run in one line."""
        for part in self.parts:
            try:
                part.load()
            except MiconError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. a Hub id that is not cached offline, a bad file
                text = " ".join(str(exc).split())[:300]
                raise JudgeUnreachableError(
                    f"judge {self.backend!r}: cannot load the {part.metric} models: {type(exc).__name__}: {text}"
                ) from None

    def judge_batch(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        """Each part scores every usable case of the batch in one call (its models batch across cases)."""
        prov = self.provenance()
        verdicts: list[list[Verdict]] = [[] for _ in requests]
        details: list[dict[str, Any]] = []
        usable: list[tuple[int, Any, list[Any], list[E.Subject]]] = []
        for i, req in enumerate(requests):
            images = [to_rgb(im) for im in (getattr(req, "images", None) or ([req.image] if req.image is not None else []))]
            details.append({"n_images": len(images), "notes": list(prov.get("notes") or [])})
            try:
                subjects = E.subjects_of(req.case)
                if not images:
                    raise ValueError(f"task {req.task!r}, case {req.case.case_id!r}: no generated image")
            except ValueError as exc:  # the case cannot be scored at all: one error per metric, counted
                verdicts[i] = [Verdict(f"{p.metric}/all", "error", error=str(exc)) for p in self.parts]
                continue
            usable.append((i, req.case, images, subjects))
        for part in self.parts:
            outcomes = part.score_many([(case, images) for _, case, images, _ in usable])
            for (i, case, images, subjects), got in zip(usable, outcomes):
                if isinstance(got, Exception):  # one metric failing on one case marks only its entries
                    msg = f"task {requests[i].task!r}, case {case.case_id!r}: {part.metric} failed: {type(got).__name__}: {got}"
                    grid = part.metric == "AES" and E.aes_grid(len(images), getattr(part, "aes_on", "auto"))
                    owed = E.expected_entries(subjects, len(images), grid=grid)[part.metric]
                    verdicts[i].extend(Verdict(cid, "error", error=msg) for cid in owed)
                else:
                    verdicts[i].extend(got[0])
                    details[i].update(got[1])
        return [JudgeResult(verdicts=v, provenance={**prov, "cached": False}, details=d) for v, d in zip(verdicts, details)]

    def close(self) -> None:
        for part in self.parts:
            vqa = getattr(part, "vqa", None)
            if vqa is not None and hasattr(getattr(vqa, "judge", None), "close"):
                vqa.judge.close()


@register_judge("xverse_dpg")
class XVerseDPGJudge(MetricJudge):
    """DPG only: ``vqa=mplug`` (official, needs modelscope) or any VLM judge name with ``vqa_args``."""

    backend = "xverse_dpg"

    def __init__(self, vqa: str = "mplug", vqa_model: str | None = None, vqa_args: Any = None, device: str = "auto"):
        super().__init__([DPGPart(vqa, vqa_model, vqa_args, device)])


@register_judge("xverse_id")
class XVerseIDJudge(MetricJudge):
    """ID only: RetinaFace (pyfacer) + IR-SE50 with ``face_weights=model_ir_se50.pth``."""

    backend = "xverse_id"

    def __init__(self, face_weights: str | None = None, face_detector: str = "retinaface/resnet50",
                 device: str = "auto", batch_size: int = 32, face_units: Any = None):
        super().__init__([IDPart(face_detector, face_weights, device, batch_size, face_units)])


@register_judge("xverse_ip")
class XVerseIPJudge(MetricJudge):
    """IP only: Florence-2 detection, SAM 2.1 masks, DINO ViT-S/16 similarity."""

    backend = "xverse_ip"

    def __init__(self, detector: str | None = None, segmenter: str | None = None, dino: str | None = None,
                 device: str = "auto", batch_size: int = 8, dtype: str = "float32"):
        super().__init__([IPPart(detector, segmenter, dino, device, batch_size, dtype)])


@register_judge("xverse_aes")
class XVerseAESJudge(MetricJudge):
    """AES only: SigLIP so400m + the v2.5 head (``aes_head=aesthetic_predictor_v2_5.pth``), x 10."""

    backend = "xverse_aes"

    def __init__(self, aes_head: str | None = None, siglip: str | None = None, device: str = "auto",
                 batch_size: int = 16, aes_dtype: str = "bfloat16", aes_on: str = "auto"):
        super().__init__([AESPart(aes_head, siglip, device, batch_size, aes_dtype, aes_on)])


@register_judge("xversebench")
class XVerseBenchJudge(MetricJudge):
    """All four metrics (``metrics=dpg;id;ip;aes`` picks some); every part's arguments in one flat list."""

    def __init__(self, device: str = "auto", batch_size: int = 8, metrics: str = "dpg;id;ip;aes",
                 vqa: str = "mplug", vqa_model: str | None = None, vqa_args: Any = None,
                 face_weights: str | None = None, face_detector: str = "retinaface/resnet50", face_units: Any = None,
                 detector: str | None = None, segmenter: str | None = None, dino: str | None = None,
                 dtype: str = "float32", aes_head: str | None = None, siglip: str | None = None,
                 aes_dtype: str = "bfloat16", aes_on: str = "auto"):
        from micon_tasks.errors import ConfigError

        chosen = [m.strip().lower() for m in str(metrics).replace(",", ";").split(";") if m.strip()]
        unknown = sorted(set(chosen) - set(E.METRIC_KEYS))
        if unknown or not chosen:
            raise ConfigError(f"judge 'xversebench': metrics must name some of dpg;id;ip;aes, got {metrics!r}")
        build = {
            "dpg": lambda: DPGPart(vqa, vqa_model, vqa_args, device),
            "id": lambda: IDPart(face_detector, face_weights, device, 4 * batch_size, face_units),
            "ip": lambda: IPPart(detector, segmenter, dino, device, batch_size, dtype),
            "aes": lambda: AESPart(aes_head, siglip, device, 2 * batch_size, aes_dtype, aes_on),
        }
        super().__init__([build[m]() for m in E.METRIC_KEYS if m in chosen], batch_size)
