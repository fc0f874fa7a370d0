"""Subcommands of the ``text4seg`` CLI, one module each."""
