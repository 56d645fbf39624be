"""The ``hf`` judge end to end on a tiny random-weight Qwen2-VL built offline (TINY_MODELS.md 3).

Random weights produce noise: ``generate`` mode must then mark every checkpoint ``error`` (never a
pass or fail by accident), and ``logits`` mode must give real pass/fail verdicts through the real
processor and model, deterministically.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from PIL import Image

pytest.importorskip("torch", reason="the hf judge needs torch")
pytest.importorskip("transformers", reason="the hf judge needs transformers")

from micon_tasks import load_judge  # noqa: E402
from micon_tasks.judges import JudgeRequest  # noqa: E402
from micon_tasks.scoring import score_case  # noqa: E402
from micon_tasks.testing.tiny_vlm import build_tiny_qwen_vl  # noqa: E402
from micon_tasks.types import AnswerSet, Case, Checkpoint  # noqa: E402

CPS = [
    Checkpoint("A_check_1", "A", "Is the cat on the sofa?", True, "A"),
    Checkpoint("B_check_1", "B", "Is it the cat of RA?"),
    Checkpoint("G_check_1", "G", "Is the image clean?"),
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return str(build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny_qwen_vl"), seed=0))


def requests():
    def case(cid, story):
        return Case(
            task="story_generation" if story else "object_composition", case_id=cid,
            refs=[Image.new("RGB", (40, 30), "red"), Image.new("RGB", (28, 28), "blue")], ref_roles=["RA", "RB"],
            prompt="Cat on sofa.", goal="g", constraints_hard=["h"],
            answer_set=AnswerSet("bg", ("rests",), ("vanishes",)) if story else None,
        )

    return [
        JudgeRequest("object_composition", case("c1", False), Image.new("RGB", (32, 32), "green"), CPS, story=False),
        JudgeRequest("story_generation", case("s1", True), Image.new("RGB", (36, 28), "white"), CPS, story=True),
    ]


def test_generate_mode_random_weights_give_errors_never_verdicts(tiny_path):
    judge = load_judge("hf", pretrained=tiny_path, max_new_tokens=6, batch_size=2, device="cpu")
    res = judge.judge_batch(requests())
    assert len(res) == 2
    for r in res:
        assert [v.checkpoint_id for v in r.verdicts] == [c.id for c in CPS]
        assert all(v.status == "error" and v.error for v in r.verdicts)
        # The model ran and replied: these are parser verdicts on its text, not backend failures.
        assert isinstance(json.loads(r.raw)["checkpoints"], str)
        assert not any("failed" in v.error or "cannot" in v.error for v in r.verdicts), r.verdicts[0].error
    assert res[1].answer_set_status == "error" and res[1].answer_set_score is None
    prov = res[0].provenance
    assert prov["backend"] == "hf" and prov["model"] == tiny_path and prov["decoding"]["max_new_tokens"] == 6
    cs = score_case(CPS, res[1], case_id="s1", story=True)
    assert cs.score == 0.0 and cs.n_checkpoint_errors == 4


def test_logits_mode_gives_deterministic_pass_fail(tiny_path, tmp_path):
    args = {"pretrained": tiny_path, "mode": "logits", "batch_size": 4, "device": "cpu", "cache_path": str(tmp_path / "c.sqlite")}
    first = load_judge("hf", args).judge_batch(requests())
    for r in first:
        assert {v.status for v in r.verdicts} <= {"pass", "fail"}
        assert all("logits mode" in v.rationale for v in r.verdicts)
        assert r.provenance["cached"] is False and r.provenance["request_mode"] == "checkpoint"
    assert first[1].answer_set_status == "pass" and first[1].answer_set_score in {float(k) for k in range(11)}
    cs = score_case(CPS, first[1], case_id="s1", story=True)
    assert cs.clean and 0.0 <= cs.score <= 100.0
    # Reloaded from disk: the same verdicts, now from the cache ...
    cached = load_judge("hf", args).judge_batch(requests())
    assert [r.provenance["cached"] for r in cached] == [True, True]
    assert [[asdict(v) for v in r.verdicts] for r in cached] == [[asdict(v) for v in r.verdicts] for r in first]
    # ... and recomputed without it (the model is deterministic).
    fresh = load_judge("hf", {**args, "cache_path": None}).judge_batch(requests())
    assert [[asdict(v) for v in r.verdicts] for r in fresh] == [[asdict(v) for v in r.verdicts] for r in first]
    assert fresh[1].answer_set_score == first[1].answer_set_score


def _case_req(cid, *, story=False, color="green", answer_set=True):
    case = Case(
        task="story_generation" if story else "object_composition", case_id=cid,
        refs=[Image.new("RGB", (40, 30), "red"), Image.new("RGB", (28, 28), "blue")], ref_roles=["RA", "RB"],
        prompt=f"Cat on sofa, case {cid}.", goal="g", constraints_hard=["h"],
        answer_set=AnswerSet("bg", ("rests",), ("vanishes",)) if story and answer_set else None,
    )
    return JudgeRequest(case.task, case, Image.new("RGB", (32, 32), color), CPS, story=story)


def _raws(results):
    return [json.loads(r.raw) for r in results]


def _count_generate_calls(judge):
    judge._load()
    calls = []
    real = judge._model.generate

    def spy(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return real(*args, **kwargs)

    judge._model.generate = spy
    return calls


def test_sampled_reply_does_not_depend_on_batch_mates(tiny_path):
    """Determinism rule at temperature > 0: a case's sampled reply is the same alone and inside any batch."""
    args = {"pretrained": tiny_path, "device": "cpu", "temperature": 1.0, "max_new_tokens": 8, "batch_size": 4, "reask": 0}
    judge = load_judge("hf", args)
    calls = _count_generate_calls(judge)
    target = _case_req("c7", story=True)
    (alone,) = judge.judge_batch([target])
    assert calls == [1, 1]  # checkpoints + answer set, one prompt per sampled generate call
    mates = [_case_req("m1", color="white"), target, _case_req("m2", story=True, color="black"), _case_req("m3")]
    batched = load_judge("hf", args).judge_batch(mates)
    assert _raws([alone]) == _raws([batched[1]])
    # Order within the batch does not matter either, nor the batch size.
    shuffled = load_judge("hf", {**args, "batch_size": 3}).judge_batch(mates[::-1])
    assert _raws(batched) == _raws(shuffled[::-1])
    # The seed really drives the sampling: another judge seed gives other replies.
    reseeded = load_judge("hf", {**args, "seed": 1}).judge_batch(mates)
    assert _raws(reseeded) != _raws(batched)
    # Different cases (and the two prompts of a story case) do not share one random stream.
    texts = [r["checkpoints"] for r in _raws(batched)] + [_raws(batched)[1]["answer_set"]]
    assert len(set(texts)) > 1
    prov = alone.provenance["decoding"]
    assert prov["temperature"] == 1.0 and prov["seed"] == 0 and "per request" in prov["seed_rule"]


