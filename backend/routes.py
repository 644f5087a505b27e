"""The HTTP routes: each parses, hands the work to latents/inference/render/encode, and answers."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from backend import encode as encoding
from backend.fit import STEPS, Fit
from backend.inference import encode_images
from backend.latents import choose_model, gif_picture, grid_picture, image_picture, interpolation_picture
from backend.registry import Model
from backend.render import MEDIA_TYPES, Picture, etag, render
from backend.runs import describe_run, find_runs, latest_sample, records_after
from backend.schemas import (
    CheckpointInfo,
    EncodeResponse,
    GenerateRequest,
    GifRequest,
    GridRequest,
    InterpolationRequest,
    Limits,
    RunInfo,
)
from backend.service import Service
from models.latent import MAX_SEED
from models.render import GRID_PAD

# The bytes are a pure function of the request and the checkpoint file (whose sha256 is in the
# ETag), so caches may keep them for good.
CACHE_CONTROL = "public, max-age=31536000, immutable"
PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
GIF = {200: {"content": {"image/gif": {}}, "description": "animated GIF"}}
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the image itself as the body (not multipart); any size, grey or colour",
        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in encoding.CONTENT_TYPES},
    }
}

router = APIRouter()


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def json_only(request: Request) -> None:
    """A body must be JSON: FastAPI alone would call any other body a 422 on its shape."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if await request.body() and media_type != "application/json":
        raise HTTPException(415, "Content-Type must be application/json")


@router.get("/api/checkpoints", response_model=list[CheckpointInfo])
async def checkpoints(service: ServiceDep) -> list[CheckpointInfo]:
    """The loaded checkpoints and their latent specs, first one first (the default)."""
    return [model.info for model in service.registry.models.values()]


@router.get("/api/limits", response_model=Limits)
async def limits(service: ServiceDep) -> Limits:
    """The service's limits (its INFOGAN_* settings) and the grid layout: what a request may ask."""
    settings = service.settings.model_dump()  # Limits keeps the fields it names
    return Limits.model_validate({**settings, "max_seed": MAX_SEED, "grid_pad": GRID_PAD})


@router.get("/api/runs", response_model=list[RunInfo])
async def runs(service: ServiceDep) -> list[RunInfo]:
    """The training runs under the runs folder (INFOGAN_RUNS_DIR), as their files tell them."""

    def describe_all() -> list[RunInfo]:
        return [describe_run(name, folder) for name, folder in find_runs(service.settings.runs_dir).items()]

    return await asyncio.to_thread(describe_all)


@router.get("/api/runs/{name:path}/log")
async def run_log(
    service: ServiceDep,
    name: str,
    after: Annotated[int, Query(ge=-1, description="only records after this step")] = -1,
) -> list[dict[str, Any]]:
    """A run's log records after a step, oldest first, at most 1000 per answer: ask again with
    the last one's step for more."""
    return await asyncio.to_thread(records_after, await _run_folder(service, name), after)


@router.get("/api/runs/{name:path}/samples/latest", response_class=Response, responses=PNG)
async def run_sample(service: ServiceDep, name: str) -> Response:
    """The run's newest sample grid: the same codes at every save, so the grids compare."""
    sample = await asyncio.to_thread(latest_sample, await _run_folder(service, name))
    if sample is None:
        raise HTTPException(404, f"run {name!r} has no sample grid yet")
    file, body = sample
    return Response(body, media_type="image/png", headers={"Cache-Control": "no-cache", "X-Sample": file})


async def _run_folder(service: Service, name: str) -> Path:
    """The folder of a listed run: names are looked up, never joined into a path. The listing
    walks the runs folder, so it runs off the event loop."""
    folder = (await asyncio.to_thread(find_runs, service.settings.runs_dir)).get(name)
    if folder is None:
        raise HTTPException(404, f"no run named {name!r}; GET /api/runs lists them")
    return folder


