"""The runner end to end on the bundled sample: generate -> judge -> aggregate, resume, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import test_runner_helpers as h
from fake_judge_server import FakeJudgeServer

from micon_tasks import evaluate
from micon_tasks.errors import ConfigError
from micon_tasks.runner import aggregate_outputs, judge_outputs
from micon_tasks.runner.config import case_seed, config_diff, sanitize_model_name
from micon_tasks.runner.records import RecordWriter, read_records

N_SAMPLE = 30  # 6 tasks x 5 cases


@pytest.fixture(scope="module")
def server():
    with FakeJudgeServer(h.varied_reply) as srv:
        yield srv


def _run(out: Path, server, **kw):
    args = dict(model="test_collage", tasks=["micon"], judge="openai",
                judge_args={"base_url": server.base_url, "model": "fake-judge", "concurrency": 4, "max_retries": 0,
                           "reask": 0},  # exact request counts below; re-asks have their own tests
                source="sample", output_path=out, progress=False)
    args.update(kw)
    return evaluate(**args)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, server):
    """One complete run on the whole sample, shared by the read-only checks below."""
    out = tmp_path_factory.mktemp("run")
    calls = out / "calls.txt"
    mp = pytest.MonkeyPatch()
    mp.setenv("MICON_TEST_CALLS_FILE", str(calls))
    mp.setenv("MICON_TEST_FAIL_CASES", "object_composition_0002")
    before = len(server.requests)
    results = _run(out, server)
    mp.undo()
    return {"out": out, "dir": out / "test_collage", "results": results, "calls": calls,
            "judge_requests": len(server.requests) - before}


def test_outputs_layout_and_records(finished):
    d = finished["dir"]
    assert (d / "run_config.json").exists() and (d / "results.json").exists() and (d / "results.md").exists()
    recs = [json.loads(line) for p in sorted(d.glob("samples_*.jsonl")) for line in p.read_text().splitlines()]
    assert len(recs) == N_SAMPLE == len({(r["task"], r["case_id"]) for r in recs})
    ok = [r for r in recs if r["image"]]
    assert len(ok) == N_SAMPLE - 1
    for r in ok:
        png = d / r["image"]["path"]
        assert png.exists() and png.parent.name == r["task"] and png.name == f"{r['case_id']}.png"
        assert r["seed"] == case_seed(0, r["task"], r["case_id"])
        assert r["refs"] and all(len(x["sha256"]) == 64 for x in r["refs"])
        assert r["judge"]["verdicts"] and all(v["raw"] is None or isinstance(v["raw"], str) for v in r["judge"]["verdicts"])
        assert r["judge"]["raw"] and r["score"]["reason"] is None
        assert "generate_s" in r["timings"] and "judge_s" in r["timings"]
    scores = {r["score"]["score"] for r in ok}
    assert len(scores) > 3, "the scripted judge varies per case, so scores must too"


def test_generation_failure_is_recorded_and_scored_not_skipped(finished):
    d = finished["dir"]
    recs = [json.loads(x) for x in (d / "samples_object_composition.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r["case_id"] == "object_composition_0002"]
    assert len(recs) == 5 and len(failed) == 1
    f = failed[0]
    assert f["image"] is None and f["judge"] is None
    assert f["generation_error"]["reason"] == "refused" and f["generation_error"]["provider_reason"] == "scripted refusal"
    assert f["score"]["score"] == 0.0 and not f["score"]["clean"] and "refused" in f["score"]["reason"]
    res = finished["results"]["results"]["object_composition"]
    assert res["n_cases"] == 5 and res["n_failed"] == 1 and res["n_cases_clean"] == 4


def test_results_hold_scores_config_and_provenance(finished):
    res = json.loads((finished["dir"] / "results.json").read_text())
    assert res == json.loads(json.dumps(finished["results"], default=str))
    bench = res["benchmark"]
    per_task = [res["results"][t]["score"] for t in res["n-samples"]]
    assert bench["avg"] == pytest.approx(sum(
        res["results"][t]["score"] * res["results"][t]["n_cases"] for t in res["n-samples"]) / N_SAMPLE)
    assert bench["macro_avg"] == pytest.approx(sum(per_task) / 6)
    assert bench["n_cases"] == N_SAMPLE and bench["n_failed"] == 1
    assert set(res["results"]["story_generation"]["dimensions"]) == {"A", "B", "C", "D", "E", "G"}
    assert res["results"]["story_generation"]["stderr"] is not None
    assert res["config"]["model"] == "test_collage" and res["config"]["seed"] == 0 and res["dar"] is None
    assert res["model_info"]["name"] == "test_collage"
    assert res["judge"]["backend"] == "openai" and res["judge"]["model"] == "fake-judge"
    assert res["judge"]["endpoint_host"].startswith("127.0.0.1:") and res["judge"]["templates"]
    assert res["versions"]["micon_tasks"] and "torch" in res["versions"] and "git_hash" in res
    assert res["n-samples"]["story_generation"] == {"original": 5, "effective": 5}
    md = (finished["dir"] / "results.md").read_text()
    assert "| Object | Spatial | Attribute | Component | FG/BG | Story | Avg |" in md
    assert f"{bench['avg']:.2f}" in md and "Errors" in md


def test_rerun_of_finished_run_calls_nothing_and_changes_nothing(finished, server, monkeypatch):
    d = finished["dir"]
    before = h.samples_bytes(d)
    n_calls = len(finished["calls"].read_text().splitlines())
    assert n_calls == N_SAMPLE
    n_req = len(server.requests)
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(finished["calls"]))
    monkeypatch.setenv("MICON_TEST_FAIL_CASES", "object_composition_0002")
    again = _run(finished["out"], server)
    assert len(finished["calls"].read_text().splitlines()) == n_calls  # 0 generate calls
    assert len(server.requests) == n_req  # 0 judge calls
    assert h.samples_bytes(d) == before
    assert again["benchmark"] == finished["results"]["benchmark"]
    # aggregate alone re-scores from the records
    assert aggregate_outputs(finished["out"])["benchmark"] == finished["results"]["benchmark"]


def test_changed_configuration_is_refused_naming_the_difference(finished, server):
    with pytest.raises(ConfigError, match=r"seed: 0 -> 1"):
        _run(finished["out"], server, seed=1)
    with pytest.raises(ConfigError, match=r"model_args.width: \(unset\) -> 64"):
        _run(finished["out"], server, model_args="width=64")
    with pytest.raises(ConfigError, match=r"judge_args.model: \"fake-judge\" -> \"other\""):
        _run(finished["out"], server, judge_args={"base_url": server.base_url, "model": "other"})


def test_limit_and_concurrency_may_change_between_runs(tmp_path, server, monkeypatch):
    """Runtime-only arguments (concurrency) and the selection (limit) change without regenerating anything; a
    narrower re-run leaves the folder's results as they are, and writes the narrower view only under its own name."""
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    tasks = ["object_composition", "fgbg_composition"]
    first = _run(tmp_path, server, tasks=tasks, limit=3)
    assert len(calls.read_text().split()) == 6 and first["benchmark"]["n_cases"] == 6
    d = tmp_path / "test_collage"
    before = {p.name: p.read_bytes() for p in [d / "results.json", d / "results.md", *d.glob("samples_*.jsonl")]}
    n_req = len(server.requests)
    narrow = {"base_url": server.base_url, "model": "fake-judge", "concurrency": 2, "max_retries": 0, "reask": 0}
    again = _run(tmp_path, server, tasks=tasks, limit=2, judge_args=narrow)
    assert len(calls.read_text().split()) == 6 and len(server.requests) == n_req  # no generation, no judging
    assert again["benchmark"]["n_cases"] == 6  # the folder's results, unchanged
    assert {p.name: p.read_bytes() for p in [d / "results.json", d / "results.md", *d.glob("samples_*.jsonl")]} == before
    assert json.loads((d / "run_config.json").read_text())["config"]["limit"] == 3  # aggregate keeps the wider view

    view = _run(tmp_path, server, tasks=tasks, limit=2, judge_args=narrow, results_name="first2")
    assert {t: r["n_cases"] for t, r in view["results"].items()} == {t: 2 for t in tasks}
    assert view["n-samples"]["object_composition"]["effective"] == 2 and view["config"]["limit"] == 2
    assert json.loads((d / "first2.json").read_text())["benchmark"]["n_cases"] == 4 and (d / "first2.md").exists()
    assert (d / "results.json").read_bytes() == before["results.json"]
    assert [len((d / f"samples_{t}.jsonl").read_text().splitlines()) for t in tasks] == [3, 3]
    assert aggregate_outputs(d)["benchmark"]["n_cases"] == 6
    mode = (d / "results.json").stat().st_mode & 0o777
    umask = os.umask(0o022)  # read it back (no other thread runs here)
    os.umask(umask)
    assert mode == 0o666 & ~umask, "results follow the umask (readable by a shared group), not 0600"


