"""Every diffusers adapter end to end on the CPU with a tiny random-weight pipeline, loaded from a saved
folder through the adapter's own ``from_pretrained`` path: seeds, 2 and 3 references, DAR off / on."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adapters import GenerationError, load_adapter
from micon_tasks.errors import ConfigError

pytest.importorskip("diffusers", reason="the diffusers extra is not installed")

import torch  # noqa: E402

import dar  # noqa: E402  (after the extra's check: the hooks need diffusers)
import dar.diffusers_hooks  # noqa: E402
from micon_tasks.testing import tiny_pipelines as tp  # noqa: E402

BASE = "device=cpu,dtype=float32,height=32,width=32,steps=2,local_files_only=true"
SPECS = {
    "omnigen": (tp.tiny_omnigen, "guidance_scale=2.0,max_input_image_size=32"),
    "qwen_image_edit_plus": (
        tp.tiny_qwen_image_edit_plus,
        "true_cfg_scale=2.0,max_sequence_length=64,condition_image_size=3136,vae_image_size=4096",
    ),
    "flux2_klein": (tp.tiny_flux2_klein, "guidance_scale=4.0,max_sequence_length=64,text_encoder_out_layers=1"),
    "flux_kontext": (tp.tiny_flux_kontext, "guidance_scale=2.5,max_sequence_length=48,condition_area=4096"),
}
PROMPT = "Place the object from image 1 beside the object from image 2"
PROMPT3 = "Place the object from image 1 beside image 2, in the style of image 3"


@pytest.fixture(scope="module")
def refs():
    rng = np.random.RandomState(0)
    return [Image.fromarray((rng.rand(64, 48 + 16 * i, 3) * 255).astype("uint8")) for i in range(3)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each tiny pipeline saved once per module: name -> folder."""
    root = tmp_path_factory.mktemp("tiny_pipes")
    out = {}
    for name, (build, _) in SPECS.items():
        build(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def adapters(saved):
    return {name: load_adapter(name, f"pretrained={saved[name]},{BASE},{args}") for name, (_, args) in SPECS.items()}


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", list(SPECS))
def test_seeded_runs_reproduce_with_two_and_three_refs(adapters, refs, name):
    adapter = adapters[name]
    first = adapter.generate(refs[:2], PROMPT, seed=7)
    assert isinstance(first, Image.Image) and first.size == (32, 32)
    assert _same(first, adapter.generate(refs[:2], PROMPT, seed=7))
    assert not _same(first, adapter.generate(refs[:2], PROMPT, seed=8))
    three = adapter.generate(refs[:3], PROMPT, seed=7)
    assert three.size == (32, 32)
    assert _same(three, adapter.generate(refs[:3], PROMPT, seed=7))
    assert not _same(three, first)  # same prompt and seed: the third reference reaches the model
    named = adapter.generate(refs[:3], PROMPT3, seed=7)  # an instruction that names image 3
    assert named.size == (32, 32) and _same(named, adapter.generate(refs[:3], PROMPT3, seed=7))


@pytest.mark.parametrize("name", list(SPECS))
def test_model_info_names_weights_and_settings(adapters, saved, name):
    info = adapters[name].model_info()
    assert info["name"] == name and info["weights"] == str(saved[name])
    assert info["dtype"] == "float32" and info["supports_dar"] is True
    assert info["generation"]["steps"] == 2 and info["generation"]["height"] == 32


@pytest.mark.parametrize("name", list(SPECS))
def test_dar_zero_gamma_is_identity_and_default_changes_output(adapters, refs, name):
    """2 references here (3 run in the seeded test above); dar=False and dicts resolve in test_adapters.py."""
    adapter = adapters[name]
    off = adapter.generate(refs[:2], PROMPT, seed=3, dar=None)
    assert _same(off, adapter.generate(refs[:2], PROMPT, seed=3, dar=dar.DARConfig(gamma=0.0)))
    assert not _same(off, adapter.generate(refs[:2], PROMPT, seed=3, dar=True))
    # the hooks are gone afterwards: a plain run matches the first one again
    assert _same(off, adapter.generate(refs[:2], PROMPT, seed=3))


@pytest.mark.parametrize("name", list(SPECS))
def test_dar_counts_are_reported_and_a_run_dar_never_reached_is_refused(adapters, refs, name):
    """A run labelled "with DAR" must have rebalanced attention: zero rebalanced calls is a GenerationError."""
    adapter = adapters[name]
    adapter.generate(refs[:2], PROMPT, seed=3, dar=True)
    stats = adapter.last_dar_stats
    assert stats.rebalanced > 0 and stats.forwards > 0
    assert adapter.last_dar_calls == stats.rebalanced
    assert adapter.model_info()["dar"]["last_generation"] == stats.to_dict()
    adapter.generate(refs[:2], PROMPT, seed=3, dar={"gamma": 0.0})  # identity, but DAR reached the same calls
    assert adapter.last_dar_stats.rebalanced == stats.rebalanced
    with pytest.raises(GenerationError, match="reached no attention call") as err:
        adapter.generate(refs[:2], PROMPT, seed=3, dar={"layers": [999]})  # excludes every layer
    assert err.value.reason == "model_error" and "layer_excluded" in err.value.message
    assert adapter.last_dar_stats.rebalanced == 0 and adapter.last_dar_stats.passed["layer_excluded"] > 0
    # the runner's path: generate_batch returns the error in the item's place
    from adapters import GenerationRequest

    [item] = adapter.generate_batch([GenerationRequest(refs=refs[:2], prompt=PROMPT, seed=3)], dar={"layers": [999]})
    assert isinstance(item, GenerationError) and item.reason == "model_error"
    adapter.generate(refs[:2], PROMPT, seed=3)
    assert adapter.last_dar_stats is None and adapter.model_info()["dar"]["last_generation"] is None


@pytest.mark.parametrize("name", list(SPECS))
def test_dar_refuses_a_layout_that_matches_no_attention_call(adapters, refs, name, monkeypatch):
    """A token layout the hook misreads (here: one token too many) leaves every call unrouted: refused."""
    real = dar.diffusers_hooks.DiffusersLayout.locate

    def off_by_one(self, call):
        place = real(self, call)
        pad = torch.zeros(place.ref_mask.shape[0], 1, dtype=torch.bool)
        place.ref_mask, place.query_mask = torch.cat([place.ref_mask, pad], 1), torch.cat([place.query_mask, pad], 1)
        place.ref_ids = torch.cat([place.ref_ids, torch.full_like(place.ref_ids[:, :1], -1)], 1)
        return place

    monkeypatch.setattr(dar.diffusers_hooks.DiffusersLayout, "locate", off_by_one)
    with pytest.raises(GenerationError, match="reached no attention call.*other_sequence") as err:
        adapters[name].generate(refs[:2], PROMPT, seed=3, dar=True)
    assert err.value.reason == "model_error"


def test_qwen_size_constants_restored_after_each_call(adapters, refs):
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as module

    before = module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE
    adapters["qwen_image_edit_plus"].generate(refs[:2], PROMPT, seed=0)
    assert (module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE) == before == (384 * 384, 1024 * 1024)


def test_prompt_reaches_the_pipeline_in_the_models_syntax(adapters, refs):
    omnigen = adapters["omnigen"].pipeline_kwargs(refs[:2], PROMPT)["prompt"]
    assert "image 1 <img><|image_1|></img>" in omnigen and "<img><|image_2|></img>" in omnigen
    assert "Picture 1" in adapters["qwen_image_edit_plus"].pipeline_kwargs(refs[:2], PROMPT)["prompt"]
    kontext = adapters["flux_kontext"].pipeline_kwargs(refs[:2], PROMPT)
    assert "the left panel" in kontext["prompt"] and "the right panel" in kontext["prompt"]
    canvas = kontext["image"]
    assert canvas.width > canvas.height and canvas.width * canvas.height <= 4096


@pytest.mark.parametrize("name", list(SPECS))
def test_a_task_size_reaches_the_pipeline_unless_the_adapter_fixes_one(saved, refs, name):
    unsized = BASE.replace("height=32,width=32,", "")
    adapter = load_adapter(name, f"pretrained={saved[name]},{unsized},{SPECS[name][1]}")
    assert adapter.generate(refs[:2], PROMPT, seed=0, size=(48, 32)).size == (48, 32)
    assert (adapter.width, adapter.height) == (1024, 1024)  # the adapter's own default, untouched
    fixed = load_adapter(name, f"pretrained={saved[name]},{BASE},{SPECS[name][1]}")
    assert fixed.generate(refs[:2], PROMPT, seed=0, size=(48, 16)).size == (32, 32)


def test_unknown_argument_lists_accepted_ones(saved):
    with pytest.raises(ConfigError, match="accepted arguments: .*pretrained.*img_guidance_scale"):
        load_adapter("omnigen", f"pretrained={saved['omnigen']},stepz=3")


def test_missing_local_weights_fail_clearly(tmp_path):
    adapter = load_adapter("omnigen", f"pretrained={tmp_path / 'nothing'},{BASE}")
    with pytest.raises((OSError, ValueError)):
        adapter.generate([Image.new("RGB", (32, 32))], "x", seed=0)


def test_dreamomni2_applies_its_lora_to_kontext(saved, refs, tmp_path):
    """A tiny random LoRA saved in diffusers' format; DreamOmni2 loads it, so its output differs."""
    pytest.importorskip("peft", reason="peft is needed to load LoRA weights into diffusers pipelines")
    import torch
    from diffusers import FluxKontextPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    with pytest.raises(ConfigError, match="lora="):
        load_adapter("dreamomni2", f"pretrained={saved['flux_kontext']}")

    pipe = FluxKontextPipeline.from_pretrained(saved["flux_kontext"], dtype=torch.float32)
    torch.manual_seed(0)
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"],
                                            init_lora_weights=False))
    FluxKontextPipeline.save_lora_weights(tmp_path / "lora",
                                          transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
    args = f"pretrained={saved['flux_kontext']},{BASE},{SPECS['flux_kontext'][1]}"
    dream = load_adapter("dreamomni2", f"lora={tmp_path / 'lora'},lora_scale=1.0,{args}")
    kontext = load_adapter("flux_kontext", args)
    a = dream.generate(refs[:2], PROMPT, seed=5)
    assert _same(a, dream.generate(refs[:2], PROMPT, seed=5))
    assert not _same(a, kontext.generate(refs[:2], PROMPT, seed=5))
    assert dream.model_info()["lora"]["weights"] == str(tmp_path / "lora")


def test_preflight_resolves_weights_without_loading(saved, tmp_path, monkeypatch):
    adapter = load_adapter("omnigen", f"pretrained={saved['omnigen']},{BASE}")
    adapter.preflight()  # a saved local pipeline: resolvable
    assert adapter._pipe is None  # nothing was loaded
    with pytest.raises(ConfigError, match="has no model_index.json"):
        load_adapter("omnigen", f"pretrained={tmp_path / 'nowhere'},{BASE}").preflight()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"pretrained=some-org/not-cached.*Hub is offline") as err:
        load_adapter("omnigen", f"pretrained=some-org/not-cached,{BASE}").preflight()
    assert "\n" not in str(err.value)
