"""Code the three Gallring services share: contract, policy engine, plumbing, settings.

Nothing here starts anything at import time, and nothing here imports a service.
"""
