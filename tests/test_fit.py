"""Specification of `POST /encode?fit=true` against the shipped model: a drawing's noise and codes
are fitted so that `POST /generate` redraws it, much closer than Q's codes alone."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from test_encode import encoded, stroke

from backend.encode import prepare

pytestmark = pytest.mark.anyio


def grey_levels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)


async def test_a_fitted_drawing_is_redrawn_by_generate_much_closer_than_qs_codes_alone(
    shipped: httpx.AsyncClient,
) -> None:
    drawing = encoded(stroke((280, 280), ink="white", paper="black"))  # a thick 7, drawn off-centre
    answer = await shipped.post("/encode?fit=true&seed=5", content=drawing, headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text
    reading, fit = answer.json(), answer.json()["fit"]
    assert len(fit["noise"]) == 62 and fit["steps"] > 0
    assert fit["categorical"] == [reading["categorical"][0]["argmax"]]  # Q's category, kept
    assert fit["pixel_error_after"] < 0.5 * fit["pixel_error_before"]

    target = (prepare(drawing, "image/png", channels=1, size=28, max_pixels=10**6)[0, 0].numpy() + 1) * 127.5
    body = {key: fit[key] for key in ("noise", "categorical", "continuous")}
    redrawn = grey_levels((await shipped.post("/generate", json=body)).content)
    assert np.abs(redrawn - target.round()).mean() == pytest.approx(fit["pixel_error_after"], abs=1e-3)
    codes_only = {
        "seed": 5,
        "categorical": fit["categorical"],
        "continuous": [c["mean"] for c in reading["continuous"]],
    }
    before = grey_levels((await shipped.post("/generate", json=codes_only)).content)
    assert np.abs(before - target.round()).mean() == pytest.approx(fit["pixel_error_before"], abs=1e-3)


async def test_without_fit_encode_answers_the_reading_only(shipped: httpx.AsyncClient) -> None:
    drawing = encoded(stroke((280, 280), ink="white", paper="black"))
    answer = await shipped.post("/encode", content=drawing, headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and answer.json()["fit"] is None


@pytest.mark.parametrize(("query", "field"), [("fit=perhaps", "fit"), ("fit=true&seed=-1", "seed")])
async def test_bad_fit_parameters_are_refused_naming_them(shipped: httpx.AsyncClient, query: str, field: str) -> None:
    drawing = encoded(stroke((28, 28), ink="white", paper="black"))
    answer = await shipped.post(f"/encode?{query}", content=drawing, headers={"Content-Type": "image/png"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", field]
