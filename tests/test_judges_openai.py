"""The ``openai`` judge over real HTTP against the loopback fake server: good, malformed, failing and
slow replies. Nothing crashes, nothing is dropped, every failure is counted, retries are bounded."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict

import pytest
from PIL import Image

from micon_tasks import load_judge
from micon_tasks.errors import ConfigError
from micon_tasks.judges import JudgeRequest
from micon_tasks.scoring import score_case
from micon_tasks.types import AnswerSet, Case, Checkpoint
from tests.fake_judge_server import (
    FakeJudgeServer,
    Reply,
    checkpoint_ids_in,
    good_reply,
    prompt_kind,
    prompt_text,
    sampling_reply,
    scripted,
)

CPS = [
    Checkpoint("A_check_1", "A", "Does the image follow the instruction?", True, "A"),
    Checkpoint("A_check_2", "A", "Is the requested setting shown?"),
    Checkpoint("B_check_1", "B", "Is the subject the same individual as in RA?", True, "B"),
    Checkpoint("G_check_1", "G", "Is the image free of artefacts?"),
]
IDS = [c.id for c in CPS]
FAST = {"max_wait": 0.05, "timeout": 5.0, "reask": 0}  # re-asks have their own tests


def make_request(case_id: str, scenario: str | None = None, *, story: bool = False, color: str = "green") -> JudgeRequest:
    case = Case(
        task="story_generation" if story else "object_composition",
        case_id=case_id,
        refs=[Image.new("RGB", (24, 16), "red"), Image.new("RGB", (16, 16), "blue")],
        ref_roles=["RA", "RB"],
        # The fake server picks its script by this token (every template shows the instruction).
        prompt="Put the cat from RA on the sofa from RB." + (f" SCENARIO:{scenario}" if scenario else ""),
        goal="The cat sits on the sofa.",
        constraints_hard=["the cat keeps its stripes"],
        answer_set=AnswerSet("A cat explores a room.", ("the cat sleeps on the sofa",), ("the cat vanishes",)) if story else None,
    )
    return JudgeRequest(case.task, case, Image.new("RGB", (20, 20), color), CPS, story=story)


def results_map(body_fn):
    """A reply whose checkpoint_results come from ``body_fn(ids)``."""

    def responder(body, seen):
        return Reply(content=body_fn(checkpoint_ids_in(prompt_text(body))))

    return responder


def content(text):
    return lambda body, seen: Reply(content=text)


GOOD_OBJ = lambda ids: {"checkpoint_results": {i: {"pass": 1, "reason": "ok"} for i in ids}}  # noqa: E731

# Replies that must give `error` for EVERY checkpoint (and one request each: no retry on a bad reply).
MALFORMED = {
    "truncated": results_map(lambda ids: json.dumps(GOOD_OBJ(ids))[:40]),
    "truncated_fence": results_map(lambda ids: "```json\n" + json.dumps(GOOD_OBJ(ids))[:-5]),
    "wrong_top_key": results_map(lambda ids: json.dumps({"results": GOOD_OBJ(ids)["checkpoint_results"]})),
    "nested_under_result": results_map(lambda ids: json.dumps({"result": GOOD_OBJ(ids)})),
    "string_yes": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": "yes"} for i in ids}})),
    "pass_two": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": 2} for i in ids}})),
    "pass_half": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": 0.5} for i in ids}})),
    "pass_null": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": None} for i in ids}})),
    "wrong_inner_key": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"passed": 1} for i in ids}})),
    "results_list": results_map(lambda ids: json.dumps({"checkpoint_results": [{"id": i, "pass": 1} for i in ids]})),
    "lowercase_ids": results_map(lambda ids: json.dumps({"checkpoint_results": {i.lower(): {"pass": 1} for i in ids}})),
    "top_level_array": results_map(lambda ids: json.dumps([GOOD_OBJ(ids)])),
    "python_repr": results_map(lambda ids: repr(GOOD_OBJ(ids))),
    "ambiguous_two_objects": results_map(
        lambda ids: json.dumps(GOOD_OBJ(ids)) + "\nCorrection:\n" + json.dumps({"checkpoint_results": {i: {"pass": 0} for i in ids}})
    ),
    "duplicate_keys": results_map(
        lambda ids: '{"checkpoint_results": {' + ", ".join(f'"{i}": {{"pass": 1}}, "{i}": {{"pass": 0}}' for i in ids) + "}}"
    ),
    "echoed_template": content('{"checkpoint_results": {"<checkpoint id>": {"pass": 0 or 1, "reason": "..."}}}'),
    "refusal": content("I'm sorry, but I can't help with evaluating this image."),
    "empty": content(""),
    "whitespace": content("   \n  "),
    "null_content": content(None),
    "markdown_table": content("| checkpoint | pass |\n|---|---|\n| A_check_1 | 1 |"),
    "yes_prose": content("Yes, the image satisfies all checkpoints."),
    "length_cut": lambda body, seen: Reply(content='{"checkpoint_results": {"A_check_1": {"pass": 1', finish_reason="length"),
    "bad_http_body": lambda body, seen: Reply(raw_body=b"<html>gateway</html>"),
}

# Replies the parser must read (safe salvage), every checkpoint pass.
SALVAGED = {
    "fenced": results_map(lambda ids: "```json\n" + json.dumps(GOOD_OBJ(ids)) + "\n```"),
    "prose_around": results_map(lambda ids: "Here is my grading:\n" + json.dumps(GOOD_OBJ(ids)) + "\nHope this helps."),
    "fence_and_prose": results_map(lambda ids: "Sure.\n```\n" + json.dumps(GOOD_OBJ(ids), indent=2) + "\n```\nDone."),
    "json_bools": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": True} for i in ids}})),
}

# Unambiguous non-standard encodings: read as pass, flagged salvaged (the case stays clean).
ENCODED = {
    "string_one": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": "1"} for i in ids}})),
    "string_true": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": "TRUE"} for i in ids}})),
    "string_pass": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": "Pass"} for i in ids}})),
    "float_one": results_map(lambda ids: json.dumps({"checkpoint_results": {i: {"pass": 1.0} for i in ids}})),
    "bare_int_entries": results_map(lambda ids: json.dumps({"checkpoint_results": {i: 1 for i in ids}})),
}


@pytest.fixture
def server_factory():
    servers = []

    def make(responder=good_reply, **kw):
        srv = FakeJudgeServer(responder, **kw).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()


def judge_for(srv, **kw):
    return load_judge("openai", {"base_url": srv.base_url, "model": "fake-vlm", **FAST, **kw})


def test_good_replies_pass_with_provenance(server_factory, monkeypatch):
    monkeypatch.setenv("MICON_TEST_JUDGE_KEY", "sk-secret-value-123")
    srv = server_factory(api_key="sk-secret-value-123")
    judge = judge_for(srv, api_key_env="MICON_TEST_JUDGE_KEY")
    reqs = [make_request("c1"), make_request("c2", story=True)]
    res = judge.judge_batch(reqs)
    assert [[v.status for v in r.verdicts] for r in res] == [["pass"] * 4, ["pass"] * 4]
    assert [v.checkpoint_id for v in res[0].verdicts] == IDS
    assert res[0].answer_set_score is None and res[1].answer_set_score == 7.0 and res[1].answer_set_status == "pass"
    prov = res[1].provenance
    assert prov["backend"] == "openai" and prov["model"] == "fake-vlm"
    assert prov["endpoint_host"] == srv.base_url.split("//")[1].split("/")[0]
    assert prov["decoding"]["temperature"] == 0.1 and prov["decoding"]["max_tokens"] == 800
    assert prov["decoding"]["seed"] == 0 and "per request" in prov["decoding"]["seed_rule"]
    assert prov["parser_version"] and prov["cached"] is False
    assert len(prov["templates"]["checkpoints"]["sha256"]) == 64 and prov["templates"]["answer_set"]["version"] == "v1"
    assert len(srv.requests) == 3  # one per case, plus the story answer set
    assert all(r["auth"] == "Bearer sk-secret-value-123" for r in srv.requests)
    dumped = json.dumps([asdict(r) for r in res]) + json.dumps(judge.provenance())
    assert "sk-secret-value-123" not in dumped
    cs = score_case(CPS, res[1], case_id="c2", story=True)
    assert cs.score == pytest.approx(40 * 1.0 + 6 * 7.0) and cs.clean


def test_wrong_key_401_is_final_and_never_leaks(server_factory, monkeypatch):
    monkeypatch.setenv("MICON_TEST_JUDGE_KEY", "sk-wrong-key-456")
    srv = server_factory(api_key="sk-right")
    judge = judge_for(srv, api_key_env="MICON_TEST_JUDGE_KEY", max_retries=3)
    (res,) = judge.judge_batch([make_request("c1")])
    assert len(srv.requests) == 1  # 4xx other than 429: no retry
    assert all(v.status == "error" and "401" in v.error for v in res.verdicts)
    assert "sk-wrong-key-456" not in json.dumps(asdict(res))


def test_malformed_replies_are_errors_never_dropped(server_factory):
    assert len(MALFORMED) >= 20
    srv = server_factory(scripted({**MALFORMED, **SALVAGED, **ENCODED}))
    judge = judge_for(srv, max_retries=2, reask=0)
    names = list(MALFORMED) + list(SALVAGED) + list(ENCODED)
    reqs = [make_request(f"case_{n}", n) for n in names]
    res = judge.judge_batch(reqs)
    assert len(res) == len(reqs)
    for name, r in zip(names, res):
        assert [v.checkpoint_id for v in r.verdicts] == IDS, name
        statuses = {v.status for v in r.verdicts}
        if name in MALFORMED:
            assert statuses == {"error"}, (name, [(v.status, v.error) for v in r.verdicts])
            assert all(v.error for v in r.verdicts), name
            cs = score_case(CPS, r, case_id=name, story=False)
            assert cs.score == 0.0 and not cs.clean and cs.n_checkpoint_errors == 4
        else:
            assert statuses == {"pass"}, (name, [(v.status, v.error) for v in r.verdicts])
            assert all(v.salvaged for v in r.verdicts) == (name in ENCODED), name
            assert score_case(CPS, r, case_id=name, story=False).clean, name
        assert srv.scenario_count(name) == 1, name  # reask=0: a bad reply is not asked again
    by_name = dict(zip(names, res))
    assert "truncated" in by_name["truncated"].verdicts[0].error
    assert "finish_reason=length" in by_name["length_cut"].verdicts[0].error
    assert "ambiguous" in by_name["ambiguous_two_objects"].verdicts[0].error
    assert "repeats the key" in by_name["duplicate_keys"].verdicts[0].error


def test_partial_reply_marks_only_missing_checkpoints(server_factory):
    def partial(body, seen):
        ids = checkpoint_ids_in(prompt_text(body))
        return Reply(content=json.dumps({"checkpoint_results": {ids[0]: {"pass": 0}, ids[1]: {"pass": 1}, ids[2]: {"pass": "yes"}}}))

    srv = server_factory(scripted({"partial": partial}))
    (res,) = judge_for(srv, reask=2).judge_batch([make_request("c", "partial")])
    assert [v.status for v in res.verdicts] == ["fail", "pass", "error", "error"]
    # asked twice more (the default reask=2), each answer as bad: every attempt's reply is kept
    assert srv.scenario_count("partial") == 3
    tries = res.details["reask"]["attempts"]["checkpoints"]
    assert [t["attempt"] for t in tries] == [0, 1, 2] and res.details["reask"]["used"] == {"checkpoints": 0}
    assert "missing" in res.verdicts[3].error and "'pass'" in res.verdicts[2].error
    cs = score_case(CPS, res, case_id="c", story=False)
    # A: 1/2 capped at 0.4 (hard A_check_1 failed); B: 0 (error); G: 0 (missing)
    assert cs.dimensions == {"A": 0.4, "B": 0.0, "G": 0.0} and cs.n_checkpoint_errors == 2


def test_story_answer_set_unreadable_is_error_not_a_stand_in(server_factory):
    def bad_score(value):
        def responder(body, seen):
            if "Scale (an integer from 0 to 10)" in prompt_text(body):
                return Reply(content=value)
            return good_reply(body, seen)

        return responder

    cases = {"s_str": '{"score": "7"}', "s_big": '{"score": 11}', "s_frac": '{"score": 7.5}', "s_neg": '{"score": -1}',
             "s_none": "no score here", "s_nan": '{"score": NaN}', "s_ok_float": '{"score": 8.0}'}
    srv = server_factory(scripted({k: bad_score(v) for k, v in cases.items()}))
    res = judge_for(srv).judge_batch([make_request(k, k, story=True) for k in cases])
    for name, r in zip(cases, res):
        assert all(v.status == "pass" for v in r.verdicts)
        if name in ("s_ok_float", "s_str", "s_frac"):  # numbers in 0..10 are read as they are ("7" flagged)
            assert r.answer_set_score == {"s_ok_float": 8.0, "s_str": 7.0, "s_frac": 7.5}[name]
            assert r.answer_set_status == "pass" and r.details.get("answer_set_salvaged", False) == (name == "s_str")
        else:  # outside 0..10 or unreadable: an error, never clamped, never a stand-in
            assert r.answer_set_score is None and r.answer_set_status == "error", name
            assert r.details["answer_set_error"], name
            cs = score_case(CPS, r, case_id=name, story=True)
            assert cs.score == pytest.approx(40.0) and not cs.clean and cs.n_checkpoint_errors == 1


def test_retries_are_bounded_and_only_for_retryable_statuses(server_factory):
    scripts = {
        "always_429": lambda b, n: Reply(status=429, headers={"Retry-After": "0.01"}),
        "always_503": lambda b, n: Reply(status=503),
        "429_then_ok": lambda b, n: Reply(status=429) if n < 2 else good_reply(b, n),
        "500_then_ok": lambda b, n: Reply(status=500) if n < 1 else good_reply(b, n),
        "400": lambda b, n: Reply(status=400),
        "404": lambda b, n: Reply(status=404),
        "422": lambda b, n: Reply(status=422),
    }
    srv = server_factory(scripted(scripts))
    judge = judge_for(srv, max_retries=3)
    t0 = time.perf_counter()
    res = dict(zip(scripts, judge.judge_batch([make_request(k, k) for k in scripts])))
    assert time.perf_counter() - t0 < 5
    assert srv.scenario_count("always_429") == 4 and srv.scenario_count("always_503") == 4
    assert all(v.status == "error" and "429" in v.error and "4 attempts" in v.error for v in res["always_429"].verdicts)
    assert all(v.status == "pass" for v in res["429_then_ok"].verdicts) and srv.scenario_count("429_then_ok") == 3
    assert res["429_then_ok"].provenance["attempts"] == 3
    assert all(v.status == "pass" for v in res["500_then_ok"].verdicts)
    for k in ("400", "404", "422"):
        assert srv.scenario_count(k) == 1, k
        assert all(v.status == "error" and f"HTTP {k}" in v.error for v in res[k].verdicts)


def test_slow_replies_time_out_with_bounded_retries(server_factory):
    srv = server_factory(scripted({"slow": lambda b, n: Reply(content="{}", delay=3.0)}))
    judge = judge_for(srv, timeout=0.2, max_retries=1)
    t0 = time.perf_counter()
    slow, fine = judge.judge_batch([make_request("slow", "slow"), make_request("fine")])
    assert time.perf_counter() - t0 < 2.5
    assert srv.scenario_count("slow") == 2
    assert all(v.status == "error" and "timed out" in v.error for v in slow.verdicts)
    assert all(v.status == "pass" for v in fine.verdicts)


def test_connection_refused_is_an_error_per_case():
    judge = load_judge("openai", base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, **FAST)
    res = judge.judge_batch([make_request("a"), make_request("b", story=True)])
    assert all(v.status == "error" and "connection" in v.error.lower() for r in res for v in r.verdicts)
    assert res[1].answer_set_status == "error"


def test_concurrency_is_bounded_and_parallel(server_factory):
    srv = server_factory(lambda b, n: Reply(**{**asdict(good_reply(b, n)), "delay": 0.2}))
    judge = judge_for(srv, concurrency=4)
    t0 = time.perf_counter()
    res = judge.judge_batch([make_request(f"c{i}") for i in range(8)])
    wall = time.perf_counter() - t0
    assert all(v.status == "pass" for r in res for v in r.verdicts)
    assert srv.max_in_flight <= 4 and srv.max_in_flight >= 2
    assert wall < 8 * 0.2  # faster than one at a time


def test_per_checkpoint_mode_over_http(server_factory):
    srv = server_factory()
    judge = judge_for(srv, request_mode="checkpoint")
    (res,) = judge.judge_batch([make_request("c1", story=True)])
    assert [v.status for v in res.verdicts] == ["pass"] * 4 and res.answer_set_score == 7.0
    assert sorted(r["kind"] for r in srv.requests) == ["answer_set"] + ["single"] * 4
    assert res.provenance["request_mode"] == "checkpoint" and "checkpoint_single" in res.provenance["templates"]


def test_cache_skips_clean_cases_and_retries_bad_ones(server_factory, tmp_path):
    srv = server_factory(scripted({"refusal": MALFORMED["refusal"]}))
    cache = tmp_path / "verdicts.sqlite"
    reqs = [make_request("c1"), make_request("c2", story=True), make_request("bad", "refusal")]
    first = judge_for(srv, cache_path=str(cache)).judge_batch(reqs)
    assert len(srv.requests) == 4 and [r.provenance["cached"] for r in first] == [False] * 3
    second = judge_for(srv, cache_path=str(cache)).judge_batch(reqs)
    assert len(srv.requests) == 5  # only the unclean case is asked again
    assert [r.provenance["cached"] for r in second] == [True, True, False]
    assert [asdict(v) for v in second[1].verdicts] == [asdict(v) for v in first[1].verdicts]
    assert second[1].answer_set_score == 7.0
    # A different generated image, model or decoding setting is a different key.
    judge_for(srv, cache_path=str(cache)).judge_batch([make_request("c1", color="white")])
    judge_for(srv, cache_path=str(cache), temperature=0.0).judge_batch([make_request("c1")])
    judge_for(srv, cache_path=str(cache), model="other").judge_batch([make_request("c1")])
    assert len(srv.requests) == 8


def test_bad_request_inside_a_batch_does_not_sink_it(server_factory):
    srv = server_factory()
    ok = make_request("ok")
    no_image = make_request("no_image")
    no_image.image = None
    broken_roles = make_request("roles")
    broken_roles.case.ref_roles = ["RA"]  # two references, one role: the request cannot be built
    res = judge_for(srv).judge_batch([no_image, ok, broken_roles])
    assert [v.status for v in res[1].verdicts] == ["pass"] * 4
    assert all(v.status == "error" and "no generated image" in v.error for v in res[0].verdicts)
    assert all(v.status == "error" and "ref_roles" in v.error for v in res[2].verdicts)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("request_mode", ["case", "checkpoint"])
def test_story_case_without_answer_set_still_judges_its_checkpoints(server_factory, request_mode):
    srv = server_factory(scripted({"mixed": lambda b, n: good_reply(b, n, value=0)}))
    no_answers = make_request("s_none", "mixed", story=True)
    no_answers.case.answer_set = None
    full = make_request("s_full", story=True)
    res = judge_for(srv, request_mode=request_mode).judge_batch([no_answers, full])
    # Its checkpoints are judged like any other case's: real fail verdicts from the judge, no error.
    assert [v.status for v in res[0].verdicts] == ["fail"] * 4 and all(v.error is None for v in res[0].verdicts)
    # Only the answer-set part is an error, with the reason, and no score stands in for it.
    assert res[0].answer_set_status == "error" and res[0].answer_set_score is None
    assert "case has no answer set" in res[0].details["answer_set_error"]
    assert "answer_set" not in json.loads(res[0].raw)
    # No answer-set request was sent for it; the other story case is untouched.
    assert sorted(r["kind"] for r in srv.requests if r["scenario"] == "mixed") == (
        ["checkpoints"] if request_mode == "case" else ["single"] * 4
    )
    assert res[1].answer_set_score == 7.0 and [v.status for v in res[1].verdicts] == ["pass"] * 4
    cs = score_case(CPS, res[0], case_id="s_none", story=True)
    assert cs.score == 0.0 and not cs.clean and cs.n_checkpoint_errors == 1
    cs_pass = score_case(CPS, res[1], case_id="s_full", story=True)
    assert cs_pass.score == pytest.approx(40 + 6 * 7) and cs_pass.clean


def test_story_case_without_answer_set_is_never_cached(server_factory, tmp_path):
    srv = server_factory()
    req = make_request("s_none", story=True)
    req.case.answer_set = None
    for _ in range(2):
        (res,) = judge_for(srv, cache_path=str(tmp_path / "c.sqlite")).judge_batch([req])
        assert res.provenance["cached"] is False and res.answer_set_status == "error"
    assert [r["kind"] for r in srv.requests] == ["checkpoints", "checkpoints"]


def _seeds_by_case(srv):
    out = {}
    for r in srv.requests:
        out.setdefault((r["scenario"], r["kind"]), set()).add(r["seed"])
    return out


@pytest.mark.parametrize("request_mode", ["case", "checkpoint"])
def test_every_request_carries_a_seed_derived_from_the_case_not_the_batch(server_factory, request_mode):
    """Determinism rule: the seed of a request depends on (judge seed, task, case id, prompt), never on batch mates."""
    srv = server_factory(sampling_reply)
    alone = judge_for(srv, request_mode=request_mode, concurrency=1).judge_batch([make_request("c2", "c2", story=True)])
    seeds_alone = _seeds_by_case(srv)
    srv.requests.clear()
    reqs = [make_request(f"c{i}", f"c{i}", story=True) for i in (5, 0, 2, 9, 1)]
    batch = judge_for(srv, request_mode=request_mode, concurrency=8).judge_batch(reqs)
    seeds_batch = _seeds_by_case(srv)
    assert all(isinstance(s, int) and not isinstance(s, bool) for v in seeds_batch.values() for s in v)
    if request_mode == "case":
        assert seeds_alone[("c2", "checkpoints")] == seeds_batch[("c2", "checkpoints")]
        assert all(len(v) == 1 for v in seeds_batch.values())
        # different cases and different prompts of one case get different seeds
        cp_seeds = [next(iter(seeds_batch[(f"c{i}", "checkpoints")])) for i in (5, 0, 2, 9, 1)]
        assert len(set(cp_seeds)) == 5
        assert seeds_batch[("c2", "checkpoints")] != seeds_batch[("c2", "answer_set")]
    else:
        assert seeds_alone[("c2", "single")] == seeds_batch[("c2", "single")] and len(seeds_batch[("c2", "single")]) == 4
    assert seeds_alone[("c2", "answer_set")] == seeds_batch[("c2", "answer_set")]
    # ... so a sampling judge gives the case the same reply alone and among others.
    (a,) = alone
    b = batch[2]
    assert [asdict(v) for v in a.verdicts] == [asdict(v) for v in b.verdicts]
    assert a.answer_set_score == b.answer_set_score and a.raw == b.raw


def test_request_seed_follows_the_judge_seed_task_and_case(server_factory):
    srv = server_factory(sampling_reply)
    judge_for(srv).judge_batch([make_request("c1", "c1")])
    judge_for(srv, seed=0).judge_batch([make_request("c1", "c1")])
    judge_for(srv, seed=7).judge_batch([make_request("c1", "c1")])
    other_task = make_request("c1", "c1")
    other_task.task = "spatial_composition"
    judge_for(srv).judge_batch([other_task])
    default, zero, seven, task2 = (r["seed"] for r in srv.requests)
    assert default == zero  # no seed given = seed 0
    assert len({zero, seven, task2}) == 3
    assert all(0 <= s < 2**31 for s in (zero, seven, task2))


def test_seed_is_part_of_the_cache_key(server_factory, tmp_path):
    srv = server_factory()
    cache = str(tmp_path / "c.sqlite")
    judge_for(srv, cache_path=cache).judge_batch([make_request("c1")])
    judge_for(srv, cache_path=cache, seed=0).judge_batch([make_request("c1")])  # the same rule and seed: a hit
    assert len(srv.requests) == 1
    judge_for(srv, cache_path=cache, seed=3).judge_batch([make_request("c1")])
    assert len(srv.requests) == 2


def test_judge_batch_inside_a_running_event_loop(server_factory):
    srv = server_factory()
    judge = judge_for(srv)

    async def main():
        return judge.judge_batch([make_request("c1")])

    (res,) = asyncio.run(main())
    assert [v.status for v in res.verdicts] == ["pass"] * 4


def test_bad_judge_args_name_the_accepted_ones():
    with pytest.raises(ConfigError, match="accepted arguments"):
        load_judge("openai", "base_urll=http://x")
    with pytest.raises(ConfigError, match="concurrency"):
        load_judge("openai", "concurrency=0")
    judge = load_judge("openai", "base_url=http://127.0.0.1:8000/v1,concurrency=32,temperature=0")
    assert judge.concurrency == 32 and judge.provenance()["endpoint_host"] == "127.0.0.1:8000"


def test_unencodable_image_is_an_error_for_its_case_only(server_factory):
    class Broken:
        width, height, mode, size = 8, 8, "RGB", (8, 8)

        def save(self, *a, **k):
            raise OSError("cannot write this image")

        def convert(self, mode):
            return self

    srv = server_factory()
    bad = make_request("bad", story=True)
    bad.image = Broken()
    res = judge_for(srv).judge_batch([bad, make_request("ok")])
    assert all(v.status == "error" and "cannot write this image" in v.error for v in res[0].verdicts)
    assert res[0].answer_set_status == "error"
    assert all(v.status == "pass" for v in res[1].verdicts)


def test_per_checkpoint_mode_one_failed_call_marks_only_its_checkpoint(server_factory):
    def responder(body, seen):
        text = prompt_text(body)
        if "== The checkpoint ==\nB_check_1 " in text:
            return Reply(status=400)
        if "== The checkpoint ==\nG_check_1 " in text:
            return Reply(content='{"pass": "maybe"}')
        return good_reply(body, seen, value=0)

    srv = server_factory(scripted({"mixed": responder}))
    (res,) = judge_for(srv, request_mode="checkpoint").judge_batch([make_request("m", "mixed")])
    assert [v.status for v in res.verdicts] == ["fail", "fail", "error", "error"]
    assert "HTTP 400" in res.verdicts[2].error and "'pass'" in res.verdicts[3].error
    assert len(srv.requests) == 4


# -- re-ask after an unreadable reply ---------------------------------------------------------------------
def test_reask_recovers_a_bad_first_reply_and_keeps_every_attempt(server_factory):
    def bad_then_good(body, seen):
        text = prompt_text(body)
        if "could not be used" not in text and prompt_kind(text) == "checkpoints":  # the first request: cut off
            return Reply(content='{"checkpoint_results": {"A_check_1": {"pass": 1', finish_reason="length")
        return good_reply(body, seen)

    srv = server_factory(scripted({"flaky": bad_then_good}))
    judge = judge_for(srv, reask=2)
    (res,) = judge.judge_batch([make_request("f", "flaky", story=True)])
    assert all(v.status == "pass" for v in res.verdicts) and res.answer_set_score == 7.0
    first, second = [r for r in srv.requests if r["kind"] == "checkpoints"]
    assert first["seed"] != second["seed"]  # each re-ask its own seed
    # the first request keeps today's seed and text; the re-ask quotes the parse error back
    from micon_tasks.judges.base import request_seed

    assert first["seed"] == request_seed(None, "story_generation", "f", "checkpoints")
    assert second["seed"] == request_seed(None, "story_generation", "f", "checkpoints", 1)
    tries = res.details["reask"]["attempts"]["checkpoints"]
    assert [t["attempt"] for t in tries] == [0, 1] and tries[0]["raw"].startswith('{"checkpoint_results"')
    assert tries[0]["n_errors"] == 4 and tries[1]["n_errors"] == 0
    assert res.details["reask"]["used"] == {"checkpoints": 1} and res.provenance["attempts"] == 3
    texts = [r for r in srv.requests if r["kind"] == "checkpoints"]
    assert len(texts) == 2 and srv.scenario_count("flaky") == 3  # 2 checkpoint calls + 1 answer set


def test_reask_quotes_the_error_and_never_reasks_a_transport_failure(server_factory):
    seen_texts = []

    def record(body, seen):
        seen_texts.append(prompt_text(body))
        return Reply(content="no json here")

    srv = server_factory(scripted({"prose": record, "down": lambda b, n: Reply(status=400)}))
    judge = judge_for(srv, reask=1)
    prose, down = judge.judge_batch([make_request("p", "prose"), make_request("d", "down")])
    assert srv.scenario_count("prose") == 2 and srv.scenario_count("down") == 1
    assert 'could not be used: "no JSON object with' in seen_texts[1]
    assert all(v.status == "error" for v in prose.verdicts) and prose.details["reask"]["used"] == {"checkpoints": 0}
    assert "reask" not in down.details


# -- images: once per request set, at the size the judge needs; per-prompt options ------------------------
def test_each_image_is_encoded_once_per_request_set(server_factory, monkeypatch):
    import micon_tasks.judges.images as images

    calls = []
    real = images.encode
    monkeypatch.setattr(images, "encode", lambda im, spec: calls.append(id(im)) or real(im, spec))
    srv = server_factory()
    judge = judge_for(srv, request_mode="checkpoint")
    reqs = [make_request("s1", story=True), make_request("s2", story=True)]
    res = judge.judge_batch(reqs)
    assert all(v.status == "pass" for r in res for v in r.verdicts)
    # 5 prompts per case (4 checkpoints + answer set), 3 images each: every image encoded once
    assert len(srv.requests) == 10 and len(calls) == 6 and len(set(calls)) == 6


def test_max_image_pixels_and_format_shape_what_is_sent(server_factory):
    import base64
    import io

    srv = server_factory()
    req = make_request("big")
    req.image = Image.new("RGB", (400, 100), "green")
    judge_for(srv, max_image_pixels=10_000, image_format="png").judge_batch([req])
    urls = [p["image_url"]["url"] for p in srv.bodies[-1]["messages"][0]["content"] if p["type"] == "image_url"]
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    sent = Image.open(io.BytesIO(base64.b64decode(urls[-1].split(",", 1)[1])))
    assert sent.size == (200, 50)  # 40,000 px scaled to 10,000, aspect kept
    prov = judge_for(srv).provenance()
    assert prov["images"] == {"format": "jpeg", "max_pixels": 1024 * 1024, "multiple": None, "jpeg_quality": 95,
                              "stored_sent_as_is": True}
    with pytest.raises(ConfigError, match="image_format"):
        judge_for(srv, image_format="gif")


def test_prompt_options_reach_the_request(server_factory):
    import base64
    import io

    from micon_tasks.judges.kinds import RequestKind, register_request_kind, request_kind

    base = request_kind("checkpoints")

    def render(req, judge):
        prompts = base.render(req, judge)
        for p in prompts:
            p.options = {"image_format": "png", "max_ref_pixels": 256, "ref_multiple": 16, "temperature": None}
        return prompts

    register_request_kind(RequestKind("options_test", render, base.assemble))
    srv = server_factory()
    req = make_request("o")
    req.kind = "options_test"
    (res,) = judge_for(srv).judge_batch([req])
    assert all(v.status == "pass" for v in res.verdicts)
    body = srv.bodies[-1]
    assert "temperature" not in body  # None: left to the server's default
    urls = [p["image_url"]["url"] for p in body["messages"][0]["content"] if p["type"] == "image_url"]
    sizes = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in urls]
    assert sizes == [(16, 16), (16, 16), (20, 20)]  # references fitted to 256 px in multiples of 16; output as is


def test_encoding_releases_the_gil_and_gives_the_same_bytes_as_in_memory():
    import io
    import threading

    from micon_tasks.judges.images import ImageSpec, encode

    img = Image.effect_noise((512, 512), 40).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    assert encode(img, ImageSpec()) == buf.getvalue()
    # While two threads encode, this thread still gets to run promptly (Pillow encodes to a file
    # descriptor without holding the GIL; into a BytesIO its JPEG encoder holds it for the whole image).
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            encode(img, ImageSpec())

    workers = [threading.Thread(target=spin) for _ in range(2)]
    for w in workers:
        w.start()
    lags = []
    for _ in range(50):
        t0 = time.perf_counter()
        time.sleep(0.001)
        lags.append(time.perf_counter() - t0 - 0.001)
    stop.set()
    for w in workers:
        w.join()
    assert sorted(lags)[len(lags) // 2] < 0.008


def test_one_long_lived_client_serves_every_batch(server_factory):
    srv = server_factory()
    judge = judge_for(srv)
    judge.judge_batch([make_request("a")])
    client = judge._clients[0]
    judge.judge_batch([make_request("b")])
    assert client is not None and judge._clients[0] is client  # not a new client (and connections) per batch
    judge.close()
    assert judge._clients == [None] * len(judge._clients)
    # a judge can be used again after close (a new loop and client)
    assert all(v.status == "pass" for v in judge.judge_batch([make_request("c")])[0].verdicts)
    judge.close()


def test_preflight_stops_on_a_silent_endpoint_or_a_remote_host_without_key(server_factory, monkeypatch):
    from micon_tasks.judges.base import JudgeUnreachableError

    srv = server_factory()
    judge_for(srv).preflight()  # answers
    with pytest.raises(JudgeUnreachableError, match=r"127.0.0.1:9 \(from argument base_url\) does not answer"):
        load_judge("openai", "base_url=http://127.0.0.1:9/v1").preflight(timeout=2)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeUnreachableError, match=r"api.example.com .* remote host and \$OPENAI_API_KEY is not set"):
        load_judge("openai", "base_url=https://api.example.com/v1").preflight()
    with pytest.raises(ConfigError, match="no http:// or https:// scheme"):
        load_judge("openai", "base_url=localhost:8000")


def test_stored_png_and_jpeg_bytes_are_sent_as_they_are_without_decoding(server_factory, tmp_path):
    import base64
    import io

    from micon_tasks.images import open_lazy
    from micon_tasks.judges.images import ImageSpec, data_url

    def stored(fmt, size=(40, 30)):
        buf = io.BytesIO()
        Image.effect_noise(size, 30).convert("RGB").save(buf, format=fmt)
        return buf.getvalue()

    png, jpeg = stored("PNG"), stored("JPEG")
    for data, mime in ((png, "image/png"), (jpeg, "image/jpeg")):
        img = open_lazy(data)
        assert data_url(img, ImageSpec()) == f"data:{mime};base64,".encode() + base64.b64encode(data)
        assert img.tile, "the image was decoded"
    # a prompt that requires a format (its image_format option) gets it, stored bytes or not
    strict = data_url(open_lazy(png), ImageSpec("jpeg", strict=True))
    assert strict.startswith(b"data:image/jpeg;base64,")
    big = open_lazy(stored("PNG", (200, 100)))  # over max_image_pixels: decoded, fitted, re-encoded
    sent = data_url(big, ImageSpec("png", 5000))
    assert Image.open(io.BytesIO(base64.b64decode(sent.split(b",", 1)[1]))).size == (100, 50)

    srv = server_factory()
    req = make_request("lazy")
    req.image = open_lazy(png)
    req.case.refs = [open_lazy(jpeg), open_lazy(png)]
    (res,) = judge_for(srv, cache_path=str(tmp_path / "c.sqlite")).judge_batch([req])
    assert all(v.status == "pass" for v in res.verdicts)
    assert req.image.tile and all(r.tile for r in req.case.refs)  # judged and cached without a decode


def test_a_stored_image_that_must_be_refitted_is_not_read_from_its_file(tmp_path):
    """Its stored bytes would be thrown away: only an image sent as stored has its file read."""
    import base64
    import io

    from micon_tasks.images import open_lazy_file
    from micon_tasks.judges.images import ImageSpec, data_url

    path = tmp_path / "big.png"
    Image.effect_noise((200, 100), 30).convert("RGB").save(path)
    big = open_lazy_file(path)
    path.unlink()  # the open image still decodes; reading the stored bytes would fail
    sent = data_url(big, ImageSpec("png", 5000))
    assert Image.open(io.BytesIO(base64.b64decode(sent.split(b",", 1)[1]))).size == (100, 50)


def test_reference_sides_floor_to_the_multiple_as_omnicontext_does():
    from micon_tasks.judges.images import _target

    assert _target(1023, 1025, 4096 * 4096, 16) == (1008, 1024)
    assert _target(500, 375, 4096 * 4096, 16) == (496, 368)
    assert _target(2048, 2048, 1024 * 1024, 16) == (1024, 1024)
    assert _target(2048, 1024, 1024 * 1024, None) == (1448, 724)


def test_prepared_images_live_only_while_a_prompt_needs_them():
    from micon_tasks.judges.images import ImagePrep, ImageSpec

    prep = ImagePrep(lambda im, spec: im.size)
    img, spec = Image.new("RGB", (4, 4)), ImageSpec()
    prep.reserve(img, spec)
    prep.reserve(img, spec)
    first = prep.get(img, spec)
    assert prep.get(img, spec) is first and first.result() == (4, 4)  # prepared once for both prompts
    prep.release(img, spec)
    assert len(prep._cache) == 1
    prep.release(img, spec)
    assert prep._cache == {}  # the last prompt is done: nothing held
    prep.close()


def test_a_retry_sends_the_same_body_though_the_first_was_dropped_once_sent(server_factory):
    """Bodies stream and are dropped once sent (a request waiting for its reply holds no images); a retry
    prepares the images again and must send exactly the same bytes."""
    srv = server_factory(scripted({"flaky": lambda b, n: Reply(status=503) if n < 1 else good_reply(b, n)}))
    judge = judge_for(srv, max_retries=2)
    (res,) = judge.judge_batch([make_request("flaky", "flaky")])
    assert all(v.status == "pass" for v in res.verdicts) and res.provenance["attempts"] == 2
    first, second = list(srv.bodies)[-2:]
    assert first == second and any(p.get("type") == "image_url" for p in first["messages"][0]["content"])


def test_streamed_body_joins_to_the_whole_json_and_drops_its_pieces():
    from micon_tasks.judges.openai_judge import _Body

    big = b"x" * (1 << 17)
    body = _Body(b'{"a": [{"b": [', [b'"s"', b", ", b'"' + big + b'"', b", ", b'"t"'])
    stream = body.stream()

    async def drain() -> list[bytes]:
        return [chunk async for chunk in stream]

    chunks = asyncio.run(drain())
    joined = b"".join(chunks)
    assert json.loads(joined) == {"a": [{"b": ["s", big.decode(), "t"]}]} and body.length == len(joined)
    assert len(chunks) == 3  # small pieces travel together; the big one alone
    with pytest.raises(RuntimeError):
        body.stream()  # sent once: its pieces are gone


def test_a_retry_reserves_what_it_releases_so_shared_images_are_encoded_once(server_factory, monkeypatch):
    import micon_tasks.judges.images as images

    calls = []
    real = images.encode
    monkeypatch.setattr(images, "encode", lambda im, spec: calls.append(id(im)) or real(im, spec))
    state = {"n": 0}

    def first_fails(body, seen):
        state["n"] += 1
        return Reply(status=503) if state["n"] == 1 else good_reply(body, seen)

    srv = server_factory(first_fails)
    judge = judge_for(srv, request_mode="checkpoint", concurrency=1, max_retries=2)
    (res,) = judge.judge_batch([make_request("c1")])
    assert all(v.status == "pass" for v in res.verdicts) and len(srv.requests) == 5
    assert len(calls) == len(set(calls)) == 3  # the retry re-prepared its images without stealing others'


def test_an_attempt_timing_out_while_its_images_wait_fails_only_its_own_verdicts(server_factory, monkeypatch):
    """A prepared image is shared by several prompts: an attempt that times out while waiting for it must not
    cancel it for the others (that turned the whole batch into 'backend failed: CancelledError')."""
    import collections
    import threading

    import micon_tasks.judges.openai_judge as oj
    from micon_tasks.judges.images import data_url

    seen = collections.Counter()

    def slow_on_retry(self, image, spec):
        seen[id(image)] += 1
        if seen[id(image)] > 1:
            time.sleep(0.6)  # a retry's re-preparation waits in a busy pool
        return data_url(image, spec)

    monkeypatch.setattr(oj.OpenAIJudge, "_prepare_image", slow_on_retry)
    lock, counts = threading.Lock(), collections.Counter()

    def responder(body, n):
        sc = "sa" if "SCENARIO:sa" in prompt_text(body) else "sb"
        with lock:
            counts[sc] += 1
            k = counts[sc]
        if sc == "sb":
            return Reply(status=503) if k == 1 else Reply(content=good_reply(body, n).content, delay=3.0)
        if k <= 2:
            return Reply(status=503, delay=0.05 if k == 1 else 0.5)
        return Reply(content=good_reply(body, n).content, delay=3.0)

    srv = server_factory(responder)
    judge = judge_for(srv, request_mode="checkpoint", concurrency=8, max_retries=2, timeout=1.0, max_wait=0.01)
    judge._image_prep._workers = 1
    results = judge.judge_batch([make_request("a", "sa"), make_request("b", "sb")])
    errors = [v.error or "" for r in results for v in r.verdicts if v.status == "error"]
    assert errors and not any("backend failed" in e or "Cancelled" in e for e in errors), errors
    assert all("timed out" in e or "HTTP 503" in e for e in errors), errors


def test_a_redirecting_endpoint_is_a_final_error_naming_where_it_points(server_factory):
    from http.server import BaseHTTPRequestHandler

    from loopback import LoopbackServer

    srv = server_factory()

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", srv.base_url + "/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()

    proxy = LoopbackServer(Redirect)
    try:
        judge = load_judge("openai", {"base_url": proxy.base_url + "/v1", "model": "m", "max_retries": 1})
        (res,) = judge.judge_batch([make_request("c1")])
        judge.close()
    finally:
        proxy.stop()
    target = srv.base_url.split("//")[1].split("/")[0]
    assert all(v.status == "error" and "HTTP 307" in v.error and f"redirects to {target}" in v.error
               for v in res.verdicts)
    assert srv.requests == []  # never followed
