"""``sslzoo.reporting`` is another name of :mod:`sslzoo.results.reporting`: the same module object."""

import sys

from sslzoo.results import reporting

sys.modules[__name__] = reporting
