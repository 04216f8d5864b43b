"""The ``gallring`` command (``main.py``): the one composition root that knows every service,
and the commands that are not a service of their own: ``up`` (everything on the embedded
default), ``demo``, ``keys``, ``policy`` and ``forecast``."""
