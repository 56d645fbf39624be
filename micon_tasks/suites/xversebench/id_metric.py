"""ID similarity: how well a generated image keeps each human reference's face (0-100 per entry).

Per generated image: detect faces, crop each box enlarged 1.3x about its centre, and in every crop
align the first face found onto the ArcFace template at 112 px; the same is done to the reference
crop. An entry (image, human reference) is the best cosine x 100 over the image's faces, where a crop
in which no face is found again counts 0 (as in the authors' evaluator). An image with no face scores
0 and is counted as "no face"; a reference with no detectable face is an error, not a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from micon_tasks.suites.xversebench.faces import IRSE, Face, align_face, expand_box, to_input

__all__ = ["FaceDetector", "FacerDetector", "ArcFaceEmbedder", "IDEntry", "score_id", "OFFICIAL_DETECTOR"]

OFFICIAL_DETECTOR = "retinaface/resnet50"


class FaceDetector(Protocol):
    def detect(self, images: Sequence[Any]) -> list[list[Face]]: ...

    def load(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class FacerDetector:
    """RetinaFace through ``pyfacer`` (``facer.face_detector``), the authors' detector; loaded once, lazily."""

    def __init__(self, name: str = OFFICIAL_DETECTOR, device: str = "cuda:0"):
        from micon_tasks.suites.xversebench.deps import require

        require("facer", what=f"the ID metric's face detector ({name})")
        self.name, self.device = name, device
        self._model: Any = None

    def load(self) -> None:
        if self._model is None:
            import facer

            self._model = facer.face_detector(self.name, device=self.device)

    def detect(self, images: Sequence[Any]) -> list[list[Face]]:
        import numpy as np
        import torch

        self.load()
        out = []
        for im in images:  # one at a time: generated images and crops differ in size
            x = torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1).unsqueeze(0).to(self.device)
            with torch.inference_mode():
                found = self._model(x)
            rects = found.get("rects") if found else None
            if rects is None or len(rects) == 0:
                out.append([])
                continue
            scores = found.get("scores")
            out.append([
                Face(tuple(r[:4]), tuple(map(tuple, p)), float(scores[i]) if scores is not None else 1.0)
                for i, (r, p) in enumerate(zip(rects.tolist(), found["points"].tolist()))
            ])
        return out

    def describe(self) -> dict[str, Any]:
        return {"detector": f"pyfacer:{self.name}"}


class ArcFaceEmbedder:
    """IR-SE50 with the user's ``model_ir_se50.pth`` (or ``micon-random``: seeded random weights, for tests)."""

    def __init__(self, weights: str | None, device: str = "cuda:0", *, batch_size: int = 32,
                 num_layers: int = 50, units: Sequence[int] | None = None):
        from micon_tasks.errors import ConfigError

        if not weights:
            raise ConfigError(
                "the ID metric needs the IR-SE50 weights: download model_ir_se50.pth (TreB1eN/InsightFace_Pytorch) "
                "and pass face_weights=/path/to/model_ir_se50.pth"
            )
        self.weights, self.device, self.batch_size = str(weights), device, batch_size
        self.num_layers, self.units = num_layers, units
        self._model: IRSE | None = None

    @property
    def random(self) -> bool:
        return self.weights == "micon-random"

    def load(self) -> IRSE:
        if self._model is None:
            import torch

            from micon_tasks.errors import ConfigError

            torch.manual_seed(0)
            model = IRSE(self.num_layers, units=self.units)
            if not self.random:
                try:
                    state = torch.load(self.weights, map_location="cpu", weights_only=True)
                except OSError as exc:
                    raise ConfigError(f"face_weights {self.weights!r}: cannot read ({exc.strerror or exc})") from None
                model.load_state_dict(state)
            self._model = model.to(self.device).eval()
        return self._model

    def embed(self, faces: Sequence[Any]) -> Any:
        """Unit-length embeddings (n, 512) of aligned 112x112 faces, computed in batches."""
        import torch

        model = self.load()
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(faces), self.batch_size):
                chunks.append(model(to_input(faces[i : i + self.batch_size]).to(self.device)).float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, 512)

    def describe(self) -> dict[str, Any]:
        return {"recognizer": "IR-SE50 (plain torch)", "weights": "micon-random (scores MEAN NOTHING)" if self.random
                else self.weights.rsplit("/", 1)[-1]}


@dataclass
class IDEntry:
    """One (generated image, human reference) result: value 0-100, or error; ``no_face`` when none was found."""

    image: int
    role: str
    value: float | None = None
    no_face: bool = False
    error: str | None = None


def _first_aligned(detector: FaceDetector, images: Sequence[Any]) -> list[Any | None]:
    """Each image's first detected face, aligned; None where there is none."""
    found = detector.detect(list(images)) if images else []
    return [align_face(im, faces[0]) if faces else None for im, faces in zip(images, found)]


def score_id(
    generated: Sequence[Any], references: Sequence[tuple[str, Any]], detector: FaceDetector, embedder: ArcFaceEmbedder
) -> list[IDEntry]:
    """All ID entries of one case: ``generated`` its N images, ``references`` its (role, human crop) pairs."""
    if not references:
        return []
    ref_faces = _first_aligned(detector, [im for _, im in references])
    per_image = detector.detect(list(generated))
    crops, owners = [], []
    for k, (im, faces) in enumerate(zip(generated, per_image)):
        for f in faces:
            crops.append(im.crop(tuple(round(v) for v in expand_box(f.box))))
            owners.append(k)
    crop_faces = _first_aligned(detector, crops)
    aligned = [f for f in ref_faces if f is not None] + [f for f in crop_faces if f is not None]
    emb = embedder.embed(aligned)
    ref_emb, pos = {}, 0
    for (role, _), f in zip(references, ref_faces):
        if f is not None:
            ref_emb[role], pos = emb[pos], pos + 1
    crop_emb: list[Any | None] = []
    for f in crop_faces:
        if f is None:
            crop_emb.append(None)
        else:
            crop_emb.append(emb[pos])
            pos += 1
    out = []
    for k in range(len(generated)):
        mine = [e for o, e in zip(owners, crop_emb) if o == k]
        for role, _ in references:
            if role not in ref_emb:
                out.append(IDEntry(k, role, error=f"no face found in the reference image {role}"))
            elif not any(e is not None for e in mine):
                out.append(IDEntry(k, role, value=0.0, no_face=True))
            else:  # a crop whose face is not found again counts 0, as in the authors' evaluator
                out.append(IDEntry(k, role, value=max(0.0 if e is None else 100.0 * float(e @ ref_emb[role]) for e in mine)))
    return out
