"""Datasource adapters: ``createDatasourceAdapter("custom")`` returns the custom-metric adapter
(the only datasource of htmengine)."""

from __future__ import annotations

from typing import Any

from htmengine.adapters.datasource.custom import CustomDatasourceAdapter
from htmengine.exceptions import InvalidInputError

__all__ = ["createCustomDatasourceAdapter", "createDatasourceAdapter", "listDatasourceNames"]


def listDatasourceNames() -> tuple[str, ...]:
    """Names of the supported datasources."""
    return ("custom",)


def createDatasourceAdapter(datasource: str, **kwargs: Any) -> CustomDatasourceAdapter:
    """The adapter of `datasource` (keyword arguments go to its constructor, e.g. `engine`).

    :raises InvalidInputError: unknown datasource (the message lists the supported ones)
    """
    if datasource == "custom":
        return CustomDatasourceAdapter(**kwargs)
    raise InvalidInputError(
        f"unknown datasource {datasource!r}; supported: {list(listDatasourceNames())}")


def createCustomDatasourceAdapter(**kwargs: Any) -> CustomDatasourceAdapter:
    """Shortcut for ``createDatasourceAdapter("custom")``."""
    return createDatasourceAdapter("custom", **kwargs)
