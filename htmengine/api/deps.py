"""Request dependencies shared by the route modules."""

from __future__ import annotations

from fastapi import Request

from htmengine.api.backend import EngineBackend


def get_backend(request: Request) -> EngineBackend:
    """The process's EngineBackend (made by the app factory)."""
    backend: EngineBackend = request.app.state.backend
    return backend
