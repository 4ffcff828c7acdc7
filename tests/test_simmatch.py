"""SimMatch: its step objective agrees with USB's implementation (microsoft/Semi-supervised-learning, ported
below), its memory bank and alignment queue follow the model and the rounds, its options are checked before
training, and it trains on two-moons.

The agreement test builds a hand-made step on 2-D inputs (where the weak and strong views are the inputs
themselves) and a small MLP whose hidden layer is the embedding, calls the strategy's ``loss`` as the engine
does, and computes USB's ``train_step`` on the same logits and embeddings with USB's hooks, through the
bank-filling first epoch and after it; the model is perturbed between steps so that the queue and the bank
move."""

from __future__ import annotations

import math
from copy import deepcopy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from sslzoo._cli.main import main
from sslzoo._contract.context import Context
from sslzoo._contract.labels import ORACLE, Labels
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.strategy import Batch, Step
from sslzoo._default_plugins.simmatch import LabeledBank, SimMatch
from sslzoo._engine.catalog import create_strategy
from sslzoo.errors import OptionError
from sslzoo.testing import tiny_run
from tests.usb_reference import usb_ce_loss, usb_consistency_loss, usb_fixed_masking

N, LABELED, CLASSES, DRAWN, HIDDEN, STEPS, FILLING = 40, 6, 3, 16, 8, 8, 2
TOLERANCE = {"atol": 1e-6, "rtol": 0.0}
OPTIONS: dict[str, Any] = {"threshold": 0.85, "temperature": 0.5, "da_len": 3, "lambda_in": 0.5, "lambda_u": 1.5,
                           "ema_decay": None}


# --- USB's formulas (semilearn/algorithms/simmatch/simmatch.py, hooks/dist_align.py, hooks/masking.py,
# --- core/criterions; commit 1ef4cbebcc0b368158315aeb425053858cf6c845), ported with their names -----------






class UsbDistAlignQueueHook:
    """semilearn/algorithms/hooks/dist_align.py: DistAlignQueueHook, p_target_type='uniform'."""

    def __init__(self, num_classes, queue_length):
        self.queue_length = queue_length
        self.p_target = torch.ones(queue_length, num_classes, dtype=torch.float) / num_classes
        self.p_model = torch.zeros(queue_length, num_classes, dtype=torch.float)
        self.p_model_ptr = torch.zeros(1, dtype=torch.long)

    def dist_align(self, probs_x_ulb):
        p_model_ptr = int(self.p_model_ptr)
        self.p_model[p_model_ptr] = probs_x_ulb.detach().mean(dim=0)
        self.p_model_ptr[0] = (p_model_ptr + 1) % self.queue_length
        probs_x_ulb_aligned = probs_x_ulb * (self.p_target.mean(dim=0) + 1e-6) / (self.p_model.mean(dim=0) + 1e-6)
        return probs_x_ulb_aligned / probs_x_ulb_aligned.sum(dim=-1, keepdim=True)




def usb_l2norm(x, power=2):
    """semilearn/algorithms/simmatch/simmatch.py: SimMatch_Net.l2norm."""
    norm = x.pow(power).sum(1, keepdim=True).pow(1. / power)
    return x.div(norm)


