"""DAR attention maps: recorded on the tiny diffusers adapters, split for Kontext's canvas, saved to disk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dar.maps import save_maps, split_columns

pytest.importorskip("diffusers", reason="the diffusers extra is not installed")

from micon_tasks.testing import tiny_pipelines as tp  # noqa: E402

BASE = "device=cpu,dtype=float32,height=32,width=32,steps=2,local_files_only=true"
SPECS = {
    "omnigen": (tp.tiny_omnigen, "guidance_scale=2.0,max_input_image_size=32"),
    "qwen_image_edit_plus": (tp.tiny_qwen_image_edit_plus,
                             "true_cfg_scale=2.0,max_sequence_length=64,condition_image_size=3136,vae_image_size=4096"),
    "flux2_klein": (tp.tiny_flux2_klein, "guidance_scale=4.0,max_sequence_length=64,text_encoder_out_layers=1"),
    "flux_kontext": (tp.tiny_flux_kontext, "guidance_scale=2.5,max_sequence_length=48,condition_area=4096"),
}
REFS = [Image.fromarray((np.random.RandomState(i).rand(64, 48 + 32 * i, 3) * 255).astype("uint8")) for i in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_maps_on_each_reference_grid_and_gamma_zero_identical(name, tmp_path):
    from adapters import load_adapter

    build, args = SPECS[name]
    build(tmp_path / name)
    adapter = load_adapter(name, f"pretrained={tmp_path / name},{BASE},{args}")
    prompt = "Place the object from image 1 beside the object from image 2"
    off = adapter.generate(REFS, prompt, seed=3)
    zero = adapter.generate(REFS, prompt, seed=3, dar={"gamma": 0.0, "record_maps": True})
    assert zero.tobytes() == off.tobytes() and "dar_maps" not in off.info
    maps = zero.info["dar_maps"]
    assert isinstance(maps, list) and len(maps) == len(REFS), maps
    for m, ref in zip(maps, REFS):
        rows, cols = m["grid"]
        assert m["r_hat"].shape == m["w"].shape == (rows, cols) and rows > 0 and cols > 0
        assert (m["w"] == 1).all() and np.isfinite(m["r_hat"]).any()  # gamma 0: diagnosis only
        assert m["layers"] > 0 and m["steps"] == 2 and m["calls"] == m["layers"] * m["steps"]
        if name != "omnigen":  # OmniGen crops references to its own size; the others keep the aspect ratio
            assert abs(cols / rows - ref.width / ref.height) < 0.5, (m["grid"], ref.size)
    if name.startswith("flux"):  # references keep their size (the others resize them to one area)
        assert maps[0]["grid"][1] < maps[1]["grid"][1]  # the wider reference has the wider grid
    on = adapter.generate(REFS, prompt, seed=3, dar={"record_maps": True})
    assert on.tobytes() != off.tobytes() and any((m["w"] != 1).any() for m in on.info["dar_maps"])
    assert "dar_maps" not in adapter.generate(REFS, prompt, seed=3, dar=True).info  # only when asked


def test_split_columns_shares_the_canvas_out():
    whole = [{"r_hat": np.arange(12.0).reshape(2, 6), "w": np.ones((2, 6)), "grid": [2, 6], "layers": 2, "steps": 3}]
    left, right = split_columns(whole, [100, 200])
    assert left["grid"] == [2, 2] and right["grid"] == [2, 4]
    assert left["r_hat"].tolist() == [[0, 1], [6, 7]] and right["layers"] == 2
    assert split_columns({"unavailable": "x"}, [1, 2]) == {"unavailable": "x"}


def test_save_maps_writes_npz_and_overlay(tmp_path):
    folder = tmp_path / "run" / "maps" / "object_composition" / "case_1"
    maps = [{"r_hat": np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32), "w": np.full((2, 2), 1.15, np.float32),
             "grid": [2, 2], "layers": 4, "steps": 2, "calls": 8}]
    entry = save_maps(maps, folder, [Image.new("RGB", (40, 30), "white")], ["RA"])
    assert entry == {"RA": {"npz": "maps/object_composition/case_1/RA.npz",
                            "png": "maps/object_composition/case_1/RA.png", "grid": [2, 2]}}
    data = np.load(tmp_path / "run" / entry["RA"]["npz"])
    assert data["r_hat"].dtype == np.float16 and data["r_hat"][0, 1] == 0.5 and np.isnan(data["r_hat"][1, 1])
    assert data["grid"].tolist() == [2, 2] and int(data["layers"]) == 4 and int(data["steps"]) == 2
    png = Image.open(tmp_path / "run" / entry["RA"]["png"])
    assert png.size == (40, 30) and png.getpixel((5, 5)) != png.getpixel((35, 5))  # low vs high score tint
    assert save_maps({"unavailable": "no grid"}, folder, [], []) == {"unavailable": "no grid"}
    assert "2 references" in save_maps(maps, folder, [None, None], ["RA", "RB"])["unavailable"]
