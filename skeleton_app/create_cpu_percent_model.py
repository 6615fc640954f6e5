"""Create the ``cpu_percent`` model (min 0, max 100). See send_cpu.py and README.md."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.exceptions import MetricAlreadyMonitored

MODEL_SPEC: dict[str, Any] = {
    "datasource": "custom",
    "metricSpec": {"metric": "cpu_percent"},
    "modelParams": {"min": 0, "max": 100},  # both optional
}


def main(argv: list[str] | None = None) -> int:
    """Start monitoring cpu_percent and print the model id."""
    argparse.ArgumentParser(
        description="Create the model of the cpu_percent metric (min 0, max 100) that "
                    "send_cpu.py feeds, and print its id.").parse_args(argv)
    adapter = createDatasourceAdapter(MODEL_SPEC["datasource"])
    try:
        model_id = adapter.monitorMetric(MODEL_SPEC)
    except MetricAlreadyMonitored as exc:
        print(f"cpu_percent is already monitored: model {exc.uid}", file=sys.stderr)
        return 1
    print("Model", model_id, "created...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
