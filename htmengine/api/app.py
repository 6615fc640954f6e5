"""The API's ASGI application factory.

`create_app` mounts the routers under ``/api/v1`` and ``/metrics``, OpenAPI at
``/openapi.json``, the interactive docs at ``/docs`` (and ``/redoc``), whose scripts are
served locally under ``/static-offline-docs`` (no CDN), and the web dashboard at ``/``
(`htmengine.api.dashboard`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from htmengine.api import routes_data, routes_health, routes_metrics, routes_prometheus
from htmengine.api.backend import EngineBackend
from htmengine.api.body_limit import BodyLimitMiddleware
from htmengine.api.dashboard import install_dashboard
from htmengine.api.errors import install_error_handlers
from htmengine.api.settings import ApiSettings, load_settings

API_VERSION = "1.0.0"


def create_app(settings: ApiSettings | None = None, backend: EngineBackend | None = None,
               extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The FastAPI application; `settings` default to ``application.conf``, `backend` is
    created from them (and closed on shutdown) when not given."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backend is None
        app.state.backend = backend or EngineBackend(settings)
        try:
            yield
        finally:
            if owned:
                app.state.backend.close()

    # Swagger UI and ReDoc served from the package's own files, not from a CDN
    app = FastAPIOffline(
        title="htmengine API",
        version=API_VERSION,
        description="Metrics, models, anomaly scores and health of the HTM engine.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in (routes_metrics.router, routes_data.router, routes_health.router,
                   routes_prometheus.router, *extra_routers):
        app.include_router(router)
    install_dashboard(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
