"""``python -m sslzoo`` is the ``sslzoo`` command."""

from sslzoo.cli.main import main

main()
