"""Fuzz the engine's parsers of untrusted input with hypothesis and print, per parser, how many
inputs were tried, how many were rejected with the expected error and how many crashed (any
other exception), with the first crashing inputs.

Parsers: the graphite plaintext parser (the listener's line splitter and checks, and
``parsePlaintext`` + ``check_sample`` as the storer runs them), the custom-metrics JSON decoder
(``decodeBatchMessage`` with its size and depth limits) and the skeleton web app's body
handling (``parse_model_params`` of a PUT, the ``value timestamp`` lines of a POST), the
model swapper's request and result messages (``unpackRequestMessage``,
``unpackResultMessage``: model input queues and the results queue), and the HTTP API's
request bodies as its routes read them (JSON, then the pydantic body types of
``POST .../data`` and ``PUT .../model``, then ``check_samples``).

    python bench/fuzz_parsers.py [--inputs 200000] [--parser plaintext|json|web|model|api]
                                 [--seed N]

Each input hypothesis generates is fed as is and as ``MUTATIONS - 1`` byte-level mutations of
it (inserted tokens such as ``[``, ``\\xff``, ``1e308``, newlines; deleted, duplicated or
flipped bytes), which is how 200,000 inputs per parser fit in minutes (hypothesis itself draws
these structured inputs at ~20 ms each). Exit status 1 if anything crashed. tests/htmengine/runtime/test_fuzz_parsers.py runs the same
targets with a few hundred inputs each.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import TypeAdapter, ValidationError  # noqa: E402

from htmengine.api.routes_data import MAX_SAMPLES  # noqa: E402
from htmengine.api.samples import check_samples  # noqa: E402
from htmengine.api.schemas import ModelRequest, Sample  # noqa: E402
from htmengine.exceptions import InvalidInputError  # noqa: E402
from htmengine.model_swapper.errors import InvalidMessageError  # noqa: E402
from htmengine.model_swapper.messages import (  # noqa: E402
    unpackRequestMessage,
    unpackResultMessage,
)
from htmengine.pipeline.plaintext import decodeBatchMessage, parsePlaintext  # noqa: E402
from htmengine.pipeline.sample_validation import check_sample  # noqa: E402
from htmengine.runtime.metric_listener import LineSplitter  # noqa: E402
from skeleton_app.webapp import parse_model_params, parse_sample_line  # noqa: E402

HORIZON = 86400.0
MUTATIONS = 20
_TOKENS = [b"[", b"]", b"{", b"}", b'"', b"\\", b"\xff", b"\xc3", b"\n", b" ", b"\t", b"\x00",
           b"1e308", b"-1.7976931348623157e308", b"nan", b"4102444800", b"\xe2\x80\xa8"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random byte-level edits of `data`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(out))
        action = rng.randrange(5)
        if action == 0:
            out[pos:pos] = rng.choice(_TOKENS) * rng.choice((1, 1, 2, 50))
        elif action == 1 and out:
            del out[pos:pos + rng.randint(1, 8)]
        elif action == 2 and out:
            end = min(len(out), pos + rng.randint(1, 40))
            out[pos:pos] = out[pos:end] * rng.randint(1, 4)
        elif action == 3 and pos < len(out):
            out[pos] ^= 1 << rng.randrange(8)
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(out)


def variants(data: object, rng: random.Random) -> list[object]:
    """`data` and MUTATIONS - 1 mutations of it (same shape: bytes, chunk list or request)."""
    out = [data]
    for _ in range(MUTATIONS - 1):
        if isinstance(data, bytes):
            out.append(mutate(data, rng))
        elif isinstance(data, list):
            out.append([mutate(chunk, rng) if rng.random() < 0.5 else chunk for chunk in data]
                       or [mutate(b"", rng)])
        else:
            method, body = data  # type: ignore[misc]
            out.append((method, mutate(body, rng)))
    return out

# ------------------------------------------------------------------ strategies

_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
names = st.one_of(st.text(alphabet="abcXYZ._-0123456789", min_size=1, max_size=20),
                  st.text(_NAME_CHARS, min_size=0, max_size=40))
number_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400).map(str),
    st.text(alphabet="0123456789.eE+-_infINFaNx ", max_size=30),
    st.sampled_from(["1.7976931348623157e308", "-1.7976931348623157e308", "1e100", "1e101",
                     "4102444800", "253402300799", "253402300800", "-0", "nan", "inf"]))
separators = st.sampled_from([" ", "  ", "\t", " \t ", "\x0b", "\u00a0", "\u3000"])


@st.composite
def plaintext_lines(draw: st.DrawFn) -> bytes:
    """A line close to ``name value timestamp`` (often valid), or arbitrary bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    fields = [draw(names), draw(number_texts), draw(number_texts)]
    fields = fields[:draw(st.integers(0, 4))] + draw(st.lists(number_texts, max_size=1))
    text = draw(separators).join(fields)
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=4)) + raw[cut:]
    return raw


