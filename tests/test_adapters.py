"""The adapter contract: load_adapter, the ModelAdapter template, resolve_dar, baselines, prompts, retries,
and the documented "add your own model" recipe run on a sample task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops

import registry
from adapters import (
    DARNotSupportedError,
    GenerationError,
    GenerationRequest,
    ModelAdapter,
    load_adapter,
    register_adapter,
    resolve_dar,
)
from adapters.prompts import find_mentions, omnigen_prompt, panel_prompt, qwen_picture_prompt
from micon_tasks.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RED, BLUE, GREEN = (Image.new("RGB", (40, 30), c) for c in ("red", "blue", "green"))


# -- the "add your own model" recipe (docs/adapters.md) ---------------------------------------------
class BlendAdapter(ModelAdapter):
    """A toy model: the references averaged at the output size, plus seeded noise of ``noise`` amplitude."""

    max_refs = 3
    supports_dar = False
    default_size = (64, 48)

    def __init__(self, noise: float = 0.0, height: int | None = None, width: int | None = None):
        self.noise = noise
        self.width, self.height = self.output_size(width, height)

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import numpy as np

        stack = np.stack([np.asarray(r.resize((self.width, self.height)), dtype=np.float32) for r in refs])
        noise = np.random.default_rng(seed).normal(0, self.noise, stack.shape[1:])
        return Image.fromarray(np.clip(stack.mean(0) + noise, 0, 255).astype("uint8"))

    def model_info(self):
        return {**super().model_info(), "weights": None, "noise": self.noise}


@pytest.fixture
def blend():
    register_adapter("test_blend")(BlendAdapter)
    yield "test_blend"
    registry.adapters.remove("test_blend")


def test_recipe_subclass_register_run_on_sample_task(blend):
    from micon_tasks import load_task

    adapter = load_adapter(blend, "noise=4.0,height=40", width=56)
    assert isinstance(adapter, BlendAdapter) and (adapter.width, adapter.height, adapter.noise) == (56, 40, 4.0)
    task = load_task("object_composition", source="sample")
    requests = [GenerationRequest(case.refs, case.prompt, seed=i, case_id=case.case_id) for i, case in enumerate(task)]
    images = adapter.generate_batch(requests)
    assert len(images) == len(task) > 0
    assert all(isinstance(im, Image.Image) and im.size == (56, 40) for im in images)
    case = task[0]
    assert adapter.generate(case.refs, case.prompt, seed=0).tobytes() == images[0].tobytes()
    assert adapter.model_info()["name"] == blend and adapter.model_info()["noise"] == 4.0


def test_recipe_refuses_dar_and_too_many_refs(blend):
    adapter = load_adapter(blend)
    with pytest.raises(DARNotSupportedError, match="test_blend"):
        adapter.generate([RED, BLUE], "x", dar=True)
    with pytest.raises(GenerationError, match="at most 3") as err:  # this case's failure, recorded by the runner
        adapter.generate([RED, BLUE, GREEN, RED], "x")
    assert err.value.reason == "unsupported_input"
    assert adapter.generate([RED, BLUE], "x", dar=False).size == (64, 48)


# -- load_adapter -------------------------------------------------------------------------------------
def test_load_adapter_coerces_and_keywords_win():
    adapter = load_adapter("collage", "height=32,width=none", width=48)
    assert (adapter.width, adapter.height) == (48, 32)
    with pytest.raises(ConfigError, match="accepted arguments: height, width"):
        load_adapter("collage", "hieght=3")
    with pytest.raises(registry.UnknownNameError, match="Did you mean 'collage'"):
        load_adapter("colage")


def test_builtins_register_without_importing_heavy_libraries():
    code = (
        "import sys, registry\n"
        "names = registry.list_adapters()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'openai', 'google.genai', 'transformers') if m in sys.modules]\n"
        "print(','.join(names)); print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names, heavy = out.stdout.strip().splitlines()
    for name in ("omnigen", "qwen_image_edit_plus", "flux2_klein", "flux_kontext", "dreamomni2", "gpt_image",
                 "nano_banana", "collage", "first_ref"):
        assert name in names.split(",")
    assert heavy == "[]"


# -- the template ----------------------------------------------------------------------------------------
class _Broken(ModelAdapter):
    def __init__(self, fail_on: str = "boom"):
        self.fail_on = fail_on

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        if prompt == self.fail_on:
            raise GenerationError("provider said no", reason="refused", provider_reason="policy")
        if prompt == "array":
            return [[0]]
        return refs[0]


def test_generate_checks_refs_and_output():
    adapter = _Broken()
    with pytest.raises(ConfigError, match="at least one"):
        adapter.generate([], "x")
    with pytest.raises(ConfigError, match="reference 2 is a str"):
        adapter.generate([RED, "blue.png"], "x")
    with pytest.raises(ConfigError, match="list of PIL images"):
        adapter.generate(RED, "x")
    assert adapter.generate([Image.new("L", (4, 4))], "x").mode == "RGB"
    with pytest.raises(GenerationError) as info:
        adapter.generate([RED], "array")
    assert info.value.reason == "bad_output"


def test_generate_batch_returns_failures_in_place():
    out = _Broken().generate_batch([GenerationRequest([RED], "ok"), GenerationRequest([BLUE], "boom"),
                                    GenerationRequest([GREEN], "ok")])
    assert isinstance(out[0], Image.Image) and isinstance(out[2], Image.Image)
    assert isinstance(out[1], GenerationError)
    assert out[1].to_dict() == {"message": "provider said no", "reason": "refused", "provider_reason": "policy",
                                "retryable": False}


class CountingDAR(ModelAdapter):
    """A toy DAR-capable adapter that reports ``calls`` rebalanced attention calls (or no stats at all)."""

    supports_dar = True

    def __init__(self, calls: int = 1, report: bool = True):
        self.calls, self.report = calls, report

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        from dar import DARStats

        if dar is not None and self.report:
            self.last_dar_stats = DARStats()
            self.last_dar_stats.add_rebalanced(self.calls)
            self.last_dar_stats.add_passed("layer_excluded", 3)
        return refs[0]


def test_generate_refuses_a_dar_run_that_rebalanced_nothing():
    ok = CountingDAR(calls=2)
    assert ok.generate([RED], "x", dar=True) is not None and ok.last_dar_calls == 2
    assert ok.model_info()["dar"]["last_generation"] == {"rebalanced": 2, "passed": {"layer_excluded": 3},
                                                         "forwards": 0}
    assert ok.generate([RED], "x", dar={"gamma": 0.0}).size == RED.size  # gamma 0: calls reached still count
    ok.generate([RED], "x")
    assert ok.last_dar_stats is None and ok.last_dar_calls == 0  # a plain run resets the counts
    with pytest.raises(GenerationError, match=r"reached no attention call: 0 attention call\(s\) rebalanced, "
                                              r"3 passed through \(layer_excluded 3\)") as err:
        CountingDAR(calls=0).generate([RED], "x", dar=True)
    assert err.value.reason == "model_error"
    assert CountingDAR(calls=0).generate([RED], "x").size == RED.size  # without DAR nothing is checked
    with pytest.raises(RuntimeError, match="did not set last_dar_stats"):  # an adapter that cannot tell
        CountingDAR(report=False).generate([RED], "x", dar=True)


def test_resolve_dar():
    from dar import DARConfig

    assert resolve_dar(None) is None and resolve_dar(False) is None
    assert resolve_dar(True) == DARConfig()
    config = DARConfig(gamma=0.2)
    assert resolve_dar(config) is config
    assert resolve_dar({"gamma": 0.0}) == DARConfig(gamma=0.0)
    with pytest.raises(ConfigError, match="unknown 'gamm'; accepted: gamma, tau_high"):
        resolve_dar({"gamm": 0.1})
    with pytest.raises(ConfigError, match="gamma"):
        resolve_dar({"gamma": 2.0})
    with pytest.raises(ConfigError, match="not str"):
        resolve_dar("yes")


# -- baselines -------------------------------------------------------------------------------------------
def test_collage_tiles_every_reference():
    image = load_adapter("collage", "height=100,width=200").generate([RED, BLUE, GREEN], "x")
    assert image.size == (200, 100)
    colours = {c for _, c in image.getcolors(10_000)}
    assert {(255, 0, 0), (0, 0, 255), (0, 128, 0)} <= colours


def test_first_ref_returns_the_first_reference():
    image = load_adapter("first_ref").generate([BLUE, RED], "x")
    assert ImageChops.difference(image, BLUE).getbbox() is None
    assert load_adapter("first_ref", "width=8,height=6").generate([BLUE], "x").size == (8, 6)
    with pytest.raises(DARNotSupportedError):
        load_adapter("collage").generate([BLUE], "x", dar={"gamma": 0.1})


# -- output size: the constructor's explicit width/height, then the task's, then the default ---------------
def test_a_task_size_replaces_the_default_but_not_an_explicit_argument():
    collage = load_adapter("collage")
    assert collage.generate([RED, BLUE], "x", size=(40, 24)).size == (40, 24)
    assert (collage.width, collage.height) == (1024, 1024)  # restored after the call
    assert collage.generate([RED], "x", size=(None, 24)).size == (1024, 24)
    fixed = load_adapter("collage", "width=32")
    assert fixed.generate([RED], "x", size=(40, 24)).size == (32, 24)  # an explicit argument wins its side
    (image,) = fixed.generate_batch([GenerationRequest([RED], "x", size=(40, 24))])
    assert image.size == (32, 24)  # the batch path carries the request's size
    first = load_adapter("first_ref")
    assert first.generate([BLUE], "x", size=(8, 6)).size == (8, 6)
    assert first.generate([BLUE], "x").size == BLUE.size  # no size asked: the reference as it is


def test_an_adapter_without_width_and_height_says_it_ignores_the_size(caplog):
    class Sizeless(ModelAdapter):
        def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
            return refs[0]

    with caplog.at_level("WARNING", logger="adapters.base"):
        assert Sizeless().generate([RED], "x", size=(8, 6)).size == RED.size
    assert "keeps no width/height" in caplog.text


# -- prompts -----------------------------------------------------------------------------------------------
def test_mentions_found_in_their_forms():
    prompt = "Put image 1 on Image #2, like the third image; RA and RB (not Ra); image 4 is absent."
    assert [m.index for m in find_mentions(prompt, 3)] == [1, 2, 3, 1, 2]
    assert omnigen_prompt("the cat in image 2 and image 2 again", 2) == (
        "image 1: <img><|image_1|></img>. the cat in image 2 <img><|image_2|></img> and image 2 again"
    )
    assert qwen_picture_prompt("image 1 with image 2", 2) == "Picture 1 with Picture 2"
    assert panel_prompt("Image 1 beside image 3", 3) == "The left panel beside the right panel"
