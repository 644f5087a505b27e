"""Specification of the REST API (docs/design.md, "REST API") against the app in-process."""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import LABELS, REPO, serve, settings_for, write_checkpoint

from models import LatentSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_checkpoint(tmp_path / "mnist.safetensors")
    return tmp_path


@pytest.fixture
async def client(folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings_for(folder)) as client:
        yield client


def picture(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


async def test_checkpoints_list_the_contract_fields(client: httpx.AsyncClient) -> None:
    (entry,) = (await client.get("/api/checkpoints")).json()
    assert entry["name"] == "mnist" and entry["dataset"] == "mnist"
    assert entry["image"] == {"channels": 1, "height": 28, "width": 28}
    assert entry["latent"]["noise_dim"] == 62
    assert entry["latent"]["categorical"] == [{"name": "digit", "categories": 10}]
    assert entry["latent"]["continuous"][0] == {"name": "c1", "prior": "uniform", "train_range": [-1.0, 1.0]}
    assert entry["metrics"] == {"categorical_accuracy": 0.5}
    assert entry["category_labels"] == LABELS


async def test_limits_report_the_settings_a_request_is_checked_against(folder: Path) -> None:
    async with serve(settings_for(folder, max_grid=8, value_cap=3)) as client:
        limits = (await client.get("/api/limits")).json()
        assert limits == {
            "max_seed": 2**31 - 1,
            "value_cap": 3.0,
            "max_scale": 16,
            "max_grid": 8,
            "grid_pad": 2,
            "max_frames": 64,
            "max_side": 2048,
            "max_body_bytes": 2_000_000,
            "max_image_pixels": 4096 * 4096,
        }
        rows = {"seeds": list(range(limits["max_grid"])), "values": [0]}
        cells = picture(await client.post("/generate/grid", json=rows))
        assert cells.shape == (8 * (28 + limits["grid_pad"]) + limits["grid_pad"], 28 + 2 * limits["grid_pad"])
        too_many = await client.post("/generate/grid", json={**rows, "seeds": list(range(9))})
        assert too_many.status_code == 422 and "1..8 rows" in too_many.text
        assert "/api/limits" in (await client.get("/openapi.json")).json()["paths"]


async def test_healthz_names_checkpoints_and_skipped_files(folder: Path) -> None:
    (folder / "broken.safetensors").write_bytes(b"\x00" * 20)
    async with serve(settings_for(folder)) as client:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert list(response.json()["checkpoints"]) == ["mnist"]
        (error,) = response.json()["errors"]
        assert error["file"] == f"{folder.name}/broken.safetensors"
        assert error["error"].startswith(f"{folder.name}/broken.safetensors: not a readable safetensors file")
        assert response.json()["folders"] == [folder.name]
        assert str(folder.parent) not in response.text  # a public service does not show its file system
        assert [entry["name"] for entry in (await client.get("/api/checkpoints")).json()] == ["mnist"]


async def test_without_checkpoints_healthz_is_503_and_generate_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    async with serve(settings_for(tmp_path).model_copy(update={"checkpoint_dir": (tmp_path, missing)})) as client:
        health = await client.get("/healthz")
        assert health.status_code == 503 and "no valid checkpoint" in health.json()["detail"]
        assert health.json()["errors"] == [{"file": "gone", "error": "no such folder"}]
        assert str(tmp_path.parent) not in health.text
        assert (await client.get("/api/checkpoints")).json() == []
        response = await client.post("/generate", json={})
        assert response.status_code == 503 and "/healthz" in response.json()["detail"]


async def test_generate_answers_a_png_upscaled_by_nearest_neighbour(client: httpx.AsyncClient) -> None:
    small = picture(await client.post("/generate", json={"seed": 7, "categorical": [3], "continuous": [1.5, -2]}))
    large = picture(
        await client.post("/generate", json={"seed": 7, "categorical": [3], "continuous": [1.5, -2], "scale": 8})
    )
    assert small.shape == (28, 28) and large.shape == (224, 224)
    assert np.array_equal(large, small.repeat(8, axis=0).repeat(8, axis=1))


async def test_same_body_same_bytes_and_other_seeds_differ(client: httpx.AsyncClient) -> None:
    first = await client.post("/generate", json={"seed": 3, "scale": 2})
    again = await client.post("/generate", json={"seed": 3, "scale": 2})
    other = await client.post("/generate", json={"seed": 4, "scale": 2})
    assert first.content == again.content != other.content
    assert first.headers["etag"] == again.headers["etag"] != other.headers["etag"]


async def test_an_empty_body_means_all_defaults(client: httpx.AsyncClient) -> None:
    defaults = {"seed": 0, "categorical": [0], "continuous": [0, 0], "scale": 1}
    assert (await client.post("/generate")).content == (await client.post("/generate", json=defaults)).content


async def test_explicit_noise_draws_what_its_seed_draws(client: httpx.AsyncClient) -> None:
    noise = LatentSpec().noise(5)[0].tolist()
    by_seed = await client.post("/generate", json={"seed": 5})
    assert (await client.post("/generate", json={"noise": noise})).content == by_seed.content


async def test_get_generate_is_the_same_picture_as_post(client: httpx.AsyncClient) -> None:
    body = {"seed": 2, "categorical": [4], "continuous": [0.5, -1.0], "scale": 3}
    post = await client.post("/generate", json=body)
    get = await client.get("/generate", params=body)
    assert get.content == post.content and get.headers["etag"] == post.headers["etag"]


async def test_etag_revalidation_answers_304_without_a_body(client: httpx.AsyncClient) -> None:
    first = await client.get("/generate", params={"seed": 1})
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    cached = await client.get("/generate", params={"seed": 1}, headers={"If-None-Match": first.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == first.headers["etag"]
    stale = await client.get("/generate", params={"seed": 1}, headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


async def test_etag_changes_with_the_checkpoint_file(tmp_path: Path) -> None:
    tags = []
    for seed in (0, 1):
        write_checkpoint(tmp_path / "mnist.safetensors", seed=seed)
        async with serve(settings_for(tmp_path)) as client:
            tags.append((await client.post("/generate", json={})).headers["etag"])
    assert tags[0] != tags[1]


async def test_checkpoint_is_chosen_by_name_and_defaults_to_the_first(folder: Path) -> None:
    write_checkpoint(folder / "other.safetensors", seed=1)
    async with serve(settings_for(folder)) as client:
        default = await client.post("/generate", json={})
        named = {n: await client.post("/generate", json={"checkpoint": n}) for n in ("mnist", "other")}
        assert default.content == named["mnist"].content != named["other"].content


async def test_several_folders_are_served_and_the_first_wins_a_name(folder: Path, tmp_path: Path) -> None:
    extra = tmp_path / "volume"
    write_checkpoint(extra / "mnist.safetensors", seed=1)
    write_checkpoint(extra / "trained.safetensors", seed=2)
    async with serve(settings_for(folder).model_copy(update={"checkpoint_dir": (folder, extra)})) as client:
        assert [e["name"] for e in (await client.get("/api/checkpoints")).json()] == ["mnist", "trained"]
        (error,) = (await client.get("/healthz")).json()["errors"]
        assert error == {
            "file": "volume/mnist.safetensors",
            "error": f"name 'mnist' is taken by {folder.name}/mnist.safetensors",
        }


async def test_a_label_draws_the_category_that_learned_that_digit(client: httpx.AsyncClient) -> None:
    by_index = await client.post("/generate", json={"seed": 2, "categorical": [LABELS.index("5")], "scale": 2})
    by_label = await client.post("/generate", json={"seed": 2, "label": "5", "scale": 2})
    assert by_label.content == by_index.content and by_label.headers["etag"] == by_index.headers["etag"]
    assert (await client.get("/generate", params={"seed": 2, "label": "5", "scale": 2})).content == by_index.content
    grid = await client.post("/generate/grid", json={"label": "5", "rows": 2, "steps": 3})
    same = await client.post("/generate/grid", json={"categorical": [LABELS.index("5")], "rows": 2, "steps": 3})
    assert grid.content == same.content


async def test_an_unknown_label_is_refused_naming_the_labels_there_are(client: httpx.AsyncClient) -> None:
    response = await client.post("/generate", json={"label": "five"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "label"] and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in error["msg"]
    both = await client.post("/generate", json={"label": "5", "categorical": [1]})
    assert both.status_code == 422 and "categorical" in both.text and "label" in both.text


async def test_a_checkpoint_without_labels_refuses_a_label(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "unlabelled.safetensors", meta={"dataset": "synthetic"})
    async with serve(settings_for(tmp_path)) as client:
        response = await client.post("/generate", json={"label": "5"})
        assert response.status_code == 422 and "no labels" in response.json()["detail"][0]["msg"]


async def test_each_continuous_code_says_what_it_measurably_does(tmp_path: Path) -> None:
    measured = {
        "c1": {"slant_spearman": -0.97, "width_spearman": 0.2, "identity_kept": 0.95},
        "c2": {"slant_spearman": 0.6, "width_spearman": 0.7, "identity_kept": 0.8},
    }
    swings = {  # both codes rank both attributes; how far each moves them decides
        "c1": {
            "slant_spearman": -0.93,
            "width_spearman": 1.0,
            "identity_kept": 0.9,
            "slant_swing": -1.5,
            "width_swing": 5.6,
        },
        "c2": {
            "slant_spearman": 0.98,
            "width_spearman": -1.0,
            "identity_kept": 0.9,
            "slant_swing": 2.6,
            "width_swing": -4.3,
        },
    }
    broad = {  # the paper's width figure: the digit turns broad, its strokes thicken a little
        "c1": {"slant_spearman": 0.3, "width_spearman": 0.66, "breadth_spearman": -0.99, "identity_kept": 0.88}
        | {"slant_swing": 0.5, "width_swing": 1.5, "breadth_swing": -3.3},
        "c2": {"slant_spearman": 1.0, "width_spearman": 0.2, "identity_kept": 0.9},
    }
    write_checkpoint(tmp_path / "m.safetensors", meta={"metrics": {"continuous": measured}})
    write_checkpoint(tmp_path / "swings.safetensors", meta={"metrics": {"continuous": swings}})
    write_checkpoint(tmp_path / "broad.safetensors", meta={"metrics": {"continuous": broad}})
    write_checkpoint(tmp_path / "unmeasured.safetensors")
    async with serve(settings_for(tmp_path)) as client:
        entries = {entry["name"]: entry for entry in (await client.get("/api/checkpoints")).json()}
    slant, mixed = entries["m"]["continuous_effects"]
    assert slant["name"] == "c1" and slant["effect"] == "slant" and slant["slant_spearman"] == -0.97
    assert "leans the digit to the left" in slant["description"] and "95%" in slant["description"]
    assert slant["breadth_spearman"] is None  # measured before breadth was: width by thickness alone
    assert mixed["effect"] == "mixed" and "+0.60" in mixed["description"] and "+0.70" in mixed["description"]
    assert [e["effect"] for e in entries["unmeasured"]["continuous_effects"]] == ["unmeasured", "unmeasured"]
    width, both = entries["swings"]["continuous_effects"]
    assert width["effect"] == "width" and "thickens the strokes" in width["description"] and width["width_swing"] == 5.6
    assert both["effect"] == "mixed" and (both["slant_swing"], both["width_swing"]) == (2.6, -4.3)
    narrows = entries["broad"]["continuous_effects"][0]
    assert narrows["effect"] == "width" and "narrows the digit" in narrows["description"]
    assert (narrows["breadth_spearman"], narrows["breadth_swing"]) == (-0.99, -3.3)


async def test_grid_is_rows_of_seeds_by_columns_of_values(client: httpx.AsyncClient) -> None:
    grid = picture(await client.post("/generate/grid", json={"seeds": [1, 2, 3], "values": [-2, 0, 2, 1.5]}))
    assert grid.shape == (3 * 30 + 2, 4 * 30 + 2)  # 28 px cells with 2 px between them
    cell = picture(await client.post("/generate", json={"seed": 2, "continuous": [0, 0]}))
    assert np.array_equal(grid[32:60, 32:60], cell)  # row 1 (seed 2), column 1 (value 0)


async def test_grid_defaults_to_ten_seeds_by_nine_values(client: httpx.AsyncClient) -> None:
    assert picture(await client.post("/generate/grid")).shape == (10 * 30 + 2, 9 * 30 + 2)


async def test_grid_over_a_categorical_code_has_a_column_per_category(client: httpx.AsyncClient) -> None:
    body = {"rows": 2, "vary": {"kind": "categorical", "index": 0}, "scale": 2}
    assert picture(await client.post("/generate/grid", json=body)).shape == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))


async def test_gif_bounces_through_the_sweep(client: httpx.AsyncClient) -> None:
    response = await client.post("/generate/gif", json={"steps": 5, "scale": 2, "duration_ms": 50})
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    gif = Image.open(io.BytesIO(response.content))
    assert gif.size == (56, 56) and gif.n_frames <= 8  # 5 forward, 3 back; equal neighbours merge


async def test_a_gif_of_several_seeds_shows_the_grid_one_column_per_frame(client: httpx.AsyncClient) -> None:
    body = {"seeds": [4, 5, 6], "values": [-1.0, 0.0, 1.0], "bounce": False}
    response = await client.post("/generate/gif", json=body)
    assert response.status_code == 200
    gif = Image.open(io.BytesIO(response.content))
    grid = picture(await client.post("/generate/grid", json={"seeds": [4, 5, 6], "values": [-1.0, 0.0, 1.0]}))
    assert gif.size == (3 * 30 + 2, 30 + 2) and gif.n_frames == 3  # the three seeds side by side, 2 px apart
    for frame in range(3):  # frame f is the grid's column f, laid on its side
        gif.seek(frame)
        strip = np.asarray(gif.convert("L"))
        for row in range(3):
            cell = strip[2:30, 2 + 30 * row : 30 + 30 * row]
            assert np.array_equal(cell, grid[2 + 30 * row : 30 + 30 * row, 2 + 30 * frame : 30 + 30 * frame])
    both = await client.post("/generate/gif", json={"seeds": [1], "seed": 1})
    assert both.status_code == 422 and "one of seed, noise or seeds" in both.text


async def test_an_interpolation_runs_from_one_seeds_picture_to_the_others(client: httpx.AsyncClient) -> None:
    codes = {"categorical": [2], "continuous": [0.5, -0.5]}
    strip = picture(await client.post("/generate/interpolation", json={"seeds": [3, 8], "steps": 5, **codes}))
    assert strip.shape == (30 + 2, 5 * 30 + 2)
    cells = [strip[2:30, 2 + 30 * j : 30 + 30 * j] for j in range(5)]
    assert np.array_equal(cells[0], picture(await client.post("/generate", json={"seed": 3, **codes})))
    assert np.array_equal(cells[-1], picture(await client.post("/generate", json={"seed": 8, **codes})))
    middle = LatentSpec().noise(3) / 2 + LatentSpec().noise(8) / 2
    halfway = picture(await client.post("/generate", json={"noise": middle[0].tolist(), **codes}))
    assert np.abs(cells[2].astype(int) - halfway.astype(int)).max() <= 1  # a straight line for a uniform prior
    one = await client.post("/generate/interpolation", json={"seeds": [3]})
    assert one.status_code == 422 and one.json()["detail"][0]["loc"] == ["body", "seeds"]


async def test_encode_returns_q_estimates_with_labels(client: httpx.AsyncClient) -> None:
    digit = (await client.post("/generate", json={"seed": 3, "scale": 4})).content
    response = await client.post("/encode", content=digit, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checkpoint"] == "mnist"
    (code,) = body["categorical"]
    assert code["name"] == "digit" and len(code["probabilities"]) == 10
    assert abs(sum(code["probabilities"]) - 1) < 1e-4
    assert code["argmax"] == int(np.argmax(code["probabilities"])) and code["label"] == LABELS[code["argmax"]]
    assert [c["name"] for c in body["continuous"]] == ["c1", "c2"]
    assert all(c["std"] is None for c in body["continuous"])  # trained with a fixed std, the default


async def test_openapi_documents_images_and_grids(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "image/png" in paths["/generate"]["post"]["responses"]["200"]["content"]
    assert "image/png" in paths["/generate/grid"]["post"]["responses"]["200"]["content"]
    assert "image/gif" in paths["/generate/gif"]["post"]["responses"]["200"]["content"]
    assert "image/png" in paths["/encode"]["post"]["requestBody"]["content"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text  # not a CDN
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    assert "content-security-policy" not in (await client.get("/api/limits")).headers


async def test_root_redirects_to_docs_without_a_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307 and response.headers["location"] == "/docs"


async def test_root_serves_the_page_when_there_is_one(folder: Path, tmp_path: Path) -> None:
    page = tmp_path / "frontend"
    page.mkdir()
    (page / "index.html").write_text("<h1>explorer</h1>")
    async with serve(settings_for(folder).model_copy(update={"frontend_dir": page})) as client:
        assert (await client.get("/")).text == "<h1>explorer</h1>"
        assert (await client.get("/api/checkpoints")).status_code == 200


def readme_curls() -> list[list[str]]:
    """The curl commands of the README's Service section, continuation lines joined."""
    section = (REPO / "README.md").read_text().split("## Service", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line.split("  #")[0]) for line in block.splitlines() if line.startswith("curl")]


async def test_the_readme_examples_work(client: httpx.AsyncClient) -> None:
    digit = b""
    for args in readme_curls():
        path = next(arg for arg in args if arg.startswith("localhost:8000"))
        path = path.removeprefix("localhost:8000")
        if "-d" in args:
            response = await client.post(path, json=json.loads(args[args.index("-d") + 1]))
        elif "--data-binary" in args:
            response = await client.post(path, content=digit, headers={"Content-Type": "image/png"})
        else:
            response = await client.get(path)
        assert response.status_code == 200, (args, response.text)
        digit = digit or (response.content if response.headers["content-type"] == "image/png" else b"")
