"""Built-in models."""

from __future__ import annotations

from collections.abc import Callable

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._ops import networks as models


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    register("cnn", models.cnn, "conv 1-20 k5, pool, conv 20-40 k5 + Dropout2d, pool, fc 640-150, dropout 0.5")
    register("cnn_relu_logits", models.cnn_relu_logits, "cnn with a ReLU on the output logits (the pl-cnn-mnist1000 "
                                                        "reference code)")
    register("gal_cnn", models.gal_cnn, "conv 32 k3, conv 32 k3, pool, dropout 0.25, fc 128, dropout 0.5 "
                                        "(Gal et al. 2017)")
    register("gal_cnn_keras", models.gal_cnn_keras, "conv 32 k4, conv 32 k4, pool, dropout 0.25, fc 128, dropout 0.5, "
                                                    "Glorot-uniform weights and zero biases (Gal et al. 2017 as "
                                                    "described, Keras's init)")
    register("batchbald_cnn", models.batchbald_cnn, "conv 32 k5 + Dropout2d, pool, conv 64 k5 + Dropout2d, pool, "
                                                    "fc 128, dropout 0.5 (Kirsch et al. 2019, BatchBALD)")
    register("mlp", models.mlp, "784-512-256-10, ReLU, dropout 0.3")
    register("linear", models.linear, "softmax regression")
    register("linear_zero", models.linear_zero, "softmax regression, zero-initialised weights")
    register("pca_poly_logreg", models.pca_poly_logreg, "L2-normalised pixels, PCA 50 fitted on the training set, "
                                                        "degree-2 polynomial features (1326), softmax regression")
    register("pca_poly_std_logreg", models.pca_poly_std_logreg, "pca_poly_logreg with the polynomial features "
                                                                "standardized, fitted with the PCA")
    register("lee_mlp", models.lee_mlp, "784-5000-10, ReLU, dropout 0.5 in Hinton et al. 2012's original "
                                        "form, sigmoid output units (Lee 2013)")
    register("lee_mlp_input_dropout", models.lee_mlp_input_dropout, "lee_mlp that also drops 0.2 of the inputs")
    register("moons_mlp", models.moons_mlp, "2-10-10-10-2 ReLU MLP, dropout 0.1 before the output")
