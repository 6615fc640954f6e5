"""The TM's storage kernels on a model switch: the indexed synapses packed from the sources'
chain counts equal the ones found from the pool; the out-synapse chains laid out by counting
at load hold what adding the synapses one by one gives, in the same order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._tm_index import _index_pool_slow, index_pool
from htmengine.algorithms._tm_persist import pack_state
from htmengine.algorithms._tm_store import (
    count_synapses,
    load_pool,
    rebuild_out_synapses,
)
from htmengine.algorithms.model import HtmAnomalyModel

DATA = Path(__file__).parent / "data"


def _trained() -> tuple[HtmAnomalyModel, S.TMArrays]:
    model = HtmAnomalyModel.from_bytes((DATA / "model_v3_ec2_300.bin").read_bytes())
    return model, model.tm._a


def _chains(a: S.TMArrays) -> dict[int, list[int]]:
    """Each source's chain entries in chain order (orphan flags dropped)."""
    out = {}
    for src in np.flatnonzero(a.out_cnt):
        n, b, entries = int(a.out_cnt[src]), int(a.out_head[src]), []
        while n > 0:
            entries += [int(e) & ~2 for e in a.blk[b, :min(S.BLOCK, n)]]
            n -= S.BLOCK
            b = int(a.blk_next[b])
        out[int(src)] = entries
    return out


def _copy(a: S.TMArrays) -> S.TMArrays:
    return S.TMArrays(*(np.array(field, copy=True) for field in a))


def test_index_from_the_chains_equals_the_index_from_the_pool():
    _, a = _trained()
    fast = index_pool(a)
    slow = _index_pool_slow(a, count_synapses(a))
    assert fast is not None and slow is not None
    for got, want in zip(fast, slow, strict=True):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_index_falls_back_to_the_pool_when_the_chain_counts_disagree():
    _, a = _trained()
    want = _index_pool_slow(a, count_synapses(a))
    assert want is not None
    used = np.flatnonzero(a.out_cnt)
    more = a._replace(out_cnt=a.out_cnt.copy())
    more.out_cnt[used[0]] += 1  # a count off by one
    extra = a._replace(out_cnt=a.out_cnt.copy())
    extra.out_cnt[np.flatnonzero(a.out_cnt == 0)[0]] = 1  # a source no synapse has
    fewer = a._replace(out_cnt=a.out_cnt.copy())
    fewer.out_cnt[used[-1]] = 0  # a source in use missing
    for broken in (more, extra, fewer):
        got = index_pool(broken)
        assert got is not None
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w)


def test_chains_laid_out_by_counting_hold_the_chains_added_one_by_one():
    model, a = _trained()
    rest = pack_state(model.tm._params, a)
    loaded = _copy(a)
    loaded.sc[S.SC_BLK_HIGH] = 0
    loaded.sc[S.SC_BLK_NFREE] = 0
    loaded.blk[:] = -1  # stale entries everywhere
    high = int(a.sc[S.SC_SEG_HIGH])
    load_pool(loaded.seg_src, loaded.seg_perm, loaded.seg_n, high, rest["syn_src_cells"],
              rest["syn_src_index"], rest["syn_perm_values"], rest["syn_perm_index"],
              a.fp[S.FP_CONN], loaded.sc, loaded.out_head, loaded.out_tail, loaded.out_cnt,
              loaded.blk, loaded.blk_next, loaded.blk_prev, loaded.blk_free)
    added = _copy(a)
    rebuild_out_synapses(added)
    assert _chains(loaded) == _chains(added)
    assert loaded.sc[S.SC_BLK_HIGH] == added.sc[S.SC_BLK_HIGH]
    for src in np.flatnonzero(loaded.out_cnt):  # each chain's last block ends in zeros
        used = int(loaded.out_cnt[src]) % S.BLOCK
        if used:
            assert not loaded.blk[loaded.out_tail[src], used:].any()
        assert loaded.blk_next[loaded.out_tail[src]] == -1
        assert loaded.blk_prev[loaded.out_head[src]] == -1


def test_a_source_listed_twice_falls_back_to_adding_synapses_one_by_one():
    model, a = _trained()
    rest = pack_state(model.tm._params, a)
    cells = rest["syn_src_cells"].copy()
    index = rest["syn_src_index"]
    # the first two sources as one cell: what adding the synapses one by one gives
    cells[1] = cells[0]
    loaded = _copy(a)
    loaded.sc[S.SC_BLK_HIGH] = 0
    loaded.sc[S.SC_BLK_NFREE] = 0
    high = int(a.sc[S.SC_SEG_HIGH])
    load_pool(loaded.seg_src, loaded.seg_perm, loaded.seg_n, high, cells, index,
              rest["syn_perm_values"], rest["syn_perm_index"], a.fp[S.FP_CONN], loaded.sc,
              loaded.out_head, loaded.out_tail, loaded.out_cnt, loaded.blk, loaded.blk_next,
              loaded.blk_prev, loaded.blk_free)
    added = _copy(loaded)
    rebuild_out_synapses(added)
    assert _chains(loaded) == _chains(added)
    assert int(loaded.out_cnt[cells[0]]) == int(np.isin(index, (0, 1)).sum())
