"""``sslzoo.comparison`` is another name of :mod:`sslzoo.results.comparison`: the same module object."""

import sys

from sslzoo.results import comparison

sys.modules[__name__] = comparison
