"""Uncertainty scores (sslzoo.scores) and the top-k picker (sslzoo._ops.picking).

Property tests (hypothesis) for every score, plus values computed by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslzoo import scores
from sslzoo._ops.picking import top_k

EPS64 = 1e-12
EPS32 = 1e-5
#: no per-example deadline: a loaded CI machine must not make a property test flaky
PROPERTY = settings(deadline=None, max_examples=60)


@pytest.fixture(autouse=True)
def _no_third_party_plugins(monkeypatch):
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "")


# -- generators of probability tensors --------------------------------------------------------------


@st.composite
def probs(draw, n_max: int = 4, c_max: int = 6, t: int | None = None, c_min: int = 1):
    """float64 probabilities (N, C) or, with ``t``, (N, C, T): rows sum to 1 over dim 1.

    Draws non-negative weights with exact zeros and near-ties, so one-hot, sparse and uniform
    rows all occur; a row of zeros becomes uniform.
    """
    n = draw(st.integers(1, n_max))
    c = draw(st.integers(c_min, c_max))
    shape = (n, c) if t is None else (n, c, t)
    weight = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0), st.floats(1e-12, 1e-6))
    values = draw(st.lists(weight, min_size=math.prod(shape), max_size=math.prod(shape)))
    w = torch.tensor(values, dtype=torch.float64).reshape(shape)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w, torch.ones_like(w))
    return w / w.sum(dim=1, keepdim=True)


mc_probs = st.integers(1, 6).flatmap(lambda t: probs(t=t))


def _agreeing(p: torch.Tensor, t: int) -> torch.Tensor:
    """(N, C) → (N, C, T): every pass gives the same prediction."""
    return p.unsqueeze(2).expand(*p.shape, t).contiguous()


# -- single-pass scores: properties -----------------------------------------------------------------


@PROPERTY
@given(probs())
def test_entropy_is_between_zero_and_log_c(p):
    h = scores.entropy(p)
    assert h.shape == (p.shape[0],)
    assert (h >= 0).all()
    assert (h <= math.log(p.shape[1]) + EPS64).all()


@PROPERTY
@given(st.integers(1, 50), st.integers(1, 5))
def test_uniform_entropy_is_log_c(c, n):
    for dtype, tol in ((torch.float64, EPS64), (torch.float32, EPS32)):
        p = torch.full((n, c), 1.0 / c, dtype=dtype)
        assert torch.allclose(scores.entropy(p), torch.full((n,), math.log(c), dtype=dtype), atol=tol, rtol=0)


@PROPERTY
@given(st.integers(1, 20), st.data())
def test_one_hot_has_zero_uncertainty(c, data):
    k = data.draw(st.integers(0, c - 1))
    p = torch.zeros(1, c, dtype=torch.float64)
    p[0, k] = 1.0
    assert scores.entropy(p).item() == 0.0
    assert scores.least_confidence(p).item() == 0.0
    assert scores.margin(p).item() == 1.0
    assert scores.margin_score(p).item() == 0.0


@PROPERTY
@given(probs())
def test_margin_is_in_unit_interval_and_score_is_one_minus_margin(p):
    m = scores.margin(p)
    assert ((m >= 0) & (m <= 1)).all()
    assert torch.equal(scores.margin_score(p), 1.0 - m)
    if p.shape[1] >= 2:
        top = p.sort(dim=1, descending=True).values
        assert torch.allclose(m, top[:, 0] - top[:, 1], atol=EPS64, rtol=0)


@PROPERTY
@given(probs())
def test_least_confidence_is_between_zero_and_one_minus_one_over_c(p):
    lc = scores.least_confidence(p)
    c = p.shape[1]
    assert ((lc >= -EPS64) & (lc <= 1 - 1 / c + EPS64)).all()
    assert torch.allclose(lc, 1 - p.max(dim=1).values, atol=EPS64, rtol=0)


@PROPERTY
@given(probs(c_min=2))
def test_uncertain_rows_score_higher_than_certain_ones(p):
    """A uniform row is at least as uncertain as any row, by every single-pass score."""
    c = p.shape[1]
    uniform = torch.full((1, c), 1.0 / c, dtype=torch.float64)
    for fn in (scores.entropy, scores.least_confidence, scores.margin_score):
        assert (fn(uniform) >= fn(p) - EPS64).all(), fn.__name__


# -- MC-dropout scores: properties ------------------------------------------------------------------


@PROPERTY
@given(probs(), st.integers(1, 8))
def test_bald_is_zero_when_all_passes_agree(p, t):
    mc = _agreeing(p, t)
    assert torch.allclose(scores.bald(mc), torch.zeros(p.shape[0], dtype=torch.float64), atol=EPS64, rtol=0)
    assert torch.allclose(scores.bald(mc.float()), torch.zeros(p.shape[0]), atol=EPS32, rtol=0)
    assert (scores.variation_ratios(mc) == 0).all()
    assert torch.allclose(scores.mean_std(mc), torch.zeros(p.shape[0], dtype=torch.float64), atol=EPS64, rtol=0)
    assert torch.allclose(scores.mc_entropy(mc), scores.entropy(p), atol=EPS64, rtol=0)


@PROPERTY
@given(mc_probs)
def test_bald_is_bounded_by_the_entropy_of_the_mean_and_log_c(p):
    b, h = scores.bald(p), scores.mc_entropy(p)
    log_c = math.log(p.shape[1])
    assert (b >= 0).all()
    assert (b <= h).all()
    assert (h <= log_c + EPS64).all()
    # the same chain holds in float32
    b32, h32 = scores.bald(p.float()), scores.mc_entropy(p.float())
    assert (b32 >= 0).all() and (b32 <= h32).all() and (h32 <= log_c + EPS32).all()


@PROPERTY
@given(mc_probs)
def test_bald_is_entropy_of_mean_minus_mean_entropy(p):
    expected = scores.entropy(p.mean(dim=2)) - torch.stack(
        [scores.entropy(p[:, :, i]) for i in range(p.shape[2])], dim=1).mean(dim=1)
    assert torch.allclose(scores.bald(p), expected.clamp_min(0), atol=1e-10, rtol=0)


@PROPERTY
@given(mc_probs)
def test_variation_ratios_are_one_minus_the_modal_fraction(p):
    v = scores.variation_ratios(p)
    t = p.shape[2]
    assert ((v >= 0) & (v <= 1 - 1 / t + EPS64)).all()
    votes = p.argmax(dim=1)
    for i in range(p.shape[0]):
        modal = max(votes[i].tolist().count(c) for c in set(votes[i].tolist()))
        assert v[i].item() == pytest.approx(1 - modal / t)


@PROPERTY
@given(mc_probs)
def test_mean_std_is_between_zero_and_one_half(p):
    s = scores.mean_std(p)
    assert ((s >= 0) & (s <= 0.5 + EPS64)).all()


@PROPERTY
@given(mc_probs)
def test_scores_have_one_value_per_sample_and_keep_dtype(p):
    for fn in (scores.bald, scores.mc_entropy, scores.variation_ratios, scores.mean_std):
        out = fn(p)
        assert out.shape == (p.shape[0],) and out.dtype == torch.float64 and torch.isfinite(out).all()
        assert fn(p.float()).dtype == torch.float32
        assert fn(p.to(torch.bfloat16)).dtype == torch.float32  # half precision is computed in float32


# -- hand-computed values ---------------------------------------------------------------------------


def test_single_pass_scores_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))  # 0.80181855...
    h1 = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    assert scores.entropy(p).tolist() == pytest.approx([h0, h1, math.log(3)], abs=1e-12)
    assert scores.least_confidence(p).tolist() == pytest.approx([0.3, 0.6, 2 / 3], abs=1e-12)
    assert scores.margin(p).tolist() == pytest.approx([0.5, 0.0, 0.0], abs=1e-12)
    assert scores.margin_score(p).tolist() == pytest.approx([0.5, 1.0, 1.0], abs=1e-12)
    assert h0 == pytest.approx(0.8018185525433373)


def test_mc_scores_by_hand():
    # sample 0: two passes, each certain but of different classes: all uncertainty is epistemic
    # sample 1: two identical uniform passes: all uncertainty is aleatoric
    # sample 2: passes [0.9, 0.1] and [0.5, 0.5]
    p = torch.tensor([
        [[1.0, 0.0], [0.0, 1.0]],
        [[0.5, 0.5], [0.5, 0.5]],
        [[0.9, 0.5], [0.1, 0.5]],
    ], dtype=torch.float64)  # (N=3, C=2, T=2)
    ln2 = math.log(2)
    h_mean2 = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    h_pass = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert scores.mc_entropy(p).tolist() == pytest.approx([ln2, ln2, h_mean2], abs=1e-12)
    assert scores.bald(p).tolist() == pytest.approx([ln2, 0.0, h_mean2 - (h_pass + ln2) / 2], abs=1e-12)
    # argmax of [0.5, 0.5] is class 0, so sample 2's passes agree on class 0
    assert scores.variation_ratios(p).tolist() == pytest.approx([0.5, 0.0, 0.0], abs=1e-12)
    assert scores.mean_std(p).tolist() == pytest.approx([0.5, 0.0, 0.2], abs=1e-12)


def test_variation_ratios_by_hand_with_four_passes():
    votes = [0, 0, 1, 2]  # modal class 0 predicted by 2 of 4 passes
    p = torch.zeros(1, 3, 4)
    for t, c in enumerate(votes):
        p[0, c, t] = 1.0
    assert scores.variation_ratios(p).item() == pytest.approx(0.5)


def test_scores_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        scores.entropy(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(N, C, T\)"):
        scores.bald(torch.rand(2, 3))
    with pytest.raises(ValueError, match="at least one class"):
        scores.margin(torch.rand(2, 0))


def test_margin_with_one_class_is_one():
    assert scores.margin(torch.ones(3, 1)).tolist() == [1.0, 1.0, 1.0]


def test_empty_batches_give_empty_scores():
    assert scores.entropy(torch.empty(0, 3)).shape == (0,)
    assert scores.bald(torch.empty(0, 3, 5)).shape == (0,)
    assert scores.variation_ratios(torch.empty(0, 3, 5)).shape == (0,)


# -- picking ----------------------------------------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_top_k_returns_global_ids_of_the_highest_scores():
    ids = torch.tensor([500, 17, 42, 9000, 3])
    s = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.0])
    chosen = top_k(s, ids, 3, _gen(0))
    assert chosen.tolist() == [17, 9000, 42]
    assert chosen.dtype == torch.int64


@PROPERTY
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(0, 50), st.integers(0, 2**31))
def test_top_k_picks_k_unique_ids_no_lower_than_any_left_out(values, k, seed):
    s = torch.tensor(values, dtype=torch.float64)
    ids = torch.arange(1000, 1000 + s.numel()) * 7
    chosen = top_k(s, ids, k, _gen(seed))
    assert chosen.numel() == min(k, s.numel())
    assert chosen.unique().numel() == chosen.numel()
    assert torch.isin(chosen, ids).all()
    picked = torch.isin(ids, chosen)
    if picked.any() and (~picked).any():
        assert s[picked].min() >= s[~picked].max()


def test_top_k_breaks_ties_at_random_and_reproducibly():
    ids = torch.arange(100, 110)
    s = torch.zeros(10)
    assert torch.equal(top_k(s, ids, 3, _gen(1)), top_k(s, ids, 3, _gen(1)))
    picks = {int(top_k(s, ids, 1, _gen(seed))) for seed in range(200)}
    assert picks == set(range(100, 110))  # every tied id can win, not always the first
    # ties only among equals: the best id always wins
    s[7] = 1.0
    assert all(int(top_k(s, ids, 1, _gen(seed))) == 107 for seed in range(20))


def test_top_k_puts_nan_last_and_clamps_k():
    ids = torch.tensor([10, 11, 12])
    s = torch.tensor([float("nan"), 0.5, -1.0])
    assert top_k(s, ids, 2, _gen(0)).tolist() == [11, 12]
    assert top_k(s, ids, 99, _gen(0)).numel() == 3
    assert top_k(s, ids, 0, _gen(0)).numel() == 0
    with pytest.raises(ValueError, match="same length"):
        top_k(s, ids[:2], 1, _gen(0))


@PROPERTY
@given(st.integers(1, 30), st.integers(0, 2**31))
def test_top_k_never_returns_positions(n, seed):
    """Ids far from 0..n-1 come back unchanged: the picker maps positions back to global ids."""
    ids = torch.randperm(10 * n, generator=_gen(seed))[:n] + 10**6
    chosen = top_k(torch.rand(n, generator=_gen(seed + 1)), ids, n, _gen(seed))
    assert sorted(chosen.tolist()) == sorted(ids.tolist())


def test_top_k_keeps_float64_precision_and_accepts_other_dtypes():
    ids = torch.tensor([5, 6])
    assert top_k(torch.tensor([0.0, 1e-300], dtype=torch.float64), ids, 1, _gen(0)).tolist() == [6]
    assert top_k(torch.tensor([3, 7]), ids, 1, _gen(0)).tolist() == [6]
    assert top_k(torch.tensor([0.5, 0.25], dtype=torch.bfloat16), ids, 1, _gen(0)).tolist() == [5]
