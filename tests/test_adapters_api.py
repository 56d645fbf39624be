"""API adapters against loopback servers speaking each provider's wire format (no network)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from adapters import DARNotSupportedError, GenerationError, load_adapter
from micon_tasks.errors import ConfigError
from tests.fake_providers import (
    FakeServer,
    Reply,
    gemini_blocked,
    gemini_error,
    gemini_finish,
    gemini_image,
    gemini_text,
    openai_error,
    openai_image,
)

KEY = "sk-test-0123456789abcdefSECRET"


def _refs(n: int) -> list[Image.Image]:
    colours = ["red", "green", "blue"]
    return [Image.new("RGB", (24 + 8 * i, 16), colours[i]) for i in range(n)]


def _decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


OUT = Image.new("RGB", (32, 32), (10, 200, 30))


@pytest.fixture
def openai_key(monkeypatch):
    monkeypatch.setenv("MICON_TEST_OPENAI_KEY", KEY)
    return "api_key_env=MICON_TEST_OPENAI_KEY,max_wait=0"


@pytest.fixture
def gemini_key(monkeypatch):
    monkeypatch.setenv("MICON_TEST_GEMINI_KEY", KEY)
    return "api_key_env=MICON_TEST_GEMINI_KEY,max_wait=0"


# -- gpt_image ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_refs", [2, 3])
def test_gpt_image_request_carries_refs_model_size(openai_key, n_refs):
    refs = _refs(n_refs)
    with FakeServer([openai_image(OUT)]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1,size=1536x1024,quality=low")
        image = adapter.generate(refs, "Put the object of image 1 on image 2", seed=3)
    assert list(image.getdata()) == list(OUT.getdata())
    (req,) = server.requests
    assert req.path == "/v1/images/edits"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    fields = req.multipart()
    values = {name: data.decode() for name, filename, _, data in fields if filename is None}
    assert values["model"] == "gpt-image-1"
    assert values["size"] == "1536x1024"
    assert values["quality"] == "low"
    assert values["prompt"] == "Put the object of image 1 on image 2"
    images = [data for name, filename, _, data in fields if name.startswith("image")]
    assert len(images) == n_refs
    for sent, ref in zip(images, refs):
        assert list(_decoded(sent).getdata()) == list(ref.getdata())


def _asked_size(req) -> str:
    """What a request asked the provider for: gpt_image's ``size`` field, or Gemini's aspect ratio."""
    if req.path.endswith("/images/edits"):
        return {name: data.decode() for name, filename, _, data in req.multipart() if filename is None}["size"]
    return req.json()["generationConfig"]["imageConfig"]["aspectRatio"]


@pytest.mark.parametrize("name, args, asked, sent", [
    ("gpt_image", "", None, "1024x1024"), ("gpt_image", "", (1536, 1024), "1536x1024"),
    ("gpt_image", ",size=auto", (1536, 1024), "auto"),
    ("nano_banana", "", None, "1:1"), ("nano_banana", "", (1536, 1024), "3:2"),
    ("nano_banana", ",aspect_ratio=16:9", (1536, 1024), "16:9"),
])
def test_api_output_size_follows_the_task_unless_given(request, name, args, asked, sent):
    """The adapter's own size setting wins; without it the task's width and height, else 1024 x 1024."""
    openai = name == "gpt_image"
    key = request.getfixturevalue("openai_key" if openai else "gemini_key")
    with FakeServer([openai_image(OUT) if openai else gemini_image(OUT)]) as server:
        adapter = load_adapter(name, f"{key},base_url={server.url}{'/v1' if openai else ''}{args}")
        adapter.generate(_refs(1), "x", size=asked)
    (req,) = server.requests
    assert _asked_size(req) == sent


def test_gpt_image_retries_429_then_succeeds(openai_key):
    replies = [openai_error(429, "rate_limit_exceeded", "slow down", {"retry-after": "0"}), openai_image(OUT)]
    with FakeServer(replies) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1")
        image = adapter.generate(_refs(2), "x")
    assert image.size == OUT.size
    assert len(server.requests) == 2


def test_gpt_image_gives_up_after_max_retries(openai_key):
    with FakeServer([openai_error(429, "rate_limit_exceeded", "slow down")]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1,max_retries=2")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == "rate_limited" and info.value.retryable
    assert info.value.provider_reason == "slow down"
    assert len(server.requests) == 3


def test_gpt_image_exhausted_quota_is_final(openai_key):
    with FakeServer([openai_error(429, "insufficient_quota", "You exceeded your current quota")]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1,max_retries=3")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == "provider_error" and not info.value.retryable
    assert info.value.provider_reason == "You exceeded your current quota"
    assert len(server.requests) == 1  # waiting does not refill a quota: no retry


def test_gpt_image_refusal_is_a_generation_failure_with_reason(openai_key):
    reason = "Your request was rejected as a result of our safety system."
    with FakeServer([openai_error(400, "moderation_blocked", reason)]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == "safety"
    assert info.value.provider_reason == reason
    assert not info.value.retryable
    assert len(server.requests) == 1  # a refusal is not retried


def test_gpt_image_key_never_leaks(openai_key):
    with FakeServer([openai_error(401, "invalid_api_key", f"Incorrect API key provided: {KEY}")]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert KEY not in str(info.value) and KEY[-8:] not in str(info.value)
    assert KEY not in repr(info.value.to_dict())
    assert KEY not in repr(adapter.model_info())


def test_gpt_image_needs_key_from_environment(monkeypatch):
    monkeypatch.delenv("MICON_TEST_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="MICON_TEST_MISSING_KEY"):
        load_adapter("gpt_image", "api_key_env=MICON_TEST_MISSING_KEY")


def test_gpt_image_refuses_dar_without_calling(openai_key):
    with FakeServer([openai_image(OUT)]) as server:
        adapter = load_adapter("gpt_image", f"{openai_key},base_url={server.url}/v1")
        with pytest.raises(DARNotSupportedError):
            adapter.generate(_refs(2), "x", dar=True)
    assert server.requests == []


# -- nano_banana ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_refs", [2, 3])
def test_nano_banana_request_carries_refs_model_size(gemini_key, n_refs):
    refs = _refs(n_refs)
    with FakeServer([gemini_image(OUT)]) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url},aspect_ratio=16:9")
        image = adapter.generate(refs, "Combine image 1 and image 2", seed=5)
    assert list(image.getdata()) == list(OUT.getdata())
    (req,) = server.requests
    assert req.path.endswith("/models/gemini-2.5-flash-image:generateContent")
    assert req.headers["x-goog-api-key"] == KEY
    body = req.json()
    parts = body["contents"][0]["parts"]
    assert parts[0]["text"] == "Combine image 1 and image 2"
    sent = [p["inlineData"] for p in parts[1:]]
    assert len(sent) == n_refs
    for blob, ref in zip(sent, refs):
        # proto3 JSON: the API accepts the field's camelCase and its original snake_case name
        assert blob.get("mimeType", blob.get("mime_type")) == "image/png"
        # the SDK writes bytes as URL-safe base64 (as protobuf's JSON mapping allows); read either alphabet
        data = blob["data"].replace("+", "-").replace("/", "_")
        assert list(_decoded(base64.urlsafe_b64decode(data)).getdata()) == list(ref.getdata())
    config = body["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"]["aspectRatio"] == "16:9"
    assert config["seed"] == 5


@pytest.mark.parametrize(
    "reply, reason, provider_reason",
    [
        (gemini_blocked("PROHIBITED_CONTENT", "blocked by policy"), "safety", "blocked by policy"),
        # google-genai drops finishMessage when it parses a candidate: the finish reason is what remains
        (gemini_finish("IMAGE_SAFETY", "image would violate policy"), "safety", "IMAGE_SAFETY"),
        (gemini_text("I can't create that image."), "refused", "I can't create that image."),
        (gemini_finish("STOP"), "no_image", "STOP"),
    ],
)
def test_nano_banana_blocks_and_refusals(gemini_key, reply, reason, provider_reason):
    with FakeServer([reply]) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url}")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == reason
    assert info.value.provider_reason == provider_reason
    assert len(server.requests) == 1


def test_nano_banana_retries_429(gemini_key):
    replies = [gemini_error(429, "RESOURCE_EXHAUSTED", "quota"), gemini_error(503, "UNAVAILABLE", "busy"),
               gemini_image(OUT)]
    with FakeServer(replies) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url}")
        assert adapter.generate(_refs(2), "x").size == OUT.size
    assert len(server.requests) == 3


def test_nano_banana_gives_up_on_persistent_429(gemini_key):
    with FakeServer([gemini_error(429, "RESOURCE_EXHAUSTED", "quota")]) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url},max_retries=1")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == "rate_limited" and info.value.provider_reason == "quota"
    assert len(server.requests) == 2


def test_nano_banana_bad_request_not_retried_and_key_redacted(gemini_key):
    with FakeServer([gemini_error(400, "INVALID_ARGUMENT", f"API key {KEY} not valid")]) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url}")
        with pytest.raises(GenerationError) as info:
            adapter.generate(_refs(2), "x")
    assert info.value.reason == "provider_error" and not info.value.retryable
    assert KEY not in str(info.value) and KEY not in str(info.value.provider_reason)
    assert len(server.requests) == 1
    assert KEY not in repr(adapter.model_info())


def test_api_key_env_holding_the_key_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as info:
        load_adapter("gpt_image", f"api_key_env={KEY}")
    assert KEY not in str(info.value) and "environment variables" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_adapter("nano_banana", {"api_key_env": "http://user:PASS@h", "base_url": "http://user:PASS@h"})
    assert "PASS" not in str(info.value)


def test_nano_banana_follows_the_projects_one_retry_rule_and_retry_after(gemini_key):
    """409 is retried and Retry-After honoured, as for every other provider (``openai_errors.is_retryable_status``);
    the Gemini adapter had its own copy of the rule, which drifted."""
    replies = [Reply(409, {"error": {"code": 409, "message": "conflict", "status": "ABORTED"}}, {"Retry-After": "0"}),
               gemini_image(OUT)]
    with FakeServer(replies) as server:
        adapter = load_adapter("nano_banana", f"{gemini_key},base_url={server.url}")
        assert adapter.generate(_refs(2), "x").size == OUT.size
    assert len(server.requests) == 2
