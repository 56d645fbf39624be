"""The XVerseBench metric judges on the sample: entries per metric, failures kept per metric, start-up
checks, and DPG through a registered VLM judge (the tiny random hf judge in logits mode).

Every model here is a stub or has random weights: the tests check the plumbing and the arithmetic.
"""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image

from micon_tasks.errors import ConfigError
from micon_tasks.judges import JudgeRequest, load_judge
from micon_tasks.suites.xversebench.dpg import Answer
from micon_tasks.suites.xversebench.testing import build_tiny_dino, build_tiny_siglip, save_random_aes_head
from micon_tasks.task import load_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("xverse_models")
    save_random_aes_head(root / "head.pth")
    return {"dino": str(build_tiny_dino(root / "dino")), "siglip": str(build_tiny_siglip(root / "siglip")),
            "aes_head": str(root / "head.pth"), "face_weights": "micon-random", "face_units": "1-1-1-1",
            "face_detector": "micon-stub", "detector": "micon-stub", "segmenter": "micon-stub", "device": "cpu",
            "aes_dtype": "float32"}


class ScriptedVQA:
    """Answers 'yes' except to the questions listed."""

    exact = True

    def __init__(self, no=()):
        self.no, self.seen = set(no), []

    def answer(self, items):
        self.seen.extend(q for _, q in items)
        return [Answer(text="no" if q in self.no else "yes") for _, q in items]

    def describe(self):
        return {"vqa": "scripted"}


def _requests(task, n_images=4):
    out = []
    for case in task:
        images = [Image.new("RGB", (64, 64), (40 * k, 100, 150)) for k in range(n_images)]
        images[0] = case.refs[0].resize((64, 64))
        out.append(JudgeRequest(task=task.name, case=case, image=images[0], kind="metrics",
                                scoring=task.config.scoring, images=images))
    return out


@pytest.fixture(scope="module")
def judge(tiny):
    j = load_judge("xversebench", {**tiny, "vqa": "hf", "vqa_args": "pretrained=micon-tiny-random;mode=logits;device=cpu"})
    yield j
    j.close()


def test_composite_judge_reports_every_entry_of_every_metric(judge):
    multi = load_task("xversebench_multi", "sample")
    results = judge.judge_batch(_requests(multi))
    # multi_002: human + animal + object; 4 images; AES on the 2x2 grid
    got = Counter(v.checkpoint_id.split("/")[0] for v in results[2].verdicts)
    assert got == {"DPG": 4, "ID": 4, "IP": 8, "AES": 1}
    assert all(v.status == "scored" and 0.0 <= v.value <= 100.0 for r in results for v in r.verdicts
               if v.checkpoint_id.startswith("DPG"))
    assert results[2].details["aes_on"] == "grid" and set(results[2].details["dpg_answers"]["0"].values()) <= {"yes", "no"}
    prov = results[0].provenance
    assert prov["metrics"]["DPG"]["comparable"] is False
    assert any("not comparable" in n for n in prov["notes"]) and any("MEAN NOTHING" in n for n in prov["notes"])
    assert any("not comparable" in n for n in results[0].details["notes"])
    assert judge.kinds == ("metrics",)


def test_aes_is_scored_per_image_without_four_images(tiny):
    j = load_judge("xverse_aes", {k: tiny[k] for k in ("aes_head", "siglip", "device", "aes_dtype")})
    single = load_task("xversebench_single", "sample")
    res = j.judge_batch(_requests(single, n_images=2))[0]
    assert [v.checkpoint_id for v in res.verdicts] == ["AES/0", "AES/1"] and res.details["aes_on"] == "image"
    with pytest.raises(ConfigError, match="aes_on"):
        load_judge("xverse_aes", {**{k: tiny[k] for k in ("aes_head", "siglip", "device")}, "aes_on": "tiles"})


def test_dpg_gating_through_the_judge(tiny):
    j = load_judge("xverse_dpg", {"vqa": "hf", "vqa_args": {"pretrained": "micon-tiny-random", "mode": "logits",
                                                           "device": "cpu"}})
    single = load_task("xversebench_single", "sample")
    j.parts[0].vqa = ScriptedVQA(no={"Is there a woman?"})  # the root of questions 3 and 4
    res = j.judge_batch(_requests(single, n_images=1)[:1])[0]
    # 4 questions: 1 no, 2 yes, 3 and 4 gated by 1 -> 1 of 4
    assert [(v.checkpoint_id, v.value) for v in res.verdicts] == [("DPG/0", 25.0)]


