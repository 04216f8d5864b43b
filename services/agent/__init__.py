"""The agent: runs beside one of the company's databases, finds a pseudonym's rows through an
index of its own, and erases them when Gallring's erasure commands say so."""
