"""The adaptive-threshold methods FlexMatch, FreeMatch, SoftMatch and Dash: their step objective agrees
with USB's implementation (microsoft/Semi-supervised-learning, ported below), their options are checked
before training, and they train on two-moons.

Each agreement test builds a hand-made step on 2-D inputs (where the weak and strong views are the inputs
themselves) and a linear model, calls the strategy's ``loss`` as the engine does, and computes USB's
``train_step`` on the same logits with USB's hooks; the model is perturbed between steps so that the
methods' state moves."""

from __future__ import annotations

import math
from collections import Counter
from copy import deepcopy

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
from sslzoo._default_plugins.adaptive import Guess
from sslzoo._default_plugins.dash import Dash
from sslzoo._default_plugins.flexmatch import FlexMatch
from sslzoo._default_plugins.freematch import FreeMatch
from sslzoo._default_plugins.softmatch import SoftMatch
from sslzoo._engine.catalog import create_strategy
from sslzoo.errors import OptionError
from sslzoo.testing import tiny_run
from tests.usb_reference import usb_ce_loss, usb_consistency_loss

NEW = ("flexmatch", "freematch", "softmatch", "dash")
N, LABELED, CLASSES, DRAWN, STEPS = 40, 6, 3, 16, 8
TOLERANCE = {"atol": 1e-6, "rtol": 0.0}


# --- USB's formulas (semilearn/algorithms, commit 1ef4cbe), ported with their names --------------------






class UsbFlexMatch:
    """semilearn/algorithms/flexmatch/utils.py: FlexMatchThresholdingHook."""

    def __init__(self, ulb_dest_len, num_classes, p_cutoff, thresh_warmup):
        self.ulb_dest_len, self.num_classes, self.p_cutoff, self.thresh_warmup = (
            ulb_dest_len, num_classes, p_cutoff, thresh_warmup)
        self.selected_label = torch.ones((ulb_dest_len,), dtype=torch.long) * -1
        self.classwise_acc = torch.zeros((num_classes,))

    def update(self):
        pseudo_counter = Counter(self.selected_label.tolist())
        if max(pseudo_counter.values()) < self.ulb_dest_len:
            if self.thresh_warmup:
                for i in range(self.num_classes):
                    self.classwise_acc[i] = pseudo_counter[i] / max(pseudo_counter.values())
            else:
                wo_negative_one = deepcopy(pseudo_counter)
                if -1 in wo_negative_one.keys():
                    wo_negative_one.pop(-1)
                for i in range(self.num_classes):
                    self.classwise_acc[i] = pseudo_counter[i] / max(wo_negative_one.values())

    def masking(self, probs_x_ulb, idx_ulb):
        max_probs, max_idx = torch.max(probs_x_ulb, dim=-1)
        mask = max_probs.ge(self.p_cutoff * (self.classwise_acc[max_idx] / (2. - self.classwise_acc[max_idx])))
        select = max_probs.ge(self.p_cutoff)
        mask = mask.to(max_probs.dtype)
        if idx_ulb[select == 1].nelement() != 0:
            self.selected_label[idx_ulb[select == 1]] = max_idx[select == 1]
        self.update()
        return mask


class UsbFreeMatch:
    """semilearn/algorithms/freematch/utils.py: FreeMatchThresholingHook (use_quantile, clip_thresh off)."""

    def __init__(self, num_classes, momentum):
        self.m = momentum
        self.p_model = torch.ones(num_classes) / num_classes
        self.label_hist = torch.ones(num_classes) / num_classes
        self.time_p = self.p_model.mean()

    def update(self, probs_x_ulb):
        max_probs, max_idx = torch.max(probs_x_ulb, dim=-1, keepdim=True)
        self.time_p = self.time_p * self.m + (1 - self.m) * max_probs.mean()
        self.p_model = self.p_model * self.m + (1 - self.m) * probs_x_ulb.mean(dim=0)
        hist = torch.bincount(max_idx.reshape(-1), minlength=self.p_model.shape[0]).to(self.p_model.dtype)
        self.label_hist = self.label_hist * self.m + (1 - self.m) * (hist / hist.sum())

    def masking(self, logits_x_ulb):
        probs_x_ulb = torch.softmax(logits_x_ulb.detach(), dim=-1)
        self.update(probs_x_ulb)
        max_probs, max_idx = probs_x_ulb.max(dim=-1)
        mod = self.p_model / torch.max(self.p_model, dim=-1)[0]
        return max_probs.ge(self.time_p * mod[max_idx]).to(max_probs.dtype)


