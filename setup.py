"""Packaging for htmengine: the HTM anomaly engine, its plumbing and influxhtm."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list[str]:
    """Runtime requirements: requirements.txt up to the development section."""
    lines = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        if line.startswith("# Development"):
            break
        if line.strip() and not line.startswith("#"):
            lines.append(line.strip())
    return lines


setup(
    name="htmengine",
    version="0.1.0",
    description="Python 3 HTM Engine: anomaly detection for streams of scalar metrics",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["htmengine*", "nta_utils*", "influxhtm*"]),
    package_data={"htmengine": ["**/*.json", "api/static/*", "api/static/vendor/*"]},
    install_requires=_requirements(),
    license="AGPL-3.0-or-later",
)
