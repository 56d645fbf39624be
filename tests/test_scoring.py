"""Scoring arithmetic on hand-computed cases (PROTOCOL 4) and aggregation, including the paper's Avg."""

from __future__ import annotations

import pytest

from micon_tasks.scoring import aggregate, bootstrap_stderr, score_case
from micon_tasks.task import load_task
from micon_tasks.types import CaseScore, Checkpoint, JudgeResult, Verdict

# A: 3 checkpoints (A1 hard, caps A); B: 2 (B1 hard, caps B); G: 1.
CPS = [
    Checkpoint("A_check_1", "A", "q", hard=True, caps="A"),
    Checkpoint("A_check_2", "A", "q"),
    Checkpoint("A_check_3", "A", "q"),
    Checkpoint("B_check_1", "B", "q", hard=True, caps="B"),
    Checkpoint("B_check_2", "B", "q"),
    Checkpoint("G_check_1", "G", "q"),
]


def result(statuses: dict[str, str], *, default: str = "pass", answer=None, answer_status=None) -> JudgeResult:
    verdicts = [Verdict(cp.id, statuses.get(cp.id, default)) for cp in CPS if statuses.get(cp.id, default) != "absent"]  # type: ignore[arg-type]
    return JudgeResult(verdicts=verdicts, answer_set_score=answer, answer_set_status=answer_status)


def test_all_pass_is_100_and_clean():
    cs = score_case(CPS, result({}), case_id="c", story=False)
    assert cs.score == 100.0 and cs.clean and cs.n_checkpoint_errors == 0 and cs.reason is None
    assert cs.dimensions == {"A": 1.0, "B": 1.0, "G": 1.0}


def test_pass_rates_without_caps():
    cs = score_case(CPS, result({"A_check_2": "fail", "B_check_2": "fail"}), case_id="c", story=False)
    assert cs.dimensions == pytest.approx({"A": 2 / 3, "B": 0.5, "G": 1.0})
    assert cs.score == pytest.approx(100 * (2 / 3 + 0.5 + 1.0) / 3)


def test_failed_hard_checkpoint_caps_its_dimension_at_04():
    # A: 2/3 passed but the hard A1 failed -> min(2/3, 0.4) = 0.4
    cs = score_case(CPS, result({"A_check_1": "fail"}), case_id="c", story=False)
    assert cs.dimensions["A"] == pytest.approx(0.4)
    assert cs.score == pytest.approx(100 * (0.4 + 1 + 1) / 3)
    # A rate already below the cap stays as it is: 0/3.
    cs = score_case(CPS, result({"A_check_1": "fail", "A_check_2": "fail", "A_check_3": "fail"}), case_id="c", story=False)
    assert cs.dimensions["A"] == 0.0
    # A hard checkpoint may cap another dimension than its own.
    cps = [Checkpoint("A_check_1", "A", "q", hard=True, caps="B"), Checkpoint("B_check_1", "B", "q"), Checkpoint("B_check_2", "B", "q")]
    cs = score_case(cps, JudgeResult([Verdict("A_check_1", "fail"), Verdict("B_check_1", "pass"), Verdict("B_check_2", "pass")]), case_id="c", story=False)
    assert cs.dimensions == {"A": 0.0, "B": 0.4}


def test_error_counts_as_fail_and_is_reported():
    cs = score_case(CPS, result({"B_check_1": "error", "G_check_1": "error"}), case_id="c", story=False)
    # B1 is hard: its error caps B; B = min(1/2, 0.4) = 0.4, G = 0
    assert cs.dimensions == pytest.approx({"A": 1.0, "B": 0.4, "G": 0.0})
    assert cs.n_checkpoint_errors == 2 and not cs.clean and cs.reason is None


def test_checkpoint_without_verdict_is_an_error_not_dropped():
    cs = score_case(CPS, result({"G_check_1": "absent"}), case_id="c", story=False)
    assert cs.dimensions["G"] == 0.0 and cs.n_checkpoint_errors == 1 and not cs.clean


