"""How a service's garbage collector is set once start-up is done."""

import gc

#: Container allocations between two young-generation collections (Python's default: 700).
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Set the cyclic garbage collector for serving rather than starting up.

    - Every object alive now (routes, schemas, models and tables: some 130,000 in the API) lives
      as long as the process, yet every full collection walked them all again. They are frozen
      out of its reach; later objects are collected as usual.
    - A batch of 1,000 events allocates tens of thousands of short-lived objects, which
      reference counting frees anyway; a young collection every 700 of them cost a fifth of the
      intake's time. Every 10,000 leaves the memory garbage cycles can hold small.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
