"""MC-dropout passes (sslzoo._ops.masks, sslzoo._ops.dropout, sslzoo._ops.inference): exact keep rates, independent
and reproducible masks, torch's dropout semantics, the prefix split only where it is the model's own
function, and passes that agree with plain full-model passes (exactly under the same masks, and in
distribution against torch's own dropout)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sslzoo
from sslzoo import scores
from sslzoo._ops import inference, masks
from sslzoo._ops.dropout import SELU_ALPHA, StochasticDropout
from sslzoo.errors import OptionError, TrainingError


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bits_of(packed: torch.Tensor) -> torch.Tensor:
    """(n, 8) 0/1 matrix of the bits of uint8 ``packed`` (bit b of byte i in column b)."""
    return ((packed.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1).to(torch.float64)


def within_binomial(kept: float, n: int, q: float, z: float = 5.0) -> bool:
    return abs(kept - n * q) <= z * math.sqrt(n * q * (1 - q)) + 1e-9


# -- keep bits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.5, 0.25, 0.75, 0.1, 0.3, 1 / 3, 0.6180339887, 1e-3, 0.999])
def test_binary_expansion_is_exactly_p(p):
    bits = masks.binary_expansion(p)
    assert sum(Fraction(b, 2 ** (j + 1)) for j, b in enumerate(bits)) == Fraction(p)
    assert not bits or bits[-1] == 1


@pytest.mark.parametrize("p", [0.5, 0.25, 0.75, 0.1, 0.3, 1 / 3, 0.6180339887, 1e-3, 0.999])
def test_keep_bits_have_exactly_the_keep_probability_asked_for(p):
    n_words = 2**16  # 4 Mi masks: 5 standard errors ≈ 0.0011 at q = 1/2
    kept = bits_of(masks.keep_words(n_words, p, generator(1)).view(torch.uint8)).sum().item()
    n = n_words * 64
    assert within_binomial(kept, n, 1 - p), (p, kept / n)
    if p in (0.1, 0.3):  # not multiples of 1/256: a one-byte threshold (U8 < 256 p) fails the bound
        byte_q = 1 - math.floor(p * 256) / 256
        assert not within_binomial(kept, n, byte_q)


def test_keep_bits_are_independent_across_bit_positions_and_draws():
    p, q = 0.3, 0.7
    stream = masks.KeepBits(p, generator(2))
    first = bits_of(stream.take(8 * 2**16)).reshape(-1, 64)  # (words, position in the word)
    second = bits_of(stream.take(8 * 2**16)).reshape(-1, 64)
    n = first.shape[0]
    for column in first.T:  # every position of a word (none stuck, e.g. a sign bit)
        assert within_binomial(column.sum().item(), n, q)
    pairs = first[:, :-1] * first[:, 1:]  # neighbours in one draw
    assert within_binomial(pairs.sum().item(), pairs.numel(), q * q, z=6)
    across = first * second  # the same element in two draws (two passes)
    assert within_binomial(across.sum().item(), across.numel(), q * q, z=6)


def test_same_seed_gives_the_same_masks_and_another_seed_other_masks():
    a = masks.KeepBits(0.3, generator(5)).take(10_000)
    b = masks.KeepBits(0.3, generator(5)).take(10_000)
    c = masks.KeepBits(0.3, generator(6)).take(10_000)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(("p", "bits_per_mask"), [(0.5, 1), (0.25, 2), (0.75, 2)])
def test_short_expansions_cost_one_or_two_random_bits_per_mask(monkeypatch, p, bits_per_mask):
    drawn = []
    real = masks.random_words

    def counting(n, gen):
        drawn.append(n)
        return real(n, gen)

    monkeypatch.setattr(masks, "random_words", counting)
    masks.keep_words(1000, p, generator(0))
    assert sum(drawn) == 1000 * bits_per_mask


# -- StochasticDropout: torch's semantics, masks from the generator ----------------------------------


def test_functional_dropout_is_stochastic_even_with_training_false():
    x = torch.rand(64, 50) + 1
    with StochasticDropout(generator(0)):
        y = F.dropout(x, 0.3, training=False)
    kept = y != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(y[kept], x[kept] / 0.7)


def test_dropout_layers_keep_torchs_semantics():
    x = torch.rand(16, 6, 5, 5) + 1
    with StochasticDropout(generator(0)):
        d2 = nn.Dropout2d(0.5).eval()(x)
        d1 = F.dropout1d(x[0, :, :, 0], 0.5)  # unbatched (C, L): one mask per channel
        alpha = nn.AlphaDropout(0.2)(x)
        zero, same = F.dropout(x, 1.0), F.dropout(x, 0.0)
        inplace = x.clone()
        returned = torch.dropout_(inplace, 0.5, True)
    channel_kept = d2.flatten(2).ne(0).all(dim=2)
    assert torch.equal(channel_kept, d2.flatten(2).ne(0).any(dim=2))  # whole channels kept or dropped
    torch.testing.assert_close(d2[channel_kept], x[channel_kept] * 2)
    assert d1.shape == (6, 5) and torch.equal(d1.ne(0).all(dim=1), d1.ne(0).any(dim=1))
    a = 1 / math.sqrt((SELU_ALPHA**2 * 0.2 + 1) * 0.8)
    kept_value, dropped_value = x * a + SELU_ALPHA * a * 0.2, -SELU_ALPHA * a * 0.8
    native = F.alpha_dropout(x, 0.2, training=True)
    for out in (alpha, native):  # ours and torch's: each element is x kept or the saturation value
        kept = torch.isclose(out, kept_value)
        assert kept.any() and (~kept).any()
        torch.testing.assert_close(out[~kept], torch.full_like(out[~kept], dropped_value))
    assert torch.equal(zero, torch.zeros_like(x)) and same is x
    assert returned is inplace and inplace.eq(0).any() and inplace.ne(0).any()


def test_channels_last_input_gets_masks_in_its_own_layout():
    x = (torch.rand(8, 4, 6, 6) + 1).to(memory_format=torch.channels_last)
    with StochasticDropout(generator(0)):
        y = F.dropout(x, 0.5)
    assert y.is_contiguous(memory_format=torch.channels_last)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] * 2)


# -- the split: only where it is the model's own function ------------------------------------------------


class OwnForward(nn.Sequential):
    """A Sequential whose forward is not Sequential's: a skip connection around the dropout block."""

    def __init__(self) -> None:
        super().__init__(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.Dropout(0.5), nn.Linear(32, 3))

    def forward(self, x):
        h = self[1](self[0](x))
        return self[4](self[3](self[2](h)) + h)


