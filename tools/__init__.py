"""Tools for working on sslzoo that are not part of the installed package."""
