"""The rubric judge request: prompt assembly, image preparation, reply parsing, and one request per criterion
on a loopback OpenAI-compatible server."""

from __future__ import annotations

import base64
import io
import json
import math
import re

import pytest
import test_omnicontext_helpers as oc
from fake_judge_server import FakeJudgeServer, Reply, prompt_text
from PIL import Image

from micon_tasks.judges import JudgeRequest, load_judge
from micon_tasks.suites.omnicontext.requests import read_score, render_rubric
from micon_tasks.task import load_task


@pytest.mark.parametrize(("size", "expected"), [
    ((3000, 2000), (1248, 832)), ((500, 375), (496, 368)), ((2048, 2048), (1024, 1024)),
    ((1024, 1024), (1024, 1024)), ((4000, 100), (4000, 96)), ((1023, 1025), (1008, 1024)), ((8, 8), (16, 16)),
])
def test_input_images_shrink_by_area_and_floor_to_16_and_the_generated_image_is_left_alone(size, expected):
    """The card's request options, applied by the judge's image preparation, give the authors' rule."""
    from micon_tasks.judges.images import ImageSpec, fit, prompt_specs

    req = _request("omnicontext_single_object", image=Image.new("RGB", (1024, 1024)))
    req.case.refs = [Image.new("RGB", size)]
    prompt = render_rubric(req, _Judge())[0]
    ref_spec, gen_spec = prompt_specs(prompt, ImageSpec())
    assert ref_spec.fmt == gen_spec.fmt == "jpeg"
    assert fit(prompt.images[0][1], ref_spec).size == expected
    assert fit(prompt.images[-1][1], gen_spec).size == (1024, 1024)


def _request(task_name: str, image=None, index: int = 0) -> JudgeRequest:
    task = load_task(task_name, source="sample")
    case = task[index]
    return JudgeRequest(task=task.name, case=case, image=image or Image.new("RGB", (1500, 1500), (9, 9, 9)),
                        kind="rubric", scoring=task.config.scoring)


class _Judge:
    logits = False


def test_prompts_text_first_inputs_in_order_generated_last_and_only_inputs_shrunk():
    big = Image.new("RGB", (1500, 1500))
    prompts = render_rubric(_request("omnicontext_scene_character_object", big), _Judge())
    assert [p.name for p in prompts] == ["PF", "SC"]
    for p in prompts:
        labels = [label for label, _ in p.images]
        assert labels == ["Input image 1", "Input image 2", "Input image 3", "Generated image"]
        assert p.images[-1][1] is big  # handed over as it is (the judge prepares it)
        assert p.options == {"image_format": "jpeg", "temperature": None, "max_ref_pixels": 1024 * 1024,
                             "ref_multiple": 16}
        assert p.text.index("Input image 1") < p.text.index("Instruction:")
        assert '{"score"' in p.text and "Instruction: " in p.text


def test_pf_wording_is_the_same_for_every_type_and_sc_has_a_scene_variant():
    def texts(task):
        pf, sc = render_rubric(_request(task), _Judge())
        instr = oc.instruction_of(pf.text)
        same = lambda t: re.sub(r"then \d+ input", "then <n> input", t.replace(instr, "<i>"))  # noqa: E731
        return same(pf.text), same(sc.text)

    single, scene = texts("omnicontext_single_character"), texts("omnicontext_scene_character")
    multi = texts("omnicontext_multi_object")
    assert oc.PF_HEADING in single[0] and oc.SC_HEADING in single[1]
    assert single[0] == scene[0] == multi[0]  # PF: one wording for all types (the authors' behaviour)
    assert single[1] == multi[1] != scene[1]  # SC: scene types get the scene wording
    assert "scene" in scene[1].split(oc.SC_HEADING)[1].lower()


def test_pf_scene_variant_is_an_option_off_by_default():
    from micon_tasks.config import ScoringConfig

    task = load_task("omnicontext_scene_object", source="sample")
    opts = task.config.scoring.to_card()
    opts["criteria"] = [{**c, "scene_variant": True} for c in opts["criteria"]]
    scoring = ScoringConfig.from_dict(opts, task=task.name, source="test")
    on = render_rubric(JudgeRequest(task.name, task[0], Image.new("RGB", (8, 8)), kind="rubric", scoring=scoring), _Judge())
    off = render_rubric(_request("omnicontext_scene_object"), _Judge())
    assert on[0].text != off[0].text and on[1].text == off[1].text


def test_logits_judges_and_requests_without_scoring_are_refused():
    judge = _Judge()
    judge.logits = True
    with pytest.raises(ValueError, match="logits"):
        render_rubric(_request("omnicontext_single_object"), judge)
    req = _request("omnicontext_single_object")
    req.scoring = None
    with pytest.raises(ValueError, match="scoring"):
        render_rubric(req, _Judge())


