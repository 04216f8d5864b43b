"""Erasures seen from outside: what is scheduled, held, executed and confirmed."""