def test_all_error_case_scores_zero():
    cs = score_case(CPS, result({}, default="error"), case_id="c", story=False)
    assert cs.score == 0.0 and cs.n_checkpoint_errors == 6 and not cs.clean
    cs = score_case(CPS, result({}, default="error"), case_id="c", story=True)
    assert cs.score == 0.0 and cs.n_checkpoint_errors == 7  # the unreadable answer set is one more error


def test_story_hybrid():
    # mean dimension = (1 + 0.5 + 1)/3; 40 x that + 6 x 8
    cs = score_case(CPS, result({"B_check_2": "fail"}, answer=8.0, answer_status="pass"), case_id="s", story=True)
    assert cs.score == pytest.approx(40 * (2.5 / 3) + 48) and cs.answer_set_score == 8.0 and cs.clean
    full = score_case(CPS, result({}, answer=10.0, answer_status="pass"), case_id="s", story=True)
    assert full.score == pytest.approx(100.0)


def test_story_unreadable_answer_set_counts_zero_never_a_stand_in():
    cs = score_case(CPS, result({}, answer=None, answer_status="error"), case_id="s", story=True)
    assert cs.score == pytest.approx(40.0) and cs.answer_set_score is None and not cs.clean and cs.n_checkpoint_errors == 1
    # A score present but flagged error is not used either.
    cs = score_case(CPS, result({}, answer=9.0, answer_status="error"), case_id="s", story=True)
    assert cs.score == pytest.approx(40.0)
    with pytest.raises(ValueError, match="outside 0..10"):
        score_case(CPS, result({}, answer=11.0, answer_status="pass"), case_id="s", story=True)


def test_missing_image_scores_zero_with_reason():
    cs = score_case(CPS, None, case_id="c9", story=False, failure_reason="missing image: adapter raised OOM")
    assert cs.score == 0.0 and cs.reason == "missing image: adapter raised OOM" and not cs.clean
    assert cs.dimensions == {"A": 0.0, "B": 0.0, "G": 0.0} and cs.n_checkpoint_errors == 0
    with pytest.raises(ValueError, match="c9.*failure_reason"):
        score_case(CPS, None, case_id="c9", story=False)


def test_bad_verdicts_raise_naming_the_case():
    with pytest.raises(ValueError, match="case 'c1'.*Z_check_9"):
        score_case(CPS, JudgeResult([Verdict("Z_check_9", "pass")]), case_id="c1", story=False)
    with pytest.raises(ValueError, match="two verdicts"):
        score_case(CPS, JudgeResult([Verdict("A_check_1", "pass"), Verdict("A_check_1", "fail")]), case_id="c1", story=False)
    with pytest.raises(ValueError, match="caps dimension 'Q'"):
        score_case([Checkpoint("A_check_1", "A", "q", True, "Q")], None, case_id="c1", story=False, failure_reason="x")


def _cases(prefix: str, scores: list[float], **kw) -> list[CaseScore]:
    return [CaseScore(f"{prefix}{i}", s, {"A": s / 100}, **kw) for i, s in enumerate(scores)]


def test_aggregate_counts_clean_scores_and_failures():
    t1 = _cases("a", [100.0, 50.0]) + [CaseScore("a_err", 20.0, {"A": 0.2}, n_checkpoint_errors=3, clean=False)]
    t2 = _cases("b", [80.0]) + [CaseScore("b_miss", 0.0, {"A": 0.0}, clean=False, reason="missing image: x")]
    out = aggregate({"t1": t1, "t2": t2}, bootstrap_iters=200, seed=1)
    r1, r2, bench = out["tasks"]["t1"], out["tasks"]["t2"], out["benchmark"]
    assert r1["score"] == pytest.approx(170 / 3) and r1["score_clean"] == pytest.approx(75.0)
    assert (r1["n_cases"], r1["n_cases_clean"], r1["n_checkpoint_errors"], r1["n_failed"]) == (3, 2, 3, 0)
    assert (r2["n_cases"], r2["n_cases_clean"], r2["n_failed"]) == (2, 1, 1)
    assert r2["score"] == pytest.approx(40.0) and r2["score_clean"] == pytest.approx(80.0)
    assert r1["dimensions"]["A"] == pytest.approx(1.7 / 3)
    assert bench["avg"] == pytest.approx(250 / 5) and bench["macro_avg"] == pytest.approx((170 / 3 + 40) / 2)
    assert bench["avg_clean"] == pytest.approx(230 / 3)
    assert (bench["n_cases"], bench["n_cases_clean"], bench["n_checkpoint_errors"], bench["n_failed"]) == (5, 3, 3, 1)
    assert bench["dimensions"]["A"] == pytest.approx(2.5 / 5)
    assert r1["stderr"] > 0 and bench["avg_stderr"] > 0
    again = aggregate({"t1": t1, "t2": t2}, bootstrap_iters=200, seed=1)
    assert again == out  # seeded
    assert aggregate({"t1": t1, "t2": t2}, bootstrap_iters=200, seed=2)["tasks"]["t1"]["stderr"] != r1["stderr"]