@pytest.mark.parametrize(("reply", "value", "salvaged"), [
    ('{"score": 7, "reasoning": "good"}', 7.0, False),
    ('```json\n{"score": 9, "reasoning": "x"}\n```', 9.0, False),
    ('Here is my verdict: {"score": 0, "reasoning": "nothing matches"} Thanks.', 0.0, False),
    ('{"score": 10}', 10.0, False),
    ('{"score": 6.5, "reasoning": "half"}', 6.5, False),
    ('{"score": "7", "reasoning": "string"}', 7.0, True),
    ("7", 7.0, True),
    (" 3 \n", 3.0, True),
])
def test_readable_scores(reply, value, salvaged):
    v = read_score(reply, "PF")
    assert (v.status, v.value, v.salvaged, v.checkpoint_id) == ("scored", value, salvaged, "PF")


def test_a_reply_is_parsed_once_and_keeps_its_reasoning(monkeypatch):
    import micon_tasks.judges.parser as parser
    import micon_tasks.suites.omnicontext.requests as requests

    calls = []
    real = parser.extract_object
    counting = lambda *a, **k: calls.append(a) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(parser, "extract_object", counting)
    monkeypatch.setattr(requests, "extract_object", counting, raising=False)  # a second reading would show here
    v = read_score('{"score": 8, "reasoning": "all there", "reason": "other"}', "PF")
    assert (v.value, v.rationale) == (8.0, "all there") and len(calls) == 1
    assert read_score('{"score": 8, "reason": "said as reason"}', "PF").rationale == "said as reason"
    assert read_score('{"score": 8, "reasoning": 3}', "PF").rationale is None


def test_card_settings_are_checked_once_per_card(monkeypatch):
    import micon_tasks.suites.omnicontext.options as options
    from micon_tasks.errors import ConfigError

    card = {"criteria": [{"name": "PF", "template": "prompt_following_v1"}], "request": {"ref_multiple": 8}}
    checked = []
    real = options.template_exists
    monkeypatch.setattr(options, "template_exists", lambda name: checked.append(name) or real(name))
    monkeypatch.setattr(options, "_READ", {})
    first = options.RubricOptions.from_options(card, task="once")
    assert options.RubricOptions.from_options(json.loads(json.dumps(card)), task="once") is first
    assert checked == ["prompt_following_v1"] and first.request["ref_multiple"] == 8
    with pytest.raises(TypeError):
        first.request["ref_multiple"] = 1  # shared by every reader: read-only
    other = options.RubricOptions.from_options({**card, "request": {"ref_multiple": 32}}, task="once")
    assert other.request["ref_multiple"] == 32  # another setting is another reading
    for _ in range(2):  # a bad card is refused every time, never remembered as good
        with pytest.raises(ConfigError, match="scoring.combine"):
            options.RubricOptions.from_options({**card, "combine": "mean"}, task="once")


@pytest.mark.parametrize("reply", [
    None, "", "   ", "I'm sorry, I can't help with that.", '{"score": 11}', '{"score": -1}', "12", '{"score": [7]}',
    "[7]", '{"score": true}', '{"score": null}', '{"score": "seven"}', '{"score": NaN}', '{"score": 1e400}',
    '{"reasoning": "no score given"}', '{"score": 7} and also {"score": 8}', '{"score": 7, "score": 8}',
    '{"score": 7', "rate_limit_exceeded",
])
def test_unreadable_replies_are_errors_never_numbers(reply):
    v = read_score(reply, "SC", note="finish_reason=length")
    assert v.status == "error" and v.value is None and v.error and v.error.endswith("(finish_reason=length)")


def _bodies_responder(bodies, base=oc.rubric_reply):
    def responder(body, seen):
        bodies.append(body)
        return base(body, seen)

    return responder


def test_one_request_per_criterion_per_item_on_a_healthy_server():
    task = load_task("omnicontext_scene_object", source="sample")
    bodies: list[dict] = []
    with FakeJudgeServer(_bodies_responder(bodies)) as srv:
        judge = load_judge("openai", base_url=srv.base_url, model="fake-judge", max_retries=0)
        reqs = [JudgeRequest(task.name, c, Image.new("RGB", (64, 64), (i, 0, 0)), kind="rubric",
                             scoring=task.config.scoring) for i, c in enumerate(task)]
        results = judge.judge_batch(reqs)
    assert len(srv.requests) == 2 * len(reqs) == 4
    for res in results:
        assert [(v.checkpoint_id, v.status) for v in res.verdicts] == [("PF", "scored"), ("SC", "scored")]
        assert all(isinstance(v.value, float) for v in res.verdicts)
        assert res.details["judge_model"] == "fake-judge" and res.details["wording"] == {"PF": "base", "SC": "scene"}
    for body in bodies:
        parts = body["messages"][0]["content"]
        kinds = [p["type"] for p in parts]
        assert kinds[0] == "text" and oc.criterion_of(parts[0]["text"])  # the instructions come first
        labels = [p["text"] for p in parts[1:] if p["type"] == "text"]
        assert labels == ["Input image 1:", "Input image 2:", "Generated image:"]  # generated image last
        assert kinds[-1] == "image_url"
        assert "temperature" not in body  # left to the server's default, as the authors do
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert all(u.startswith("data:image/jpeg;base64,") for u in urls)  # sent as JPEG
        sizes = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size for u in urls]
        assert all(w % 16 == 0 and h % 16 == 0 for w, h in sizes[:-1]) and sizes[-1] == (64, 64)
    for res in results:
        assert [v.value for v in res.verdicts] == [float(json.loads(v.raw)["score"]) for v in res.verdicts]


