"""Runs every ```python block of README.md's influxhtm section, in order, in one namespace, against the
real InfluxDB (and RabbitMQ for the bridge example), then checks what the examples made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nta_utils.message_bus import MessageBus

pytestmark = [pytest.mark.influx, pytest.mark.integration]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION_HEADING = "## influxhtm"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def influxhtm_section() -> str:
    """README.md from the influxhtm heading up to the next second-level heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION_HEADING)
    end = text.find("\n## ", start + len(SECTION_HEADING))
    return text[start:] if end == -1 else text[start:end]


def python_blocks() -> list[str]:
    """The python code blocks of the README's influxhtm section, in order."""
    return BLOCK.findall(influxhtm_section())


def test_doc_has_the_seed_examples():
    code = "\n".join(python_blocks())
    for call in ("createSensor(", "listSensors()", "getTimeBounds()", "limit=1000",
                 '"method": "mean", "period": "10m"', "createHtmModel(", "writeResult(",
                 "getResults()", "getCombinedSensorData(", ".process(", "startFollowing(",
                 ".delete()", "plotCombinedData(", "createAggregatedCopies(", "ResultsBridge("):
        assert call in code, f"README.md's influxhtm section has no example of {call}"


def test_every_python_block_runs(engine_env, influx_database, influx_address, monkeypatch,
                                 tmp_path, capsys):
    host, port = influx_address
    monkeypatch.setenv("INFLUX_DATABASE", influx_database)
    monkeypatch.setenv("INFLUX_HOST", host)
    monkeypatch.setenv("INFLUX_PORT", str(port))
    for name in ("INFLUX_USER", "INFLUX_PASS", "INFLUX_SSL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "influxhtm_docs"}
    try:
        for index, block in enumerate(python_blocks()):
            code = compile(block, f"README.md influxhtm block {index + 1}", "exec")
            exec(code, namespace)  # noqa: S102 - the documented examples are the test
    finally:
        if "bridge" in namespace:
            # The example's queue stays bound to the session's results exchange otherwise.
            with MessageBus() as bus:
                bus.delete_queue(namespace["bridge"].queue)
    printed = capsys.readouterr().out

    assert "coffee-machine power" in printed
    assert len(namespace["firstData"]) == len(namespace["lastData"]) == 1000
    assert namespace["firstData"][0]["time"] == namespace["dataStarts"]
    assert namespace["lastData"][-1]["time"] == namespace["dataEnds"]
    assert len(namespace["tenMinMeanAggregated"]) == 600
    assert namespace["scored"] == 1200
    assert "scored live: 1" in printed
    temp = namespace["tempSensor"]
    assert [m.getId() for m in temp.listHtmModels()] == ["batch-run", "hourly-mean"]
    data = namespace["data"]
    assert data.times() == [p["time"] for p in
                            temp.getData(since=namespace["oneWeekAgo"])]
    # The jump written at point 1000 stands out in the likelihood of the batch run.
    rows = data.toDicts()
    spike = next(r for r in rows if r["value"] > 30)
    assert spike["anomalyScore"] > 0.5
    for png in ("front-door-temperature.png", "front-door-hourly.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert len(namespace["copies"]["1h"].getData()) == len(temp.getData(aggregation="1h"))
