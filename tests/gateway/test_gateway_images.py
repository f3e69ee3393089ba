"""Images in the worst case (#20): bounded by pixels per provider, not by base64 bytes.

Real images (Pillow writes them), the dimensions read from their headers only, the
provider's documented rule applied; through the gateway, the reservation is visible in
``x-ratelimit-remaining-tokens`` (a TPM limit takes the worst case at admission).
"""

from __future__ import annotations

import base64
import io
import os

import httpx
import orjson
import pytest

from ember.gateway import KeyLimits
from ember.gateway.images import (
    ANTHROPIC_MAX,
    _decoded_dimensions,
    bound,
    dimensions,
    image_tokens,
    scan,
)
from ember.gateway.openai import mount_openai
from tests.gateway.conftest import gateway_app

PIL = pytest.importorskip("PIL.Image")
KEY = "sk-image-key-0001"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
TPM = 10_000_000


def _image(fmt: str, size: tuple[int, int], noise: bool = False, **save) -> bytes:
    if noise:
        img = PIL.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        img = PIL.new("RGB", size, (200, 30, 90))
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def _exif_jpeg(size: tuple[int, int]) -> bytes:
    exif = PIL.Exif()
    exif[0x010E] = "x" * 30_000  # ImageDescription: the SOF comes after 30 kB of EXIF
    return _image("JPEG", size, exif=exif)


@pytest.mark.parametrize("fmt,save", [
    ("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("GIF", {}),
    ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80}),
    ("WEBP", {"quality": 80, "exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"}),
])
@pytest.mark.parametrize("size", [(1, 1), (300, 200), (1537, 911), (4000, 300)])
def test_dimensions_from_the_header_of_real_images(fmt, save, size):
    data = _image(fmt, size, **save)
    assert dimensions(data) == size
    assert _decoded_dimensions(base64.b64encode(data).decode()) == size


def test_jpeg_dimensions_after_a_large_exif_block():
    data = _exif_jpeg((640, 480))
    assert data.index(b"\xff\xc0") > 30_000
    assert _decoded_dimensions(base64.b64encode(data).decode()) == (640, 480)


@pytest.mark.parametrize("garbage", [
    b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00", b"\xff\xd8" + b"\xff\xe1\xff\xff" * 3,
    b"GIF89a\x00\x00\x00\x00", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"not an image at all",
    b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x00", bytes(range(256)) * 4,
])
def test_unreadable_headers_are_unknown(garbage):
    assert dimensions(garbage) is None
    assert _decoded_dimensions(base64.b64encode(garbage).decode()) is None
    assert _decoded_dimensions("%%%% not base64 ****") is None


@pytest.mark.parametrize("model,dims,low,expected", [
    # OpenAI's documented examples (vision guide, "Calculating costs")
    ("gpt-4o", (1024, 1024), False, 765),
    ("gpt-4o", (2048, 4096), False, 1105),
    ("gpt-4o", (4096, 8192), True, 85),
    ("gpt-4o", (100, 100), False, 255),
    ("gpt-4o", None, False, 85 + 8 * 170),  # unknown size: the most tiles there can be
    ("gpt-4o-mini", (1024, 1024), False, 2833 + 4 * 5667),
    ("gpt-4o-mini", (512, 512), True, 2833),
    ("o3", (1024, 1024), False, 75 + 4 * 150),
    ("gpt-4.1-mini", (1024, 1024), False, 1659),  # 1024 patches x 1.62
    ("gpt-4.1-mini", (4000, 4000), False, 2489),  # capped at 1536 patches
    ("gpt-4.1-nano", None, False, 3779),
])
def test_openai_rules(model, dims, low, expected):
    assert image_tokens("openai", model, dims, low) == expected


def test_anthropic_and_gemini_rules():
    assert image_tokens("anthropic", "claude-sonnet-4-5", (200, 200), False) == 54
    assert image_tokens("anthropic", "claude-sonnet-4-5", (1000, 1000), False) == 1334
    assert image_tokens("anthropic", "claude-sonnet-4-5", (8000, 8000), False) == ANTHROPIC_MAX
    assert image_tokens("anthropic", "claude-sonnet-4-5", None, False) == ANTHROPIC_MAX
    assert image_tokens("google", "gemini-2.5-flash", (384, 300), False) == 258
    assert image_tokens("google", "gemini-2.5-flash", (1000, 1000), False) == 258 * 4
    assert image_tokens("google", "gemini-3-pro-preview", (10, 10), False) == 1120
    assert image_tokens("groq", "llava", (10, 10), False) is None  # no documented rule