@st.composite
def plaintext_streams(draw: st.DrawFn) -> list[bytes]:
    """A TCP stream of lines cut into arbitrary reads."""
    stream = b"\n".join(draw(st.lists(plaintext_lines(), max_size=8)))
    if draw(st.integers(0, 9)) == 0:
        stream += b"x" * draw(st.integers(8000, 20000)) + b"\n"
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20)


@st.composite
def nested_brackets(draw: st.DrawFn) -> bytes:
    """Deep or unbalanced nesting, the poison message family."""
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{\"a\":", b"}"), (b"[{\"a\":", b"}]")]))
    depth = draw(st.one_of(st.integers(0, 40), st.integers(1000, 100000)))
    return opener * depth + draw(st.sampled_from([b"1", b"", b"\"x\""])) + closer * draw(
        st.integers(0, depth))


@st.composite
def batch_messages(draw: st.DrawFn) -> bytes:
    """A custom-metrics queue message: well-formed, almost well-formed or garbage."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(nested_brackets())
    if kind == 2:
        return json.dumps(draw(json_values)).encode()
    message: dict[str, object] = {
        "protocol": draw(st.sampled_from(["plain", "pickle", 1, None])),
        "data": draw(st.one_of(st.lists(plaintext_lines().map(
            lambda raw: raw.decode("utf-8", errors="replace")), max_size=5), json_values))}
    if draw(st.booleans()):
        message["source"] = draw(st.one_of(st.text(max_size=20), json_values))
    return json.dumps(message).encode()


@st.composite
def model_messages(draw: st.DrawFn) -> bytes:
    """A request or result message ``head\n[items]``: items close to the real signatures, or
    nesting and garbage."""
    head = draw(st.sampled_from([b"batch-1", b"model-1", b"", b"a\xffb"]))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return head + b"\n" + draw(nested_brackets())
    rowIds = st.one_of(st.integers(), st.text(max_size=8), json_values)
    item = st.one_of(
        st.tuples(st.just("i"), rowIds,
                  st.tuples(st.tuples(st.integers(), st.integers()).map(list),
                            st.one_of(st.floats(), json_values)).map(list),
                  st.lists(st.integers(-2, 3), max_size=2)).map(list),
        st.tuples(st.sampled_from(["iRv2", "iR"]), rowIds, st.integers(-1, 5),
                  st.one_of(st.floats(), json_values), st.one_of(st.none(), st.text(max_size=9)),
                  json_values).map(list),
        st.tuples(st.sampled_from(["mc", "mcR"]), rowIds, st.text(max_size=12),
                  json_values, json_values, json_values).map(list),
        st.lists(json_values, max_size=5))
    items = draw(st.lists(item, max_size=4)) if kind == 2 else draw(json_values)
    return head + b"\n" + json.dumps(items).encode()


@st.composite
def web_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(method, body) of a PUT (model params JSON) or a POST (``value timestamp`` lines)."""
    if draw(st.booleans()):
        body = draw(st.one_of(
            st.binary(max_size=200), nested_brackets(),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.fixed_dictionaries({}, optional={
                "min": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
                "max": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
                "minResolution": st.one_of(st.floats(), st.integers())}).map(
                    lambda v: json.dumps(v).encode())))
        return "PUT", body
    lines = draw(st.lists(st.one_of(
        st.tuples(number_texts, number_texts).map(" ".join),
        st.text(max_size=40)), max_size=6))
    return "POST", "\n".join(lines).encode("utf-8", errors="surrogatepass")


@st.composite
def api_bodies(draw: st.DrawFn) -> bytes:
    """A body of ``POST /api/v1/metrics/{name}/data`` or ``PUT .../model``."""
    scalars = st.one_of(st.floats(), st.integers(), st.text(max_size=30),
                        st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00",
                                         "2026-11-27T12:00:00Z", "1e308", "nan", "4102444800"]))
    sample = st.fixed_dictionaries({}, optional={"timestamp": scalars, "value": scalars,
                                                 "extra": scalars})
    return draw(st.one_of(
        st.binary(max_size=200), nested_brackets(),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(sample, max_size=8).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({}, optional={"min": scalars, "max": scalars,
                                            "minResolution": scalars}).map(
            lambda v: json.dumps(v).encode())))


# ------------------------------------------------------------------ targets

