"""``python -m sslzoo`` is the ``sslzoo`` command."""

from sslzoo.cli import main

main()
