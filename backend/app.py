"""The FastAPI application: wiring only. `uvicorn backend.app:app` serves it.

Settings come from the environment when this module is imported; checkpoints load in the
lifespan, so importing the module (tests, OpenAPI tooling) stays cheap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from backend.body_limit import BodyLimit
from backend.docs_policy import DocsPolicy
from backend.encode import BadImage
from backend.inference import Overloaded
from backend.latents import NoModel
from backend.routes import router
from backend.service import open_service
from backend.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_service(settings) as service:
            app.state.service = service
            yield

    app = FastAPIOffline(  # FastAPI, with /docs and /redoc loading their scripts from this app, not a CDN
        title="InfoGAN Explorer",
        summary="Draw from InfoGAN generators by seed and latent codes; read codes back from images.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(DocsPolicy, paths=("/docs", "/redoc"))
    app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        # FastAPI's format without the "input" echo: a NaN there cannot even be written as JSON.
        detail = [{key: item[key] for key in ("type", "loc", "msg")} for item in error.errors()]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> Response:
        return JSONResponse({"detail": f"busy: {error}; retry shortly"}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(BadImage)
    async def bad_image(request: Request, error: BadImage) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(NoModel)
    async def no_model(request: Request, error: NoModel) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=503)

    if settings.frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    else:

        @app.get("/", include_in_schema=False)
        async def no_page() -> RedirectResponse:
            return RedirectResponse("/docs")

    return app


app = create_app()
