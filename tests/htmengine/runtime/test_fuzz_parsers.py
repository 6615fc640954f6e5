"""A short, bounded fuzz run of the parsers of untrusted input (bench/fuzz_parsers.py runs
200,000 inputs per parser): no input may raise anything but the expected rejection."""

from __future__ import annotations

import pytest

from bench.fuzz_parsers import TARGETS, run_parser
from htmengine.pipeline.plaintext import decodeBatchMessage
from htmengine.runtime.metric_listener import LineSplitter


@pytest.mark.parametrize("parser", sorted(TARGETS))
def test_fuzzed_parser_never_crashes(parser: str, engine_env) -> None:
    result = run_parser(parser, 600, random_seed=12)
    assert result.inputs == 600
    assert result.crashes == 0, result.examples


def test_the_harness_counts_a_crash(monkeypatch) -> None:
    """The harness must see a crash when a parser raises something unexpected."""
    def broken(_data: object) -> None:
        raise RecursionError("boom")

    monkeypatch.setitem(TARGETS, "json", (broken, TARGETS["json"][1]))
    result = run_parser("json", 40, random_seed=1)
    assert (result.inputs, result.crashes) == (40, 40)
    assert "RecursionError" in result.examples[0]


def test_poison_bodies_are_rejections_not_crashes() -> None:
    """The inputs of issue 12, which crashed before."""
    with pytest.raises(ValueError, match="deeper than the limit"):
        decodeBatchMessage(b"[" * 100000 + b"]" * 100000)
    splitter = LineSplitter("test")
    assert splitter.feed(b"x.caf\xe9 1 1430000000\nm 1.7976931348623157e308 1430000000\n") == []
    assert splitter.rejected == 2