def test_scan_finds_every_client_vocabulary():
    png = "data:image/png;base64," + base64.b64encode(_image("PNG", (64, 32))).decode()
    data = base64.b64encode(_image("PNG", (10, 20))).decode()
    body = {
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is in the image?"},
                {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
            ]},
            {"role": "user", "content": [  # Anthropic's Messages API
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": data}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/b"}},
            ]},
        ],
        "input": [{"role": "user", "content": [  # the Responses API
            {"type": "input_image", "image_url": png},
            {"type": "input_image", "file_id": "file-123"},
        ]}],
    }
    assert scan(body) == [(len(png), (64, 32), True), (0, None, False),
                          (len(data), (10, 20), False), (0, None, False),
                          (len(png), (64, 32), False), (0, None, False)]
    # a fallback list takes each image's largest bound; a provider without a rule
    # keeps the bytes as text
    parts = scan(body)
    skipped, tokens = bound(parts[:1], [("openai", "gpt-4o"), ("anthropic", "claude")], 2000)
    assert (skipped, tokens) == (len(png), max(85, 3))
    skipped, tokens = bound(parts[:2], [("openai", "gpt-4o"), ("fake", "x")], 2000)
    assert skipped == 0 and tokens == 85 + 2000


def _reserved(url: str, body: dict, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(url + path, headers=AUTH, content=orjson.dumps(body), timeout=60)


def _taken(r: httpx.Response) -> int:
    return TPM - int(r.headers["x-ratelimit-remaining-tokens"])


@pytest.fixture
def url(fake, serve, monkeypatch):
    monkeypatch.setenv("FAKE_BASE_URL", os.environ["OPENAI_BASE_URL"])  # OpenAI-compatible
    monkeypatch.setenv("FAKE_API_KEY", "sk-fake")
    app = gateway_app()
    mount_openai(app, {"gpt-4o": "gpt-4o", "claude": "claude-sonnet-4-5",
                       "local": "fake/llava"}, api_keys={"img": KEY},
                 limits=KeyLimits(tpm=TPM))
    return serve(app)


def test_a_large_inline_image_reserves_its_pixels_not_its_bytes(url, fake):
    # NOTE: under 1 MiB of body: aiohttp warns (ResourceWarning) about larger raw bodies
    data = _image("PNG", (600, 400), noise=True)
    assert len(data) > 700_000
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    text = {"model": "gpt-4o", "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "describe"}]}]}
    with_image = {**text, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": uri}}]}]}
    base = _taken(_reserved(url, text))
    r = _reserved(url, with_image)
    assert r.status_code == 200, r.text
    # the body grew by 960 kB; the reservation by the image's 2 tiles and its JSON
    assert 425 <= _taken(r) - base <= 425 + 100
    low = {**with_image}
    low["messages"] = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": uri, "detail": "low"}}]}]
    assert _taken(_reserved(url, low)) <= base + 85 + 100


def test_anthropic_messages_image_and_a_provider_without_a_rule(url, fake):
    data = _image("JPEG", (800, 600), noise=True)
    b64 = base64.b64encode(data).decode()
    r = httpx.post(url + "/v1/messages", headers={"x-api-key": KEY}, timeout=60, json={
        "model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": b64}},
            {"type": "text", "text": "describe"}]}]})
    assert r.status_code == 200, r.text
    assert 640 <= _taken(r) <= 640 + 400  # 800 x 600 / 750
    # an OpenAI-compatible server with a vision model: no documented rule, the bytes count
    r = _reserved(url, {"model": "local", "max_tokens": 10, "messages": [{
        "role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "data:image/jpeg;base64," + b64}}]}]})
    assert _taken(r) >= len(b64)


def test_an_image_by_url_or_with_a_broken_header_counts_as_the_largest(url, fake):
    for image in ("https://images.example.test/cat.png",
                  "data:image/png;base64," + base64.b64encode(b"\x89PNG garbage").decode(),
                  "data:image/png;base64,!!!!not-base64!!!!", "data:,plain"):
        r = _reserved(url, {"model": "gpt-4o", "max_tokens": 1, "messages": [{
            "role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]})
        assert r.status_code in (200, 400), r.text  # never a 500
        if r.status_code == 200:
            assert _taken(r) >= 85 + 8 * 170


def test_an_image_key_spelled_with_escapes_is_still_bounded(url, fake):
    raw = (b'{"model": "gpt-4o", "max_tokens": 1, "messages": [{"role": "user", "content": '
           b'[{"type": "\\u0069mage_url", "\\u0069mage_url": {"url": "https://x.test/a.png"}}]}]}')
    r = httpx.post(url + "/v1/chat/completions", headers=AUTH, content=raw, timeout=60)
    assert r.status_code == 200, r.text
    assert _taken(r) >= 85 + 8 * 170
