"""SRPO losses (Eq. 5–9) and the ORPO variant on hand-made tensors with hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssui_lib.srpo import losses
from ssui_lib.srpo.losses import (
    VARIANTS,
    align_loss,
    log1mexp,
    log_odds,
    orpo_align_loss,
    ref_nll,
    sequence_logps,
    srpo_objective,
    token_logps_from_logits,
)

LOG2 = math.log(2.0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def t(x, **kw):
    return torch.tensor(x, dtype=torch.float64, **kw)


# ---------------------------------------------------------------- sequence_logps
def test_sequence_logps_sum_and_average_respect_mask():
    lp = t([[-1.0, -2.0, -3.0, -100.0], [-0.5, -0.5, -7.0, -9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)
    assert torch.allclose(sequence_logps(lp, mask), t([-6.0, -7.5]))
    assert torch.allclose(sequence_logps(lp, mask, average=True), t([-2.0, -3.75]))


def test_sequence_logps_masked_inf_and_empty_row():
    lp = t([[-1.0, float("-inf")], [float("nan"), -2.0]])
    mask = torch.tensor([[1, 0], [0, 0]])  # 0/1 ints accepted
    assert torch.equal(sequence_logps(lp, mask), t([-1.0, 0.0]))
    assert torch.equal(sequence_logps(lp, mask, average=True), t([-1.0, 0.0]))


def test_sequence_logps_gradient_zero_on_masked_positions():
    lp = t([[-1.0, -2.0, -3.0]], requires_grad=True)
    mask = torch.tensor([[True, False, True]])
    sequence_logps(lp, mask).sum().backward()
    assert torch.equal(lp.grad, t([[1.0, 0.0, 1.0]]))


def test_sequence_logps_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        sequence_logps(torch.zeros(2, 3), torch.ones(2, 4))


# ---------------------------------------------------------------- token_logps_from_logits
def test_token_logps_from_logits_hand_computed_with_shift():
    # V = 2. Logits [0, 0] -> log 1/2 each; logits [0, log 3] -> p(1) = 3/4, p(0) = 1/4.
    logits = t([[[0.0, 0.0], [0.0, math.log(3.0)], [5.0, 5.0]]])
    labels = torch.tensor([[1, 0, 1]])
    lp, mask = token_logps_from_logits(logits, labels)
    # position 0 has no prediction; position 1 is predicted by logits[0] (uniform),
    # position 2 by logits[1] (p(1) = 3/4); logits[2] predicts nothing.
    assert torch.equal(mask, torch.tensor([[False, True, True]]))
    assert torch.allclose(lp, t([[0.0, math.log(0.5), math.log(0.75)]]))


def test_token_logps_from_logits_ignore_index_and_matches_cross_entropy():
    B, L, V = 3, 6, 11
    logits = torch.randn(B, L, V, dtype=torch.float64)
    labels = torch.randint(0, V, (B, L))
    labels[0, :3] = -100  # a prompt region
    labels[2, 4:] = -100  # padding
    lp, mask = token_logps_from_logits(logits, labels)
    assert not mask[:, 0].any()
    assert not mask[0, :3].any() and mask[0, 3:].all()
    assert not mask[2, 4:].any() and mask[2, 1:4].all()
    assert (lp[~mask] == 0).all()
    # -log p equals torch's shifted cross entropy (the standard causal-LM loss) token by token
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), reduction="none")
    kept = (labels[:, 1:] != -100).reshape(-1)
    assert torch.allclose(-lp[:, 1:].reshape(-1)[kept], ce[kept])
    # a custom ignore_index
    other = labels.masked_fill(labels == -100, -7)
    lp2, mask2 = token_logps_from_logits(logits, other, ignore_index=-7)
    assert torch.equal(mask2, mask) and torch.equal(lp2, lp)


def test_token_logps_from_logits_bad_input():
    with pytest.raises(ValueError, match=r"\[B, L, V\]"):
        token_logps_from_logits(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        token_logps_from_logits(torch.zeros(1, 3, 4), torch.tensor([[0, 4, 1]]))


def test_token_logps_from_logits_single_position():
    lp, mask = token_logps_from_logits(torch.zeros(2, 1, 5), torch.zeros(2, 1, dtype=torch.long))
    assert lp.shape == (2, 1) and not mask.any()


# ---------------------------------------------------------------- Eq. 5
def test_ref_nll_is_mean_token_nll_over_batch():
    lp = t([[-1.0, -2.0, 0.0], [-3.0, -99.0, -99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert torch.allclose(ref_nll(lp, mask), t(2.0))  # (1 + 2 + 3) / 3 tokens


def test_ref_nll_empty_mask_raises():
    with pytest.raises(ValueError, match="no token"):
        ref_nll(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))


# ---------------------------------------------------------------- Eq. 6
def test_align_loss_known_values():
    pos = t([-5.0, -5.0, -5.0, -10.0])
    neg = t([-5.0, -5.0 - math.log(3.0), -5.0 + math.log(3.0), -10.0])
    out = align_loss(pos, neg, k=1.0)
    # margin 0 -> log 2; margin log 3 -> -log(3/4) = log(4/3); margin -log 3 -> log 4
    assert torch.allclose(out, t([LOG2, math.log(4 / 3), math.log(4.0), LOG2]))
    assert torch.allclose(align_loss(pos, neg, k=2.5), 2.5 * out)


def test_align_loss_stable_for_huge_margins():
    out = align_loss(t([0.0, -1e4]), t([-1e4, 0.0]))
    assert torch.isfinite(out).all()
    assert out[0] == pytest.approx(0.0, abs=1e-12) and out[1] == pytest.approx(1e4)


def test_align_loss_gradients_point_the_right_way():
    pos = t([-3.0], requires_grad=True)
    neg = t([-2.0], requires_grad=True)
    align_loss(pos, neg).sum().backward()
    assert pos.grad.item() < 0 < neg.grad.item()  # raising L(pos) / lowering L(neg) lowers the loss
    # d/dm [-log sigma(m)] = -(1 - sigma(m)) = -sigma(-m); here m = -1
    assert pos.grad.item() == pytest.approx(-1 / (1 + math.exp(-1.0)))


def test_eq7_shared_prefix_cancels():
    """Two paths with identical prefix tokens: full-path difference == continuation difference."""
    prefix = t([-0.7, -1.3, -2.2])
    pos = torch.cat([prefix, t([-0.4, -0.9, 0.0])])  # continuation of length 2, then padding
    neg = torch.cat([prefix, t([-1.5, -2.5, -0.2])])  # continuation of length 3
    lp = torch.stack([pos, neg])
    full = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    cont = full.clone()
    cont[:, :3] = False
    L_full = sequence_logps(lp, full)
    L_cont = sequence_logps(lp, cont)
    assert torch.allclose(L_full[0] - L_full[1], L_cont[0] - L_cont[1])
    assert torch.allclose(align_loss(L_full[:1], L_full[1:]), align_loss(L_cont[:1], L_cont[1:]))


def test_eq7_via_logits_of_a_causal_model():
    """The same with logits: a shared prefix gives identical prefix logits in a causal model."""
    V = 7
    prefix_logits = torch.randn(1, 4, V, dtype=torch.float64)
    logits = torch.cat([prefix_logits.repeat(2, 1, 1), torch.randn(2, 3, V, dtype=torch.float64)], 1)
    prefix_ids = torch.randint(0, V, (1, 4))
    labels = torch.cat([prefix_ids.repeat(2, 1), torch.randint(0, V, (2, 3))], 1)
    lp, mask = token_logps_from_logits(logits, labels)
    cont = mask.clone()
    cont[:, :4] = False
    L_full, L_cont = sequence_logps(lp, mask), sequence_logps(lp, cont)
    assert torch.allclose(L_full[0] - L_full[1], L_cont[0] - L_cont[1])


# ---------------------------------------------------------------- ORPO variant
def test_log1mexp_matches_naive_where_naive_is_accurate_and_beyond():
    x = t([-1e-10, -1e-3, -0.5, -0.7, -1.0, -5.0, -50.0])
    naive = torch.log(1 - torch.exp(x))
    assert torch.allclose(log1mexp(x)[2:], naive[2:], rtol=1e-12)
    assert log1mexp(x)[0].item() == pytest.approx(math.log(1e-10), rel=1e-9)
    assert log1mexp(t([-800.0])).item() == 0.0


def test_orpo_known_value_and_equal_inputs():
    # p+ = 1/2 -> odds 1, log odds 0; p- = 1/4 -> odds 1/3, log odds -log 3
    out = orpo_align_loss(t([math.log(0.5), -1.0]), t([math.log(0.25), -1.0]), k=1.0)
    assert torch.allclose(out, t([-math.log(1 / (1 + 1 / 3)), LOG2]))  # sigma(log 3) = 3/4
    assert torch.allclose(orpo_align_loss(t([math.log(0.5)]), t([math.log(0.25)]), k=0.2), 0.2 * out[:1])


def test_orpo_stable_at_p_to_one_and_zero():
    for dtype in (torch.float32, torch.float64):
        pos = torch.tensor([0.0, -1e-12, -1e-30, -1e3, -1e3], dtype=dtype, requires_grad=True)
        neg = torch.tensor([-1e3, -1e3, -1e3, 0.0, -1e3], dtype=dtype, requires_grad=True)
        out = orpo_align_loss(pos, neg)
        out.sum().backward()
        assert torch.isfinite(out).all(), dtype
        assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all(), dtype
        assert out[0].item() == pytest.approx(0.0, abs=1e-6)  # p+ -> 1, p- -> 0: no loss
        assert out[3].item() > 100  # p+ -> 0, p- -> 1: large loss
        assert out[4].item() == pytest.approx(LOG2, rel=1e-5)  # both p -> 0 equally
    # p -> 0: log odds -> log p
    assert log_odds(t([-40.0])).item() == pytest.approx(-40.0, abs=1e-15)


def test_orpo_gradients_point_the_right_way():
    pos = t([-0.8], requires_grad=True)
    neg = t([-0.6], requires_grad=True)
    orpo_align_loss(pos, neg).sum().backward()
    assert pos.grad.item() < 0 < neg.grad.item()


def test_variants_registry():
    assert VARIANTS == {"loglik": align_loss, "odds_ratio": orpo_align_loss}
    for fn in VARIANTS.values():
        assert fn(t([-1.0]), t([-1.0])).item() == pytest.approx(LOG2)


# ---------------------------------------------------------------- Eq. 8-9
def test_srpo_objective_sum_is_the_paper_and_lam_scales():
    ref = t(2.0)
    terms = t([0.5, 1.0, 1.5])
    assert srpo_objective(ref, terms, lam=0.3).item() == pytest.approx(2.0 + 0.3 * 3.0)
    assert srpo_objective(ref, terms, lam=0.0).item() == pytest.approx(2.0)
    a, b = (srpo_objective(ref, terms, lam=lam) - ref for lam in (0.1, 0.9))
    assert (b / a).item() == pytest.approx(9.0)


def test_srpo_objective_mean_reduction_and_list_input():
    ref = t(1.0)
    assert srpo_objective(ref, [t(1.0), t(2.0), t(6.0)], lam=0.5, reduction="mean").item() == pytest.approx(
        1.0 + 0.5 * 3.0)
    assert srpo_objective(ref, [t(1.0), t(2.0)], lam=0.5).item() == pytest.approx(2.5)


def test_srpo_objective_no_pairs_and_errors():
    ref = t(1.25)
    assert srpo_objective(ref, [], lam=0.3).item() == 1.25
    assert srpo_objective(ref, t([]), lam=0.3, reduction="mean").item() == 1.25
    with pytest.raises(ValueError, match="reduction"):
        srpo_objective(ref, [], lam=0.3, reduction="max")
    with pytest.raises(ValueError, match="lam"):
        srpo_objective(ref, [], lam=-0.1)
    with pytest.raises(ValueError, match="scalar"):
        srpo_objective(t([1.0, 2.0]), [], lam=0.3)


def test_srpo_objective_end_to_end_gradient():
    """One tiny step of the whole objective moves probability mass the right way."""
    V = 5
    logits = torch.zeros(3, 4, V, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 1, 2, 3], [0, 1, 4, 4], [0, 1, 2, 2]])  # ref, pos, neg share "0 1"
    lp, mask = token_logps_from_logits(logits, labels)
    seq = sequence_logps(lp, mask)
    obj = srpo_objective(ref_nll(lp[:1], mask[:1]), align_loss(seq[1:2], seq[2:3]), lam=0.3)
    assert obj.item() == pytest.approx(math.log(V) + 0.3 * LOG2)  # uniform model
    obj.backward()
    g = logits.grad
    assert g[1, 2, 4] < 0 and g[2, 2, 2] > 0  # raise the positive continuation, lower the negative


def test_module_imports_only_torch():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(losses))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"__future__", "math", "typing", "torch"}
