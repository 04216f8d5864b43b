"""Gallring's three services and the one command that composes them (``cli.py``)."""
