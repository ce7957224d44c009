"""Subcommands of the ``nsvae`` command line, one module each."""
