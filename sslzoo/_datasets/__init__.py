"""The built-in datasets' loaders: bundled MNIST, two-moons, tabular files, image folders, and what they
share (splits into starting labels and pool, the tensor cache, vision transforms).

May import: :mod:`sslzoo._contract` and what it may import.
"""
