"""UDA, MixMatch and ReMixMatch: their step objective agrees with USB's implementation
(microsoft/Semi-supervised-learning, ported below), their options are checked before training, and they
train on two-moons.

Each agreement test builds a hand-made step on 2-D inputs (where every view is the input itself) and a
linear model, calls the strategy's ``loss`` as the engine does, and computes USB's ``train_step`` on the
same logits, with MixUp's draws (λ and the shuffle) taken from the strategy; the model is perturbed between
steps so that the state (ramp-ups, TSA, distribution alignment) moves."""

from __future__ import annotations

import math
from copy import deepcopy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from sslzoo._cli.main import main
from sslzoo._contract.context import Context
from sslzoo._contract.labels import ORACLE, Labels
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.strategy import Batch, Step, StepLoss
from sslzoo._default_plugins.mixmatch import Mixing, MixMatch
from sslzoo._default_plugins.remixmatch import ReMixMatch
from sslzoo._default_plugins.uda import Uda
from sslzoo._engine.catalog import create_strategy
from sslzoo.errors import OptionError
from sslzoo.testing import tiny_run
from tests.usb_reference import usb_ce_loss, usb_consistency_loss, usb_fixed_masking

NEW = ("uda", "mixmatch", "remixmatch")
N, CLASSES, DRAWN, STEPS = 40, 3, 12, 6
TARGETS = torch.tensor([0, 0, 0, 1, 1, 2])  # the labeled ids 0..5: a skewed class distribution
LABELED = TARGETS.numel()
TOLERANCE = {"atol": 1e-6, "rtol": 0.0}


# --- USB's formulas (semilearn, commit 1ef4cbe), ported with their names --------------------------------






def usb_gen_ulb_targets(logits, use_hard_label=True, T=1.0, softmax=True):
    """semilearn/algorithms/hooks/pseudo_label.py: PseudoLabelingHook.gen_ulb_targets."""
    logits = logits.detach()
    if use_hard_label:
        return torch.argmax(logits, dim=-1)
    return torch.softmax(logits / T, dim=-1) if softmax else logits




def usb_tsa(schedule, cur_iter, total_iter, num_classes):
    """semilearn/algorithms/uda/uda.py: UDA.TSA."""
    training_progress = cur_iter / total_iter
    if schedule == "linear":
        threshold = training_progress
    elif schedule == "exp":
        threshold = math.exp((training_progress - 1) * 5)
    elif schedule == "log":
        threshold = 1 - math.exp((-training_progress) * 5)
    else:
        return 1
    return threshold * (1 - 1 / num_classes) + 1 / num_classes


def usb_mixup_one_target(x, y, lam, index):
    """semilearn/algorithms/utils/ops.py: mixup_one_target (is_bias=True), its draws passed in: ``lam``
    is λ' = max(λ, 1 − λ), here one per row, and ``index`` the shuffle."""
    lam = lam.unsqueeze(1)
    return lam * x + (1 - lam) * x[index], lam * y + (1 - lam) * y[index]


class UsbDistAlign:
    """semilearn/algorithms/hooks/dist_align.py: DistAlignEMAHook (p_target_type 'gt')."""

    def __init__(self, p_target, momentum):
        self.p_target, self.m, self.p_model = p_target, momentum, None

    def dist_align(self, probs_x_ulb):
        if self.p_model is None:
            self.p_model = torch.mean(probs_x_ulb, dim=0)
        else:
            self.p_model = self.p_model * self.m + torch.mean(probs_x_ulb, dim=0) * (1 - self.m)
        aligned = probs_x_ulb * (self.p_target + 1e-6) / (self.p_model + 1e-6)
        return aligned / aligned.sum(dim=-1, keepdim=True)


def usb_sharpen(probs, T):
    """MixMatch.train_step and ReMixMatch.train_step: the guess's sharpening."""
    sharpen_prob = probs ** (1 / T)
    return sharpen_prob / sharpen_prob.sum(dim=-1, keepdim=True)


# --- a hand-made run: linear model, 2-D inputs, a few steps ---------------------------------------------


def _context() -> Context:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=gen)
    model = nn.Linear(2, CLASSES)
    with torch.no_grad():
        model.weight.copy_(3 * torch.randn(CLASSES, 2, generator=gen))
        model.bias.copy_(torch.randn(CLASSES, generator=gen))
    ledger = Ledger(N, x.device)
    ids = torch.arange(LABELED)
    ledger.assign(Labels(ids, TARGETS, torch.ones(LABELED), torch.full((LABELED,), ORACLE, dtype=torch.int8)),
                  torch.ones(LABELED), 0)
    return Context(model=model, x=x, ledger=ledger, generator=torch.Generator().manual_seed(1), num_classes=CLASSES,
                   seed=0, epochs=1, steps_per_epoch=STEPS)