def fuzz_plaintext(stream: list[bytes]) -> None:
    """The listener's splitter (every check) and the storer's parse + check of each line."""
    splitter = LineSplitter("fuzz")
    lines = [line for chunk in stream for line in splitter.feed(chunk)] + splitter.finish()
    for line in lines:   # what the listener passes on must parse at the storer
        sample = parsePlaintext(line)
        check_sample(sample.metricName, sample.value, sample.timestamp, HORIZON)
        assert math.isfinite(sample.value) and abs(sample.value) <= 1e100
    for raw in b"".join(stream).split(b"\n"):
        try:
            sample = parsePlaintext(raw)
            check_sample(sample.metricName, sample.value, sample.timestamp, HORIZON)
        except InvalidInputError:
            pass


def fuzz_json(body: bytes) -> None:
    """The storer's decoder of custom-metrics messages."""
    try:
        lines, source = decodeBatchMessage(body)
    except InvalidInputError:
        return
    assert all(isinstance(line, str) for line in lines)
    assert source is None or isinstance(source, str)


def fuzz_web(request: tuple[str, bytes]) -> None:
    """The web app's PUT and POST body handling."""
    method, body = request
    if method == "PUT":
        try:
            params = parse_model_params(body)
        except InvalidInputError:
            return
        assert isinstance(params, dict)
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    for line in text.splitlines():
        if line.strip():
            try:
                value, _ts = parse_sample_line("fuzz.metric", line)
            except InvalidInputError:
                continue
            assert math.isfinite(value)


def fuzz_model(body: bytes) -> None:
    """The model swapper's decoders of request and result messages."""
    for unpack in (unpackRequestMessage, unpackResultMessage):
        try:
            batch = unpack(body)
        except InvalidMessageError:
            continue
        assert isinstance(batch.objects, tuple)


_SAMPLES = TypeAdapter(list[Sample])
_MODEL_REQUEST = TypeAdapter(ModelRequest | None)


def fuzz_api(body: bytes) -> None:
    """The API's body handling: FastAPI's JSON decoding (a decoding error or too deep a
    nesting is its 422 / 400), the body types of the two routes that take one, and the
    per-sample checks of ``POST .../data`` (each sample parsed or rejected with a reason)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return
    try:
        samples = _SAMPLES.validate_python(document)
    except ValidationError:
        samples = None
    if samples is not None and len(samples) <= MAX_SAMPLES:
        for checked in check_samples(samples):
            assert (checked.reason is not None) or (
                checked.timestamp is not None and checked.value is not None
                and math.isfinite(checked.value))
    try:
        _MODEL_REQUEST.validate_python(document)
    except ValidationError:
        pass


TARGETS: dict[str, tuple[Callable[[object], None], st.SearchStrategy]] = {
    "plaintext": (fuzz_plaintext, plaintext_streams()),
    "json": (fuzz_json, batch_messages()),
    "web": (fuzz_web, web_bodies()),
    "model": (fuzz_model, model_messages()),
    "api": (fuzz_api, api_bodies()),
}


@dataclass
class FuzzResult:
    """What one parser's run did."""

    parser: str
    inputs: int = 0
    crashes: int = 0
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_parser(parser: str, inputs: int, random_seed: int = 0,
               progress: tqdm | None = None) -> FuzzResult:
    """Feed `inputs` inputs to `parser` (hypothesis examples and their mutations); every
    exception other than the expected rejection counts as a crash (the run goes on)."""
    target, strategy = TARGETS[parser]
    result = FuzzResult(parser)
    examples = max(1, -(-inputs // MUTATIONS))

    @seed(random_seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy, st.randoms(use_true_random=False))
    def check(data: object, rng: random.Random) -> None:
        for variant in variants(data, rng)[:inputs - result.inputs]:
            result.inputs += 1
            if progress is not None:
                progress.update(1)
            try:
                target(variant)
            except Exception as error:  # noqa: BLE001 - a crash, counted and shown
                result.crashes += 1
                if len(result.examples) < 5:
                    result.examples.append(f"{error!r} on {str(variant)[:200]}")

    started = time.perf_counter()
    check()
    result.seconds = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzers and print one line per parser."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=200000, help="inputs per parser")
    parser.add_argument("--parser", choices=sorted(TARGETS), action="append",
                        help="only this parser (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)   # rejected lines are logged: not wanted here
    crashed = 0
    for name in args.parser or list(TARGETS):
        with tqdm(total=args.inputs, desc=name, unit="inputs", file=sys.stderr) as progress:
            result = run_parser(name, args.inputs, args.seed, progress)
        crashed += result.crashes
        print(f"parser={result.parser} inputs={result.inputs} crashes={result.crashes} "
              f"seconds={result.seconds:.1f}", flush=True)
        for example in result.examples:
            print(f"  crash: {example}")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
