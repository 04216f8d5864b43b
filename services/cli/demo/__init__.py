"""``gallring demo``: a newcomer's first minute, against the system ``gallring up`` runs."""