@router.get("/healthz")
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 while at least one checkpoint is served, else 503; both list the files that failed."""
    status, body = service.health()
    return JSONResponse(body, status_code=status)


@router.post("/generate", response_class=Response, responses=PNG, dependencies=[Depends(json_only)])
async def generate(service: ServiceDep, request: Request, body: GenerateRequest | None = None) -> Response:
    """One image as PNG; every field is optional. The same body always answers the same bytes."""
    body = body or GenerateRequest()
    model = _expected(choose_model(service.registry, body.checkpoint), body.sha256)
    return await _answer(service, image_picture(body, model, service.settings), request)


@router.get("/generate", response_class=Response, responses=PNG)
async def generate_get(service: ServiceDep, request: Request, query: Annotated[GenerateRequest, Query()]) -> Response:
    """`POST /generate` as a URL (lists as repeated parameters), for `<img src>` and HTTP caches."""
    model = _expected(choose_model(service.registry, query.checkpoint, where="query"), query.sha256)
    return await _answer(service, image_picture(query, model, service.settings, where="query"), request)


@router.post("/generate/grid", response_class=Response, responses=PNG, dependencies=[Depends(json_only)])
async def generate_grid(service: ServiceDep, request: Request, body: GridRequest | None = None) -> Response:
    """Rows of noise seeds x columns of one code's values, as PNG: the paper's figure 2.
    Default: seeds 0..9 x the first continuous code from -2 to 2 in 9 steps."""
    body = body or GridRequest()
    model = choose_model(service.registry, body.checkpoint)
    return await _answer(service, grid_picture(body, model, service.settings), request)


@router.post("/generate/gif", response_class=Response, responses=GIF, dependencies=[Depends(json_only)])
async def generate_gif(service: ServiceDep, request: Request, body: GifRequest | None = None) -> Response:
    """A looping GIF that sweeps one code with everything else fixed."""
    body = body or GifRequest()
    model = choose_model(service.registry, body.checkpoint)
    return await _answer(service, gif_picture(body, model, service.settings), request)


@router.post("/generate/interpolation", response_class=Response, responses=PNG, dependencies=[Depends(json_only)])
async def generate_interpolation(service: ServiceDep, request: Request, body: InterpolationRequest) -> Response:
    """A strip of pictures whose noise moves from one seed's to another's with the codes fixed, as PNG."""
    model = choose_model(service.registry, body.checkpoint)
    return await _answer(service, interpolation_picture(body, model, service.settings), request)


@router.post("/encode", response_model=EncodeResponse, openapi_extra=IMAGE_BODY)
async def encode(
    service: ServiceDep,
    request: Request,
    checkpoint: Annotated[str | None, Query(max_length=200)] = None,
    fit: Annotated[bool, Query(description="also fit the noise (and refine the codes) so G redraws the image")] = False,
    seed: Annotated[int, Query(ge=0, le=MAX_SEED, description="noise of the codes-only picture a fit compares")] = 0,
) -> EncodeResponse:
    """Q's estimate of an image's codes: probabilities per categorical code, mean and std per
    continuous one. Send the image as the raw body with its Content-Type. With `fit=true`, also
    the noise and codes with which `POST /generate` redraws it, and the pixel error before and after."""
    model = choose_model(service.registry, checkpoint, where="query")
    arch, limit = model.checkpoint.arch, service.settings.max_image_pixels
    body, content_type = await request.body(), request.headers.get("content-type", "")
    images = await asyncio.to_thread(  # decoding a large image takes a while: off the event loop
        encoding.prepare, body, content_type, channels=arch.image_channels, size=arch.image_size, max_pixels=limit
    )
    run = partial(asyncio.get_running_loop().run_in_executor, service.executor)  # the inference thread
    q_out = await run(partial(encode_images, model.checkpoint.discriminator, images, service.device))
    estimate = encoding.estimate(model.name, model.checkpoint, q_out)
    if fit:  # a step at a time, so that other requests' pictures are drawn between the steps
        codes = [code.argmax for code in estimate.categorical], [code.mean for code in estimate.continuous]
        fitting = Fit(model.checkpoint.generator, model.checkpoint.latent, images, *codes)
        await run(fitting.screen)
        for _ in range(STEPS):
            await run(fitting.step)
        estimate.fit = await run(partial(fitting.result, model.batcher.generator, seed=seed))
    return estimate


def _expected(model: Model, sha256: str | None) -> Model:
    """The model, if it is the version the request names (409 if its file has been replaced)."""
    if sha256 is not None and not model.sha256.startswith(sha256.lower()):
        raise HTTPException(409, f"checkpoint {model.name!r} is now sha256 {model.sha256[:16]}..., not {sha256}")
    return model


async def _answer(service: Service, picture: Picture, request: Request) -> Response:
    """The picture's bytes, or 304 when the client already holds them (If-None-Match)."""
    batcher = picture.model.batcher
    tag = etag(picture, batcher.generator.kernels)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    pixels = await batcher.run(picture.inputs)
    body = await asyncio.to_thread(render, picture, pixels)
    return Response(body, media_type=MEDIA_TYPES[picture.kind], headers=headers)


def _matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return "*" in candidates or tag in candidates
