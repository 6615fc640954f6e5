"""Listing the orphan out-synapses of a TM (saved with its state): the same list, in the same
order, as a walk over every entry of every chain, whatever stale flags free blocks and the
unused ends of blocks hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._tm_store import list_orphans
from htmengine.algorithms.model import HtmAnomalyModel

DATA = Path(__file__).parent / "data"


def _walked(a: S.TMArrays) -> list[tuple[int, int]]:
    """(source, segment) of the flagged entries in use, source by source in chain order."""
    found = []
    for src in range(a.out_cnt.shape[0]):
        n, b, seen = int(a.out_cnt[src]), int(a.out_head[src]), 0
        while seen < n:
            for j in range(min(S.BLOCK, n - seen)):
                if a.blk[b, j] & 2:
                    found.append((src, int(a.blk[b, j]) >> 2))
            seen += S.BLOCK
            b = int(a.blk_next[b])
    return found


def _trained_arrays() -> S.TMArrays:
    model = HtmAnomalyModel.from_bytes((DATA / "model_v3_ec2_300.bin").read_bytes())
    return model.tm._a


def test_orphans_are_listed_by_source_in_chain_order():
    a = _trained_arrays()
    rng = np.random.default_rng(7)
    sources = np.flatnonzero(a.out_cnt > 0)
    for src in rng.choice(sources, 40, replace=False)[::-1]:  # flag in a scrambled order
        n, b = int(a.out_cnt[src]), int(a.out_head[src])
        for _ in range(int(rng.integers(0, (n - 1) // S.BLOCK + 1))):
            b = int(a.blk_next[b])
        a.blk[b, int(rng.integers(0, min(S.BLOCK, n)))] |= 2
    expected = _walked(a)
    assert len(expected) >= 30
    assert [tuple(row) for row in list_orphans(a).tolist()] == expected


def test_stale_flags_outside_the_chains_are_not_orphans():
    a = _trained_arrays()
    used = int(a.sc[S.SC_BLK_HIGH])
    ends = [(int(a.out_tail[src]), int(a.out_cnt[src]) % S.BLOCK)
            for src in np.flatnonzero(a.out_cnt % S.BLOCK)]
    for b, j in ends[:20]:
        a.blk[b, j:] |= 2  # past the last entry of a chain
    assert _walked(a) == []
    assert list_orphans(a).shape == (0, 2)
    a.blk[used:used + 3] = 4 * 5 + 2  # blocks in no chain (as free ones)...
    assert list_orphans(a).shape == (0, 2)
    a.sc[S.SC_BLK_HIGH] += 3  # ... also below the high-water mark of the blocks
    assert list_orphans(a).shape == (0, 2)
    src = int(np.flatnonzero(a.out_cnt > S.BLOCK)[0])
    b = int(a.blk_next[a.out_head[src]])
    a.blk[b, 0] |= 2
    assert [tuple(row) for row in list_orphans(a).tolist()] == [(src, int(a.blk[b, 0]) >> 2)]
