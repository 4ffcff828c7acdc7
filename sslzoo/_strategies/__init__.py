"""What strategies are built from: the active-learning base classes (uncertainty, MC-dropout,
batch), consistency regularization, pseudo-labelers, diversity (k-center, k-means++ seeding) and
compositions of two strategies (``A+B``, ``A>B``). The built-in strategies themselves are plugins
(:mod:`sslzoo._default_plugins`).

May import: :mod:`sslzoo._contract` and what it may import.
"""
