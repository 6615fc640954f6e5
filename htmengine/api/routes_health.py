"""``/api/v1/health``: MySQL and RabbitMQ reachable, services alive, queue depths."""

from __future__ import annotations

import time
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from htmengine import engine_metrics
from htmengine.api import schemas
from htmengine.api.backend import EngineBackend
from htmengine.api.deps import get_backend
from htmengine.api.errors import Unavailable
from htmengine.repository import schema

router = APIRouter(prefix="/api/v1", tags=["health"])
Backend = Annotated[EngineBackend, Depends(get_backend)]


def heartbeats() -> dict[str, float]:
    """{service: unix time of its latest heartbeat} from every engine process."""
    beats: dict[str, float] = {}
    for family in engine_metrics.exposition_registry().collect():
        if family.name != "htmengine_service_heartbeat_timestamp_seconds":
            continue
        for sample in family.samples:
            service = sample.labels.get("service", "")
            beats[service] = max(beats.get(service, 0.0), sample.value)
    return beats


def model_uids(backend: EngineBackend) -> list[str]:
    """Uids of metrics that have a model (their input queues count in the depths)."""
    with backend.db() as conn:
        rows = conn.execute(sa.select(schema.metric.c.uid)
                            .where(schema.metric.c.status.in_([1, 2]))).all()
    return [row.uid for row in rows]


def check_health(backend: EngineBackend) -> schemas.Health:
    """Everything the health endpoint reports; problems name what is wrong."""
    problems: list[str] = []
    mysql_ok = True
    uids: list[str] = []
    try:
        uids = model_uids(backend)
    except Unavailable as error:
        mysql_ok = False
        problems.append(error.message)
    rabbit_ok = True
    queues: dict[str, Any] = {}
    try:
        queues = backend.queue_depths(uids)
    except Unavailable as error:
        rabbit_ok = False
        problems.append(error.message)
    now = time.time()
    beats = heartbeats()
    services = {}
    for service in backend.settings.services:
        beat = beats.get(service)
        age = None if beat is None else round(max(0.0, now - beat), 3)
        alive = age is not None and age <= backend.settings.heartbeat_max_age
        services[service] = schemas.ServiceHealth(alive=alive, heartbeatAgeSeconds=age)
        if age is None:
            problems.append(f"service {service}: no heartbeat seen"
                            + ("" if engine_metrics.multiprocess_enabled() else
                               f" ({engine_metrics.MULTIPROC_ENV} is not set)"))
        elif not alive:
            problems.append(f"service {service}: last heartbeat {age:.0f} s ago (more than "
                            f"{backend.settings.heartbeat_max_age:g} s)")
    return schemas.Health(healthy=not problems, problems=problems, mysql=mysql_ok,
                          rabbitmq=rabbit_ok, services=services, queues=queues)


@router.get("/health", response_model=schemas.Health,
            responses={503: {"model": schemas.Health, "description": "not healthy"}},
            summary="Engine health")
def health(backend: Backend) -> JSONResponse:
    """200 when MySQL and RabbitMQ answer and every service's heartbeat is fresh; else 503
    with `problems` naming each reason."""
    report = check_health(backend)
    return JSONResponse(report.model_dump(mode="json"),
                        status_code=200 if report.healthy else 503)