class PlainModule(nn.Module):
    """Not a Sequential: nn.Dropout inside a forward of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(2, 32), nn.Dropout(0.4), nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.tanh(self.fc1(x))))


class FunctionalDropout(nn.Module):
    """Dropout by ``F.dropout(x, p, self.training)``: a no-op in evaluation mode unless made stochastic."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, 32), nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5, self.training))


class Noise(nn.Module):
    """A random layer that is not a dropout (always on)."""

    def forward(self, x):
        return x + 0.1 * torch.randn_like(x)


def custom_model(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = cls()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.mul_(3)  # spread the outputs so that the passes disagree clearly
    return model


def builtin(name: str) -> tuple[nn.Module, torch.Tensor]:
    shape = (2,) if name == "moons_mlp" else (1, 28, 28)
    torch.manual_seed(0)
    model = sslzoo.create_model(name, shape, 10)
    if len(shape) == 3:
        model = model.to(memory_format=torch.channels_last)  # as the engine runs image models
    return model, torch.randn(12, *shape)


@pytest.mark.parametrize(("name", "cached", "stochastic"), [
    ("cnn", [0, 1, 2, 3, 5, 6], [4, 7, 8, 9, 10, 11]),  # its Dropout2d after the pool and ReLU
    ("gal_cnn", [0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]),
    ("batchbald_cnn", [0, 2, 3], [1, 4, 5, 6, 7, 8, 9, 10, 11, 12]),  # pool and ReLU commute with its Dropout2d
    ("mlp", [0, 1, 2], [3, 4, 5, 6, 7]),
    ("moons_mlp", [0, 1, 2, 3, 4, 5, 6], [7, 8])])
def test_the_layers_before_the_first_dropout_of_a_builtin_are_cached(name, cached, stochastic):
    model, x = builtin(name)
    prefix, rest = inference.split_at_dropout(model, x[:1])
    assert prefix == [model[i] for i in cached] and rest == [model[i] for i in stochastic]


def test_only_exact_max_pools_and_relus_move_before_a_channel_dropout():
    drop = nn.Dropout2d(0.5)
    pool, relu, hooked = nn.MaxPool2d(2), nn.ReLU(), nn.ReLU()
    hooked.register_forward_hook(lambda module, args, out: out)
    assert inference.commuting_layers(drop, [pool, relu, nn.Conv2d(3, 3, 1), relu], 4) == [pool, relu]
    assert inference.commuting_layers(drop, [hooked, relu], 4) == []
    assert inference.commuting_layers(drop, [pool], 3) == []  # a 3-D input: MaxPool2d would pool channels
    assert inference.commuting_layers(drop, [nn.MaxPool2d(2, return_indices=True)], 4) == []
    assert inference.commuting_layers(nn.Dropout(0.5), [pool, relu], 4) == []  # not one constant per channel
    assert inference.commuting_layers(drop, [nn.AvgPool2d(2)], 4) == []  # exact only up to rounding


def test_no_split_for_a_model_whose_forward_is_not_sequentials():
    for model in (custom_model(OwnForward), custom_model(PlainModule), custom_model(FunctionalDropout)):
        assert inference.split_at_dropout(model, torch.randn(1, 2)) == ([], [model])
    hooked = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 3))
    hooked.register_forward_hook(lambda module, args, out: out * 2)
    assert inference.split_at_dropout(hooked, torch.randn(1, 2)) == ([], [hooked])


