"""Models of other libraries by name: ``torchvision:NAME`` (any torchvision classification model,
``torchvision.models.list_models(module=torchvision.models)``) and ``timm:NAME`` (any timm model, with
the ``sslzoo[timm]`` extra), each with its options after the name, separated by commas:
``torchvision:resnet50,weights=ckpt.pt,freeze=true``.

**Nothing is downloaded.** The model is built with random weights (torchvision's ``weights=None``,
timm's ``pretrained=False``) and its classifier sized to the dataset's classes (the library's own
``num_classes``; timm also takes the dataset's input channels). ``weights=PATH`` loads a state dict the
user has on disk with ``torch.load(weights_only=True)``: every key of the model but its classifier
must be in the file with its shape, and the file may hold no other key (a one-line error names the
first that does not fit); the classifier's weights are loaded when they fit the dataset's classes
and left fresh otherwise (a file of an ImageNet model has 1000). The classifier's keys are those
whose shapes depend on the number of classes (found by building the model twice on the meta
device), so the rule needs no table of head names. googlenet and inception_v3 are built without
their auxiliary classifiers (which return a tuple in training), and their keys in a file are ignored.

``freeze=true`` trains the classifier only: every other parameter stops requiring a gradient and
the batch norms outside the classifier keep their running statistics (they compute in evaluation
mode, as a linear probe's frozen features should); ``freeze=false`` (the default) trains everything.

Before anything is allocated, the model computes one input of the dataset's shape on the meta
device: an input it cannot take (3 channels expected, an image smaller or larger than it accepts)
is a one-line :class:`~sslzoo.errors.OptionError` naming the shape and the library's reason.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from sslzoo.errors import OptionError, UnknownNameError

__all__ = ["OPTIONS", "ZOOS", "ZooModel", "zoo_model"]

ZOOS = ("torchvision", "timm")
"""The prefixes ``ZOO:NAME`` of the model names built here."""
OPTIONS = ("weights", "freeze")
"""The options a zoo model takes after its name (``,weights=PATH,freeze=true``)."""
AUXILIARY = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
"""torchvision models with auxiliary classifiers → the prefixes of their keys (built without them)."""
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _timm() -> object:
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise OptionError("timm models need timm, which is not installed: pip install 'sslzoo[timm]'") from None


def _known(zoo: str) -> list[str]:
    if zoo == "torchvision":
        import torchvision  # noqa: PLC0415  # a third-party import: torchvision is slow to import

        return list(torchvision.models.list_models(module=torchvision.models))
    return list(_timm().list_models())  # type: ignore[attr-defined]


def _construct(zoo: str, name: str, num_classes: int, channels: int) -> nn.Module:
    if zoo == "torchvision":
        import torchvision  # noqa: PLC0415

        extra = {"aux_logits": False} if name in AUXILIARY else {}
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)
    return _timm().create_model(name, pretrained=False, num_classes=num_classes,  # type: ignore[attr-defined]
                                in_chans=channels)


@dataclass(frozen=True)
class ZooModel:
    """One model of a zoo, with its options; :meth:`build` is its builder (``build(input_shape,
    num_classes)``)."""

    zoo: str
    name: str
    weights: str | None = None
    freeze: bool = False

    @property
    def spelling(self) -> str:
        return f"{self.zoo}:{self.name}"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        channels = input_shape[0] if input_shape else 1
        self._check_input(input_shape, num_classes, channels)
        head = self._head_keys(num_classes, channels)
        model = _construct(self.zoo, self.name, num_classes, channels)
        if self.weights is not None:
            load_weights(model, self.weights, head, self.spelling, AUXILIARY.get(self.name, ()))
        if self.freeze:
            freeze_all_but(model, head)
        return model

    def _check_input(self, input_shape: tuple[int, ...], num_classes: int, channels: int) -> None:
        with torch.device("meta"):
            model = _construct(self.zoo, self.name, num_classes, channels).eval()
            first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
            if first is not None and len(input_shape) == 3 and first[1].in_channels != channels:
                raise OptionError(f"model {self.spelling!r} cannot take inputs of shape {tuple(input_shape)}: it "
                                  f"takes {first[1].in_channels}-channel images (its first convolution, {first[0]}); "
                                  f"choose another --model (sslzoo models)")
            try:
                with torch.no_grad():
                    model(torch.zeros(1, *input_shape))
            except Exception as exc:  # the library's own reason, whatever its type
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise OptionError(f"model {self.spelling!r} cannot take inputs of shape {tuple(input_shape)}: "
                                  f"{reason}; choose another --model (sslzoo models)") from None

    def _head_keys(self, num_classes: int, channels: int) -> frozenset[str]:
        """The state-dict keys whose shapes depend on the number of classes: the classifier's."""
        with torch.device("meta"):
            one = _construct(self.zoo, self.name, num_classes, channels).state_dict()
            other = _construct(self.zoo, self.name, num_classes + 1, channels).state_dict()
        return frozenset(k for k, v in one.items() if k not in other or other[k].shape != v.shape)