def test_aggregate_edge_cases():
    out = aggregate({"empty": [], "one": _cases("x", [42.0])})
    assert out["tasks"]["empty"]["score"] is None and out["tasks"]["empty"]["n_cases"] == 0
    assert out["tasks"]["one"]["stderr"] == 0.0 and out["benchmark"]["avg"] == 42.0 and out["benchmark"]["n_tasks"] == 1
    all_bad = [CaseScore("z", 0.0, {"A": 0.0}, clean=False, reason="missing image")]
    assert aggregate({"t": all_bad})["tasks"]["t"]["score_clean"] is None
    with pytest.raises(ValueError, match="task 't', case 'x0'.*dimension 'B'"):
        aggregate({"t": _cases("x", [1.0])}, task_dimensions={"t": ["A", "B"]})
    with pytest.raises(ValueError, match="scored twice"):
        aggregate({"t": _cases("x", [1.0]) + _cases("x", [2.0])})


def test_bootstrap_stderr_matches_the_analytic_value_roughly():
    values = [float(i % 10) for i in range(200)]
    n = len(values)
    mean = sum(values) / n
    analytic = (sum((v - mean) ** 2 for v in values) / (n - 1) / n) ** 0.5
    assert bootstrap_stderr(values, iters=2000, seed=0) == pytest.approx(analytic, rel=0.1)


# PROTOCOL 6: task scores and the paper's Avg. The case-weighted mean recovers it for these six models;
# Nano-Banana and GPT-Image's published Avg does not follow from their task scores (neither weighted
# nor plain mean), so they are not asserted.
PAPER = {
    "UNO": ([58.40, 66.68, 65.28, 28.84, 20.96, 39.08], 44.76),
    "DreamOmni2": ([88.24, 84.76, 85.28, 59.64, 76.16, 59.58], 75.56),
    "BAGEL": ([87.64, 89.96, 89.84, 52.40, 64.64, 65.09], 73.55),
    "BAGEL + DAR": ([88.04, 91.88, 90.76, 56.06, 71.24, 66.34], 76.31),
    "OmniGen2": ([89.52, 80.32, 81.64, 44.76, 57.96, 60.96], 67.83),
    "OmniGen2 + DAR": ([89.84, 81.00, 82.12, 48.72, 59.28, 60.73], 69.21),
}
TASKS = ["object_composition", "spatial_composition", "attribute_disentanglement", "component_transfer", "fgbg_composition", "story_generation"]
COUNTS = [200, 200, 100, 240, 200, 103]


@pytest.mark.parametrize("model", list(PAPER))
def test_paper_avg_is_the_case_weighted_mean(model):
    task_scores, paper_avg = PAPER[model]
    scores = {t: _cases(t, [s] * n) for t, s, n in zip(TASKS, task_scores, COUNTS)}
    out = aggregate(scores, bootstrap_iters=10)
    for t, s in zip(TASKS, task_scores):
        assert out["tasks"][t]["score"] == pytest.approx(s)
    assert out["benchmark"]["n_cases"] == 1043
    assert abs(out["benchmark"]["avg"] - paper_avg) < 0.01
    assert out["benchmark"]["macro_avg"] == pytest.approx(sum(task_scores) / 6)
    if model == "BAGEL":
        assert abs(out["benchmark"]["macro_avg"] - 74.93) < 0.01  # PROTOCOL 4's plain-mean check


