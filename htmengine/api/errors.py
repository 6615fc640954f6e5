"""Errors of the HTTP API and their JSON answers: ``{"error": <message>, "status": <code>}``,
the message naming the bad input."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from htmengine.exceptions import HTMEngineError
from nta_utils.errors import BusError, DatabaseError


class ApiError(HTMEngineError):
    """An error answered with `status` and a JSON message."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ApiError):
    """Unknown metric (404)."""

    status = 404


class Conflict(ApiError):
    """The request does not fit the metric's state (409)."""

    status = 409


class BodyTooLarge(ApiError):
    """The request body is over ``[api] max_body_bytes`` (413)."""

    status = 413


class Unavailable(ApiError):
    """MySQL or RabbitMQ cannot be reached (503)."""

    status = 503


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": message, "status": status, **extra}


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON: ApiError by its status, validation errors 422 naming each
    bad field, HTTP errors (404 route, 405 method) with their status, an unreachable
    RabbitMQ or MySQL 503."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message), status_code=exc.status)

    @app.exception_handler(BusError)
    async def _bus_down(_request: Request, exc: BusError) -> JSONResponse:
        return JSONResponse(error_body(503, f"RabbitMQ is unavailable: {exc}"), status_code=503)

    for db_error in (DatabaseError, sa.exc.OperationalError, sa.exc.InterfaceError):
        @app.exception_handler(db_error)
        async def _db_down(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse(error_body(503, f"MySQL is unavailable: {str(exc)[:300]}"),
                                status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(422, _describe_validation(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)),
                            status_code=exc.status_code, headers=exc.headers)
