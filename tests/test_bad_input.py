"""Hostile and malformed requests: each gets a 4xx whose message names the field and its range,
none gets a 5xx, and the same server answers normally afterwards."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest
from PIL import Image
from service_helpers import serve, settings_for, write_checkpoint

pytestmark = pytest.mark.anyio


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


class Chunked:
    """A body sent without Content-Length (chunked), so only counting can stop it."""

    def __init__(self, total: int) -> None:
        self.total = total

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total // 65536):
            yield b" " * 65536


class Case(NamedTuple):
    method: str
    url: str
    request: dict[str, Any]  # keyword arguments of httpx.AsyncClient.request
    status: int
    says: str  # a piece of the answer that tells the client what was wrong


def post_json(url: str, body: Any, status: int, says: str) -> Case:
    return Case("POST", url, {"json": body}, status, says)


def post_raw(url: str, content: bytes | str, content_type: str, status: int, says: str) -> Case:
    return Case("POST", url, {"content": content, "headers": {"Content-Type": content_type}}, status, says)


CASES = {
    # unknown or misspelt fields are refused, not ignored
    "unknown field": post_json("/generate", {"colour": 1}, 422, '"colour"'),
    # categorical codes: range, sign, count, type
    "category past the last": post_json("/generate", {"categorical": [10]}, 422, "categorical[0] must be in 0..9"),
    "negative category": post_json("/generate", {"categorical": [-1]}, 422, "greater than or equal to 0"),
    "two categories for one code": post_json("/generate", {"categorical": [1, 2]}, 422, "categorical must hold 1"),
    "fractional category": post_json("/generate", {"categorical": [1.5]}, 422, "categorical"),
    # continuous codes: count, cap, finiteness, type
    "one value for two codes": post_json("/generate", {"continuous": [0]}, 422, "continuous must hold 2"),
    "value past the cap": post_json("/generate", {"continuous": [5.5, 0]}, 422, "continuous[0] must be in -5..5"),
    "NaN": post_raw("/generate", '{"continuous": [NaN, 0]}', "application/json", 422, "finite number"),
    "Infinity": post_raw("/generate", '{"continuous": [0, -Infinity]}', "application/json", 422, "finite number"),
    "overflowing float": post_raw("/generate", '{"continuous": [1e400, 0]}', "application/json", 422, "finite"),
    "string value": post_json("/generate", {"continuous": ["abc", 0]}, 422, "continuous"),
    # seeds and noise
    "negative seed": post_json("/generate", {"seed": -1}, 422, "seed"),
    "seed past 2**31-1": post_json("/generate", {"seed": 2**31}, 422, "less than or equal to 2147483647"),
    "huge integer seed": post_raw("/generate", '{"seed": ' + "9" * 400 + "}", "application/json", 422, "seed"),
    "seed and noise": post_json("/generate", {"seed": 1, "noise": [0.0] * 62}, 422, "either seed or noise"),
    "short noise": post_json("/generate", {"noise": [0.0] * 61}, 422, "noise must hold noise_dim=62"),
    "noise past the cap": post_json("/generate", {"noise": [0.0] * 61 + [99]}, 422, "noise[61] must be in -5..5"),
    "very long noise": post_json("/generate", {"noise": [0.0] * 5000}, 422, "at most 4096"),
    # scale
    "scale zero": post_json("/generate", {"scale": 0}, 422, "greater than or equal to 1"),
    "scale past the cap": post_json("/generate", {"scale": 17}, 422, "scale must be in 1..16"),
    "scale as text": post_json("/generate", {"scale": "big"}, 422, "scale"),
    # checkpoint names are looked up, never opened
    "path as checkpoint": post_json("/generate", {"checkpoint": "../../etc/passwd"}, 422, "unknown checkpoint"),
    "absolute path": post_json("/generate", {"checkpoint": "/etc/passwd"}, 422, "loaded: mnist"),
    "very long name": post_json("/generate", {"checkpoint": "x" * 300}, 422, "at most 200 characters"),
    # the body itself
    "a list as body": post_json("/generate", [1, 2], 422, "valid dictionary"),
    "malformed JSON": post_raw("/generate", '{"seed": ', "application/json", 422, "JSON decode error"),
    "deeply nested JSON": post_raw("/generate", "[" * 100_000, "application/json", 400, "error parsing the body"),
    "text body": post_raw("/generate", "seed=1", "text/plain", 415, "application/json"),
    "form body, as curl -d sends": post_raw(
        "/generate", "seed=1", "application/x-www-form-urlencoded", 415, "application/json"
    ),
    "oversized body": post_raw("/generate", b" " * 3_000_000, "application/json", 413, "larger than 2000000 bytes"),
    "oversized chunked body": Case(
        "POST", "/generate", {"content": Chunked(3_000_000)}, 413, "larger than 2000000 bytes"
    ),
    "wrong method": Case("PUT", "/generate", {}, 405, "Method Not Allowed"),
    # query parameters of GET /generate
    "query scale as text": Case("GET", "/generate", {"params": {"scale": "x"}}, 422, '"query","scale"'),
    "unknown query parameter": Case("GET", "/generate", {"params": {"bogus": "1"}}, 422, '"bogus"'),
    # grids
    "too many rows": post_json("/generate/grid", {"seeds": list(range(17))}, 422, "a grid has 1..16 rows"),
    "zero rows": post_json("/generate/grid", {"rows": 0}, 422, "rows"),
    "too many columns": post_json("/generate/grid", {"steps": 100}, 422, "steps gives 100 columns; 1..16 are allowed"),
    "no such code": post_json("/generate/grid", {"vary": {"kind": "continuous", "index": 5}}, 422, "0..1"),
    "no such kind of code": post_json("/generate/grid", {"vary": {"kind": "style"}}, 422, "'categorical'"),
    "category sweep past the last": post_json(
        "/generate/grid", {"vary": {"kind": "categorical"}, "values": [10]}, 422, "values[0] must be a category"
    ),
    "start for a categorical sweep": post_json(
        "/generate/grid", {"vary": {"kind": "categorical"}, "start": 0}, 422, "give values instead"
    ),
    "sweep past the cap": post_json("/generate/grid", {"stop": 50}, 422, "stop must be in -5..5"),
    "grid too large to draw": post_json(
        "/generate/grid", {"rows": 16, "steps": 16, "scale": 5}, 422, "scale must be in 1..4 for 16x16"
    ),
    "seeds and rows": post_json("/generate/grid", {"seeds": [1], "rows": 2}, 422, "either seeds or rows"),
    # GIFs
    "frames too short": post_json("/generate/gif", {"duration_ms": 1}, 422, "duration_ms"),
    "too many frames": post_json("/generate/gif", {"steps": 100}, 422, "steps gives 100 frames; 1..64 are allowed"),
    # images sent to /encode
    "text to encode": post_raw("/encode", "hello", "text/plain", 415, "image/png"),
    "multipart upload": post_raw("/encode", b"--x--", "multipart/form-data; boundary=x", 415, "as the body"),
    "empty image": post_raw("/encode", b"", "image/png", 400, "empty"),
    "not an image": post_raw("/encode", b"\x89PNG not really", "image/png", 400, "not a readable"),
    "truncated image": post_raw("/encode", png(64, 64)[:-30], "image/png", 400, "image"),
    "decompression bomb": post_raw("/encode", png(5000, 5000), "image/png", 413, "at most 16777216"),
    "encode with unknown checkpoint": Case("POST", "/encode?checkpoint=nope", {}, 422, "unknown checkpoint"),
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder / "mnist.safetensors")
    async with serve(settings_for(folder)) as client:
        yield client


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_request_gets_a_4xx_naming_the_problem(client: httpx.AsyncClient, case: Case) -> None:
    response = await client.request(case.method, case.url, **case.request)
    assert response.status_code == case.status, response.text
    assert case.says in response.text


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25


async def test_the_server_still_serves_afterwards(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    response = await client.post("/generate", json={"seed": 1, "categorical": [9], "scale": 2})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert json.loads((await client.get("/healthz")).text)["checkpoints"]["mnist"]["requests"] >= 1
