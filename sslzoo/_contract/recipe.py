"""Training recipes: named optimiser and schedule semantics that a reproduction needs.

Most runs train the PyTorch way (the ``default`` recipe). Some published protocols trained with
another framework's semantics, and reproducing their numbers needs those semantics too: where
Adam's epsilon enters (TensorFlow's eps-hat), which weights an L2 penalty covers and how it is
scaled (Keras's regulariser on the hidden dense layers, divided by the training set's size), how
the momentum rises and whether it dampens the gradient (Hinton et al. 2012), and whether early
stopping's first candidate is the weights a fit starts from. Such semantics are not options every
strategy carries: they are a :class:`Recipe`, registered by name like models and datasets (the
``register_recipes`` hook: a plugin can add one), listed by ``sslzoo recipes``, and chosen with the
training option ``recipe`` (a preset names its own). A strategy's options stay its algorithm's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT = "default"
"""The recipe of a run that names none: PyTorch's semantics."""

KINGMA_2015 = ("Diederik P. Kingma, Jimmy Ba. Adam: A Method for Stochastic Optimization. ICLR 2015 (the eps-hat form "
               "before its section 2.1, as TensorFlow and Keras compute it).")
HINTON_2012 = ("Geoffrey E. Hinton, Nitish Srivastava, Alex Krizhevsky, Ilya Sutskever, Ruslan R. Salakhutdinov. "
               "Improving neural networks by preventing co-adaptation of feature detectors. arXiv:1207.0580, 2012.")
GAL_2017 = ("Yarin Gal, Riashat Islam, Zoubin Ghahramani. Deep Bayesian Active Learning with Image Data. "
            "ICML 2017 (its Keras code: weight decay c/N on the dense layer before the output).")


@dataclass(frozen=True)
class Recipe:
    """How a run optimises beyond its training options (``lr``, ``optimizer``, ``momentum``, ...).

    ``adam_epsilon``: adam/adamw add eps to the bias-corrected sqrt(v) (``algorithm1``: Kingma & Ba
    2015, Algorithm 1; PyTorch) or, as eps-hat, to the uncorrected sqrt(v) (``hat``: their form before
    section 2.1; TensorFlow, Keras; :mod:`sslzoo._ops.adam`). ``weight_decay_on``: the L2 penalty covers all
    parameters, or only the weights of the dense layers before the output layer (``hidden_dense``, a
    Keras ``W_regularizer`` on them). ``weight_decay_scale``: ``1/n`` divides ``weight_decay`` by the
    number of training samples whenever the optimizer is built. ``momentum_start``: SGD's momentum at
    the first epoch, rising linearly to the ``momentum`` option over ``momentum_epochs`` epochs (None:
    the momentum throughout). ``momentum_dampening``: SGD scales each gradient by (1 - momentum) before
    it joins the velocity. ``patience_start``: with ``patience``, the weights a round starts from are
    early stopping's first candidate, so a round that never beats them hands them back unchanged.
    """

    name: str
    summary: str
    paper: str = ""
    adam_epsilon: Literal["algorithm1", "hat"] = "algorithm1"
    weight_decay_on: Literal["all", "hidden_dense"] = "all"
    weight_decay_scale: Literal["none", "1/n"] = "none"
    momentum_start: float | None = None
    momentum_epochs: int = 0
    momentum_dampening: bool = False
    patience_start: bool = False

    def settings(self) -> dict[str, Any]:
        """What the recipe sets, by field (its name, summary and paper aside)."""
        return {key: value for key, value in vars(self).items() if key not in ("name", "summary", "paper")}


BUILT_IN = (
    Recipe(DEFAULT, "PyTorch's semantics: Adam's eps after bias correction, L2 on every parameter, constant "
                    "momentum, early stopping among the epochs' weights"),
    Recipe("keras_adam", "TensorFlow/Keras's Adam (eps-hat on the uncorrected sqrt(v)); early stopping's first "
                         "candidate is the weights a fit starts from (a fit that cannot improve keeps its start)",
           KINGMA_2015, adam_epsilon="hat", patience_start=True),
    Recipe("keras_l2_hidden", "Keras's L2 regulariser on the dense layers before the output only, weight_decay "
                              "divided by the training set's size (Gal et al. 2017's c/N)",
           GAL_2017, weight_decay_on="hidden_dense", weight_decay_scale="1/n"),
    Recipe("hinton2012", "SGD whose momentum rises linearly from 0.5 to the momentum option over the first 500 "
                         "epochs, each gradient scaled by (1 - momentum) before it joins the velocity (Hinton et "
                         "al. 2012, as Lee 2013 trained)",
           HINTON_2012, momentum_start=0.5, momentum_epochs=500, momentum_dampening=True),
)
"""The built-in recipes, registered by sslzoo's default plugins."""


def upgrade_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A record's options as Plugin API 1.0 writes them: a record made before recipes lists their seven
    settings as training options; when those are a built-in recipe's, they become its name (``recipe``),
    so that such a record compares with, and resumes as, the same run today. Other options pass as
    they are, and so do settings that no built-in recipe holds (a comparison then names them)."""
    plain = Recipe("", "").settings()
    if not any(key in options for key in plain):
        return dict(options)
    settings = {key: options.get(key, default) for key, default in plain.items()}
    name = next((recipe.name for recipe in BUILT_IN if recipe.settings() == settings), None)
    if name is None:
        return dict(options)
    return {**{key: value for key, value in options.items() if key not in plain}, "recipe": name}
