"""The standard backbones (WRN-28-2, the CIFAR ResNet-18) against their reference code, and the models of
torchvision by name with weights from a file.

The references are ported below as published: USB's ``semilearn/nets/wrn/wrn.py``
(github.com/microsoft/Semi-supervised-learning) and ``models/resnet.py`` of
github.com/kuangliu/pytorch-cifar. sslzoo's models load their weights in order and compute the same.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from click.testing import CliRunner
from torch import nn

from sslzoo._cli.main import main
from sslzoo._contract.registry import default_registry
from sslzoo._ops.backbones import resnet18_cifar, wrn_28_2
from sslzoo._ops.embedding import embeddings
from sslzoo.errors import OptionError, UnknownNameError

from .plugin_helpers import run_here

# -- USB's WideResNet, as published (drop rate 0, its only use here) ---------------------------------------


class UsbBasicBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0, activate_before_residual=False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=0.001)
        self.relu1 = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes, momentum=0.001)
        self.relu2 = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.equalInOut = (in_planes == out_planes)
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride,
                                                                padding=0, bias=False) or None
        self.activate_before_residual = activate_before_residual

    def forward(self, x):
        if not self.equalInOut and self.activate_before_residual:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class UsbWideResNet(nn.Module):
    def __init__(self, first_stride, num_classes, depth=28, widen_factor=2):
        super().__init__()
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) // 6

        def block(i_planes, o_planes, stride, abr=False):
            return nn.Sequential(*[UsbBasicBlock(i == 0 and i_planes or o_planes, o_planes, i == 0 and stride or 1,
                                                 0.0, abr) for i in range(n)])

        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=True)
        self.block1 = block(channels[0], channels[1], first_stride, True)
        self.block2 = block(channels[1], channels[2], 2)
        self.block3 = block(channels[2], channels[3], 2)
        self.bn1 = nn.BatchNorm2d(channels[3], momentum=0.001, eps=0.001)
        self.relu = nn.LeakyReLU(negative_slope=0.1, inplace=False)
        self.classifier = nn.Linear(channels[3], num_classes)
        self.channels = channels[3]

    def forward(self, x):
        out = self.relu(self.bn1(self.block3(self.block2(self.block1(self.conv1(x))))))
        out = F.adaptive_avg_pool2d(out, 1).view(-1, self.channels)
        return self.classifier(out)


# -- kuangliu/pytorch-cifar's ResNet-18, as published ---------------------------------------------------------


class KuangliuBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class KuangliuResNet18(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, 2, stride=1)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(KuangliuBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_in_order(target: nn.Module, source: nn.Module) -> None:
    """``source``'s state (parameters and buffers, in registration order) into ``target``."""
    theirs = list(source.state_dict().values())
    ours = target.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs]
    target.load_state_dict(dict(zip(ours, theirs, strict=True)))


