"""The ``metrics`` scoring kind: XVerseBench's pooled metric means, split AVG and Overall.

A case's CaseScore carries, per metric, the sum and count of its scored entries (``extra``), so a task
pools entries over all its cases as the authors do: DPG over generated images, ID over (image, human
reference) pairs, IP over (image, object/animal reference) pairs, AES over pictures (a case's 2x2 grid,
or its images). An entry the judge could not compute (``error``) is left out of the mean and counted;
a case with no generated image scores 0 on every entry it owed (as MICON counts a missing image) and is
counted as failed. "No face" and "no object found" entries score 0, as in the authors' evaluator, and are
counted.
"""

from __future__ import annotations

import math
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.scoring import ScoringKind
from micon_tasks.scoring.common import check_unique_cases, mean_stderr, task_seed
from micon_tasks.suites.xversebench import entries as E
from micon_tasks.suites.xversebench.aggregate import bootstrap_avg_stderr, overall, pooled_mean, split_avg
from micon_tasks.types import CaseScore, JudgeResult

__all__ = ["MetricsKind"]

OPTIONS = ("metrics",)


def _zero() -> dict[str, Any]:
    return {m: 0 for m in E.METRICS}


class MetricsKind(ScoringKind):
    name = "metrics"
    per_image = False  # one request carries all of a case's images: entries are pooled over them

    def check_options(self, options: dict[str, Any], *, task: str) -> None:
        if "split" in options:  # one declaration: a second one could name another split than the data read
            raise ConfigError(f"task {task!r}, field 'scoring.split': the split is the card's dataset_name "
                              "(the data read and the results label both follow it); remove scoring.split")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"task {task!r}, field 'scoring': kind 'metrics' takes {', '.join(OPTIONS)}, not {unknown}")
        metrics = options.get("metrics", list(E.METRIC_KEYS))
        if not isinstance(metrics, list) or not metrics or any(m not in E.METRIC_KEYS for m in metrics):
            raise ConfigError(f"task {task!r}, field 'scoring.metrics': a list of {', '.join(E.METRIC_KEYS)}, got {metrics!r}")

    # -- cases ------------------------------------------------------------------------------------
    def score_case(self, task: Any, result: JudgeResult | None, *, case_id: str,
                   failure_reason: str | None = None) -> CaseScore:
        sums, counts, errors = _zero(), _zero(), _zero()
        extra: dict[str, Any] = {"no_face": 0, "no_object": 0}
        if result is None:
            if not failure_reason:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: no judge result and no failure_reason")
            n = int(task.num_images)  # this run's image count (--num_images may differ from the card's)
            subjects = [E.Subject(E.ROLES[i], t, "") for i, t in enumerate(task.subject_types(case_id))]
            for m, ids in E.expected_entries(subjects, n, grid=E.aes_grid(n, "auto")).items():
                counts[m] = len(ids)  # owed entries score 0
            dims = {m: 0.0 for m in E.METRICS if counts[m]}
            extra.update(sums=sums, counts=counts, errors=errors, failed_entries=sum(counts.values()))
            return CaseScore(case_id, 0.0, dims, 0, clean=False, reason=failure_reason, extra=extra)
        for v in result.verdicts:
            try:
                metric, _, _ = E.parse_entry_id(v.checkpoint_id)
            except ValueError as exc:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: {exc}") from None
            if v.status == "error":
                errors[metric] += 1
            elif v.status == "scored":
                if v.value is None or not math.isfinite(float(v.value)):
                    raise ValueError(f"task {task.name!r}, case {case_id!r}: entry {v.checkpoint_id!r} has no number")
                sums[metric] += float(v.value)
                counts[metric] += 1
                extra["no_face"] += v.rationale == E.NO_FACE
                extra["no_object"] += v.rationale == E.NO_OBJECT
            else:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: entry {v.checkpoint_id!r} has status {v.status!r}")
        dims = {m: sums[m] / counts[m] for m in E.METRICS if counts[m]}
        n_err = sum(errors.values())
        extra.update(sums=sums, counts=counts, errors=errors, aes_on=result.details.get("aes_on"),
                     n_images=result.details.get("n_images"),
                     notes=list(result.details.get("notes") or []))
        score = sum(dims.values()) / len(dims) if dims else 0.0
        return CaseScore(case_id, score, dims, n_err, clean=n_err == 0, extra=extra)

    # -- a task (one split) -------------------------------------------------------------------------
    def summarise_task(self, task: Any, scores: list[CaseScore], *, seed: int) -> dict[str, Any]:
        check_unique_cases(task.name, scores)
        sums, counts, errors = _zero(), _zero(), _zero()
        for c in scores:
            for m in E.METRICS:
                sums[m] += c.extra["sums"][m]
                counts[m] += c.extra["counts"][m]
                errors[m] += c.extra["errors"][m]
        metrics = {m: pooled_mean(sums[m], counts[m]) for m in E.METRICS}
        avg = split_avg(metrics)
        stderr = bootstrap_avg_stderr([c.extra["sums"] for c in scores], [c.extra["counts"] for c in scores],
                                      seed=task_seed(seed, task.name)) if avg is not None else None
        aes_on = sorted({c.extra.get("aes_on") for c in scores if c.extra.get("aes_on")})
        notes = sorted({n for c in scores for n in c.extra.get("notes") or []})
        return {
            "kind": self.name,
            "split": task.split,  # the card's dataset_name: the split the task read
            "score": avg, "stderr": stderr, "avg": avg, "metrics": metrics, "dimensions": metrics,
            "n_cases": len(scores),
            "n_cases_clean": sum(1 for c in scores if c.clean),
            "n_failed": sum(1 for c in scores if c.failed),
            "n_checkpoint_errors": sum(errors.values()),
            "entries": counts,
            "counts": {"no_face": sum(c.extra.get("no_face", 0) for c in scores),
                       "no_object": sum(c.extra.get("no_object", 0) for c in scores),
                       "errors": errors, "failed": sum(1 for c in scores if c.failed)},
            "num_images": int(task.config.num_images),  # what the card asks for ...
            "images_per_case": sorted({c.extra["n_images"] for c in scores if c.extra.get("n_images")}),  # ... and got
            "aes_on": aes_on,
            "notes": notes,
        }

    # -- the suite ------------------------------------------------------------------------------------
    def summarise_suite(self, suite: dict[str, Any], blocks: dict[str, dict[str, Any]],
                        scores: dict[str, list[CaseScore]], *, seed: int) -> dict[str, Any]:
        names = [t for t in suite.get("tasks", []) if t in blocks] or list(blocks)
        complete = len(names) == len(suite.get("tasks", names))
        # one split alone has no Overall: its AVG is the headline, named as such
        name = "Overall" if complete and len(names) > 1 else "AVG (" + ", ".join(blocks[t]["split"] for t in names) + ")"
        head = {"name": name, "value": overall([blocks[t]["avg"] for t in names]),
                "stderr": mean_stderr([blocks[t]["stderr"] for t in names])}
        columns, row = [], []
        for t in names:
            split = blocks[t]["split"]
            columns += [f"{m} ({split})" for m in E.METRICS] + [f"AVG ({split})"]
            row += [blocks[t]["metrics"][m] for m in E.METRICS] + [blocks[t]["avg"]]
        if head["name"] == "Overall":
            columns.append("Overall")
            row.append(head["value"])
        return {
            "kind": self.name,
            "title": suite.get("title", suite.get("group")),
            "tasks": names,
            "headline": head,
            "views": {"splits": {blocks[t]["split"]: {"task": t, "metrics": blocks[t]["metrics"], "avg": blocks[t]["avg"],
                                                      "stderr": blocks[t]["stderr"]} for t in names}},
            "counts": {blocks[t]["split"]: {"n_cases": blocks[t]["n_cases"], **blocks[t]["counts"],
                                            "entries": blocks[t]["entries"]} for t in names},
            "aes_on": {blocks[t]["split"]: blocks[t]["aes_on"] for t in names},
            "notes": sorted({n for t in names for n in blocks[t]["notes"]}),
            "table": {"columns": columns, "rows": [row]},
        }

    def markdown(self, suite_block: dict[str, Any], *, model: str) -> str:
        from micon_tasks.runner.report import suite_table

        lines = [suite_table(suite_block, model=model)]
        for split, c in suite_block["counts"].items():
            errs = sum(c["errors"].values())
            lines.append(f"- {split}: {c['n_cases']} cases; {c['no_face']} of {c['entries']['ID']} ID entries found no face, "
                         f"{c['no_object']} of {c['entries']['IP']} IP entries found no object (each scored 0, as the "
                         f"authors score them); {errs} metric entries could not be computed (left out, counted); "
                         f"{c['failed']} cases had no image (scored 0)")
        for split, modes in suite_block.get("aes_on", {}).items():
            if "image" in modes:
                lines.append(f"- {split}: AES scored per image, not on the authors' 2x2 grid of four images: "
                             "not comparable with published AES")
        if suite_block["headline"]["name"] != "Overall":
            lines.append("- Overall needs both splits; this run has " + ", ".join(suite_block["views"]["splits"]))
        lines += [f"- {n}" for n in suite_block.get("notes", [])]
        return "\n".join(lines) + "\n"
