"""One XVerseBench metric as a part a judge runs: it turns (case, generated images) into entry verdicts.

Each part builds its models from judge arguments (official ids as defaults), checks its optional
dependencies and required weight files when built (so a run fails at start-up, with the pip command),
and loads its models on the given device on first use, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from micon_tasks.devices import resolve_device
from micon_tasks.images import to_rgb
from micon_tasks.suites.xversebench import entries as E
from micon_tasks.types import Case, Verdict

__all__ = ["MetricPart", "DPGPart", "IDPart", "IPPart", "AESPart", "STUB"]

STUB = "micon-stub"  # stand-in detectors/segmenters for tests and the offline demo: scores MEAN NOTHING


def _scored(cid: str, value: float, note: str | None = None) -> Verdict:
    return Verdict(cid, "scored", raw=f"{value:.4f}", rationale=note, value=float(value))  # type: ignore[call-arg]


class MetricPart:
    metric: str = ""

    def score(self, case: Case, images: list[Any]) -> tuple[list[Verdict], dict[str, Any]]:
        raise NotImplementedError

    def score_many(self, items: list[tuple[Case, list[Any]]]) -> list[tuple[list[Verdict], dict[str, Any]] | Exception]:
        """Every case's result, or the exception that case raised (never raised for one case)."""
        out: list[tuple[list[Verdict], dict[str, Any]] | Exception] = []
        for case, images in items:
            try:
                out.append(self.score(case, images))
            except Exception as exc:  # noqa: BLE001 - reported on that case's entries
                out.append(exc)
        return out

    def components(self) -> list[Any]:
        """The models (or stand-ins) this part runs, each with ``load()``."""
        raise NotImplementedError

    def load(self) -> None:
        for component in self.components():
            component.load()

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


class DPGPart(MetricPart):
    metric = "DPG"

    def __init__(self, vqa: str = "mplug", vqa_model: str | None = None, vqa_args: Mapping[str, Any] | str | None = None,
                 device: str = "auto"):
        from micon_tasks.suites.xversebench import dpg

        if vqa == "mplug":
            self.vqa: Any = dpg.MplugVQA(vqa_model or dpg.OFFICIAL_VQA, resolve_device(device))
        else:
            self.vqa = dpg.JudgeVQA(vqa, vqa_args)

    def score(self, case: Case, images: list[Any]) -> tuple[list[Verdict], dict[str, Any]]:
        from micon_tasks.suites.xversebench.dpg import image_dpg, is_yes, questions_of

        questions = questions_of(case)
        answers = self.vqa.answer([(im, q.text) for im in images for q in questions])
        out, record = [], {}
        for k in range(len(images)):
            mine = answers[k * len(questions) : (k + 1) * len(questions)]
            record[str(k)] = {q.id: a.text if a.error is None else None for q, a in zip(questions, mine)}
            errors = [f"question {q.id}: {a.error}" for q, a in zip(questions, mine) if a.error is not None]
            cid = E.entry_id("DPG", k)
            if errors:
                out.append(Verdict(cid, "error", error="; ".join(errors)))
                continue
            yes = {q.id: is_yes(a.text, exact=self.vqa.exact) for q, a in zip(questions, mine)}
            out.append(_scored(cid, image_dpg(questions, yes)))
        return out, {"dpg_answers": record}

    def components(self) -> list[Any]:
        return [self.vqa]

    def describe(self) -> dict[str, Any]:
        return self.vqa.describe()


class IDPart(MetricPart):
    metric = "ID"

    def __init__(self, face_detector: str = "retinaface/resnet50", face_weights: str | None = None,
                 device: str = "auto", batch_size: int = 32, face_units: Any = None):
        from micon_tasks.suites.xversebench.id_metric import ArcFaceEmbedder, FacerDetector

        dev = resolve_device(device)
        if face_detector == STUB:
            from micon_tasks.suites.xversebench.testing import StubFaceDetector

            self.detector: Any = StubFaceDetector()
        else:
            self.detector = FacerDetector(face_detector, dev)
        units = tuple(int(u) for u in str(face_units).split("-")) if face_units else None  # tests: e.g. 1-1-1-1
        self.embedder = ArcFaceEmbedder(face_weights, dev, batch_size=batch_size, units=units)

    def score(self, case: Case, images: list[Any]) -> tuple[list[Verdict], dict[str, Any]]:
        from micon_tasks.suites.xversebench.id_metric import score_id

        refs = [(s.role, to_rgb(ref)) for s, ref in zip(E.subjects_of(case), case.refs) if s.is_human]
        out, n_none = [], 0
        for e in score_id(images, refs, self.detector, self.embedder):
            cid = E.entry_id("ID", e.image, e.role)
            if e.error is not None:
                out.append(Verdict(cid, "error", error=e.error))
            else:
                n_none += e.no_face
                out.append(_scored(cid, e.value or 0.0, E.NO_FACE if e.no_face else None))
        return out, {"no_face": n_none}

    def components(self) -> list[Any]:
        return [self.detector, self.embedder]

    def describe(self) -> dict[str, Any]:
        return {**self.detector.describe(), **self.embedder.describe(), "box_expand": 1.3}


