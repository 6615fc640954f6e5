"""`HtmengineManagedTempRepository`: a context manager / function decorator that, while in
scope, points the repository at a fresh temporary database (created with the schema) and drops
it on exit.

The redirection is the environment override of `[repository] db` of application.conf, so it
applies to this process and to processes it starts (not to processes started elsewhere), and
every `Config("application.conf")` read in scope sees the temporary name.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from typing import Any

import htmengine
from htmengine import repository
from htmengine.repository import schema
from nta_utils.config import Config
from nta_utils.db import create_database_if_missing, drop_database

REPO_SECTION_NAME = "repository"
REPO_DATABASE_ATTR_NAME = "db"


class HtmengineManagedTempRepository:
    """Temporary repository database for htmengine tests.

    Context manager::

        with HtmengineManagedTempRepository("metric_gc") as repoCM:
            print(repoCM.tempDatabaseName)

    Function decorator (`kw` names the keyword argument receiving this object)::

        @HtmengineManagedTempRepository("testSomething", kw="tempRepoPatch")
        def testSomething(self, tempRepoPatch): ...
    """

    def __init__(self, clientLabel: str, kw: str | None = None) -> None:
        self._kw = kw
        self._config = htmengine.APP_CONFIG
        dbNameFromConfig = self._config.get(REPO_SECTION_NAME, REPO_DATABASE_ATTR_NAME)
        self.tempDatabaseName = f"{dbNameFromConfig}_{clientLabel}_{uuid.uuid1().hex}"[:64]
        self._overrideName = Config.getEnvVarOverrideName(
            "application.conf", REPO_SECTION_NAME, REPO_DATABASE_ATTR_NAME)
        self._savedOverride: str | None = None
        self._patched = False
        self._created = False

    def __enter__(self) -> HtmengineManagedTempRepository:
        self.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.stop()

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def applyTempRepositoryPatch(*args: Any, **kwargs: Any) -> Any:
            self.start()
            try:
                if self._kw is not None:
                    kwargs[self._kw] = self
                return f(*args, **kwargs)
            finally:
                self.stop()
        return applyTempRepositoryPatch

    def start(self) -> None:
        """Redirect the repository to the temporary database and create it with the schema
        (and the `lock` rows)."""
        repository.engineFactory(reset=True)
        self._savedOverride = os.environ.get(self._overrideName)
        os.environ[self._overrideName] = self.tempDatabaseName
        self._patched = True
        try:
            self._created = True
            if not create_database_if_missing(repository.getDSN(self._config),
                                              self.tempDatabaseName):
                raise RuntimeError(f"temporary database {self.tempDatabaseName} already exists")
            engine = repository.engineFactory(config=self._config)
            schema.metadata.create_all(engine)
            with engine.begin() as conn:   # the operation-lock rows the migration seeds
                conn.execute(schema.lock.insert().values(name=repository.OperationLock.METRICS))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Drop the temporary database and restore the repository's configured one."""
        try:
            repository.engineFactory(reset=True)
            if self._created:
                self._created = False
                drop_database(repository.getDSN(self._config), self.tempDatabaseName)
        finally:
            if self._patched:
                self._patched = False
                if self._savedOverride is None:
                    os.environ.pop(self._overrideName, None)
                else:
                    os.environ[self._overrideName] = self._savedOverride
            repository.engineFactory(reset=True)