def usb_replace_inf_to_zero(val):
    val[val == float("inf")] = 0.0
    return val


def usb_entropy_loss(mask, logits_s, prob_model, label_hist):
    """semilearn/algorithms/freematch/freematch.py: entropy_loss (the self-adaptive fairness term)."""
    logits_s = logits_s[mask.bool()]
    prob_s = logits_s.softmax(dim=-1)
    _, pred_label_s = torch.max(prob_s, dim=-1)
    hist_s = torch.bincount(pred_label_s, minlength=logits_s.shape[1]).to(logits_s.dtype)
    hist_s = hist_s / hist_s.sum()
    prob_model = prob_model.reshape(1, -1)
    label_hist = label_hist.reshape(1, -1)
    prob_model_scaler = usb_replace_inf_to_zero(1 / label_hist).detach()
    mod_prob_model = prob_model * prob_model_scaler
    mod_prob_model = mod_prob_model / mod_prob_model.sum(dim=-1, keepdim=True)
    mean_prob_scaler_s = usb_replace_inf_to_zero(1 / hist_s).detach()
    mod_mean_prob_s = prob_s.mean(dim=0, keepdim=True) * mean_prob_scaler_s
    mod_mean_prob_s = mod_mean_prob_s / mod_mean_prob_s.sum(dim=-1, keepdim=True)
    loss = mod_prob_model * torch.log(mod_mean_prob_s + 1e-12)
    return loss.sum(dim=1).mean()


class UsbSoftMatch:
    """semilearn/algorithms/hooks/dist_align.py: DistAlignEMAHook (p_target 'uniform') and
    semilearn/algorithms/softmatch/utils.py: SoftMatchWeightingHook (per_class off)."""

    def __init__(self, num_classes, momentum, n_sigma):
        self.m, self.n_sigma = momentum, n_sigma
        self.p_target = torch.ones((num_classes,)) / num_classes
        self.p_model = None
        self.prob_max_mu_t = torch.tensor(1.0 / num_classes)
        self.prob_max_var_t = torch.tensor(1.0)

    def dist_align(self, probs_x_ulb):
        if self.p_model is None:
            self.p_model = torch.mean(probs_x_ulb, dim=0)
        else:
            self.p_model = self.p_model * self.m + torch.mean(probs_x_ulb, dim=0) * (1 - self.m)
        probs_x_ulb_aligned = probs_x_ulb * (self.p_target + 1e-6) / (self.p_model + 1e-6)
        return probs_x_ulb_aligned / probs_x_ulb_aligned.sum(dim=-1, keepdim=True)

    def masking(self, probs_x_ulb):
        max_probs, _ = probs_x_ulb.max(dim=-1)
        self.prob_max_mu_t = self.m * self.prob_max_mu_t + (1 - self.m) * torch.mean(max_probs).item()
        self.prob_max_var_t = self.m * self.prob_max_var_t + (1 - self.m) * torch.var(max_probs, unbiased=True).item()
        mu, var = self.prob_max_mu_t, self.prob_max_var_t
        return torch.exp(-((torch.clamp(max_probs - mu, max=0.0) ** 2) / (2 * var / (self.n_sigma ** 2))))


class UsbDash:
    """semilearn/algorithms/dash/utils.py: DashThresholdingHook; ``every`` is USB's 10 · num_iter_per_epoch."""

    def __init__(self, rho_init, rho_min, gamma, C, every, T):
        self.rho_init, self.rho_min, self.gamma, self.C, self.every, self.T = rho_init, rho_min, gamma, C, every, T
        self.rho_update_cnt, self.rho, self.use_hard_label = 0, None, False

    def update(self, it):
        if it % self.every == 0:
            self.rho = self.C * (self.gamma ** -self.rho_update_cnt) * self.rho_init
            self.rho = max(self.rho, self.rho_min)
            self.rho_update_cnt += 1
        self.use_hard_label = self.rho == self.rho_min

    def masking(self, logits_x_ulb, it):
        self.update(it)
        if self.use_hard_label:
            pseudo_label = torch.argmax(logits_x_ulb, dim=-1).detach()
        else:
            pseudo_label = torch.softmax(logits_x_ulb.detach() / self.T, dim=-1)
        loss_w = usb_ce_loss(logits_x_ulb, pseudo_label, reduction="none")
        return loss_w.le(self.rho).to(logits_x_ulb.dtype)


