"""IP and AES metrics: instance extraction (white background, size rule, top 3, square padding), DINO
similarity with a tiny random ViT, and the aesthetic head (x10, grid vs per image) on a tiny SigLIP."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image

from micon_tasks.suites.xversebench.aes import AestheticHead, AestheticScorer, tile_grid
from micon_tasks.suites.xversebench.ip_metric import DinoEmbedder, dino_preprocess, instances, pad_square, score_ip
from micon_tasks.suites.xversebench.testing import (
    StubObjectDetector,
    StubSegmenter,
    build_tiny_dino,
    build_tiny_siglip,
)


def _noise(seed, w=200, h=200):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_masked_pixels_go_on_white_and_the_crop_is_the_box():
    im = Image.new("RGB", (100, 100), (10, 20, 30))
    mask = np.zeros((100, 100), bool)
    mask[20:40, 20:30] = True  # the object covers the left half of the box
    (out,) = instances(im, [(20, 20, 40, 40)], [mask], min_size=5)
    arr = np.asarray(out)
    assert out.size == (20, 20)
    assert (arr[:, :10] == [10, 20, 30]).all() and (arr[:, 10:] == 255).all()


@pytest.mark.parametrize("width, kept", [(768, [40]), (1024, [])])
def test_size_rule_follows_the_image_width(width, kept):
    # min_size is width // 20: 38 at 768 px, 51 at 1024 px; a 40 px square passes only the first
    im = Image.new("RGB", (width, width), "gray")
    box = (0, 0, 40, 40)
    out = instances(im, [box], [np.ones((width, width), bool)], min_size=width // 20)
    assert [o.width for o in out] == kept


def test_thin_instances_are_dropped_even_with_enough_area():
    im = Image.new("RGB", (768, 768), "gray")
    # 600 x 8: area 4800 >= 38^2 but the short side 8 < 38 // 4 = 9
    assert instances(im, [(0, 0, 600, 8)], [np.ones((768, 768), bool)], min_size=38) == []
    assert len(instances(im, [(0, 0, 600, 9)], [np.ones((768, 768), bool)], min_size=38)) == 1


def test_only_the_first_three_instances_are_kept_after_filtering():
    im = Image.new("RGB", (200, 200), "gray")
    boxes = [(0, 0, 2, 2)] + [(0, 0, 20 + i, 20) for i in range(5)]  # the tiny first one is filtered out
    out = instances(im, boxes, [np.ones((200, 200), bool)] * 6, min_size=10)
    assert [o.size for o in out] == [(20, 20), (21, 21), (22, 22)]


def test_pad_square_centres_on_white():
    out = pad_square(Image.new("RGB", (10, 4), "black"))
    arr = np.asarray(out)
    assert out.size == (10, 10)
    assert (arr[3:7] == 0).all() and (arr[:3] == 255).all() and (arr[7:] == 255).all()


def test_dino_preprocess_resizes_the_shorter_side_then_centre_crops():
    x = dino_preprocess([Image.new("RGB", (512, 256), (255, 0, 0))])
    assert x.shape == (1, 3, 224, 224)
    assert x[0, 0].mean().item() == pytest.approx((1 - 0.485) / 0.229, abs=1e-4)


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    return DinoEmbedder(str(build_tiny_dino(tmp_path_factory.mktemp("dino"))), "cpu", batch_size=3)


def test_ip_identical_object_scores_100_nothing_found_scores_0(dino):
    ref = _noise(0)
    # the detector finds the whole image, so the instance is the reference itself
    detector = StubObjectDetector(lambda im, label: [] if label == "ghost" else [(0, 0, im.width, im.height)])
    entries = score_ip([ref, _noise(1)], [("RA", ref, "dog"), ("RB", ref, "ghost")], detector, StubSegmenter(), dino)
    by = {(e.image, e.role): e for e in entries}
    assert len(entries) == 4
    assert by[(0, "RA")].value == pytest.approx(100.0, abs=1e-3) and by[(0, "RA")].n_instances == 1
    assert by[(1, "RA")].value < 100.0
    assert by[(0, "RB")].value == 0.0 and by[(0, "RB")].no_object
    assert sorted(set(detector.calls)) == [((200, 200), "dog"), ((200, 200), "ghost")]


def test_ip_takes_the_best_of_the_instances(dino):
    ref = _noise(0)
    boxes = [(0, 0, 100, 100), (0, 0, 200, 200), (50, 50, 150, 150)]
    entries = score_ip([ref], [("RA", ref, "dog")], StubObjectDetector(lambda im, lb: boxes), StubSegmenter(), dino)
    assert entries[0].n_instances == 3 and entries[0].value == pytest.approx(100.0, abs=1e-3)


def test_aes_head_loads_the_upstream_key_layout():
    head = AestheticHead(8)
    upstream = OrderedDict()
    for i, (a, b) in enumerate(zip((8, 1024, 128, 64, 16), (1024, 128, 64, 16, 1))):
        upstream[f"scoring_head.{2 * i}.weight"] = torch.full((b, a), 0.01 * (i + 1))
        upstream[f"scoring_head.{2 * i}.bias"] = torch.zeros(b)
    head.load_predictor_state(upstream)
    assert torch.equal(head.linears[2].weight, upstream["scoring_head.4.weight"])
    with pytest.raises(ValueError, match="scoring_head.1.weight"):
        head.load_predictor_state({"scoring_head.1.weight": torch.zeros(1)})


def test_aes_head_sees_the_unit_length_embedding():
    head = AestheticHead(4).eval()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(head(x), head(5 * x))


def test_tile_grid_places_images_row_by_row():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    grid = np.asarray(tile_grid([Image.new("RGB", (8, 6), c) for c in colours]))
    assert grid.shape == (12, 16, 3)
    assert tuple(grid[0, 0]) == colours[0] and tuple(grid[0, 15]) == colours[1]
    assert tuple(grid[11, 0]) == colours[2] and tuple(grid[11, 15]) == colours[3]
    with pytest.raises(ValueError, match="4 images"):
        tile_grid([Image.new("RGB", (8, 8))] * 3)


def test_aes_is_ten_times_the_head_output(tmp_path):
    siglip = build_tiny_siglip(tmp_path / "siglip")
    head = AestheticHead(32)
    torch.manual_seed(1)
    state = OrderedDict((f"scoring_head.{2 * int(k.split('.')[1])}.{k.split('.')[2]}", v)
                        for k, v in head.state_dict().items())
    torch.save(state, tmp_path / "head.pth")
    scorer = AestheticScorer(str(tmp_path / "head.pth"), str(siglip), "cpu", dtype="float32", batch_size=2)
    pics = [_noise(i, 40, 40) for i in range(3)]
    got = scorer.score(pics)
    from transformers import SiglipImageProcessor, SiglipVisionModel

    tower = SiglipVisionModel.from_pretrained(siglip).eval()
    px = SiglipImageProcessor.from_pretrained(siglip)(images=pics, return_tensors="pt").pixel_values
    with torch.inference_mode():
        raw = head.eval()(tower(pixel_values=px).pooler_output)
    assert got == pytest.approx((10 * raw).tolist(), abs=1e-4)


def test_aes_without_head_weights_fails_at_start_up():
    from micon_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="aes_head="):
        AestheticScorer(None)


@pytest.mark.slow
def test_florence_and_sam_code_paths_run_on_tiny_random_models(tmp_path):
    from micon_tasks.suites.xversebench.ip_metric import FlorenceDetector, Sam2Segmenter
    from micon_tasks.suites.xversebench.testing import build_tiny_florence2, build_tiny_sam2

    det = FlorenceDetector(str(build_tiny_florence2(tmp_path / "florence")), "cpu", batch_size=2, max_new_tokens=8)
    found = det.detect([(_noise(0, 100, 80), "cat"), (_noise(1, 90, 90), "polar bear"), (_noise(2, 50, 50), "cup")])
    assert len(found) == 3 and all(isinstance(b, list) for b in found)  # random weights: boxes or none
    # the parse of a reply: <loc_N> tokens on a 1000-bin grid, scaled to the image's pixels
    boxes = det.boxes("</s><s>cat<loc_100><loc_200><loc_499><loc_999></s>", (1000, 500))
    assert len(boxes) == 1 and boxes[0] == pytest.approx((100, 100, 499, 499), abs=1)  # y on a 500 px side
    seg = Sam2Segmenter(str(build_tiny_sam2(tmp_path / "sam")), "cpu")
    masks = seg.masks(_noise(3, 120, 90), [(10, 10, 60, 60), (30, 20, 110, 80)])
    assert len(masks) == 2 and masks[0].shape == (90, 120) and masks[0].dtype == bool
    assert seg.masks(_noise(3), []) == []


def test_aes_in_bfloat16_stays_close_to_float32(tmp_path):
    from micon_tasks.suites.xversebench.testing import save_random_aes_head

    siglip, head = build_tiny_siglip(tmp_path / "siglip"), save_random_aes_head(tmp_path / "head.pth")
    pics = [_noise(i, 40, 40) for i in range(4)]
    full = AestheticScorer(str(head), str(siglip), "cpu", dtype="float32").score(pics)
    half = AestheticScorer(str(head), str(siglip), "cpu", dtype="bfloat16").score(pics)
    assert half == pytest.approx(full, abs=0.05)  # the authors run bf16; x10 scale, so 0.05 is 0.005 raw
