"""Tensor building blocks that know nothing of strategies, runs or plugins: batched inference and
MC-dropout passes, dropout masks, embeddings, the EMA teacher, layers and the built-in networks and
backbones, the torchvision and timm models by name,
fitted feature maps, optimizers, augmentations, ramp-ups, pickers, joint entropies, graph
algorithms, metrics and pseudo-label difficulty buckets.

May import: torch, numpy, torchvision and timm (where installed) and :mod:`sslzoo.errors`; nothing else
of sslzoo.
"""
