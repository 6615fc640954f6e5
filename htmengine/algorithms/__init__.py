"""The HTM anomaly model (encoders, spatial pooler, backtracking temporal memory, anomaly
likelihood) and its checkpoint format.

Numba's on-disk cache checks the file that defines a kernel, not the files of the kernels it
calls: after an upgrade that changes only a called kernel, the caller would load its old machine
code and compute with the old callee. So, unless ``NUMBA_CACHE_DIR`` is set, the kernels of this
package are cached in a directory named after a digest of the package's sources
(``__pycache__/numba-<digest>``): changed sources never meet stale code. ``precompile`` removes
the directories of other digests.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba.core import config as numba_config

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE_PREFIX = "numba-"


def sources_digest(directory: Path = PACKAGE_DIR) -> str:
    """A digest of every Python source in ``directory`` (this package's by default): names and
    contents."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kernel_cache_dir() -> Path:
    """The directory numba caches this package's kernels in when ``NUMBA_CACHE_DIR`` is unset."""
    return PACKAGE_DIR / "__pycache__" / f"{CACHE_PREFIX}{sources_digest()}"


if not os.environ.get("NUMBA_CACHE_DIR"):
    # numba's config module makes its settings at run time (mypy cannot see them); the cache
    # locator reads this one when a kernel is declared, so before any of this package's modules
    numba_config.CACHE_DIR = str(kernel_cache_dir())  # type: ignore[attr-defined]
