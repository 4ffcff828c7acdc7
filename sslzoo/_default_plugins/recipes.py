"""Built-in training recipes (:mod:`sslzoo._contract.recipe`), registered like third-party ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.recipe import BUILT_IN, GAL_2017, Recipe

KERAS_ADAM_L2_HIDDEN = Recipe(
    "keras_adam_l2_hidden", "keras_l2_hidden with Keras's Adam (eps-hat on the uncorrected sqrt(v)), as Gal et al. "
                            "2017's Keras code trains: Adam's defaults in the Keras of its scripts, epsilon 1e-8",
    GAL_2017, adam_epsilon="hat", weight_decay_on="hidden_dense", weight_decay_scale="1/n")
"""Gal et al. (2017)'s Keras training: ``keras_l2_hidden``'s c/N penalty and Keras's Adam update (the
Keras 0.x ``Adam`` its scripts compile, ``optimizer='adam'``: ``lr_t = lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ)``,
``p -= lr_t·m/(sqrt(v) + 1e-8)``), the ε̂ form of :mod:`sslzoo._ops.adam` with PyTorch's epsilon
1e-8 as that Keras has it (later Keras versions use 1e-7)."""


@hookimpl
def register_recipes(register: Callable[[Any], None]) -> None:
    for recipe in (*BUILT_IN, KERAS_ADAM_L2_HIDDEN):
        register(recipe)
