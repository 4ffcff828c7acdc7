"""``python -m sslzoo`` is the ``sslzoo`` command."""

from sslzoo._cli.main import main

main()