def test_the_prefix_stops_before_any_random_layer():
    model = nn.Sequential(nn.Linear(2, 4), Noise(), nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 3))
    prefix, _ = inference.split_at_dropout(model, torch.randn(1, 2))
    assert prefix == [model[0]]


def test_a_prefix_layer_random_only_for_some_inputs_is_an_error():
    class Sometimes(nn.Module):
        def forward(self, x):
            return x + torch.randn_like(x) if x.shape[0] > 1 else x

    model = nn.Sequential(nn.Linear(2, 4), Sometimes(), nn.Dropout(0.5), nn.Linear(4, 3))
    with pytest.raises(TrainingError, match="random call for some inputs"):
        inference.mc_probabilities(model, torch.randn(10, 2), torch.arange(10), 3, generator(0))


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(2, 3)),
                                   nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.0), nn.Linear(4, 3))])
def test_a_model_without_stochastic_dropout_is_refused(model):
    with pytest.raises(OptionError, match="makes no dropout call with p > 0"):
        inference.mc_probabilities(model, torch.randn(5, 2), torch.arange(5), 4, generator(0))


@pytest.mark.parametrize("name", sorted(sslzoo.list_models()))
def test_cached_passes_equal_full_model_passes_under_the_same_masks(name):
    model, x = builtin(name)
    if not any(isinstance(m, inference.DROPOUT_TYPES) for m in model.modules()):
        with pytest.raises(OptionError):
            inference.split_at_dropout(model, x[:1])
        return
    with torch.inference_mode(), inference.eval_mode(model, dropout=True):
        prefix, rest = inference.split_at_dropout(model, x[:1])
        cached = inference.mc_passes(rest, inference.run_layers(prefix, x), 7, StochasticDropout(generator(3)), rows=5)
        full = inference.mc_passes([model], x, 7, StochasticDropout(generator(3)), rows=5)
    assert prefix  # the cached path really skipped layers
    torch.testing.assert_close(cached, full)
    assert cached.std(dim=2).mean() > 1e-4  # and the passes differ


# -- in distribution: the passes against torch's own dropout ---------------------------------------------


def torch_passes(model: nn.Module, x: torch.Tensor, passes: int) -> torch.Tensor:
    """(k, C, T) softmax outputs of full forward passes with torch's dropout (``model.train()``:
    these test models have no batch-norm), all passes batched."""
    torch.manual_seed(11)
    model.train()
    with torch.no_grad():
        out = torch.softmax(model(x.repeat(passes, *[1] * (x.dim() - 1))), dim=1)
    model.eval()
    return out.reshape(passes, x.shape[0], -1).permute(1, 2, 0)


