"""`micon run --tasks micon,omnicontext` end to end on the bundled samples with a loopback judge: one
results.json with both suites, MICON's figures unchanged by the second suite, a rerun that asks nothing,
and a malformed reply counted as an error, never as a number."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import test_omnicontext_helpers as oc
from fake_judge_server import FakeJudgeServer, prompt_text

from micon_tasks.cli import main

pytestmark = pytest.mark.slow  # two full sample runs at 1024 x 1024 (about 30 s)

N_OMNI = 16  # 8 types x 2 English items in the sample (one more item is filtered)
MICON_TASKS = ["object_composition", "spatial_composition", "attribute_disentanglement", "component_transfer",
               "fgbg_composition", "story_generation"]


class Recorder:
    """The scripted rubric judge, recording which criterion of which item each request asked."""

    def __init__(self, responder=oc.rubric_reply):
        self.responder = responder
        self.asked: list[tuple[str | None, str | None]] = []
        self.mimes: set[str] = set()
        self.temperatures: set = set()

    def __call__(self, body, seen):
        text = prompt_text(body)
        self.asked.append((oc.criterion_of(text), oc.instruction_of(text)))
        if oc.criterion_of(text):
            parts = body["messages"][0]["content"]
            self.mimes.update(p["image_url"]["url"].split(";", 1)[0] for p in parts if p["type"] == "image_url")
            self.temperatures.add(body.get("temperature", "server default"))
        return self.responder(body, seen)


@pytest.fixture(scope="module")
def judge():
    rec = Recorder()
    with FakeJudgeServer(rec) as srv:
        yield srv, rec


def _run(out: Path, srv, tasks: str, *extra: str) -> dict:
    argv = ["run", "--model", "collage", "--tasks", tasks, "--source", "sample", "--judge", "openai",
            "--judge_args", f"base_url={srv.base_url},model=fake-judge,max_retries=0", "--output_path", str(out),
            "--no_progress", *extra]
    assert main(argv) == 0
    return json.loads((out / "collage" / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, judge):
    srv, rec = judge
    both_dir, micon_dir = tmp_path_factory.mktemp("both"), tmp_path_factory.mktemp("micon")
    n0 = len(rec.asked)
    both = _run(both_dir, srv, "micon,omnicontext")
    asked_both = rec.asked[n0:]
    n1 = len(rec.asked)
    micon = _run(micon_dir, srv, "micon")
    asked_micon = rec.asked[n1:]
    return {"both": both, "micon": micon, "both_dir": both_dir, "asked_both": asked_both, "asked_micon": asked_micon}


def test_one_results_json_with_both_suites_and_two_requests_per_item(runs, judge):
    res = runs["both"]
    assert set(res["suites"]) == {"micon", "omnicontext"}
    omni = res["suites"]["omnicontext"]
    assert omni["kind"] == "rubric" and omni["counts"]["n_cases"] == N_OMNI and omni["counts"]["n_tasks"] == 8
    rubric = [a for a in runs["asked_both"] if a[0] is not None]
    assert len(rubric) == 2 * N_OMNI  # exactly one request per criterion per item
    per_item = {}
    for crit, instruction in rubric:
        per_item.setdefault(instruction, []).append(crit)
    assert len(per_item) == N_OMNI and all(sorted(c) == ["PF", "SC"] for c in per_item.values())
    assert judge[1].mimes == {"data:image/jpeg"} and judge[1].temperatures == {"server default"}
    assert omni["counts"]["n_filtered"] == 1 and res["tasks"]["omnicontext_single_object"]["filtered"]["n_filtered"] == 1
    assert res["n-samples"]["omnicontext_multi_object"] == {"original": 2, "effective": 2}


def test_micon_scores_are_unchanged_by_the_second_suite(runs):
    both, micon = runs["both"], runs["micon"]
    assert both["benchmark"] == micon["benchmark"]
    assert {t: both["results"][t] for t in MICON_TASKS} == {t: micon["results"][t] for t in MICON_TASKS}
    assert both["suites"]["micon"] == micon["suites"]["micon"]
    assert len([a for a in runs["asked_both"] if a[0] is None]) == len(runs["asked_micon"])
    assert "omnicontext" not in micon["suites"]


def test_item_scores_are_sqrt_of_the_replies_and_the_headline_their_macro_mean(runs):
    d = runs["both_dir"] / "collage"
    type_means = []
    for t in (f"omnicontext_{x}" for x in ("single_character", "single_object", "multi_character", "multi_object",
                                          "multi_character_object", "scene_character", "scene_object",
                                          "scene_character_object")):
        recs = [json.loads(x) for x in (d / f"samples_{t}.jsonl").read_text().splitlines()]
        assert len(recs) == 2
        overall = []
        for r in recs:
            verdicts = {v["checkpoint_id"]: v for v in r["judge"]["verdicts"]}
            pf, sc = (json.loads(verdicts[n]["raw"])["score"] for n in ("PF", "SC"))
            assert verdicts["PF"]["status"] == verdicts["SC"]["status"] == "scored"
            assert r["score"]["score"] == pytest.approx(math.sqrt(pf * sc))
            overall.append(math.sqrt(pf * sc))
        assert runs["both"]["results"][t]["score"] == pytest.approx(sum(overall) / 2)
        type_means.append(sum(overall) / 2)
    assert runs["both"]["suites"]["omnicontext"]["headline"]["value"] == pytest.approx(sum(type_means) / 8)


def test_results_md_holds_both_suites_and_the_judge_note(runs):
    md = (runs["both_dir"] / "collage" / "results.md").read_text()
    assert "| Object | Spatial | Attribute | Component | FG/BG | Story | Avg |" in md
    assert "## OmniContext" in md and "| Model | S-Char | S-Obj |" in md and "not comparable" in md
    assert md.index("| Object | Spatial") < md.index("## OmniContext")


def test_a_rerun_makes_no_request_and_changes_no_score(runs, judge):
    srv, rec = judge
    n = len(srv.requests)
    again = _run(runs["both_dir"], srv, "micon,omnicontext")
    assert len(srv.requests) == n
    assert again["suites"] == runs["both"]["suites"] and again["results"] == runs["both"]["results"]
    from micon_tasks.runner import aggregate_outputs

    assert aggregate_outputs(runs["both_dir"])["suites"] == runs["both"]["suites"]  # re-scored from the records alone


def test_malformed_reply_is_counted_as_an_error_and_scores_zero(tmp_path, capsys):
    from micon_tasks.task import load_task

    item = load_task("omnicontext_scene_object", source="sample")[0]
    rec = Recorder(oc.breaking(item.prompt, "PF", "PF: pretty good, maybe 8 or 9"))
    with FakeJudgeServer(rec) as srv:
        res = _run(tmp_path, srv, "omnicontext_scene_object,omnicontext_single_object")
        assert len(srv.requests) == 2 * 4 + 2  # the unreadable PF re-asked twice (the judge's default), no more
    block = res["results"]["omnicontext_scene_object"]
    assert block["n_checkpoint_errors"] == 1 and block["criteria"]["PF"]["n_errors"] == 1
    assert block["criteria"]["PF"]["n_read"] == 1 and block["criteria"]["SC"]["n_read"] == 2
    assert block["n_cases_clean"] == 1 and block["score_clean"] is not None
    rec_line = [json.loads(x) for x in (tmp_path / "collage" / "samples_omnicontext_scene_object.jsonl").read_text()
                .splitlines() if json.loads(x)["case_id"] == item.case_id][0]
    pf = next(v for v in rec_line["judge"]["verdicts"] if v["checkpoint_id"] == "PF")
    assert pf["status"] == "error" and pf["value"] is None and rec_line["score"]["score"] == 0.0
    other = block["score"] * 2  # the other item's overall: the mean counts the bad item as 0
    assert block["score_clean"] == pytest.approx(other)
    suite = res["suites"]["omnicontext"]
    assert suite["counts"]["missing_tasks"] and suite["counts"]["n_checkpoint_errors"] == 1
    assert "micon" not in res.get("suites", {}) and res["benchmark"] is None
    console = capsys.readouterr().out  # the console shows this run's suite, not an empty MICON table
    assert "## OmniContext" in console and "| Object |" not in console and "not comparable" in console


def test_limit_then_a_full_run_judges_only_the_new_items(tmp_path):
    rec = Recorder()
    with FakeJudgeServer(rec) as srv:
        first = _run(tmp_path, srv, "omnicontext", "--limit", "1")
        assert first["suites"]["omnicontext"]["counts"]["n_cases"] == 8 and len(srv.requests) == 16
        full = _run(tmp_path, srv, "omnicontext")
        assert full["suites"]["omnicontext"]["counts"]["n_cases"] == N_OMNI
        assert len(srv.requests) == 2 * N_OMNI  # the 8 items judged before are not asked again
    for t, block in first["results"].items():
        recs = [json.loads(x) for x in (tmp_path / "collage" / f"samples_{t}.jsonl").read_text().splitlines()]
        assert recs[0]["score"]["score"] == pytest.approx(block["score"])  # the first item kept its score
