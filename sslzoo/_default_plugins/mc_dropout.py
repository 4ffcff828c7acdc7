"""Bayesian active learning with MC-dropout: ``bald``, ``mc_entropy``, ``mc_variation_ratios``,
``mc_mean_std``.

Each round the model runs ``passes`` (T, default 20) stochastic forward passes over the pool with
only its dropout layers switched on (never ``model.train()``), batched on the device; the passes
are scored and the ``query_size`` (default 10) highest-scoring ids are queried for the oracle.
``pool_subset`` scores a random subset of the pool per round, as the paper did with 2000.

Reference: Gal, Y., Islam, R. & Ghahramani, Z. (2017). Deep Bayesian Active Learning with Image
Data. Proceedings of the 34th International Conference on Machine Learning (ICML), PMLR
70:1183–1192.
"""

from __future__ import annotations

from collections.abc import Callable

from sslzoo import scores
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import MCDropoutStrategy

GAL_2017 = ("Gal, Y., Islam, R. & Ghahramani, Z. (2017). Deep Bayesian Active Learning with Image Data. "
            "Proceedings of the 34th International Conference on Machine Learning (ICML), PMLR 70:1183–1192")


class Bald(MCDropoutStrategy):
    """Query the ids with the highest mutual information between prediction and model parameters."""

    name = "bald"
    paper = (f"{GAL_2017}; Houlsby, N., Huszár, F., Ghahramani, Z. & Lengyel, M. (2011). Bayesian "
             f"Active Learning for Classification and Preference Learning. arXiv:1112.5745")
    summary = "MC-dropout BALD: query the highest H[mean p] - mean H[p] over T passes"
    uncertainty = staticmethod(scores.bald)


class McEntropy(MCDropoutStrategy):
    """Query the ids whose mean prediction over the T passes has the highest entropy (Max Entropy)."""

    name = "mc_entropy"
    paper = GAL_2017
    summary = "MC-dropout max entropy: query the highest entropy of the mean over T passes"
    uncertainty = staticmethod(scores.mc_entropy)


class McVariationRatios(MCDropoutStrategy):
    """Query the ids on whose class the T passes agree least (``1 - modal count / T``)."""

    name = "mc_variation_ratios"
    paper = (f"{GAL_2017}; Freeman, L. C. (1965). Elementary Applied Statistics for Students in "
             f"Behavioral Science. Wiley")
    summary = "MC-dropout variation ratios: query where the fewest passes agree with the modal class"
    uncertainty = staticmethod(scores.variation_ratios)


class McMeanStd(MCDropoutStrategy):
    """Query the ids with the largest mean (over classes) standard deviation over the T passes."""

    name = "mc_mean_std"
    paper = (f"{GAL_2017}; Kampffmeyer, M., Salberg, A.-B. & Jenssen, R. (2016). Semantic Segmentation "
             f"of Small Objects and Modeling of Uncertainty in Urban Remote Sensing Images Using Deep "
             f"Convolutional Neural Networks. CVPR Workshops 2016, 1–9")
    summary = "MC-dropout mean STD: query the highest mean over classes of the std over T passes"
    uncertainty = staticmethod(scores.mean_std)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    for cls in (Bald, McEntropy, McVariationRatios, McMeanStd):
        register(cls)