def test_sampling_leaves_torch_global_rng_alone(tiny_path):
    import torch

    judge = load_judge("hf", pretrained=tiny_path, device="cpu", temperature=1.0, max_new_tokens=4)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    judge.judge_batch([_case_req("c1")])
    assert torch.equal(torch.rand(3), expected)


def test_greedy_generation_stays_batched(tiny_path):
    judge = load_judge("hf", pretrained=tiny_path, device="cpu", max_new_tokens=4, batch_size=4, reask=0)
    calls = _count_generate_calls(judge)
    res = judge.judge_batch([_case_req(f"c{i}") for i in range(4)] + [_case_req("s", story=True)])
    assert calls == [4, 2] and len(res) == 5
    assert "seed" not in res[0].provenance["decoding"]  # greedy: nothing random to seed


def test_story_case_without_answer_set_keeps_its_checkpoint_verdicts(tiny_path):
    judge = load_judge("hf", pretrained=tiny_path, device="cpu", mode="logits", batch_size=4)
    full, none = judge.judge_batch([_case_req("s1", story=True), _case_req("s1", story=True, answer_set=False)])
    assert {v.status for v in none.verdicts} <= {"pass", "fail"}
    assert [asdict(v) for v in none.verdicts] == [asdict(v) for v in full.verdicts]
    assert none.answer_set_status == "error" and none.answer_set_score is None
    assert "case has no answer set" in none.details["answer_set_error"]
    assert full.answer_set_status == "pass"
    cs = score_case(CPS, none, case_id="s1", story=True)
    assert not cs.clean and cs.n_checkpoint_errors == 1


