"""``sslzoo.store`` is another name of :mod:`sslzoo.results.store`: the same module object."""

import sys

from sslzoo.results import store

sys.modules[__name__] = store
