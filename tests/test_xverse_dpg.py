"""DPG arithmetic: dependency gating, the 'yes' match and the all-questions denominator."""

from __future__ import annotations

import pytest

from micon_tasks.suites.xversebench.dpg import Question, gated_scores, image_dpg, is_yes, questions_of
from micon_tasks.types import Case

# The polar-bear case's shape: 1, 2 roots; 3, 4 depend on 1; 5 on 1 and 2.
QS = [
    Question("1", "Is there a polar bear?", ("0",)),
    Question("2", "Is there an iceberg?", ("0",)),
    Question("3", "Is the bear a polar bear?", ("1",)),
    Question("4", "Is the polar bear standing?", ("1",)),
    Question("5", "Is the polar bear on the iceberg?", ("1", "2")),
]


def test_all_yes_scores_100():
    assert image_dpg(QS, dict.fromkeys("12345", True)) == 100.0


def test_parent_zero_means_no_parent():
    yes = {"1": False, "2": True, "3": False, "4": False, "5": False}
    assert gated_scores(QS, yes)["2"] == 1.0


def test_a_failed_parent_zeroes_a_yes_child_and_the_denominator_counts_every_question():
    yes = {"1": False, "2": True, "3": True, "4": True, "5": True}
    scores = gated_scores(QS, yes)
    assert scores == {"1": 0.0, "2": 1.0, "3": 0.0, "4": 0.0, "5": 0.0}
    assert image_dpg(QS, yes) == pytest.approx(20.0)  # 1 of 5, not 1 of the 2 ungated


def test_one_failed_parent_of_two_is_enough():
    yes = {"1": True, "2": False, "3": True, "4": True, "5": True}
    assert gated_scores(QS, yes)["5"] == 0.0
    assert image_dpg(QS, yes) == pytest.approx(60.0)


def test_the_gate_reads_raw_parent_answers_one_level_deep():
    chain = [Question("1", "a", ("0",)), Question("2", "b", ("1",)), Question("3", "c", ("2",))]
    # 2 is gated to 0 by 1, but 3 looks at 2's own answer (yes), as the authors' evaluator does
    assert gated_scores(chain, {"1": False, "2": True, "3": True}) == {"1": 0.0, "2": 0.0, "3": 1.0}


def test_a_parent_missing_from_the_list_is_ignored():
    assert gated_scores([Question("1", "a", ("7",))], {"1": True}) == {"1": 1.0}


@pytest.mark.parametrize("answer, exact, expected", [
    ("yes", True, True), ("Yes", True, False), ("yes.", True, False), ("no", True, False),
    ("Yes.", False, True), ("  YES!  ", False, True), ("yes,", False, True), ("no", False, False),
    ("yes, it is", False, False), ("", False, False), (None, False, False),
])
def test_yes_match(answer, exact, expected):
    assert is_yes(answer, exact=exact) is expected


def _case(questions):
    return Case(task="xversebench_single", case_id="c0", refs=[], ref_roles=[], prompt="p",
                extra={"questions": questions})


def test_questions_of_reads_the_case_and_names_it_when_malformed():
    qs = questions_of(_case([{"id": "1", "question": "Is there a cat?", "parents": [0], "tuple": "entity - whole"}]))
    assert qs == [Question("1", "Is there a cat?", ("0",), "entity - whole")]
    with pytest.raises(ValueError, match="case 'c0'.*questions"):
        questions_of(_case([]))
    with pytest.raises(ValueError, match="case 'c0'.*malformed"):
        questions_of(_case([{"id": "1"}]))
