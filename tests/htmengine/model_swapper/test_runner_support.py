"""runner_support.defaultModelFactory: the model class the runners use."""

from __future__ import annotations

import pytest
from swapper_hash_model import HashModel

from htmengine.model_swapper.runner_support import MODEL_FACTORY_ENV, defaultModelFactory


def test_the_environment_names_the_model_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_FACTORY_ENV, "swapper_hash_model:HashModel")
    assert defaultModelFactory() is HashModel


@pytest.mark.parametrize("spec", ["json:dumps", "swapper_hash_model:_HEADER"])
def test_a_named_object_that_is_no_model_factory_is_refused(
        monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv(MODEL_FACTORY_ENV, spec)
    with pytest.raises(ValueError, match="has no create and from_bytes"):
        defaultModelFactory()


def test_a_malformed_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_FACTORY_ENV, "no_colon")
    with pytest.raises(ValueError, match="must be 'module:attribute'"):
        defaultModelFactory()
