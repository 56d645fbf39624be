"""Parser, templates and cache units (no HTTP, no model)."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import multiprocessing
import subprocess
import sys

import pytest
from PIL import Image

from micon_tasks.judges.base import SEED_RULE, request_seed
from micon_tasks.judges.cache import CACHE_SCHEMA, VerdictCache, cache_key, image_digest
from micon_tasks.judges.parser import parse_checkpoint_reply, parse_score_reply, parse_single_reply
from micon_tasks.judges.prompts import TEMPLATE_FILES, load_template, render_prompts
from micon_tasks.types import AnswerSet, Case, Checkpoint, JudgeResult, Verdict

IDS = ["A_check_1", "A_check_2"]


def statuses(text):
    verdicts, _ = parse_checkpoint_reply(text, IDS)
    return [v.status for v in verdicts]


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_2": {"pass": 0}}}', ["pass", "fail"]),
        ('```json\n{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_2": {"pass": 1}}}\n```', ["pass", "pass"]),
        ('Result: {"checkpoint_results": {"A_check_1": {"pass": false}, "A_check_2": {"pass": true}}} end', ["fail", "pass"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": "yes"}, "A_check_2": {"pass": 1}}}', ["error", "pass"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": "1"}, "A_check_2": {"pass": "FAIL"}}}', ["pass", "fail"]),
        ('{"checkpoint_results": {"A_check_1": 0.0, "A_check_2": "True"}}', ["fail", "pass"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": 2}, "A_check_2": 0.5}}', ["error", "error"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": 1}}}', ["pass", "error"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_2": {"pass": 1}', ["error", "error"]),
        ("", ["error", "error"]),
        (None, ["error", "error"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_1": {"pass": 0}, "A_check_2": {"pass": 1}}}', ["error", "error"]),
        ('{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_2": {"pass": 1}}, "checkpoint_results": {}}', ["error", "error"]),
    ],
)
def test_checkpoint_reply(text, expected):
    assert statuses(text) == expected


def test_salvaged_verdicts_are_flagged_and_standard_ones_are_not():
    verdicts, _ = parse_checkpoint_reply('{"checkpoint_results": {"A_check_1": {"pass": "pass"}, "A_check_2": {"pass": 1}}}', IDS)
    assert [v.salvaged for v in verdicts] == [True, False]


def test_non_finite_extras_are_an_error_for_that_field_only():
    text = '{"checkpoint_results": {"A_check_1": {"pass": 1}, "A_check_2": {"pass": 0}}, "flags": [NaN], "rationale": "ok"}'
    verdicts, extras = parse_checkpoint_reply(text, IDS)
    assert [v.status for v in verdicts] == ["pass", "fail"]
    assert "flags" not in extras and extras["rationale"] == "ok" and "non-finite" in extras["field_errors"]["flags"]
    json.dumps(extras, allow_nan=False)


def test_cache_never_stores_what_cannot_be_written(tmp_path):
    cache = VerdictCache(tmp_path / "c.sqlite")
    bad = JudgeResult([Verdict("A_check_1", "pass")], None, None, None, {}, {"x": float("nan")})
    good = JudgeResult([Verdict("A_check_1", "pass", rationale="\udc80 escaped")], None, None, None, {}, {})
    cache.put_many([("k1", "m", "c", bad), ("k2", "m", "c", good)])
    assert len(cache) == 1 and cache.get("k1") is None and cache.get("k2").verdicts[0].status == "pass"


def test_checkpoint_reply_keeps_reasons_and_extras():
    text = json.dumps(
        {
            "checkpoint_results": {"A_check_1": {"pass": 1, "reason": "cat present"}, "A_check_2": {"pass": 0}, "Z_check_9": {"pass": 1}},
            "hard_constraint_results": {"H1": {"pass": 1}},
            "rationale": "overall fine",
            "flags": ["x"],
        }
    )
    verdicts, extras = parse_checkpoint_reply(text, IDS)
    assert verdicts[0].rationale == "cat present" and verdicts[1].rationale == "overall fine"
    assert extras["hard_constraint_results"] == {"H1": {"pass": 1}} and extras["unknown_ids"] == ["Z_check_9"]
    # Identical repeated objects (a judge echoing itself) are not ambiguous.
    one = json.dumps({"checkpoint_results": {i: {"pass": 1} for i in IDS}})
    assert [v.status for v in parse_checkpoint_reply(one + "\n" + one, IDS)[0]] == ["pass", "pass"]


def test_single_and_score_replies():
    assert parse_single_reply('{"pass": 1, "reason": "ok"}', "A_check_1").status == "pass"
    assert parse_single_reply('sure: {"pass": 0}', "A_check_1").status == "fail"
    salvaged = parse_single_reply('{"pass": "0"}', "A_check_1")
    assert salvaged.status == "fail" and salvaged.salvaged
    assert parse_single_reply('{"pass": "nope"}', "A_check_1").status == "error"
    assert not parse_single_reply('{"pass": 1}', "A_check_1").salvaged
    assert parse_score_reply('{"score": 9, "reason": "r"}').score == 9.0
    quoted = parse_score_reply('{"score": "7"}')
    assert quoted.score == 7.0 and quoted.salvaged and parse_score_reply('{"score": 7.5}').score == 7.5
    for bad in ('{"score": true}', '{"score": "nine"}', '{"score": 10.5}', '{"score": 12}', "nine", "", '{"score": Infinity}',
                '{"score": -0.5}', '{"score": "11"}', '{"score": NaN}'):
        parsed = parse_score_reply(bad)
        assert parsed.status == "error" and parsed.score is None and parsed.error, bad


def _case(**kw):
    base = dict(task="story_generation", case_id="c1", refs=[Image.new("RGB", (4, 4))] * 2, ref_roles=["RA", "RB"],
                prompt="Continue the story.", goal="Next frame.", constraints_hard=["same hero"],
                answer_set=AnswerSet("A hero walks.", ("hero rests",), ("hero vanishes",)))
    base.update(kw)
    return Case(**base)


def test_templates_are_versioned_package_data_with_hashes():
    for version, roles in TEMPLATE_FILES.items():
        for role, filename in roles.items():
            tpl = load_template(role, version)
            data = importlib.resources.files("micon_tasks.judges.templates").joinpath(filename).read_bytes()
            assert tpl.sha256 == hashlib.sha256(data).hexdigest() and tpl.version == version


def test_rendered_prompt_order_and_content():
    cps = [Checkpoint("A_check_1", "A", "Follows the instruction?", True, "A"), Checkpoint("E_check_1", "E", "Story moves on?")]
    img = Image.new("RGB", (4, 4), "white")
    prompts = render_prompts(_case(), img, cps, story=True)
    assert [p.name for p in prompts] == ["checkpoints", "answer_set"]
    text = prompts[0].text
    assert "Continue the story." in text and "H1: same hero" in text and "A_check_1 [hard]: Follows" in text
    assert "these ids: A_check_1, E_check_1." in text and "$" not in text
    assert [label for label, _ in prompts[0].images] == ["Reference RA", "Reference RB", "Generated image"]
    assert prompts[0].images[-1][1] is img
    assert "hero vanishes" in prompts[1].text and "$" not in prompts[1].text
    per = render_prompts(_case(), img, cps, story=False, request_mode="checkpoint")
    assert [p.name for p in per] == ["A_check_1", "E_check_1"] and "Story moves on?" in per[1].text
    logits = render_prompts(_case(), img, cps, story=True, logits=True)
    assert logits[0].candidates == ["0", "1"] and logits[-1].candidates[-1] == "10,"
    with pytest.raises(ValueError, match="case 'c1'.*ref_roles"):
        render_prompts(_case(ref_roles=["RA"]), img, cps, story=False)


def test_story_case_without_answer_set_renders_its_checkpoint_prompts():
    cps = [Checkpoint("A_check_1", "A", "Follows the instruction?", True, "A"), Checkpoint("E_check_1", "E", "Story moves on?")]
    img = Image.new("RGB", (4, 4), "white")
    with_set = render_prompts(_case(), img, cps, story=True)
    without = render_prompts(_case(answer_set=None), img, cps, story=True)
    assert [p.name for p in without] == ["checkpoints"] and without[0].text == with_set[0].text
    per = render_prompts(_case(answer_set=None), img, cps, story=True, request_mode="checkpoint")
    assert [p.name for p in per] == ["A_check_1", "E_check_1"]


def test_request_seed_comes_from_the_request_alone():
    base = request_seed(0, "story_generation", "c1", "checkpoints")
    assert base == request_seed(None, "story_generation", "c1", "checkpoints")  # no seed = seed 0
    assert base == request_seed(0, "story_generation", "c1", "checkpoints")
    others = {
        request_seed(1, "story_generation", "c1", "checkpoints"),
        request_seed(0, "object_composition", "c1", "checkpoints"),
        request_seed(0, "story_generation", "c2", "checkpoints"),
        request_seed(0, "story_generation", "c1", "answer_set"),
        request_seed(0, "story_generation", "c1", "A_check_1"),
    }
    assert base not in others and len(others) == 5
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in others | {base})
    # Pinned: the rule is part of every result's provenance, so it must not drift silently.
    assert base == int.from_bytes(hashlib.sha256(b"0/story_generation/c1/checkpoints").digest()[:4], "big") & 0x7FFFFFFF
    assert "per request" in SEED_RULE


def test_cache_schema_moved_with_the_seed_rule():
    # Entries written under schema 1 (unseeded openai requests, one torch seed per hf batch) must miss.
    assert CACHE_SCHEMA >= 2
    assert cache_key({"x": 1}) != hashlib.sha256(json.dumps({"schema": 1, "x": 1}, sort_keys=True).encode()).hexdigest()


def test_image_digest_and_key():
    a, b = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "red")
    assert image_digest(a) == image_digest(b) != image_digest(Image.new("RGB", (4, 4), "blue"))
    assert image_digest(a) != image_digest(Image.new("RGB", (2, 8), "red"))
    assert cache_key({"x": 1, "y": [0.1]}) == cache_key({"y": [0.1], "x": 1}) != cache_key({"x": 1, "y": [0.2]})


def _writer(path: str, worker: int, n: int) -> None:
    cache = VerdictCache(path)
    for i in range(n):
        res = JudgeResult([Verdict("A_check_1", "pass", raw="r", rationale=f"w{worker}")], provenance={"model": "m"})
        cache.put_many([(f"k{worker}_{i}", "m", f"c{i}", res)])
    cache.close()


def test_cache_roundtrip_and_several_processes_writing(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    cache = VerdictCache(path)
    res = JudgeResult([Verdict("A_check_1", "fail", raw="{}", rationale="no")], 7.0, "pass", raw="{}", provenance={"model": "m", "cached": False})
    cache.put_many([("key1", "m", "c1", res)])
    back = cache.get("key1")
    assert back.verdicts == res.verdicts and back.answer_set_score == 7.0 and "cached" not in back.provenance
    assert cache.get("nope") is None
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(cache) == 1 + 3 * 40
    got = cache.get_many([f"k{w}_{i}" for w in range(3) for i in range(40)])
    assert len(got) == 120 and got["k2_39"].verdicts[0].rationale == "w2"
    cache.close()


def test_importing_judges_stays_light():
    code = (
        "import sys, micon_tasks.judges, registry;"
        "assert registry.get_judge('openai') and registry.get_judge('hf');"
        "heavy = [m for m in ('torch', 'transformers', 'openai') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(importlib.resources.files("micon_tasks").parent))