def randomize_statistics(model: nn.Module, generator: torch.Generator) -> None:
    """Batch norms with non-trivial running statistics and affine parameters, so that eval mode is tested."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


# -- WRN-28-2 and ResNet-18 -------------------------------------------------------------------------------------


def test_wrn_28_2_has_usbs_parameter_count():
    assert count(wrn_28_2((3, 32, 32), 10)) == count(UsbWideResNet(1, 10)) == 1_467_626


def test_resnet18_has_the_cifar_references_parameter_count():
    # torchvision's ImageNet ResNet-18 less its 7x7 stem plus a 3x3 one: the only difference in parameters
    imagenet = count(torchvision.models.resnet18(weights=None, num_classes=10))
    assert count(resnet18_cifar((3, 32, 32), 10)) == count(KuangliuResNet18(10)) == imagenet - 64 * 3 * 49 + 64 * 3 * 9
    assert count(KuangliuResNet18(10)) == 11_173_962


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_wrn_28_2_computes_what_usbs_computes_with_its_weights(train):
    generator = torch.Generator().manual_seed(0)
    reference, ours = UsbWideResNet(1, 10), wrn_28_2((3, 32, 32), 10)
    randomize_statistics(reference, generator)
    load_in_order(ours, reference)
    x = torch.randn(2, 3, 32, 32, generator=generator)
    reference.train(train), ours.train(train)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_resnet18_computes_what_the_cifar_reference_computes_with_its_weights(train):
    generator = torch.Generator().manual_seed(1)
    reference, ours = KuangliuResNet18(10), resnet18_cifar((3, 32, 32), 10)
    randomize_statistics(reference, generator)
    load_in_order(ours, reference)
    x = torch.randn(2, 3, 32, 32, generator=generator)
    reference.train(train), ours.train(train)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [wrn_28_2, resnet18_cifar])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (4, 9, 13)])
def test_backbones_take_any_channels_and_image_size(build, shape):
    model = build(shape, 7).eval()
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize(("build", "width"), [(wrn_28_2, 128), (resnet18_cifar, 512)])
def test_the_embedding_is_the_pooled_features_before_the_classifier(build, width):
    model = build((1, 28, 28), 10).eval()
    x = torch.randn(3, 1, 28, 28)
    features = embeddings(model, x, torch.arange(3))
    assert features.shape == (3, width)
    with torch.no_grad():
        torch.testing.assert_close(model[-1](features), model(x))
        torch.testing.assert_close(features, model[:-1](x))


@pytest.mark.parametrize("name", ["wrn_28_2", "resnet18"])
def test_a_backbone_refuses_inputs_that_are_not_images_in_one_line(name):
    with pytest.raises(OptionError, match=rf"model '{name}' takes images .* shape \(2,\)"):
        default_registry().models.get(name).obj.build((2,), 2)


def test_sslzoo_models_lists_the_backbones():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.output)}
    assert {"wrn_28_2", "resnet18"} <= names


# -- torchvision models by name --------------------------------------------------------------------------------


def build(spelled: str, shape: tuple[int, ...] = (3, 32, 32), classes: int = 10) -> nn.Module:
    return default_registry().models.get(spelled).obj.build(shape, classes)


def saved(model: nn.Module, path) -> str:
    torch.save(model.state_dict(), path)
    return str(path)


def test_torchvision_weights_from_a_file_give_the_original_modules_outputs(tmp_path):
    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None, num_classes=10)
    randomize_statistics(original, torch.Generator().manual_seed(2))
    loaded = build(f"torchvision:resnet18,weights={saved(original, tmp_path / 'r18.pt')}")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), original.eval()(x), rtol=0, atol=0)


def test_an_imagenet_head_in_the_file_leaves_a_fresh_head_and_the_same_features(tmp_path):
    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None)  # 1000 classes
    loaded = build(f"torchvision:resnet18,weights={saved(original, tmp_path / 'r18.pt')}", classes=3)
    x, ids = torch.randn(2, 3, 32, 32), torch.arange(2)
    assert loaded.fc.out_features == 3
    torch.testing.assert_close(embeddings(loaded, x, ids), embeddings(original, x, ids), rtol=0, atol=0)


def test_freeze_trains_the_head_only_and_keeps_the_batch_norm_statistics(tmp_path):
    original = torchvision.models.resnet18(weights=None, num_classes=4)
    model = build(f"torchvision:resnet18,weights={saved(original, tmp_path / 'r18.pt')},freeze=true", classes=4)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    F.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("layer1.0.conv1.weight"), r"it lacks 'layer1\.0\.conv1\.weight' \(shape \(64, 64, 3, 3\)\)"),
    (lambda s: s.update({"extra.weight": torch.zeros(1)}), r"it has 'extra\.weight', which the model has not"),
    (lambda s: s.update({"conv1.weight": torch.zeros(64, 1, 7, 7)}),
     r"'conv1\.weight' has shape \(64, 1, 7, 7\) in the file and \(64, 3, 7, 7\) in the model"),
])
def test_a_weights_file_that_does_not_fit_names_the_first_mismatch(tmp_path, edit, message):
    state = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(OptionError, match=rf"weights file .*bad\.pt does not fit torchvision:resnet18: {message}"):
        build(f"torchvision:resnet18,weights={tmp_path / 'bad.pt'}")


def test_a_weights_file_that_is_no_state_dict_is_refused(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(OptionError, match="holds a list, not a state dict"):
        build(f"torchvision:resnet18,weights={tmp_path / 'list.pt'}")


def test_an_unknown_torchvision_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown torchvision model 'resnet19'; did you mean resnet18"):
        default_registry().models.get("torchvision:resnet19")
    assert "torchvision:resnet19" not in default_registry().models
    assert "torchvision:resnet18" in default_registry().models


@pytest.mark.parametrize(("spelled", "message"), [
    ("torchvision:resnet18,weight=x.pt", r"'weight=x\.pt' is no option \(did you mean weights\?\)"),
    ("torchvision:resnet18,freeze=maybe", r"freeze='maybe' is not one of true"),
    ("torchvision:resnet18,weights=/no/such/file.pt", r"weights file /no/such/file\.pt does not exist"),
])
def test_bad_model_options_are_one_line_errors_before_building(spelled, message):
    with pytest.raises(OptionError, match=message):
        default_registry().models.get(spelled)


@pytest.mark.parametrize(("spelled", "shape", "reason"), [
    ("torchvision:vit_b_16", (3, 32, 32), "Wrong image height! Expected 224 but got 32!"),
    ("torchvision:resnet18", (1, 28, 28), "it takes 3-channel images (its first convolution, conv1)"),
])
def test_an_input_the_model_cannot_take_is_a_one_line_error(spelled, shape, reason):
    with pytest.raises(OptionError, match=rf"model '{spelled}' cannot take inputs of shape") as info:
        build(spelled, shape)
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_a_timm_model_without_timm_says_how_to_install_it():
    with pytest.raises(OptionError, match=r"need timm, which is not installed: pip install 'sslzoo\[timm\]'$"):
        default_registry().models.get("timm:resnet18")


def test_a_run_trains_a_frozen_torchvision_model_from_a_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 3, 16, 16), dtype=np.float32)
    y = np.arange(40) % 2
    np.savez(tmp_path / "tiny.npz", x=x, y=y, x_test=x[:8], y_test=y[:8])
    weights = saved(torchvision.models.resnet18(weights=None), tmp_path / "r18.pt")
    spelled = f"torchvision:resnet18,weights={weights},freeze=true"
    (record,) = run_here("supervised", str(tmp_path / "tiny.npz"), labels=4, model=spelled,
                         options={"epochs": 1, "batch_size": 4})
    assert record["model"] == spelled and 0.0 <= record["test_accuracy"] <= 1.0