def usb_pseudo_labels(logits, use_hard_label, T):
    """semilearn/algorithms/hooks/pseudo_label.py: PseudoLabelingHook.gen_ulb_targets (from logits)."""
    logits = logits.detach()
    return torch.argmax(logits, dim=-1) if use_hard_label else torch.softmax(logits / T, dim=-1)


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
    ledger.assign(Labels(ids, ids % CLASSES, torch.ones(LABELED), torch.full((LABELED,), ORACLE, dtype=torch.int8)),
                  torch.ones(LABELED), 0)
    return Context(model=model, x=x, ledger=ledger, generator=torch.Generator().manual_seed(1), num_classes=CLASSES,
                   seed=0)


def _steps(ctx: Context, strategy) -> list[tuple[torch.Tensor, StepLoss, Guess, nn.Module]]:
    """``STEPS`` steps of ``strategy`` on ``ctx``, each on ``DRAWN`` pool ids, the model perturbed after
    each: per step the unlabeled ids, the step's loss, the strategy's guess and a copy of the step's model."""
    gen = torch.Generator().manual_seed(2)
    guesses: list[Guess] = []
    guess = strategy.guess
    strategy.guess = lambda c, ids, probs: guesses.append(guess(c, ids, probs)) or guesses[-1]
    labeled = torch.arange(LABELED)
    batch = Batch(labeled, ctx.x[labeled], labeled % CLASSES, torch.ones(LABELED),
                  torch.full((LABELED,), ORACLE, dtype=torch.int8))
    out = []
    for _ in range(STEPS):
        unlabeled = LABELED + torch.randperm(N - LABELED, generator=gen)[:DRAWN]
        model = deepcopy(ctx.model)
        with ctx.training():
            step_loss = strategy.loss(ctx, Step(batch, unlabeled))
        out.append((unlabeled, step_loss, guesses[-1], model))
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
    return out


