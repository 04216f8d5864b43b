"""Gallring's three services and the command that composes them (``cli/``)."""