def test_unloadable_model_marks_every_case():
    judge = load_judge("hf", pretrained="/nonexistent/tiny", device="cpu")
    res = judge.judge_batch(requests())
    assert all(v.status == "error" and "cannot load judge model" in v.error for r in res for v in r.verdicts)


def test_tiny_build_is_seeded(tmp_path, tiny_path):
    import torch
    from safetensors.torch import load_file

    again = build_tiny_qwen_vl(tmp_path / "again", seed=0)
    other = build_tiny_qwen_vl(tmp_path / "other", seed=1)
    a, b, c = (load_file(f"{p}/model.safetensors") for p in (tiny_path, again, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_the_tiny_judge_name_builds_once_and_judges_from_python(fresh_cache):
    """``pretrained=micon-tiny-random`` works wherever the hf judge is loaded, not only through the runner."""
    judge = load_judge("hf", "pretrained=micon-tiny-random,mode=logits")
    (result,) = judge.judge_batch(requests()[:1])
    assert {v.status for v in result.verdicts} <= {"pass", "fail"}
    assert (fresh_cache / "models" / "micon-tiny-random" / "config.json").exists()
    assert judge.provenance()["model"] == "micon-tiny-random"  # the name, not this machine's cache path


def test_preflight_and_load_fail_in_one_line(tmp_path, monkeypatch):
    from micon_tasks.judges.base import JudgeUnreachableError

    with pytest.raises(JudgeUnreachableError, match="has no config.json"):
        load_judge("hf", pretrained=str(tmp_path / "missing")).preflight()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(JudgeUnreachableError, match="not in the Hugging Face cache and the Hub is offline"):
        load_judge("hf", pretrained="some-org/not-cached-vlm").preflight()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    judge = load_judge("hf", pretrained=str(broken), device="cpu")
    judge.preflight()  # resolvable: a local folder with a config
    with pytest.raises(JudgeUnreachableError, match="cannot load judge model") as err:
        judge.load()
    assert "\n" not in str(err.value)
    loads = []
    monkeypatch.setattr(judge, "_load", lambda: loads.append(1))
    (res,) = judge.judge_batch(requests()[:1])  # the failure is remembered: no reload per batch
    assert loads == [] and all("cannot load judge model" in v.error for v in res.verdicts)


def test_missing_pretrained_is_one_line():
    from micon_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="judge 'hf' needs the argument 'pretrained'"):
        load_judge("hf")


def test_prompt_options_fit_references_for_the_model(tiny_path):
    judge = load_judge("hf", pretrained=tiny_path, device="cpu", image_format="jpeg", max_image_pixels=1024)
    from micon_tasks.judges.kinds import request_kind

    req = requests()[0]
    (p,) = request_kind("checkpoints").render(req, judge)
    p.options = {"max_ref_pixels": 256, "ref_multiple": 16}
    sizes = [im.size for im in judge._images(p)]
    assert sizes == [(16, 16), (16, 16), (32, 32)]  # refs to 256 px in multiples of 16; output within 1024
    assert judge.provenance()["images"]["format"] == "jpeg"