def load_weights(model: nn.Module, path: str, head: frozenset[str], spelling: str,
                 ignored: tuple[str, ...] = ()) -> None:
    """Load the state dict at ``path`` into ``model``: every key but ``head``'s with its shape, no
    other key (but those starting with ``ignored``); ``head``'s keys only if they all fit."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refuses anything but tensors and containers of them
        raise OptionError(f"weights file {path} cannot be read as a state dict (torch.load, weights_only=True): "
                          f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OptionError(f"weights file {path} holds a {type(state).__name__}, not a state dict (a mapping of "
                          f"names to tensors, as model.state_dict() gives)")
    own = model.state_dict()
    where = f"weights file {path} does not fit {spelling}"
    for key in state:
        if key not in own and not key.startswith(ignored):
            raise OptionError(f"{where}: it has {key!r}, which the model has not (the model's first key: "
                              f"{next(iter(own))!r})")
    for key, value in own.items():
        if key not in state:
            raise OptionError(f"{where}: it lacks {key!r} (shape {tuple(value.shape)})")
        if key not in head and state[key].shape != value.shape:
            raise OptionError(f"{where}: {key!r} has shape {tuple(state[key].shape)} in the file and "
                              f"{tuple(value.shape)} in the model")
    fits = all(state[key].shape == own[key].shape for key in head)
    model.load_state_dict({k: v for k, v in state.items() if k in own and (fits or k not in head)}, strict=False)


def _keep_statistics(module: nn.Module, args: tuple) -> None:
    """A frozen batch norm computes in evaluation mode, with the running statistics it was loaded with."""
    module.training = False


def freeze_all_but(model: nn.Module, head: frozenset[str]) -> None:
    """Stop every parameter outside ``head``'s keys from requiring a gradient; the batch norms with no
    parameter in ``head`` keep their running statistics in training."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in head)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(k.startswith(f"{name}.") for k in head):
            module.register_forward_pre_hook(_keep_statistics)


def _flag(value: str, key: str, spelled: str) -> bool:
    if value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    raise OptionError(f"model {spelled!r}: {key}={value!r} is not one of {', '.join(TRUE + FALSE)}")


def zoo_model(spelled: str) -> ZooModel | None:
    """The zoo model that ``spelled`` (``ZOO:NAME[,KEY=VALUE...]``) names, its name and options checked;
    None when it starts with no zoo's prefix."""
    zoo, colon, rest = spelled.partition(":")
    if not colon or zoo not in ZOOS:
        return None
    name, *pairs = rest.split(",")
    known = _known(zoo)
    if name not in known:
        raise UnknownNameError(f"{zoo} model", name, known)
    options: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise OptionError(f"model {spelled!r}: {pair!r} is no option{hint}; a {zoo} model takes "
                              f"{', '.join(f'{o}=...' for o in OPTIONS)} after its name, separated by commas")
        options[key] = value.strip()
    weights = options.get("weights")
    if weights is not None and not os.path.isfile(weights):
        raise OptionError(f"model {spelled!r}: weights file {weights} does not exist")
    return ZooModel(zoo, name, weights, _flag(options.get("freeze", "false"), "freeze", spelled))

