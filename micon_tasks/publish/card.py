"""The dataset card (README.md): YAML front matter the Hub reads, and a body people read.

The front matter declares one ``configs:`` entry per task (``data/<task>/*.parquet``) plus ``all``
(``data/*/*.parquet``, the default), ``dataset_info`` with the project's features for each, the
licence, task categories and a pretty name. The body comes from ``dataset_card.md.jinja``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from micon_tasks.data.sources import features
from micon_tasks.publish.collect import Collection
from micon_tasks.publish.errors import PublishError
from micon_tasks.publish.write import SPLIT

__all__ = ["PRETTY_NAME", "TASK_CATEGORIES", "card_data", "render_card"]

PRETTY_NAME = "MICON-Bench"
TASK_CATEGORIES = ["image-to-image", "text-to-image"]
ALL_CONFIG = "all"


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < bound:
            return label
    return "100K<n<1M"


def card_data(collection: Collection, shards: dict[str, list[str]], out: Path, *, license: str) -> Any:
    """``huggingface_hub.DatasetCardData`` for the folder ``out`` that write.py filled."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from huggingface_hub import DatasetCardData

    def info(n_cases: int, files: list[str]) -> DatasetInfo:
        size = sum((out / f).stat().st_size for f in files)
        split = SplitInfo(name=SPLIT, num_bytes=size, num_examples=n_cases)
        return DatasetInfo(features=features(), splits=SplitDict({SPLIT: split}), download_size=size, dataset_size=size)

    all_files = [f for t in collection.tasks for f in shards[t.name]]
    total = sum(len(t.records) for t in collection.tasks)
    infos = DatasetInfosDict({ALL_CONFIG: info(total, all_files)})
    configs: list[dict[str, Any]] = [
        {"config_name": ALL_CONFIG, "default": True, "data_files": [{"split": SPLIT, "path": "data/*/*.parquet"}]}
    ]
    for t in collection.tasks:
        name = t.config.config_name
        configs.append({"config_name": name, "data_files": [{"split": SPLIT, "path": f"data/{name}/*.parquet"}]})
        infos[name] = info(len(t.records), shards[t.name])
    data = DatasetCardData(
        license=license,
        pretty_name=PRETTY_NAME,
        language=["en"],
        task_categories=TASK_CATEGORIES,
        size_categories=[_size_category(total)],
        tags=["benchmark", "multi-image", "image-generation", "evaluation"],
        configs=configs,
    )
    infos.to_dataset_card_data(data)
    return data


def _license_text(license: str) -> str:
    if license in ("unknown", "other"):
        return (
            f"Licence id `{license}`: the authors have not stated a licence for the images and task cards. "
            "Check with them before redistributing the data."
        )
    return f"Published under `{license}` (as declared by the maintainer who ran `micon publish`)."


def render_card(collection: Collection, shards: dict[str, list[str]], out: Path, *, repo_id: str, license: str,
                version: str, checkpoints: dict[str, int]) -> str:
    """The full README.md text; the front matter is checked to parse back as a dataset card."""
    import jinja2
    from huggingface_hub import DatasetCard

    data = card_data(collection, shards, out, license=license)
    tasks = []
    for t in collection.tasks:
        counts = sorted({len(r["refs"]) for r in t.records}) or [0]
        refs_range = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
        tasks.append({
            "name": t.config.config_name,
            "official_folder": t.config.official_folder,
            "num_cases": len(t.records),
            "num_refs": t.n_refs,
            "refs_range": refs_range,
            "num_checkpoints": checkpoints[t.name],
        })
    hard_caps = {t.config.scoring.hard_cap for t in collection.tasks} or {0.4}
    template = resources.files("micon_tasks.publish").joinpath("dataset_card.md.jinja").read_text("utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    text = env.from_string(template).render(
        card_data=data.to_yaml(),
        pretty_name=PRETTY_NAME,
        repo_id=repo_id,
        version=version,
        split=SPLIT,
        tasks=tasks,
        total_cases=sum(t["num_cases"] for t in tasks),
        total_refs=sum(t["num_refs"] for t in tasks),
        hard_cap=", ".join(str(c) for c in sorted(hard_caps)),
        license_text=_license_text(license),
    )
    parsed = DatasetCard(text)  # raises if the front matter is not valid YAML
    if len(parsed.data.to_dict().get("configs") or []) != len(tasks) + 1:
        raise PublishError("the rendered dataset card lost its configs: check dataset_card.md.jinja")
    return text