def test_one_metric_failing_marks_only_its_entries(tiny):
    j = load_judge("xversebench", {**tiny, "metrics": "id;ip"})

    class Broken:
        def detect(self, items):
            raise RuntimeError("detector exploded")

        def describe(self):
            return {}

    j.parts[1].detector = Broken()
    multi = load_task("xversebench_multi", "sample")
    res = j.judge_batch(_requests(multi, n_images=2)[2:])[0]
    ip = [v for v in res.verdicts if v.checkpoint_id.startswith("IP")]
    assert len(ip) == 4 and all(v.status == "error" and "detector exploded" in v.error for v in ip)
    assert {v.status for v in res.verdicts if v.checkpoint_id.startswith("ID")} == {"scored"}


def test_a_request_without_images_is_all_errors_not_a_crash(tiny):
    j = load_judge("xversebench", {**tiny, "metrics": "aes"})
    case = load_task("xversebench_single", "sample")[0]
    res = j.judge_batch([JudgeRequest(task="xversebench_single", case=case, image=None, kind="metrics")])[0]
    assert [(v.checkpoint_id, v.status) for v in res.verdicts] == [("AES/all", "error")]


def test_official_models_need_their_packages_and_weights(tiny):
    import importlib.util

    if importlib.util.find_spec("modelscope") is None:
        with pytest.raises(ConfigError, match=r"pip install 'micon-bench\[xversebench\]'"):
            load_judge("xverse_dpg", {"device": "cpu"})
    if importlib.util.find_spec("facer") is None:
        with pytest.raises(ConfigError, match="pyfacer"):
            load_judge("xverse_id", {"face_weights": "w.pth", "device": "cpu"})
    with pytest.raises(ConfigError, match="model_ir_se50.pth"):
        load_judge("xverse_id", {"face_detector": "micon-stub", "device": "cpu"})
    with pytest.raises(ConfigError, match="metrics must name"):
        load_judge("xversebench", {**tiny, "metrics": "dpg;clip"})
    with pytest.raises(ConfigError, match="VLM judge"):
        load_judge("xverse_dpg", {"vqa": "xverse_aes"})
    with pytest.raises(ConfigError, match="aes_dtype: unknown dtype 'fp8'"):
        load_judge("xversebench", {**tiny, "metrics": "aes", "aes_dtype": "fp8"})
    with pytest.raises(ConfigError, match="judge argument dtype"):
        load_judge("xverse_ip", {"dtype": "int8", "device": "cpu"})


def test_aes_batches_across_cases_with_the_same_values_as_one_by_one(tiny):
    j = load_judge("xversebench", {**tiny, "metrics": "aes", "batch_size": 2})
    assert j.batch_size == 2  # the runner sends this many cases per call
    reqs = _requests(load_task("xversebench_multi", "sample"))
    together = [v.value for r in j.judge_batch(reqs) for v in r.verdicts]
    alone = [v.value for req in reqs for v in j.judge_batch([req])[0].verdicts]
    assert len(together) == 3 and together == pytest.approx(alone, abs=1e-4)
    calls = []
    real = j.parts[0].scorer.score

    def picky(pictures):
        calls.append(len(pictures))
        if len(pictures) > 1:
            raise RuntimeError("out of memory")
        return real(pictures)

    j.parts[0].scorer.score = picky
    assert [v.value for r in j.judge_batch(reqs) for v in r.verdicts] == pytest.approx(alone, abs=1e-4)
    assert calls == [3, 1, 1, 1]  # the batch failed, then each case alone


def test_load_brings_every_model_up_front_and_fails_in_one_line(tiny, tmp_path):
    from micon_tasks.judges.base import JudgeUnreachableError

    j = load_judge("xversebench", {**tiny, "metrics": "ip;aes"})
    j.load()  # the runner calls this when the judge stage starts
    assert j.parts[0].embedder._model is not None and j.parts[1].scorer._tower is not None
    (tmp_path / "empty").mkdir()
    broken = load_judge("xversebench", {**tiny, "metrics": "ip", "dino": str(tmp_path / "empty")})
    with pytest.raises(JudgeUnreachableError, match="cannot load the IP models") as err:
        broken.load()
    assert "\n" not in str(err.value)