def max_z(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference between per-(sample, class) mean probabilities, in standard errors."""
    se = (a.var(dim=2) / a.shape[2] + b.var(dim=2) / b.shape[2]).sqrt().clamp_min(1e-6)
    return float(((a.mean(dim=2) - b.mean(dim=2)).abs() / se).max())


DISTRIBUTION_PASSES = 3000


@pytest.mark.parametrize("cls", [OwnForward, PlainModule, FunctionalDropout])
def test_mc_passes_match_torchs_dropout_in_distribution(cls):
    model, x = custom_model(cls), torch.randn(16, 2)
    ours = inference.mc_probabilities(model, x, torch.arange(16), DISTRIBUTION_PASSES, generator(4))
    theirs = torch_passes(model, x, DISTRIBUTION_PASSES)
    assert max_z(ours, theirs) < 5
    assert scores.bald(ours).min() > 0.01  # every sample's passes disagree (F.dropout included)


def test_builtin_moons_mlp_matches_torchs_dropout_in_distribution():
    model, _ = builtin("moons_mlp")
    x = torch.randn(16, 2) * 3
    ours = inference.mc_probabilities(model, x, torch.arange(16), DISTRIBUTION_PASSES, generator(4))
    assert max_z(ours, torch_passes(model, x, DISTRIBUTION_PASSES)) < 5


def test_the_distribution_check_catches_a_sequential_sliced_past_its_own_forward():
    """What MC-dropout did before: slicing OwnForward at its dropout drops the skip connection."""
    model, x = custom_model(OwnForward), torch.randn(16, 2)
    sliced = nn.Sequential(*list(model))  # the layers in order, without the model's forward
    ours = inference.mc_probabilities(sliced, x, torch.arange(16), DISTRIBUTION_PASSES, generator(4))
    assert max_z(ours, torch_passes(model, x, DISTRIBUTION_PASSES)) > 10


def test_bald_from_new_masks_agrees_with_torchs_dropout_at_the_noise_floor():
    model, x = custom_model(PlainModule, seed=1), torch.randn(400, 2)
    ours = scores.bald(inference.mc_probabilities(model, x, torch.arange(400), 100, generator(7)))
    theirs = scores.bald(torch_passes(model, x, 100))
    torch.manual_seed(12)
    model.train()
    with torch.no_grad():
        again = torch.softmax(model(x.repeat(100, 1)), dim=1).reshape(100, 400, -1).permute(1, 2, 0)
    model.eval()
    floor = (scores.bald(again) - theirs).abs().mean()  # torch's dropout against itself
    assert (ours - theirs).abs().mean() < 1.3 * floor


def test_mc_probabilities_are_reproducible_under_the_runs_generator():
    model, x = builtin("gal_cnn")
    ids = torch.arange(x.shape[0])
    a = inference.mc_probabilities(model, x, ids, 5, generator(8))
    b = inference.mc_probabilities(model, x, ids, 5, generator(8))
    c = inference.mc_probabilities(model, x, ids, 5, generator(9))
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- consistent masks: one set of weights per pass --------------------------------------------------------


@pytest.mark.parametrize("name", ["gal_cnn", "cnn", "mlp", "moons_mlp"])
def test_consistent_passes_give_every_sample_the_same_masks_in_a_pass(name, monkeypatch):
    model, x = builtin(name)
    monkeypatch.setattr(inference, "MC_ELEMENTS", 2 * x[0].numel())  # many blocks: the masks hold across them
    same = x[:1].expand(9, *x.shape[1:]).contiguous()
    probs = inference.mc_probabilities(model, same, torch.arange(9), 6, generator(4), consistent=True)
    assert (probs - probs[:1]).abs().max() < 1e-5  # every sample in a pass: the same weights
    assert probs[0].std(dim=1).mean() > 1e-4  # the passes differ
    independent = inference.mc_probabilities(model, same, torch.arange(9), 6, generator(4))
    assert (independent - independent[:1]).abs().max() > 1e-3


def test_consistent_passes_are_the_model_under_one_mask_per_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))
    x = torch.randn(10, 3)
    probs = inference.mc_probabilities(model, x, torch.arange(10), 5, generator(2), consistent=True)
    with torch.no_grad(), StochasticDropout(generator(2)):  # the same first draw: the 5 passes' masks
        masks = F.dropout(torch.ones(5, 8), 0.5, True)
    with torch.no_grad():
        hidden = torch.relu(model[0](x))
        expected = torch.stack([torch.softmax(model[3](hidden * masks[t]), dim=1) for t in range(5)], dim=2)
    torch.testing.assert_close(probs, expected)


def test_consistent_passes_are_reproducible_and_keep_the_dropout_rate():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.25))
    seen = []
    model[1].register_forward_hook(lambda m, args, out: seen.append(out.detach().clone()))
    x = torch.ones(3, 2000)
    a = inference.mc_probabilities(model, x, torch.arange(3), 40, generator(5), consistent=True)
    kept = torch.cat(seen[1:])  # after the split probe: every pass's outputs
    assert torch.equal(a, inference.mc_probabilities(model, x, torch.arange(3), 40, generator(5), consistent=True))
    assert within_binomial(float((kept > 0).sum()) / 3, 40 * 2000, 0.75)


def test_batchbalds_network_has_the_authors_layer_sizes():
    """src/mnist_model.py of BatchBALD: conv 1-32 k5 (832), conv 32-64 k5 (51,264), fc 1024-128 (131,200),
    fc 128-10 (1,290) parameters, three dropout layers of p = 0.5."""
    model, x = builtin("batchbald_cnn")
    assert [p.numel() for p in model.parameters()] == [800, 32, 51_200, 64, 131_072, 128, 1_280, 10]
    assert [m.p for m in model if isinstance(m, (nn.Dropout, nn.Dropout2d))] == [0.5, 0.5, 0.5]
    assert model(x).shape == (12, 10)
