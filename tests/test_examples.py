"""The examples people copy, against the shipped model: the request examples in the OpenAPI
schema (what Swagger UI's "Try it out" sends) and the README's curl lines. Each answers 200, and
each that names a digit draws that digit, as the MNIST classifier of the metrics reads it."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from test_api import readme_curls

from models.render import GRID_PAD
from training.classifier import load_classifier

pytestmark = pytest.mark.anyio


def digits_drawn(png: bytes, scale: int, pad: int = 0) -> list[str]:
    """The digit the classifier reads in each 28 x 28 cell of a picture (row-major)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)[::scale, ::scale]
    step = 28 + pad
    cells = [
        pixels[top : top + 28, left : left + 28]
        for top in range(pad, pixels.shape[0] - 27, step)
        for left in range(pad, pixels.shape[1] - 27, step)
    ]
    images = torch.from_numpy(np.stack(cells))[:, None] / 127.5 - 1  # (N, 1, 28, 28) in [-1, 1]
    with torch.no_grad():
        return [str(digit) for digit in load_classifier()(images).argmax(1).tolist()]


async def request_examples(shipped: httpx.AsyncClient) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) for every example of every JSON request body in the schema."""
    schema = (await shipped.get("/openapi.json")).json()
    examples = []
    for path, operations in schema["paths"].items():
        body = operations.get("post", {}).get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            ref = body["schema"].get("$ref") or body["schema"]["anyOf"][0]["$ref"]  # optional bodies: $ref or null
            name = ref.rsplit("/", 1)[1]
            examples += [(path, example) for example in schema["components"]["schemas"][name]["examples"]]
    return examples


async def test_every_json_request_has_an_example_that_draws_the_digit_it_names(shipped: httpx.AsyncClient) -> None:
    examples = await request_examples(shipped)
    assert {path for path, _ in examples} == {"/generate", "/generate/grid", "/generate/gif", "/generate/interpolation"}
    for path, example in examples:
        response = await shipped.post(path, json=example)
        assert response.status_code == 200, (path, example, response.text)
        if path == "/generate/gif":
            continue  # its frames are the swept image's: the image and grid checks cover the drawing
        pad = 0 if path == "/generate" else GRID_PAD
        drawn = digits_drawn(response.content, example.get("scale", 1), pad)
        assert drawn.count(example["label"]) >= 0.8 * len(drawn), (path, example, drawn)


async def test_the_readme_examples_draw_the_digits_they_name(shipped: httpx.AsyncClient) -> None:
    named = 0
    for args in readme_curls():
        if "-d" not in args or "label" not in args[args.index("-d") + 1]:
            continue
        body = json.loads(args[args.index("-d") + 1])
        path = next(arg for arg in args if arg.startswith("localhost:8000")).removeprefix("localhost:8000")
        response = await shipped.post(path, json=body)
        assert response.status_code == 200, response.text
        pad = GRID_PAD if path == "/generate/grid" else 0
        drawn = digits_drawn(response.content, body.get("scale", 1), pad)
        assert drawn.count(body["label"]) >= 0.8 * len(drawn), (body, drawn)
        named += 1
    assert named >= 2  # the single image and the grid
