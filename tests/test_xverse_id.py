"""ID metric: the IR-SE50 layout, box expansion, alignment, best match over faces and the no-face rule.

Faces come from a stub detector (a rule, no model) and embeddings from a random-weight IR-SE backbone:
the tests check the arithmetic and the plumbing, not face recognition.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from micon_tasks.suites.xversebench.faces import (
    ARCFACE_TEMPLATE,
    IRSE,
    Face,
    align_face,
    expand_box,
    similarity_matrix,
    to_input,
)
from micon_tasks.suites.xversebench.id_metric import ArcFaceEmbedder, score_id
from micon_tasks.suites.xversebench.testing import StubFaceDetector


def _face_in(box):
    x0, y0, x1, _ = box
    side = x1 - x0
    return Face(tuple(box), tuple((x0 + x * side / 112, y0 + y * side / 112) for x, y in ARCFACE_TEMPLATE))


def central(im):
    """A face whose 1.3x box is the whole (square) image: a crop of it is the image itself."""
    s = min(im.size) / 1.3
    x0 = (im.width - s) / 2
    return [] if len(set(im.convert("L").getdata())) == 1 else [_face_in((x0, x0, x0 + s, x0 + s))]


def _noise(seed, size=130):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def embedder():
    return ArcFaceEmbedder("micon-random", "cpu", units=(1, 1, 1, 1))


def test_irse50_has_the_checkpoint_layout():
    keys = IRSE(50).state_dict().keys()
    assert "input_layer.0.weight" in keys and "input_layer.2.weight" in keys  # conv, bn, prelu
    assert "body.0.res_layer.5.fc1.weight" in keys  # SE gate after the second bn
    assert "body.0.shortcut_layer.0.weight" not in keys  # same width: max-pool shortcut, no weights
    assert "body.3.shortcut_layer.0.weight" in keys  # first unit of the 128 stage projects
    assert "body.23.res_layer.0.weight" in keys and "body.24.res_layer.0.weight" not in keys  # 3+4+14+3 units
    assert "output_layer.3.weight" in keys and "output_layer.4.running_var" in keys
    assert IRSE(50).state_dict()["output_layer.3.weight"].shape == (512, 512 * 7 * 7)


def test_irse_embeddings_are_unit_length_512():
    torch.manual_seed(0)
    model = IRSE(units=(1, 1, 1, 1)).eval()
    with torch.inference_mode():
        out = model(to_input([_noise(0, 112), _noise(1, 112)]))
    assert out.shape == (2, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_irse_refuses_an_unknown_depth():
    with pytest.raises(ValueError, match="50"):
        IRSE(34)


def test_expand_box_scales_about_the_centre():
    assert expand_box((10, 10, 20, 30)) == pytest.approx((8.5, 7.0, 21.5, 33.0))
    assert expand_box((0, 0, 100, 100), 1.0) == pytest.approx((0, 0, 100, 100))


def test_similarity_matrix_recovers_a_rotation_scale_and_shift():
    src = np.array(ARCFACE_TEMPLATE)
    a = np.deg2rad(20)
    rot = 1.7 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ rot.T + [5.0, -3.0]
    m = similarity_matrix(src, dst)
    assert np.allclose(m[:, :2], rot) and np.allclose(m[:, 2], [5.0, -3.0])


def test_align_face_gives_a_112_crop_of_the_face_region():
    im = Image.new("RGB", (300, 300), "white")
    im.paste(Image.new("RGB", (112, 112), (200, 10, 10)), (100, 50))
    out = align_face(im, _face_in((100, 50, 212, 162)))
    assert out.size == (112, 112)
    assert np.asarray(out)[10:100, 10:100].mean(axis=(0, 1)) == pytest.approx([200, 10, 10], abs=1)


def test_identical_face_scores_100_and_a_blank_image_is_no_face(embedder):
    ref = _noise(0)
    entries = score_id([ref, Image.new("RGB", (130, 130), "gray")], [("RA", ref)], StubFaceDetector(central), embedder)
    assert [(e.image, e.role) for e in entries] == [(0, "RA"), (1, "RA")]
    assert entries[0].value == pytest.approx(100.0, abs=1e-3) and not entries[0].no_face
    assert entries[1].value == 0.0 and entries[1].no_face


def test_best_match_over_the_faces_of_an_image(embedder):
    ref, other = _noise(0), _noise(5)

    def two_faces(im):
        found = central(im)
        return found + [_face_in((0, 0, 40, 40))] if im.size == (130, 130) and found else found

    detector = StubFaceDetector(two_faces)
    best = score_id([ref], [("RA", ref)], detector, embedder)[0].value
    only_other = score_id([other], [("RA", ref)], StubFaceDetector(central), embedder)[0].value
    assert best == pytest.approx(100.0, abs=1e-3)
    assert only_other < 99.0


def test_entries_pool_per_human_reference_and_a_faceless_reference_is_an_error(embedder):
    a, b = _noise(1), _noise(2)
    blank = Image.new("RGB", (130, 130), "white")
    entries = score_id([a, b], [("RA", a), ("RB", b), ("RC", blank)], StubFaceDetector(central), embedder)
    assert len(entries) == 6  # 2 images x 3 human references
    by = {(e.image, e.role): e for e in entries}
    assert by[(0, "RA")].value == pytest.approx(100.0, abs=1e-3)
    assert by[(1, "RB")].value == pytest.approx(100.0, abs=1e-3)
    assert by[(0, "RC")].error and "no face found in the reference" in by[(0, "RC")].error
    assert score_id([a], [], StubFaceDetector(central), embedder) == []


def test_missing_weights_fail_at_start_up_with_the_file_name():
    from micon_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="model_ir_se50.pth"):
        ArcFaceEmbedder(None, "cpu")