# The six real tasks: checkpoint sets as PROTOCOL 3 specifies them, scored through Task.score_case.
PROTOCOL_SETS = {
    "object_composition": ({"A": 3, "B": 3, "C": 3, "D": 4, "G": 2}, {"A_check_1": "A", "B_check_1": "B"}),
    "spatial_composition": ({"A": 3, "B": 3, "C": 4, "D": 3, "G": 3}, {"A_check_1": "A", "C_check_1": "C"}),
    "attribute_disentanglement": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"A_check_1": "A", "B_check_1": "B", "C_check_1": "C", "D_check_1": "D"}),
    "component_transfer": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"A_check_1": "A", "B_check_2": "B", "C_check_1": "C"}),
    "fgbg_composition": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"B_check_1": "B", "D_check_1": "D"}),
    "story_generation": ({"A": 3, "B": 3, "C": 3, "D": 3, "E": 3, "G": 3}, {"A_check_1": "A", "B_check_1": "B", "E_check_1": "E"}),
}


@pytest.fixture(scope="module")
def real_tasks():
    return {name: load_task(name, source="sample") for name in PROTOCOL_SETS}


@pytest.mark.parametrize("name", list(PROTOCOL_SETS))
def test_real_tasks_score_through_task_score_case(real_tasks, name):
    task = real_tasks[name]
    counts, hard = PROTOCOL_SETS[name]
    cps = task.checkpoints
    got_counts: dict[str, int] = {}
    for cp in cps:
        got_counts[cp.dimension] = got_counts.get(cp.dimension, 0) + 1
    assert got_counts == counts
    assert {cp.id: cp.caps for cp in cps if cp.hard} == hard
    assert task.is_story == (name == "story_generation")
    case = task[0]
    story = task.is_story
    answer = {"answer_set_score": 10.0, "answer_set_status": "pass"} if story else {}
    full = task.score_case(case, JudgeResult([Verdict(cp.id, "pass") for cp in cps], **answer))
    assert full.score == pytest.approx(100.0) and full.clean
    # Fail the first hard checkpoint only: its dimension drops to 0.4, every other stays 1.
    first_hard = next(cp for cp in cps if cp.hard)
    res = JudgeResult([Verdict(cp.id, "fail" if cp is first_hard else "pass") for cp in cps], **answer)
    cs = task.score_case(case, res)
    n_dims = len(counts)
    expected_mean = (n_dims - 1 + 0.4) / n_dims
    expected = 40 * expected_mean + 60 if story else 100 * expected_mean
    assert cs.dimensions[first_hard.caps] == pytest.approx(0.4) and cs.score == pytest.approx(expected)
    missing = task.score_case(case, None, failure_reason="missing image: not generated")
    assert missing.score == 0.0 and missing.reason.startswith("missing image")


def test_salvaged_verdicts_count_as_readable_and_are_reported():
    from micon_tasks.scoring.checkpoints import aggregate as agg
    from micon_tasks.scoring.checkpoints import score_case as sc
    from micon_tasks.types import Checkpoint, JudgeResult, Verdict

    cps = [Checkpoint("A_check_1", "A", "q1"), Checkpoint("A_check_2", "A", "q2")]
    res = JudgeResult([Verdict("A_check_1", "pass", salvaged=True), Verdict("A_check_2", "fail")], 7.0, "pass", None,
                      {}, {"answer_set_salvaged": True})
    case = sc(cps, res, case_id="c", story=True)
    assert case.clean and case.n_checkpoint_errors == 0 and case.extra["n_salvaged"] == 2
    out = agg({"t": [case]}, bootstrap_iters=10)
    assert out["tasks"]["t"]["n_salvaged"] == 2 and out["benchmark"]["n_salvaged"] == 2
