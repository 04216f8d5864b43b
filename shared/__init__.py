"""Code the Gallring services share, by kind: ``domain/`` (contract, policy, engine),
``storage/`` (tables, migrations, database), ``messaging/`` (Kafka, outbox), ``runtime/``
(settings, processes) and ``webhooks/``.

Nothing here starts anything at import time, and nothing here imports a service.
"""