def test_a_malformed_reply_is_an_error_for_that_criterion_only_and_a_429_too():
    task = load_task("omnicontext_multi_character", source="sample")
    a, b = list(task)
    responder = oc.breaking(a.prompt, "SC", '{"score": [7]}', base=oc.breaking(b.prompt, "PF", None))
    with FakeJudgeServer(responder) as srv:
        judge = load_judge("openai", base_url=srv.base_url, model="fake-judge", max_retries=0)
        ra, rb = judge.judge_batch([JudgeRequest(task.name, c, Image.new("RGB", (32, 32)), kind="rubric",
                                                 scoring=task.config.scoring) for c in (a, b)])
    # one request per criterion, then the judge's re-asks (2 by default) of the unreadable SC only: the 429 was
    # the backend's to retry (max_retries=0), and nothing else is repeated
    assert len(srv.requests) == 4 + 2
    assert [a["attempt"] for a in ra.details["reask"]["attempts"]["SC"]] == [0, 1, 2]
    pf, sc = ra.verdicts
    assert pf.status == "scored" and sc.status == "error" and sc.value is None and "[7]" in sc.error
    pf, sc = rb.verdicts
    assert pf.status == "error" and pf.value is None and "429" in pf.error and sc.status == "scored"
    kind = task.scoring_kind
    score = kind.score_case(task, ra, case_id=a.case_id)
    assert score.score == 0.0 and not score.clean and score.extra["criterion_errors"] == ["SC"]
    assert set(score.dimensions) == {"PF"} and math.isfinite(score.dimensions["PF"])


def test_scores_come_only_from_the_reply_not_from_chance():
    """The same reply text always gives the same number; an unreadable reply never gives one."""
    with FakeJudgeServer(lambda body, seen: Reply(content="no idea")) as srv:
        task = load_task("omnicontext_single_character", source="sample")
        judge = load_judge("openai", base_url=srv.base_url, model="fake-judge", max_retries=0)
        req = JudgeRequest(task.name, task[0], Image.new("RGB", (16, 16)), kind="rubric", scoring=task.config.scoring)
        runs = [judge.judge_batch([req])[0] for _ in range(3)]
    assert all(v.status == "error" and v.value is None for r in runs for v in r.verdicts)
    assert len(srv.requests) == 3 * (2 + 2 * 2)  # each run: 2 requests, then 2 re-asks of each criterion


def test_a_variant_card_turns_the_pf_scene_wording_on_without_python(tmp_path):
    import registry

    (tmp_path / "variant.yaml").write_text(
        "task: omnicontext_scene_object_pf_scene\nclass: omnicontext_scene_object\nscoring:\n  criteria:\n"
        "    - {name: PF, template: prompt_following_v1, scene_variant: true}\n"
        "    - {name: SC, template: subject_consistency_v1, scene_variant: true}\n")
    try:
        variant = load_task("omnicontext_scene_object_pf_scene", source="sample", include=tmp_path)
        base = load_task("omnicontext_scene_object", source="sample")
        assert variant.case_ids == base.case_ids and variant.task_type == "scene_object"
        req = JudgeRequest(variant.name, variant[0], Image.new("RGB", (8, 8)), kind="rubric",
                           scoring=variant.config.scoring)
        pf_on, sc_on = render_rubric(req, _Judge())
        pf_off, sc_off = render_rubric(_request("omnicontext_scene_object"), _Judge())
        assert pf_on.text != pf_off.text and sc_on.text == sc_off.text
    finally:
        registry.tasks.remove("omnicontext_scene_object_pf_scene")


def test_a_reask_recovers_an_unreadable_score_and_says_so():
    task = load_task("omnicontext_single_object", source="sample")
    case = task[0]

    def responder(body, seen):
        text = prompt_text(body)
        if oc.criterion_of(text) == "PF" and "could not be used" not in text:
            return Reply(content="Pretty good overall.")
        return oc.rubric_reply(body, seen)

    with FakeJudgeServer(responder) as srv:
        judge = load_judge("openai", base_url=srv.base_url, model="fake-judge", max_retries=0)
        res = judge.judge_batch([JudgeRequest(task.name, case, Image.new("RGB", (16, 16)), kind="rubric",
                                              scoring=task.config.scoring)])[0]
    assert len(srv.requests) == 3 and [v.status for v in res.verdicts] == ["scored", "scored"]
    assert res.details["reask"]["used"]["PF"] == 1
