"""IP similarity: how well a generated image keeps each object / animal reference (0-100 per entry).

Per generated image and non-human reference: open-vocabulary detection of the reference's label
(Florence-2), a mask per box (SAM 2.1, box prompt), the masked pixels pasted on white and cropped to
the box; instances smaller than the size rule (area under (W//20)^2, or a side under (W//20)//4, with W
the image width) are dropped, the first 3 kept and padded square with white. The entry is the best DINO
ViT-S/16 CLS-token cosine x 100 between the reference and a kept instance; 0 when none is kept,
counted as "no object found".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from micon_tasks.devices import check_dtype_name, resolve_dtype

__all__ = [
    "ObjectDetector", "Segmenter", "FlorenceDetector", "Sam2Segmenter", "DinoEmbedder", "IPEntry",
    "instances", "pad_square", "dino_preprocess", "score_ip", "OFFICIAL_FLORENCE", "OFFICIAL_SAM", "OFFICIAL_DINO",
]

OFFICIAL_FLORENCE = "florence-community/Florence-2-large"  # transformers-native copy of microsoft/Florence-2-large
OFFICIAL_SAM = "facebook/sam2.1-hiera-large"
OFFICIAL_DINO = "facebook/dino-vits16"
MAX_INSTANCES = 3
TASK = "<OPEN_VOCABULARY_DETECTION>"


class ObjectDetector(Protocol):
    def detect(self, items: Sequence[tuple[Any, str]]) -> list[list[tuple[float, float, float, float]]]: ...

    def load(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class Segmenter(Protocol):
    def masks(self, image: Any, boxes: Sequence[Sequence[float]]) -> list[Any]: ...

    def load(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class _Pretrained:
    """A transformers model and its processor, loaded once from ``model_id`` (``load``) in ``dtype``."""

    def __init__(self, model: str, device: str, dtype: str):
        self.model_id, self.device = model, device
        self.dtype = check_dtype_name(dtype, what="judge argument dtype")
        self._model: Any = None
        self._processor: Any = None

    @property
    def _torch_dtype(self) -> Any:
        return resolve_dtype(self.dtype, self.device, what="judge argument dtype")

    def _classes(self) -> tuple[Any, Any]:
        """(model class, processor class)."""
        raise NotImplementedError

    def load(self) -> None:
        if self._model is None:
            model_cls, processor_cls = self._classes()
            self._processor = processor_cls.from_pretrained(self.model_id)
            self._model = model_cls.from_pretrained(self.model_id, dtype=self._torch_dtype).to(self.device).eval()


class FlorenceDetector(_Pretrained):
    """Florence-2 open-vocabulary detection (transformers' native class), batched, beam search 3."""

    def __init__(self, model: str = OFFICIAL_FLORENCE, device: str = "cuda:0", *, batch_size: int = 8,
                 dtype: str = "float32", num_beams: int = 3, max_new_tokens: int = 768):
        super().__init__(model, device, dtype)
        self.batch_size, self.num_beams, self.max_new_tokens = batch_size, num_beams, max_new_tokens

    def _classes(self) -> tuple[Any, Any]:
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        return Florence2ForConditionalGeneration, AutoProcessor

    def detect(self, items: Sequence[tuple[Any, str]]) -> list[list[tuple[float, float, float, float]]]:
        import torch

        self.load()
        out: list[list[tuple[float, float, float, float]]] = []
        for i in range(0, len(items), self.batch_size):
            chunk = items[i : i + self.batch_size]
            images = [im.convert("RGB") for im, _ in chunk]
            inputs = self._processor(text=[f"{TASK}{label}" for _, label in chunk], images=images, return_tensors="pt",
                                     padding=True).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self._torch_dtype)
            with torch.inference_mode():
                ids = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                           do_sample=False)
            texts = self._processor.batch_decode(ids, skip_special_tokens=False)
            out.extend(self.boxes(text, im.size) for text, im in zip(texts, images))
        return out

    def boxes(self, text: str, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """Pixel boxes (x1, y1, x2, y2) from a decoded reply (``<loc_N>`` tokens on a 1000-bin grid)."""
        parsed = self._processor.post_process_generation(text, task=TASK, image_size=size)[TASK]
        return [tuple(float(v) for v in b[:4]) for b in parsed.get("bboxes", [])]  # type: ignore[misc]

    def describe(self) -> dict[str, Any]:
        return {"detector": self.model_id, "task": TASK, "num_beams": self.num_beams}


class Sam2Segmenter(_Pretrained):
    """SAM 2.1 (transformers' ``Sam2Model``): one mask per box prompt, single-mask output."""

    def __init__(self, model: str = OFFICIAL_SAM, device: str = "cuda:0", *, dtype: str = "float32"):
        super().__init__(model, device, dtype)

    def _classes(self) -> tuple[Any, Any]:
        from transformers import Sam2Model, Sam2Processor

        return Sam2Model, Sam2Processor

    def masks(self, image: Any, boxes: Sequence[Sequence[float]]) -> list[Any]:
        import torch

        if not boxes:
            return []
        self.load()
        inputs = self._processor(images=image.convert("RGB"), input_boxes=[[list(map(float, b)) for b in boxes]],
                                 return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._torch_dtype)
        with torch.inference_mode():
            pred = self._model(**inputs, multimask_output=False).pred_masks
        masks = self._processor.post_process_masks(pred.float().cpu(), inputs["original_sizes"].cpu())[0]
        return [m[0].numpy().astype(bool) for m in masks]

    def describe(self) -> dict[str, Any]:
        return {"segmenter": self.model_id, "prompt": "box", "multimask_output": False}


def pad_square(image: Any) -> Any:
    """``image`` centred on a white square whose side is its longer side."""
    from PIL import Image

    side = max(image.size)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def instances(image: Any, boxes: Sequence[Sequence[float]], masks: Sequence[Any], *, min_size: int,
              keep: int = MAX_INSTANCES) -> list[Any]:
    """Masked-on-white crops of the boxes that pass the size rule, the first ``keep``, padded square."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"))
    out = []
    for box, mask in zip(boxes, masks):
        x1, y1, x2, y2 = (int(v) for v in np.round(np.asarray(box[:4], dtype=float)))
        x1, y1 = max(x1, 0), max(y1, 0)
        on_white = np.where(np.asarray(mask, dtype=bool)[..., None], rgb, 255).astype(np.uint8)
        crop = on_white[y1:y2, x1:x2]
        h, w = crop.shape[:2]
        if h * w < min_size * min_size or min(h, w) < min_size // 4:
            continue
        out.append(pad_square(Image.fromarray(crop)))
        if len(out) == keep:
            break
    return out


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def dino_preprocess(images: Sequence[Any], *, resize: int = 256, crop: int = 224) -> Any:
    """Shorter side to 256 (bicubic), centre crop 224, ImageNet normalisation: a (n, 3, 224, 224) tensor."""
    import numpy as np
    import torch
    from PIL import Image

    arrs = []
    for im in images:
        im = im.convert("RGB")
        w, h = im.size
        nw, nh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = int(round((nw - crop) / 2.0)), int(round((nh - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
        arrs.append((np.asarray(im, dtype=np.float32) / 255.0 - MEAN) / STD)
    return torch.from_numpy(np.stack(arrs).astype(np.float32)).permute(0, 3, 1, 2)


class DinoEmbedder:
    """DINO ViT-S/16 (``ViTModel``): unit-length CLS tokens, in batches."""

    def __init__(self, model: str = OFFICIAL_DINO, device: str = "cuda:0", *, batch_size: int = 32):
        self.model_id, self.device, self.batch_size = model, device, batch_size
        self._model: Any = None

    def load(self) -> None:
        if self._model is None:
            from transformers import ViTModel

            self._model = ViTModel.from_pretrained(self.model_id, add_pooling_layer=False).to(self.device).eval()

    def embed(self, images: Sequence[Any]) -> Any:
        import torch

        self.load()
        size = int(getattr(self._model.config, "image_size", 224))
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = dino_preprocess(images[i : i + self.batch_size], resize=size * 256 // 224, crop=size)
                cls = self._model(pixel_values=x.to(self.device)).last_hidden_state[:, 0].float().cpu()
                chunks.append(cls / cls.norm(dim=-1, keepdim=True))
        return torch.cat(chunks) if chunks else torch.zeros(0, 1)

    def describe(self) -> dict[str, Any]:
        return {"embedder": self.model_id, "feature": "CLS token", "preprocess": "resize 256 bicubic, crop 224"}


@dataclass
class IPEntry:
    image: int
    role: str
    value: float | None = None
    no_object: bool = False
    n_instances: int = 0
    error: str | None = None


def score_ip(generated: Sequence[Any], references: Sequence[tuple[str, Any, str]], detector: ObjectDetector,
             segmenter: Segmenter, embedder: DinoEmbedder) -> list[IPEntry]:
    """All IP entries of one case: ``generated`` its N images, ``references`` its (role, image, label) triples."""
    if not references:
        return []
    pairs = [(k, role, label) for k in range(len(generated)) for role, _, label in references]
    boxes = detector.detect([(generated[k], label) for k, _, label in pairs])
    found = []
    for (k, _, _), bx in zip(pairs, boxes):
        im = generated[k]
        found.append(instances(im, bx, segmenter.masks(im, bx), min_size=im.width // 20) if bx else [])
    flat = [im for _, im, _ in references] + [x for inst in found for x in inst]
    emb = embedder.embed(flat)
    ref_emb = {role: emb[i] for i, (role, _, _) in enumerate(references)}
    out, pos = [], len(references)
    for (k, role, _), inst in zip(pairs, found):
        if not inst:
            out.append(IPEntry(k, role, value=0.0, no_object=True))
            continue
        sims = [100.0 * float(emb[pos + j] @ ref_emb[role]) for j in range(len(inst))]
        pos += len(inst)
        out.append(IPEntry(k, role, value=max(sims), n_instances=len(inst)))
    return out
