"""Packaging for htmengine: the HTM anomaly engine, its plumbing and influxhtm."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name: str) -> list[str]:
    """The pinned requirements of one requirements file (without its -r includes)."""
    lines = []
    for line in (HERE / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-r")):
            lines.append(line)
    return lines


setup(
    name="htmengine",
    version="0.1.0",
    description="Python 3 HTM Engine: anomaly detection for streams of scalar metrics",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["htmengine*", "nta_utils*", "influxhtm*"]),
    # py.typed: the packages ship their type hints (PEP 561), checked by mypy in `make test`.
    package_data={"htmengine": ["**/*.json", "api/static/*", "api/static/vendor/*", "py.typed"],
                  "nta_utils": ["py.typed"], "influxhtm": ["py.typed"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "plot": _requirements("requirements-plot.txt"),
        "dev": _requirements("requirements-plot.txt") + _requirements("requirements-dev.txt"),
    },
    entry_points={"console_scripts": ["htmengine = htmengine.cli.main:main"]},
    license="AGPL-3.0-or-later",
)
