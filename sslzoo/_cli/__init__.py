"""The command line (``sslzoo ...``): each command parses its flags and hands them to the layers
below.

May import: anything in sslzoo.
"""