def _steps(ctx: Context, strategy) -> list[tuple[torch.Tensor, StepLoss, list[Mixing], nn.Module]]:
    """``STEPS`` steps of ``strategy``, each on ``DRAWN`` pool ids, the model perturbed after each: per step
    the unlabeled ids, the step's loss, its MixUp draws and a copy of the step's model."""
    gen = torch.Generator().manual_seed(2)
    draws: list[Mixing] = []
    if hasattr(strategy, "mixing"):
        mixing = strategy.mixing
        strategy.mixing = lambda c, n: draws.append(mixing(c, n)) or draws[-1]
    ids = torch.arange(LABELED)
    batch = Batch(ids, ctx.x[ids], TARGETS, torch.ones(LABELED), torch.full((LABELED,), ORACLE, dtype=torch.int8))
    out = []
    for it in range(STEPS):
        ctx.step = ctx.step_in_epoch = it
        ctx.unlabeled_batches = it + 1
        unlabeled = LABELED + torch.randperm(N - LABELED, generator=gen)[:DRAWN]
        model = deepcopy(ctx.model)
        with ctx.training():
            step_loss = strategy.loss(ctx, Step(batch, unlabeled))
        out.append((unlabeled, step_loss, draws[-1:], model))
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
    return out


def _logits(ctx: Context, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize(("temperature", "tsa"), [(1.0, "none"), (0.4, "linear"), (0.4, "log"), (0.4, "exp")])
def test_uda_masks_targets_and_loss_agree_with_usb(temperature, tsa):
    ctx = _context()
    steps = _steps(ctx, Uda(threshold=0.7, temperature=temperature, tsa=tsa, ema_decay=None))
    kept, dropped = [], 0
    for it, (unlabeled, out, _, model) in enumerate(steps):
        logits_x_lb, logits_x_ulb = _logits(ctx, model, ctx.x[:LABELED]), _logits(ctx, model, ctx.x[unlabeled])
        tsa_eta = usb_tsa(tsa, it, STEPS, CLASSES)
        probs_x_lb = torch.softmax(logits_x_lb, dim=-1)
        usb_sup_mask = torch.max(probs_x_lb, dim=-1)[0].le(tsa_eta).float()
        # sslzoo: the probability of the id's own class, as the paper (USB: the top probability)
        sup_mask = probs_x_lb.gather(1, TARGETS.unsqueeze(1)).squeeze(1).le(tsa_eta).float()
        correct = probs_x_lb.argmax(dim=-1) == TARGETS
        assert torch.equal(sup_mask[correct], usb_sup_mask[correct])
        sup_loss = (usb_ce_loss(logits_x_lb, TARGETS, reduction="none") * sup_mask).mean()
        probs_x_ulb_w = torch.softmax(logits_x_ulb, dim=-1)
        mask = usb_fixed_masking(probs_x_ulb_w, 0.7)
        if temperature == 1.0:  # USB's own call: probabilities, softmax=False, T unused
            pseudo_label = usb_gen_ulb_targets(probs_x_ulb_w, use_hard_label=False, T=temperature, softmax=False)
        else:  # sslzoo sharpens, as the paper: USB's hook on the logits
            pseudo_label = usb_gen_ulb_targets(logits_x_ulb, use_hard_label=False, T=temperature)
        loss = sup_loss + usb_consistency_loss(logits_x_ulb, pseudo_label, "ce", mask)
        torch.testing.assert_close(out.loss, loss, **TOLERANCE)
        assert torch.equal(out.pseudo.mask, mask.bool()) and torch.equal(out.pseudo.targets, pseudo_label.argmax(-1))
        kept.append(int(mask.sum()))
        dropped += int((sup_mask == 0).sum())
    assert 0 < min(kept) < DRAWN
    assert (dropped > 0) == (tsa != "none")  # the annealing drops labeled ids the model already fits


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_mixmatch_guesses_mixup_and_loss_agree_with_usb(temperature):
    ctx = _context()
    steps = _steps(ctx, MixMatch(k=2, temperature=temperature, alpha=0.75, lambda_u=3.0, rampup_steps=4,
                                 ema_decay=None))
    lams = []
    for it, (unlabeled, out, (draw,), model) in enumerate(steps):
        x_lb, x_ulb = ctx.x[:LABELED], ctx.x[unlabeled]
        logits_x_ulb_w1, logits_x_ulb_w2 = _logits(ctx, model, x_ulb), _logits(ctx, model, x_ulb)
        avg_prob_x_ulb = (torch.softmax(logits_x_ulb_w1, dim=1) + torch.softmax(logits_x_ulb_w2, dim=1)) / 2
        sharpen_prob_x_ulb = usb_sharpen(avg_prob_x_ulb, temperature)
        input_labels = torch.cat([F.one_hot(TARGETS, CLASSES), sharpen_prob_x_ulb, sharpen_prob_x_ulb], dim=0)
        inputs = torch.cat([x_lb, x_ulb, x_ulb])
        mixed_x, mixed_y = usb_mixup_one_target(inputs, input_labels, draw.lam, draw.partner)
        logits = _logits(ctx, model, mixed_x)
        sup_loss = usb_ce_loss(logits[:LABELED], mixed_y[:LABELED], reduction="mean")
        unsup_loss = usb_consistency_loss(logits[LABELED:], mixed_y[LABELED:], name="mse")
        unsup_warmup = float(np.clip(it / 4, 0.0, 1.0))
        torch.testing.assert_close(out.loss, sup_loss + 3.0 * unsup_warmup * unsup_loss, **TOLERANCE)
        torch.testing.assert_close(out.pseudo.confidence, sharpen_prob_x_ulb.max(dim=-1).values, **TOLERANCE)
        assert out.pseudo.mask is None and torch.equal(out.pseudo.targets, sharpen_prob_x_ulb.argmax(dim=-1))
        lams.append(draw.lam)
    lam = torch.cat(lams)
    assert float(lam.min()) >= 0.5 and float(lam.max()) <= 1 and lam.unique().numel() > 1


def test_remixmatch_alignment_anchoring_and_loss_agree_with_usb():
    ctx = _context()
    strategy = ReMixMatch(k=2, momentum=0.5, rampup_steps=4, ema_decay=None)
    steps = _steps(ctx, strategy)
    p_target = torch.bincount(TARGETS, minlength=CLASSES).float() / LABELED  # USB's lb_class_dist
    usb = UsbDistAlign(p_target, 0.5)
    for it, (unlabeled, out, (draw,), model) in enumerate(steps):
        x_lb, x_ulb = ctx.x[:LABELED], ctx.x[unlabeled]  # the weak and the strong views alike
        logits_x_ulb_w = _logits(ctx, model, x_ulb)
        prob_x_ulb = usb.dist_align(torch.softmax(logits_x_ulb_w, dim=-1))
        sharpen_prob_x_ulb = usb_sharpen(prob_x_ulb, 0.5)
        input_labels = torch.cat([F.one_hot(TARGETS, CLASSES), *[sharpen_prob_x_ulb] * 3], dim=0)
        inputs = torch.cat([x_lb, x_ulb, x_ulb, x_ulb])
        mixed_x, mixed_y = usb_mixup_one_target(inputs, input_labels, draw.lam, draw.partner)
        logits = _logits(ctx, model, mixed_x)
        u1_logits = _logits(ctx, model, x_ulb)
        sup_loss = usb_ce_loss(logits[:LABELED], mixed_y[:LABELED], reduction="mean")
        unsup_loss = usb_consistency_loss(logits[LABELED:], mixed_y[LABELED:])
        u1_loss = usb_consistency_loss(u1_logits, sharpen_prob_x_ulb)
        unsup_warmup = np.clip(it / 4, a_min=0.0, a_max=1.0)
        loss = sup_loss + 0.5 * unsup_warmup * u1_loss + 1.5 * unsup_warmup * unsup_loss  # lambda_rot 0
        torch.testing.assert_close(out.loss, loss.float(), **TOLERANCE)
        assert torch.equal(out.pseudo.targets, sharpen_prob_x_ulb.argmax(dim=-1))
    torch.testing.assert_close(strategy.alignment.p_model, usb.p_model, **TOLERANCE)
    assert not torch.allclose(usb.p_model, p_target, atol=0.05)  # the alignment has something to correct


def test_remixmatch_aligns_to_each_rounds_labels_and_starts_afresh_with_a_new_model():
    ctx = _context()
    strategy = ReMixMatch(k=1, ema_decay=None)
    _steps(ctx, strategy)
    torch.testing.assert_close(strategy.alignment.p_target, torch.tensor([0.5, 2 / 6, 1 / 6]))
    assert strategy.alignment.p_model is not None
    ids = torch.arange(LABELED, LABELED + 6)
    ctx.ledger.assign(Labels(ids, torch.full((6,), 2), torch.ones(6), torch.full((6,), ORACLE, dtype=torch.int8)),
                      torch.ones(6), 1)
    ctx.model, ctx.round = nn.Linear(2, CLASSES), 1  # a new round trains a fresh model on more labels
    alignment = strategy.follow(ctx)
    torch.testing.assert_close(alignment.p_target, torch.tensor([0.25, 2 / 12, 7 / 12]))
    assert alignment.p_model is None


# --- options ---------------------------------------------------------------------------------------


def test_the_defaults_are_the_papers():
    uda, mix, remix = Uda().options, MixMatch().options, ReMixMatch().options
    assert (uda.threshold, uda.temperature, uda.tsa, uda.lambda_u, uda.mu, uda.batch_size) == (0.8, 0.4, "none", 1.0,
                                                                                              7, 64)
    assert (mix.k, mix.temperature, mix.alpha, mix.lambda_u, mix.rampup_steps, mix.mu, mix.batch_size) == (
        2, 0.5, 0.75, 100.0, 16000, 1, 64)
    assert (remix.k, remix.temperature, remix.alpha, remix.lambda_u, remix.lambda_u1, remix.rampup_steps,
            remix.momentum, remix.mu) == (8, 0.5, 0.75, 1.5, 0.5, 16384, 0.999, 1)
    for o in (uda, mix, remix):
        assert o.ema_decay == 0.999
    for cls, who in ((Uda, "Xie"), (MixMatch, "Berthelot"), (ReMixMatch, "Berthelot")):
        assert who in cls.paper and "USB" in cls.paper and cls.family == "ssl" and cls.level == "step"


@pytest.mark.parametrize(("name", "option", "value", "fragment"), [
    ("uda", "threshold", "0", "greater than 0"),
    ("uda", "threshold", "1.5", "between 0.0 and 1.0"),
    ("uda", "temperature", "-0.4", "at least 0.0"),
    ("uda", "temperature", "0", "greater than 0"),
    ("uda", "tsa", "cosine", "one of"),
    ("mixmatch", "k", "0", "at least 1"),
    ("mixmatch", "temperature", "-1", "at least 0.0"),
    ("mixmatch", "temperature", "0", "greater than 0"),
    ("mixmatch", "alpha", "-0.5", "at least 0.0"),
    ("mixmatch", "lambda_u", "-1", "at least 0.0"),
    ("remixmatch", "k", "0", "at least 1"),
    ("remixmatch", "temperature", "0", "greater than 0"),
    ("remixmatch", "momentum", "1.5", "between 0.0 and 1.0"),
    ("remixmatch", "lambda_u1", "-1", "at least 0.0"),
])
def test_bad_options_are_one_line_errors(name, option, value, fragment):
    with pytest.raises(OptionError, match=fragment) as info:
        create_strategy(name, **{option: value})
    assert "\n" not in str(info.value) and option in str(info.value)


@pytest.mark.parametrize(("name", "option"), [("mixmatch", "k=0"), ("uda", "threshold=0"),
                                              ("remixmatch", "temperature=-1")])
def test_a_bad_option_stops_the_command_before_training(name, option):
    result = CliRunner().invoke(main, ["bench", "-s", name, "--dataset", "moons", "-o", option])
    assert result.exit_code != 0 and result.stdout == ""
    key = option.split("=")[0]
    assert result.stderr.count("\n") == 1
    assert f"option {key}=" in result.stderr and f"strategy '{name}'" in result.stderr


# --- compositions and real training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_each_composes_with_an_active_learner(name):
    record = tiny_run(f"margin+{name}", k=1).record if name != "uda" else tiny_run("margin+uda").record
    assert record["oracle_labels"] == 25 and record["pseudo"]["count"] > 0
    assert all(math.isfinite(entry["test_accuracy"]) for entry in record["curve"])


@pytest.mark.parametrize(("name", "seed", "options"), [
    ("uda", 0, {"threshold": 0.95}),  # the tiny runs' threshold 0.6 lets early mistakes in, as FixMatch's does
    ("mixmatch", 0, {"lambda_u": 1.0, "rampup_steps": 20}),
    # seed 0's ten labels are 7:3 on a balanced pool, and distribution alignment pulls the guesses to that prior
    ("remixmatch", 1, {"k": 2, "rampup_steps": 20}),
])
def test_a_short_moons_run_trains(name, seed, options):
    record = tiny_run(name, seed, epochs=60, lr=0.05, **options).record  # 10 labels, 60 steps (chance: 0.5)
    assert record["test_accuracy"] >= 0.75 and record["pseudo"]["count"] > 0
    assert record["pseudo"]["accuracy"] > 0.6