def _usb_logits(ctx: Context, model: nn.Module, unlabeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """USB's ``logits_x_lb`` and ``logits_x_ulb_w`` (= ``logits_x_ulb_s``: the views are the inputs here)."""
    with torch.no_grad():
        return model(ctx.x[:LABELED]), model(ctx.x[unlabeled])


def _sup_loss(logits_x_lb: torch.Tensor) -> torch.Tensor:
    return usb_ce_loss(logits_x_lb, torch.arange(LABELED) % CLASSES, reduction="mean")


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_masks_and_loss_agree_with_usb(warmup):
    ctx = _context()
    steps = _steps(ctx, FlexMatch(threshold=0.9, threshold_warmup=warmup, ema_decay=None))
    usb = UsbFlexMatch(N - LABELED, CLASSES, 0.9, warmup)  # USB's ids: positions in the unlabeled set
    kept = []
    for unlabeled, out, guess, model in steps:
        logits_x_lb, logits_x_ulb = _usb_logits(ctx, model, unlabeled)
        mask = usb.masking(torch.softmax(logits_x_ulb, dim=-1), unlabeled - LABELED)
        pseudo_label = usb_pseudo_labels(logits_x_ulb, True, 0.5)
        loss = _sup_loss(logits_x_lb) + usb_consistency_loss(logits_x_ulb, pseudo_label, mask=mask)
        assert torch.equal(guess.weights, mask) and torch.equal(out.pseudo.mask, mask.bool())
        assert torch.equal(guess.targets, pseudo_label) and torch.equal(out.pseudo.targets, pseudo_label)
        torch.testing.assert_close(out.loss, loss, **TOLERANCE)
        kept.append(int(mask.sum()))
    assert kept[0] == DRAWN and 0 < min(kept) < DRAWN  # all at first (β = 0), then some thresholds rise


def test_freematch_masks_and_loss_agree_with_usb():
    ctx = _context()
    steps = _steps(ctx, FreeMatch(momentum=0.5, lambda_f=0.5, ema_decay=None))
    usb = UsbFreeMatch(CLASSES, 0.5)
    kept = []
    for unlabeled, out, guess, model in steps:
        logits_x_lb, logits_x_ulb = _usb_logits(ctx, model, unlabeled)
        mask = usb.masking(logits_x_ulb)
        pseudo_label = usb_pseudo_labels(logits_x_ulb, True, 0.5)
        ent_loss = usb_entropy_loss(mask, logits_x_ulb, usb.p_model, usb.label_hist) if mask.sum() > 0 else 0.0
        loss = _sup_loss(logits_x_lb) + usb_consistency_loss(logits_x_ulb, pseudo_label, mask=mask) + 0.5 * ent_loss
        assert torch.equal(guess.weights, mask) and torch.equal(out.pseudo.targets, pseudo_label)
        torch.testing.assert_close(out.loss, loss, **TOLERANCE)
        kept.append(int(mask.sum()))
    assert 0 < min(kept) < DRAWN


def test_softmatch_weights_and_loss_agree_with_usb():
    ctx = _context()
    steps = _steps(ctx, SoftMatch(momentum=0.5, ema_decay=None))
    usb = UsbSoftMatch(CLASSES, 0.5, 2)
    for unlabeled, out, guess, model in steps:
        logits_x_lb, logits_x_ulb = _usb_logits(ctx, model, unlabeled)
        mask = usb.masking(usb.dist_align(torch.softmax(logits_x_ulb, dim=-1)))
        pseudo_label = usb_pseudo_labels(logits_x_ulb, True, 0.5)  # from the logits, not the aligned probabilities
        loss = _sup_loss(logits_x_lb) + usb_consistency_loss(logits_x_ulb, pseudo_label, mask=mask)
        torch.testing.assert_close(guess.weights, mask, **TOLERANCE)
        assert torch.equal(guess.targets, pseudo_label) and bool(out.pseudo.mask.all())
        torch.testing.assert_close(out.loss, loss, **TOLERANCE)
    assert 0 < float(mask.min()) < 0.5 and float(mask.max()) == 1  # the least confident weigh less, none is dropped


def test_dash_masks_and_loss_agree_with_usb_through_the_switch_to_hard_labels():
    ctx = _context()
    strategy = Dash(warmup_steps=0, rho_every=2, gamma=2.0, rho_min=0.5, ema_decay=None)
    with torch.no_grad():  # USB's rho_init after the warm-up, here the labeled set's loss
        rho_init = float(usb_ce_loss(ctx.model(ctx.x[:LABELED]), torch.arange(LABELED) % CLASSES, reduction="mean"))
    steps = _steps(ctx, strategy)
    usb = UsbDash(rho_init, 0.5, 2.0, 1.0001, 2, 0.5)
    hard, kept = [], []
    for it, (unlabeled, out, guess, model) in enumerate(steps):
        logits_x_lb, logits_x_ulb = _usb_logits(ctx, model, unlabeled)
        mask = usb.masking(logits_x_ulb, it)
        pseudo_label = usb_pseudo_labels(logits_x_ulb, usb.use_hard_label, 0.5)
        loss = _sup_loss(logits_x_lb) + usb_consistency_loss(logits_x_ulb, pseudo_label, mask=mask)
        assert torch.equal(guess.weights, mask) and torch.equal(out.pseudo.mask, mask.bool())
        if usb.use_hard_label:
            assert torch.equal(guess.targets, pseudo_label)
        else:
            torch.testing.assert_close(guess.targets, pseudo_label, **TOLERANCE)
        torch.testing.assert_close(out.loss, loss, **TOLERANCE)
        hard.append(usb.use_hard_label)
        kept.append(int(mask.sum()))
    assert strategy.threshold.rho_init == pytest.approx(rho_init, abs=1e-6)
    assert hard[0] is False and hard[-1] is True  # soft targets first, hard ones once rho reaches rho_min
    assert 0 < min(kept) < DRAWN


def test_dash_trains_on_the_labeled_batch_alone_during_its_warm_up():
    ctx = _context()
    strategy = Dash(warmup_steps=3, ema_decay=None)
    labeled = torch.arange(LABELED)
    batch = Batch(labeled, ctx.x[labeled], labeled % CLASSES, torch.ones(LABELED),
                  torch.full((LABELED,), ORACLE, dtype=torch.int8))
    with ctx.training():
        outs = [strategy.loss(ctx, Step(batch, torch.arange(LABELED, N))) for _ in range(4)]
    assert [out.pseudo is None for out in outs] == [True, True, True, False]
    torch.testing.assert_close(outs[0].loss, F.cross_entropy(ctx.model(ctx.x[labeled]), labeled % CLASSES))


def test_the_state_starts_afresh_with_a_new_model_and_follows_the_pool():
    ctx = _context()
    strategy = FlexMatch(threshold=0.5, ema_decay=None)
    _steps(ctx, strategy)
    assert float(strategy.status.beta.max()) > 0 and int((strategy.status.selected >= 0).sum()) > 0
    ctx.model = nn.Linear(2, CLASSES)  # a new round trains a fresh model
    ctx.round = 1
    strategy.follow(ctx)
    assert float(strategy.status.beta.max()) == 0 and int((strategy.status.selected >= 0).sum()) == 0


# --- options ---------------------------------------------------------------------------------------


def test_the_defaults_are_the_papers():
    flex, free, soft, dash = FlexMatch().options, FreeMatch().options, SoftMatch().options, Dash().options
    for o in (flex, free, soft, dash):
        assert (o.batch_size, o.mu, o.lambda_u, o.ema_decay) == (64, 7, 1.0, 0.999)
    assert (flex.threshold, flex.threshold_warmup) == (0.95, True)
    assert (free.momentum, free.lambda_f) == (0.999, 0.01)
    assert (soft.momentum, soft.n_sigma) == (0.999, 2.0)
    assert (dash.temperature, dash.gamma, dash.c, dash.rho_min, dash.warmup_steps) == (0.5, 1.27, 1.0001, 0.05, 2048)
    for cls, who in ((FlexMatch, "Zhang"), (FreeMatch, "Wang"), (SoftMatch, "Chen"), (Dash, "Xu")):
        assert who in cls.paper and "USB" in cls.paper and cls.family == "ssl" and cls.level == "step"


@pytest.mark.parametrize(("name", "option", "value", "fragment"), [
    ("flexmatch", "threshold", "0", "greater than 0"),
    ("flexmatch", "threshold", "1.5", "between 0.0 and 1.0"),
    ("flexmatch", "mu", "0", "at least 1"),
    ("freematch", "momentum", "-0.1", "between 0.0 and 1.0"),
    ("freematch", "lambda_f", "-1", "at least 0.0"),
    ("softmatch", "n_sigma", "0", "greater than 0"),
    ("softmatch", "momentum", "1.5", "between 0.0 and 1.0"),
    ("dash", "temperature", "-0.5", "at least 0.0"),
    ("dash", "temperature", "0", "greater than 0"),
    ("dash", "gamma", "0.9", "at least 1.0"),
    ("dash", "c", "0", "greater than 0"),
    ("dash", "rho_every", "0", "at least 1"),
    ("dash", "warmup_steps", "-1", "at least 0"),
])
def test_bad_options_are_one_line_errors(name, option, value, fragment):
    with pytest.raises(OptionError, match=fragment) as info:
        create_strategy(name, **{option: value})
    assert "\n" not in str(info.value) and option in str(info.value)


def test_a_bad_option_stops_the_command_before_training():
    result = CliRunner().invoke(main, ["bench", "-s", "dash", "--dataset", "moons", "-o", "temperature=-1"])
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "option temperature='-1' of strategy 'dash'" in result.stderr


# --- compositions and real training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_each_composes_with_an_active_learner(name):
    options = {"warmup_steps": 1} if name == "dash" else {}
    record = tiny_run(f"margin+{name}", **options).record  # two rounds: a fresh model, a smaller pool
    assert record["oracle_labels"] == 25 and record["pseudo"]["count"] > 0
    assert all(math.isfinite(entry["test_accuracy"]) for entry in record["curve"])


@pytest.mark.parametrize("name", NEW)
def test_a_short_moons_run_trains(name):
    options = {"warmup_steps": 20, "rho_every": 10} if name == "dash" else {}
    record = tiny_run(name, epochs=60, lr=0.05, **options).record  # 10 labels, 60 steps (chance: 0.5)
    assert record["test_accuracy"] >= 0.75 and record["pseudo"]["count"] > 0
    assert record["pseudo"]["accuracy"] > 0.6