class UsbSimMatch:
    """semilearn/algorithms/simmatch/simmatch.py: SimMatch (use_ema_teacher=False, ema_bank=0.7: its mode
    for CIFAR, SVHN, STL-10), the step's math after the forward passes."""

    def __init__(self, num_classes, T, p_cutoff, smoothing_alpha, da_len, lambda_u, lambda_in):
        self.num_classes, self.T, self.p_cutoff, self.smoothing_alpha = num_classes, T, p_cutoff, smoothing_alpha
        self.lambda_u, self.lambda_in, self.ema_bank = lambda_u, lambda_in, 0.7
        self.dist_align = UsbDistAlignQueueHook(num_classes, da_len)
        self.mem_bank = self.labels_bank = None

    def update_bank(self, k, labels, index):
        self.mem_bank[:, index] = F.normalize(self.ema_bank * self.mem_bank[:, index]
                                              + (1 - self.ema_bank) * k.t().detach())
        self.labels_bank[index] = labels.detach()

    def train_step(self, logits_x_lb, y_lb, ema_logits_x_ulb_w, ema_feats_x_ulb_w, logits_x_ulb_s, feats_x_ulb_s,
                   epoch):
        num_ulb = ema_logits_x_ulb_w.shape[0]
        bank = self.mem_bank.clone().detach()
        sup_loss = usb_ce_loss(logits_x_lb, y_lb, reduction="mean")
        with torch.no_grad():
            ema_probs_x_ulb_w = F.softmax(ema_logits_x_ulb_w, dim=-1)
            ema_probs_x_ulb_w = self.dist_align.dist_align(ema_probs_x_ulb_w.detach())
        with torch.no_grad():
            teacher_logits = ema_feats_x_ulb_w @ bank
            teacher_prob_orig = F.softmax(teacher_logits / self.T, dim=1)
            factor = ema_probs_x_ulb_w.gather(1, self.labels_bank.expand([num_ulb, -1]))
            teacher_prob = teacher_prob_orig * factor
            teacher_prob /= torch.sum(teacher_prob, dim=1, keepdim=True)
            if self.smoothing_alpha < 1:
                bs = teacher_prob_orig.size(0)
                aggregated_prob = torch.zeros([bs, self.num_classes], device=teacher_prob_orig.device)
                aggregated_prob = aggregated_prob.scatter_add(1, self.labels_bank.expand([bs, -1]), teacher_prob_orig)
                probs_x_ulb_w = ema_probs_x_ulb_w * self.smoothing_alpha + aggregated_prob * (1 - self.smoothing_alpha)
            else:
                probs_x_ulb_w = ema_probs_x_ulb_w
        student_logits = feats_x_ulb_s @ bank
        student_prob = F.softmax(student_logits / self.T, dim=1)
        in_loss = torch.sum(-teacher_prob.detach() * torch.log(student_prob), dim=1).mean()
        if epoch == 0:
            in_loss *= 0.0
            probs_x_ulb_w = ema_probs_x_ulb_w
        mask = usb_fixed_masking(probs_x_ulb_w, self.p_cutoff)
        unsup_loss = usb_consistency_loss(logits_x_ulb_s, probs_x_ulb_w, mask=mask)
        total_loss = sup_loss + self.lambda_u * unsup_loss + self.lambda_in * in_loss
        return total_loss, mask, probs_x_ulb_w


# --- a hand-made run: a 2-8-3 tanh MLP (embedding: its hidden layer), 2-D inputs, a few steps --------------