class IPPart(MetricPart):
    metric = "IP"

    def __init__(self, detector: str | None = None, segmenter: str | None = None, dino: str | None = None,
                 device: str = "auto", batch_size: int = 8, dtype: str = "float32"):
        from micon_tasks.suites.xversebench import ip_metric as ip

        dev = resolve_device(device)
        from micon_tasks.suites.xversebench import testing

        self.detector: Any = testing.StubObjectDetector() if detector == STUB else ip.FlorenceDetector(
            detector or ip.OFFICIAL_FLORENCE, dev, batch_size=batch_size, dtype=dtype)
        self.segmenter: Any = testing.StubSegmenter() if segmenter == STUB else ip.Sam2Segmenter(
            segmenter or ip.OFFICIAL_SAM, dev, dtype=dtype)
        self.embedder = ip.DinoEmbedder(dino or ip.OFFICIAL_DINO, dev, batch_size=4 * batch_size)

    def score(self, case: Case, images: list[Any]) -> tuple[list[Verdict], dict[str, Any]]:
        from micon_tasks.suites.xversebench.ip_metric import score_ip

        refs = [(s.role, to_rgb(ref), s.label) for s, ref in zip(E.subjects_of(case), case.refs) if not s.is_human]
        out, n_none = [], 0
        for e in score_ip(images, refs, self.detector, self.segmenter, self.embedder):
            n_none += e.no_object
            out.append(_scored(E.entry_id("IP", e.image, e.role), e.value or 0.0, E.NO_OBJECT if e.no_object else None))
        return out, {"no_object": n_none}

    def components(self) -> list[Any]:
        return [self.detector, self.segmenter, self.embedder]

    def describe(self) -> dict[str, Any]:
        return {**self.detector.describe(), **self.segmenter.describe(), **self.embedder.describe(),
                "min_size": "image width // 20", "max_instances": 3}


class AESPart(MetricPart):
    metric = "AES"

    def __init__(self, aes_head: str | None = None, siglip: str | None = None, device: str = "auto",
                 batch_size: int = 16, aes_dtype: str = "bfloat16", aes_on: str = "auto"):
        from micon_tasks.errors import ConfigError
        from micon_tasks.suites.xversebench.aes import OFFICIAL_SIGLIP, AestheticScorer

        if aes_on not in E.AES_ON:  # refused now, not on the first case
            raise ConfigError(f"judge argument aes_on must be 'auto', 'grid' or 'image', got {aes_on!r}")
        self.aes_on = aes_on
        self.scorer = AestheticScorer(aes_head, siglip or OFFICIAL_SIGLIP, resolve_device(device),
                                      batch_size=batch_size, dtype=aes_dtype)

    def _pictures(self, images: list[Any]) -> tuple[list[str], list[Any], str]:
        from micon_tasks.suites.xversebench.aes import tile_grid

        grid = E.aes_grid(len(images), self.aes_on)
        ids = E.expected_entries([], len(images), grid=grid)["AES"]
        return ids, [tile_grid(images)] if grid else list(images), "grid" if grid else "image"

    def score(self, case: Case, images: list[Any]) -> tuple[list[Verdict], dict[str, Any]]:
        ids, pictures, mode = self._pictures(images)
        return [_scored(cid, v) for cid, v in zip(ids, self.scorer.score(pictures))], {"aes_on": mode}

    def score_many(self, items: list[tuple[Case, list[Any]]]) -> list[tuple[list[Verdict], dict[str, Any]] | Exception]:
        """All cases' pictures through SigLIP together; if that fails, case by case to find the culprit."""
        try:
            prepared = [self._pictures(images) for _, images in items]
            values = self.scorer.score([p for _, pics, _ in prepared for p in pics])
        except Exception:  # noqa: BLE001
            return super().score_many(items)
        out: list[tuple[list[Verdict], dict[str, Any]] | Exception] = []
        pos = 0
        for ids, _, mode in prepared:
            out.append(([_scored(cid, v) for cid, v in zip(ids, values[pos : pos + len(ids)])], {"aes_on": mode}))
            pos += len(ids)
        return out

    def components(self) -> list[Any]:
        return [self.scorer]

    def describe(self) -> dict[str, Any]:
        return {**self.scorer.describe(), "aes_on": self.aes_on}