def test_a_folder_without_records_accepts_a_new_configuration(tmp_path, server):
    """Following the offline error's advice (another --source) in the same folder is not a changed configuration."""
    d = tmp_path / "test_collage"
    d.mkdir()
    (d / "run_config.json").write_text(json.dumps({"config": {"model": "test_collage", "tasks": ["micon"], "source": "hub"},
                                                   "generation_identity": {"source": "hub"}, "judge_identity": None}))
    res = _run(tmp_path, server, tasks=["fgbg_composition"], limit=1)
    assert res["benchmark"]["n_cases"] == 1 and res["config"]["source"] == "sample"


def _judge_records(d: Path, task: str) -> list[dict]:
    return [r for p in sorted((d / "shards").glob(f"judge_{task}_rank*.jsonl")) for r in read_records(p)]


def test_resume_redoes_a_tampered_image_and_its_verdict_only(tmp_path, server, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    tasks = ["object_composition", "story_generation"]
    _run(tmp_path, server, tasks=tasks, limit=2)
    d = tmp_path / "test_collage"
    clean = h.samples_bytes(d)
    assert len(calls.read_text().splitlines()) == 4
    png = d / "images" / "object_composition" / "object_composition_0002.png"
    png.write_bytes(png.read_bytes()[:-10])  # a truncated image: its hash no longer matches
    # the regenerated image differs from the first (as a sampling model's would): its verdict is stale
    monkeypatch.setenv("MICON_TEST_SALT", f"after-tamper-{tmp_path.name}")
    n_req, n_judged = len(server.requests), len(_judge_records(d, "object_composition"))
    _run(tmp_path, server, tasks=tasks, limit=2)
    assert calls.read_text().splitlines()[4:] == ["object_composition_0002"]  # exactly that case regenerated
    assert len(server.requests) - n_req == 1  # and judged again, once (one request per non-story case)
    redone = _judge_records(d, "object_composition")[n_judged:]
    assert [r["case_id"] for r in redone] == ["object_composition_0002"]
    after = h.samples_bytes(d)
    assert after["samples_story_generation.jsonl"] == clean["samples_story_generation.jsonl"]
    old = {json.loads(x)["case_id"]: json.loads(x) for x in clean["samples_object_composition.jsonl"].decode().splitlines()}
    new = {json.loads(x)["case_id"]: json.loads(x) for x in after["samples_object_composition.jsonl"].decode().splitlines()}
    assert new["object_composition_0001"] == old["object_composition_0001"]
    assert new["object_composition_0002"]["image"]["sha256"] != old["object_composition_0002"]["image"]["sha256"]
    # run again: nothing to do
    n_req = len(server.requests)
    _run(tmp_path, server, tasks=tasks, limit=2)
    assert len(calls.read_text().splitlines()) == 5 and len(server.requests) == n_req


def test_redo_failed_rejudges_cases_with_judge_errors_only(tmp_path, monkeypatch):
    """A reply that leaves out a checkpoint is a judge error: kept on resume, re-judged with --redo_failed."""
    from fake_judge_server import Reply, prompt_text

    from micon_tasks.task import load_task

    broken_prompt = load_task("fgbg_composition", "sample")[1].prompt.strip()
    state = {"break": True}

    def responder(body, seen):
        reply = h.varied_reply(body, seen)
        if state["break"] and broken_prompt in prompt_text(body):
            content = json.loads(reply.content)
            content["checkpoint_results"].pop(sorted(content["checkpoint_results"])[0])  # one checkpoint left out
            return Reply(content=json.dumps(content))
        return reply

    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    with FakeJudgeServer(responder) as srv:
        first = _run(tmp_path, srv, tasks=["fgbg_composition"], limit=3)
        res = first["results"]["fgbg_composition"]
        assert res["n_checkpoint_errors"] == 1 and res["n_cases_clean"] == 2 and len(srv.requests) == 3
        state["break"] = False
        kept = _run(tmp_path, srv, tasks=["fgbg_composition"], limit=3)  # an error is a result: kept
        assert len(srv.requests) == 3 and kept["results"]["fgbg_composition"]["n_checkpoint_errors"] == 1
        fixed = _run(tmp_path, srv, tasks=["fgbg_composition"], limit=3, redo_failed=True)
        assert len(srv.requests) == 4  # exactly the case with the error
        res = fixed["results"]["fgbg_composition"]
        assert res["n_checkpoint_errors"] == 0 and res["n_cases_clean"] == 3
        assert [r["case_id"] for r in _judge_records(tmp_path / "test_collage", "fgbg_composition")][3:] == [
            "foreground_background_composition_0002"]
    assert len(calls.read_text().split()) == 3  # no image was regenerated


def test_predict_only_then_judge_then_another_judge(tmp_path, server):
    res = _run(tmp_path, server, tasks=["fgbg_composition"], limit=2, predict_only=True, judge=None, judge_args=None)
    d = tmp_path / "test_collage"
    assert res["results"] == {} and not (d / "results.json").exists()
    recs = [json.loads(x) for x in (d / "samples_fgbg_composition.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["judge"] is None and r["score"] is None for r in recs)
    with pytest.raises(ConfigError, match="without a judge"):
        judge_outputs(tmp_path)
    first = judge_outputs(tmp_path, "openai", {"base_url": server.base_url, "model": "judge-a"}, progress=False)
    assert first["results"]["fgbg_composition"]["n_cases"] == 2 and first["judge"]["model"] == "judge-a"
    with pytest.raises(ConfigError, match=r"judge_args.model: \"judge-a\" -> \"judge-b\".*--overwrite"):
        judge_outputs(tmp_path, "openai", {"base_url": server.base_url, "model": "judge-b"}, progress=False)
    n_req = len(server.requests)
    second = judge_outputs(tmp_path, "openai", {"base_url": server.base_url, "model": "judge-b"}, overwrite=True, progress=False)
    assert second["judge"]["model"] == "judge-b" and len(server.requests) - n_req == 2
    assert list((d / "images" / "fgbg_composition").glob("*.png"))  # images kept


def test_overwrite_replaces_the_folder(tmp_path, server):
    _run(tmp_path, server, tasks=["object_composition"], limit=1)
    res = _run(tmp_path, server, tasks=["object_composition"], limit=1, seed=5, overwrite=True)
    assert res["config"]["seed"] == 5


# -- small parts ----------------------------------------------------------------------------------
def test_case_seed_is_stable_and_independent_of_order():
    assert case_seed(0, "t", "c1") == case_seed(0, "t", "c1") != case_seed(1, "t", "c1")
    assert case_seed(0, "t", "c1") != case_seed(0, "u", "c1") and case_seed(None, "t", "c") is None
    assert 0 <= case_seed(123, "t", "c") < 2**32


def test_sanitize_and_diff():
    assert sanitize_model_name("org/model:v1") == "org__model__v1"
    assert config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": None}) == ["b.c: 2 -> 3", "d: (unset) -> null"]
    assert config_diff({"a": 1}, {"a": 1}) == []


def test_record_writer_drops_a_torn_final_line(tmp_path):
    p = tmp_path / "x.jsonl"
    with RecordWriter(p) as w:
        w.append({"case_id": "a"})
        w.append({"case_id": "b"})
    with open(p, "ab") as fh:
        fh.write(b'{"case_id": "c", "tor')  # a kill in the middle of a write
    assert [r["case_id"] for r in read_records(p)] == ["a", "b"]
    with RecordWriter(p) as w:
        assert w.dropped_torn_line
        w.append({"case_id": "c"})
    assert [r["case_id"] for r in read_records(p)] == ["a", "b", "c"]
    assert p.read_bytes().count(b"\n") == 3


def test_missing_output_path_and_judge_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="output_path"):
        evaluate(model="collage", tasks=["micon"], judge="openai", source="sample")
    with pytest.raises(ConfigError, match="no judge"):
        evaluate(model="collage", tasks=["micon"], source="sample", output_path=tmp_path)
    with pytest.raises(ConfigError, match="limit"):
        evaluate(model="collage", tasks=["micon"], source="sample", output_path=tmp_path, predict_only=True, limit=1.5)


def test_tiny_diffusers_adapter_end_to_end_with_and_without_dar(tmp_path, server):
    """The real OmniGen pipeline class (tiny random weights, saved and loaded back) through the whole run."""
    pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
    from micon_tasks.testing import tiny_pipelines as tp

    tp.tiny_omnigen(tmp_path / "pipe")
    margs = (f"pretrained={tmp_path / 'pipe'},device=cpu,dtype=float32,height=32,width=32,steps=2,"
             "guidance_scale=2.0,max_input_image_size=32,local_files_only=true")
    tasks = ["story_generation"]
    plain = _run(tmp_path / "out", server, model="omnigen", model_args=margs, tasks=tasks, limit=1)
    d = tmp_path / "out" / "omnigen"
    recs = [json.loads(x) for t in tasks for x in (d / f"samples_{t}.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and all(r["image"]["width"] == 32 and r["judge"] and r["generation_error"] is None for r in recs)
    assert plain["model_info"]["name"] == "omnigen" and plain["dar"] is None and plain["benchmark"]["n_cases"] == 1
    assert all(r["dar_stats"] is None for r in recs)
    with_dar = _run(tmp_path / "out", server, model="omnigen", model_args=margs, tasks=tasks, limit=1,
                    dar_args="gamma=0.2")
    assert (tmp_path / "out" / "omnigen__dar" / "results.json").exists()
    assert with_dar["dar"]["gamma"] == 0.2 and with_dar["model_name_sanitized"] == "omnigen__dar"
    dar_recs = [json.loads(x) for t in tasks for x in (tmp_path / "out" / "omnigen__dar" / f"samples_{t}.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in dar_recs] == [r["seed"] for r in recs]
    assert any(a["image"]["sha256"] != b["image"]["sha256"] for a, b in zip(recs, dar_recs)), "DAR changed no image"
    assert all(r["dar_stats"]["rebalanced"] > 0 for r in dar_recs)  # each case records what DAR reached


def test_redo_failed_retries_recorded_failures_only(tmp_path, server, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    monkeypatch.setenv("MICON_TEST_FAIL_CASES", "foreground_background_composition_0002")
    first = _run(tmp_path, server, tasks=["fgbg_composition"], limit=3)
    assert first["results"]["fgbg_composition"]["n_failed"] == 1 and len(calls.read_text().split()) == 3
    monkeypatch.delenv("MICON_TEST_FAIL_CASES")
    again = _run(tmp_path, server, tasks=["fgbg_composition"], limit=3)  # a failure is a result: kept
    assert again["results"]["fgbg_composition"]["n_failed"] == 1 and len(calls.read_text().split()) == 3
    fixed = _run(tmp_path, server, tasks=["fgbg_composition"], limit=3, redo_failed=True)
    assert fixed["results"]["fgbg_composition"]["n_failed"] == 0
    assert calls.read_text().split() == ["foreground_background_composition_0001", "foreground_background_composition_0002",
                                         "foreground_background_composition_0003", "foreground_background_composition_0002"]


# -- changed input data (audit 2) and the data actually read (audit 3) ------------------------------
def _raw_run(out: Path, server, root: Path, **kw):
    return _run(out, server, tasks=["object_composition"], source=str(root), limit=3, **kw)


def test_resume_redoes_cases_whose_inputs_changed(tmp_path, server, monkeypatch, fresh_cache):
    from PIL import Image
    from raw_fixture import edit_card, make_raw

    root = make_raw(tmp_path / "raw", n_cases=3)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    out = tmp_path / "out"
    first = _raw_run(out, server, root)
    d = out / "test_collage"
    n_calls = lambda: len(calls.read_text().split())  # noqa: E731
    n_judged = lambda: len(_judge_records(d, "object_composition"))  # noqa: E731
    assert n_calls() == 3 and n_judged() == 3
    recs = {r["case_id"]: r for r in read_records(d / "shards" / "generate_object_composition_rank0.jsonl")}
    assert all(len(r["inputs_sha256"]) == 64 for r in recs.values())

    # a reference blacked out: that case is generated (its image changes) and judged again
    ref = root / "data" / "object_composition" / "refs" / "object_composition_001_RB.png"
    with Image.open(ref) as im:
        size = im.size
    Image.new("RGB", size, "black").save(ref)
    n_req = len(server.requests)
    second = _raw_run(out, server, root)
    assert calls.read_text().split()[3:] == ["object_composition_001"]
    assert len(server.requests) - n_req == 1 and n_judged() == 4
    rec = next(json.loads(x) for x in (d / "samples_object_composition.jsonl").read_text().splitlines()
               if json.loads(x)["case_id"] == "object_composition_001")
    from micon_tasks.judges.cache import image_digest

    assert rec["refs"][1]["sha256"] == image_digest(Image.new("RGB", size, "black"))
    assert rec["image"]["sha256"] != recs["object_composition_001"]["image"]["sha256"]
    t1, t2 = first["tasks"]["object_composition"], second["tasks"]["object_composition"]
    assert t1["inputs_sha256"] != t2["inputs_sha256"]  # results.json describes the data now used

    # the prompt changed: generated again (the collage ignores it: same bytes) and judged again
    edit_card(root, "object_composition", "object_composition_002", generation_prompt="Put the two side by side.")
    _raw_run(out, server, root)
    assert calls.read_text().split()[4:] == ["object_composition_002"] and n_judged() == 5
    # only the goal changed: the image stays, the verdict (the judge reads the goal) is redone
    edit_card(root, "object_composition", "object_composition_000", goal="A different goal.")
    _raw_run(out, server, root)
    assert n_calls() == 5 and [r["case_id"] for r in _judge_records(d, "object_composition")][5:] == ["object_composition_000"]
    # nothing changed: nothing to do
    n_req = len(server.requests)
    _raw_run(out, server, root)
    assert n_calls() == 5 and n_judged() == 6 and len(server.requests) == n_req


def test_generate_alone_sees_changed_references(tmp_path, monkeypatch, fresh_cache):
    """The audit's case: blacking out a reference and re-running `micon generate` is not "nothing to do"."""
    from PIL import Image
    from raw_fixture import make_raw

    from micon_tasks.cli import main

    root = make_raw(tmp_path / "raw", n_cases=2)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    argv = ["generate", "--model", "test_collage", "--tasks", "fgbg_composition", "--source", str(root),
            "--output_path", str(tmp_path / "out"), "--no_progress"]
    assert main(argv) == 0 and len(calls.read_text().split()) == 2
    ref = root / "data" / "foreground_background_composition" / "refs" / "foreground_background_composition_000_RA.png"
    with Image.open(ref) as im:
        Image.new("RGB", im.size, "black").save(ref)
    assert main(argv) == 0
    assert calls.read_text().split()[2:] == ["foreground_background_composition_000"]


def test_records_made_before_input_hashes_are_checked_against_the_pixels(tmp_path, server, monkeypatch, fresh_cache):
    """A generation record without inputs_sha256 (an older run) is still checked: by prompt and reference pixels."""
    from PIL import Image
    from raw_fixture import make_raw

    from micon_tasks.runner.records import atomic_write_text, dumps_record

    root = make_raw(tmp_path / "raw", n_cases=3)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
    out = tmp_path / "out"
    _raw_run(out, server, root)
    shard = out / "test_collage" / "shards" / "generate_object_composition_rank0.jsonl"
    old = [{k: v for k, v in r.items() if k != "inputs_sha256"} for r in read_records(shard)]
    atomic_write_text(shard, "".join(dumps_record(r) + "\n" for r in old))
    _raw_run(out, server, root)
    assert len(calls.read_text().split()) == 3  # unchanged inputs: nothing regenerated
    ref = root / "data" / "object_composition" / "refs" / "object_composition_002_RA.png"
    with Image.open(ref) as im:
        Image.new("RGB", im.size, "black").save(ref)
    _raw_run(out, server, root)
    assert calls.read_text().split()[3:] == ["object_composition_002"]


def test_micon_dataset_is_recorded_and_switching_it_is_a_changed_configuration(tmp_path, server, monkeypatch, fresh_cache):
    from raw_fixture import make_raw

    from micon_tasks.task import load_task

    first_root, other_root = make_raw(tmp_path / "raw_a", n_cases=2), make_raw(tmp_path / "raw_b", n_cases=2)
    monkeypatch.setenv("MICON_DATASET", str(first_root))
    task = load_task("object_composition")  # source "hub": $MICON_DATASET names a local copy
    expected = {"kind": "folder", "location": str(first_root.resolve()), "revision": None, "chosen_by": "$MICON_DATASET"}
    assert task.describe()["dataset"] == expected  # before loading: where it will read
    assert len(task) == 2 and task.describe()["dataset"] == expected

    out = tmp_path / "out"
    res = _run(out, server, tasks=["object_composition"], source="hub", limit=2)
    assert res["config"]["dataset_path"] == str(first_root.resolve())
    # the run records $MICON_DATASET as its dataset_path (so judge / aggregate read the same data later)
    assert res["tasks"]["object_composition"]["dataset"] == {**expected, "chosen_by": "dataset_path"}
    stored = json.loads((out / "test_collage" / "run_config.json").read_text())
    assert stored["generation_identity"]["dataset_path"] == str(first_root.resolve())

    monkeypatch.setenv("MICON_DATASET", str(other_root))
    with pytest.raises(ConfigError, match=r"dataset_path: .*raw_a.* -> .*raw_b"):
        _run(out, server, tasks=["object_composition"], source="hub", limit=2)
    monkeypatch.delenv("MICON_DATASET")
    with pytest.raises(ConfigError, match=r"dataset_path: .*raw_a.* -> null"):
        _run(out, server, tasks=["object_composition"], source="hub", limit=2)
    # the later stages read the data the run recorded, whatever the environment says now
    again = aggregate_outputs(out)
    assert again["tasks"]["object_composition"]["dataset"]["location"] == str(first_root.resolve())
    assert again["tasks"]["object_composition"]["dataset"]["chosen_by"] == "dataset_path"


def test_describe_names_the_hub_repo_revision_and_snapshot(tmp_path, monkeypatch, fresh_cache):
    from raw_fixture import make_raw

    import micon_tasks.data.sources as sources
    from micon_tasks.task import load_task

    t = load_task("object_composition")
    assert t.describe()["dataset"] == {"kind": "hub", "location": "Hangliuuu/MICON-Bench", "revision": None,
                                       "chosen_by": "task card"}
    monkeypatch.setenv("MICON_DATASET", "someone/micon-fork")
    assert load_task("object_composition").describe()["dataset"]["location"] == "someone/micon-fork"
    t = load_task("object_composition", dataset_path="org/other", revision="v2")
    assert t.describe()["dataset"] == {"kind": "hub", "location": "org/other", "revision": "v2", "chosen_by": "dataset_path"}

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = make_raw(tmp_path / "hub" / "datasets--org--other" / "snapshots" / commit, n_cases=2)
    asked = []
    monkeypatch.setattr(sources, "_download", lambda repo, config, revision: asked.append((repo, revision)) or snapshot)
    assert len(t) == 2 and asked == [("org/other", "v2")]
    assert t.describe()["dataset"] == {"kind": "hub", "location": "org/other", "revision": "v2", "chosen_by": "dataset_path",
                                       "commit": commit}


def test_a_case_with_more_references_than_the_model_takes_is_recorded_as_its_failure(tmp_path, server):
    results = _run(tmp_path, server, model="test_two_refs", tasks=["object_composition"])
    recs = [json.loads(x) for x in (tmp_path / "test_two_refs" / "samples_object_composition.jsonl").read_text().splitlines()]
    three = [r for r in recs if len(r["refs"] or []) == 3 or (r["generation_error"] or {}).get("reason") == "unsupported_input"]
    assert three, "the sample has three-reference object cases"
    assert all(r["generation_error"]["reason"] == "unsupported_input" and r["image"] is None for r in three)
    assert all(r["generation_error"] is None for r in recs if r not in three)  # its batch mates are unaffected
    assert results["results"]["object_composition"]["n_failed"] == len(three)
    assert results["results"]["object_composition"]["n_cases"] == len(recs) == 5


def _image_sizes(out: Path, tasks: list[str], **kw) -> dict[str, tuple[int, int]]:
    """Generate one case of each task (no judge); task -> the recorded image's (width, height)."""
    from micon_tasks.runner.generate import valid_generations
    from micon_tasks.runner.layout import Layout

    evaluate(tasks=tasks, source="sample", predict_only=True, limit=1, output_path=out, progress=False, **kw)
    layout = Layout(out / kw.get("run_name", "collage"))
    return {t: next((r["image"]["width"], r["image"]["height"]) for r in valid_generations(layout, t).values())
            for t in tasks}


def test_a_cards_generation_size_reaches_the_adapter_and_an_explicit_argument_wins(tmp_path):
    """A card's ``generation: {width, height}`` is each of its cases' output size, not the adapter's default."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "sized.yaml").write_text("task: fgbg_sized_probe\nclass: fgbg_composition\n"
                                      "generation: {width: 40, height: 24}\n")
    tasks = ["fgbg_sized_probe", "fgbg_composition"]
    sizes = _image_sizes(tmp_path / "a", tasks, model="collage", include_path=cards)
    assert sizes == {"fgbg_sized_probe": (40, 24), "fgbg_composition": (1024, 1024)}  # the card; the default
    sizes = _image_sizes(tmp_path / "b", tasks, model="collage", model_args="width=32", include_path=cards)
    assert sizes == {"fgbg_sized_probe": (32, 24), "fgbg_composition": (32, 1024)}  # --model_args width wins its side


def test_the_generation_stage_closes_the_adapter(tmp_path):
    """An adapter with close() (the API adapters: their client and event loop) is closed when generation ends."""
    from adapters.baselines import CollageBaseline

    class Closing(CollageBaseline):
        closed = 0

        def close(self):
            self.closed += 1

    adapter = Closing(width=16, height=16)
    sizes = _image_sizes(tmp_path, ["fgbg_composition"], model=adapter, run_name="closing")
    assert sizes == {"fgbg_composition": (16, 16)} and adapter.closed == 1


def test_a_changed_card_size_makes_the_images_stale(tmp_path):
    """The card's generation size is part of what an image was made from: after the card changes, a resume
    makes the image again at the new size instead of keeping the old one."""
    cards = tmp_path / "cards"
    cards.mkdir()
    card = cards / "sized.yaml"
    card.write_text("task: fgbg_resized_probe\nclass: fgbg_composition\ngeneration: {width: 40, height: 24}\n")
    out = tmp_path / "out"
    assert _image_sizes(out, ["fgbg_resized_probe"], model="collage", include_path=cards) == {"fgbg_resized_probe": (40, 24)}
    card.write_text("task: fgbg_resized_probe\nclass: fgbg_composition\ngeneration: {width: 48, height: 24}\n")
    assert _image_sizes(out, ["fgbg_resized_probe"], model="collage", include_path=cards) == {"fgbg_resized_probe": (48, 24)}