def _context() -> Context:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=gen)
    model = nn.Sequential(nn.Linear(2, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(2 * torch.randn(p.shape, generator=gen))
    ledger = Ledger(N, x.device)
    ids = torch.arange(LABELED)
    ledger.assign(Labels(ids, ids % CLASSES, torch.ones(LABELED), torch.full((LABELED,), ORACLE, dtype=torch.int8)),
                  torch.ones(LABELED), 0)
    return Context(model=model, x=x, ledger=ledger, generator=torch.Generator().manual_seed(1), num_classes=CLASSES,
                   seed=0)


def _labeled_batch(ctx: Context) -> Batch:
    labeled = torch.arange(LABELED)
    return Batch(labeled, ctx.x[labeled], labeled % CLASSES, torch.ones(LABELED),
                 torch.full((LABELED,), ORACLE, dtype=torch.int8))


def test_targets_masks_loss_gradients_and_bank_agree_with_usb():
    ctx = _context()
    strategy = SimMatch(**OPTIONS)
    usb = UsbSimMatch(CLASSES, 0.5, 0.85, 0.9, 3, 1.5, 0.5)
    gen = torch.Generator().manual_seed(2)
    batch, y_lb = _labeled_batch(ctx), torch.arange(LABELED) % CLASSES
    _, first = strategy.follow(ctx, HIDDEN)  # the bank of the first step: random unit rows, the ledger's labels
    torch.testing.assert_close(first.features.norm(dim=1), torch.ones(LABELED), **TOLERANCE)
    assert torch.equal(first.labels, y_lb) and first.row[:LABELED].tolist() == list(range(LABELED))
    kept = []
    for it in range(STEPS):
        ctx.epoch = 0 if it < FILLING else 1
        unlabeled = LABELED + torch.randperm(N - LABELED, generator=gen)[:DRAWN]
        bank = strategy.bank.features.clone()
        with ctx.training():
            out = strategy.loss(ctx, Step(batch, unlabeled))
        grads = torch.autograd.grad(out.loss, list(ctx.model.parameters()))
        # USB on the same model: the views are the inputs, the weak view's outputs carry no gradient
        x_lb, x_ulb = ctx.x[:LABELED], ctx.x[unlabeled]
        embed = ctx.model[:2]
        usb.mem_bank, usb.labels_bank = bank.T.clone(), y_lb.clone()
        total_loss, mask, probs_x_ulb_w = usb.train_step(
            ctx.model(x_lb), y_lb, ctx.model(x_ulb).detach(), usb_l2norm(embed(x_ulb)).detach(), ctx.model(x_ulb),
            usb_l2norm(embed(x_ulb)), ctx.epoch)
        torch.testing.assert_close(out.loss, total_loss, **TOLERANCE)
        for ours, theirs in zip(grads, torch.autograd.grad(total_loss, list(ctx.model.parameters()))):
            torch.testing.assert_close(ours, theirs, **TOLERANCE)
        assert torch.equal(out.pseudo.mask, mask.bool()) and torch.equal(out.pseudo.targets, probs_x_ulb_w.argmax(1))
        torch.testing.assert_close(out.pseudo.confidence, probs_x_ulb_w.max(1).values, **TOLERANCE)
        # the bank moves as USB's update_bank, each written embedding normalised (USB's normalises across the batch)
        ema_feats_x_lb = usb_l2norm(embed(x_lb)).detach()
        expected = F.normalize(0.7 * bank + 0.3 * ema_feats_x_lb, dim=1)
        torch.testing.assert_close(strategy.bank.features, expected, **TOLERANCE)
        kept.append(int(mask.sum()))
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    assert 0 < min(kept[FILLING:]) and max(kept[FILLING:]) < DRAWN  # some ids masked, some kept


def test_usbs_bank_update_normalises_across_the_batch_and_sslzoos_each_embedding():
    usb = UsbSimMatch(CLASSES, 0.1, 0.95, 0.9, 32, 1.0, 1.0)
    gen = torch.Generator().manual_seed(3)
    usb.mem_bank = F.normalize(torch.randn(HIDDEN, LABELED, generator=gen), dim=0)
    usb.labels_bank = torch.zeros(LABELED, dtype=torch.long)
    ids, k = torch.tensor([1, 4]), F.normalize(torch.randn(2, HIDDEN, generator=gen), dim=1)
    ours = LabeledBank(torch.arange(LABELED), torch.zeros(LABELED, dtype=torch.long), HIDDEN, LABELED, gen)
    ours.features = old = usb.mem_bank.T.clone()
    usb.update_bank(k, torch.ones(2, dtype=torch.long), ids)
    ours.update(ids, k, 0.7)
    torch.testing.assert_close(usb.mem_bank[:, ids].norm(dim=1), torch.ones(HIDDEN), **TOLERANCE)  # across the batch
    assert not torch.allclose(usb.mem_bank[:, ids].norm(dim=0), torch.ones(2))
    torch.testing.assert_close(ours.features.norm(dim=1), torch.ones(LABELED), **TOLERANCE)
    torch.testing.assert_close(ours.features[ids], F.normalize(0.7 * old[ids] + 0.3 * k, dim=1), **TOLERANCE)


def test_the_bank_follows_the_rounds_and_starts_afresh_with_a_new_model():
    ctx = _context()
    strategy = SimMatch(**OPTIONS)
    ctx.epoch = 1
    with ctx.training():
        strategy.loss(ctx, Step(_labeled_batch(ctx), torch.arange(LABELED, N)))
    before = strategy.bank.features.clone()
    new = torch.tensor([10, 11])  # a new round labels two more ids; the model goes on
    ctx.ledger.assign(Labels(new, torch.tensor([2, 0]), torch.ones(2), torch.full((2,), ORACLE, dtype=torch.int8)),
                      torch.ones(2), 1)
    ctx.round = 1
    _, bank = strategy.follow(ctx, HIDDEN)
    rows = bank.row[torch.arange(LABELED)]
    assert torch.equal(bank.features[rows], before) and bank.features.shape[0] == LABELED + 2
    assert bank.labels[bank.row[new]].tolist() == [2, 0]
    queue = strategy.alignment
    ctx.model = deepcopy(ctx.model)  # a fresh model: a new bank and queue
    ctx.round = 2
    alignment, bank = strategy.follow(ctx, HIDDEN)
    assert alignment is not queue and float(alignment.p_model.abs().sum()) == 0
    assert not torch.allclose(bank.features[bank.row[torch.arange(LABELED)]], before)


# --- options ---------------------------------------------------------------------------------------


def test_the_defaults_are_the_papers_and_usbs_cifar_configurations():
    o = SimMatch().options
    assert (o.batch_size, o.mu, o.threshold, o.temperature, o.lambda_u, o.lambda_in) == (64, 7, 0.95, 0.1, 1.0, 1.0)
    assert (o.smoothing_alpha, o.da_len, o.bank_momentum, o.ema_decay) == (0.9, 32, 0.7, 0.999)
    assert "Zheng" in SimMatch.paper and "USB" in SimMatch.paper
    assert SimMatch.family == "ssl" and SimMatch.level == "step"


@pytest.mark.parametrize(("option", "value", "fragment"), [
    ("threshold", "0", "greater than 0"),
    ("threshold", "1.5", "between 0.0 and 1.0"),
    ("temperature", "0", "greater than 0"),
    ("temperature", "-0.1", "at least 0.0"),
    ("lambda_u", "0", "greater than 0"),
    ("lambda_in", "0", "greater than 0"),
    ("lambda_in", "-1", "at least 0.0"),
    ("smoothing_alpha", "1.5", "between 0.0 and 1.0"),
    ("da_len", "0", "at least 1"),
    ("bank_momentum", "1", "less than 1"),
    ("mu", "0", "at least 1"),
])
def test_bad_options_are_one_line_errors(option, value, fragment):
    with pytest.raises(OptionError, match=fragment) as info:
        create_strategy("simmatch", **{option: value})
    assert "\n" not in str(info.value) and option in str(info.value)


def test_a_bad_option_stops_the_command_before_training():
    result = CliRunner().invoke(main, ["bench", "-s", "simmatch", "--dataset", "moons", "-o", "temperature=-1"])
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "option temperature='-1' of strategy 'simmatch'" in result.stderr


# --- real training -------------------------------------------------------------------------------------------------


def test_composes_with_an_active_learner():
    record = tiny_run("margin+simmatch").record  # two rounds: a fresh model, a smaller pool
    assert record["oracle_labels"] == 25 and record["pseudo"]["count"] > 0
    assert all(math.isfinite(entry["test_accuracy"]) for entry in record["curve"])


def test_a_short_moons_run_trains():
    record = tiny_run("simmatch", epochs=60, lr=0.05).record  # 10 labels, 60 steps (chance: 0.5)
    assert record["test_accuracy"] >= 0.75 and record["pseudo"]["count"] > 0
    assert record["pseudo"]["accuracy"] > 0.6
