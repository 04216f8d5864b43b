"""The agent: runs beside one of the company's databases, finds a pseudonym's rows through an
index of its own, and erases them when Gallring's erasure commands say so.

The library, as the agent's process uses it::

    dataset = load_dataset(path)                       # dataset_file: refused with file:line
    system = open_database(dataset.database.url())     # database
    own = dataset.index_database
    index_engine = open_database(own.url()) if own else system
    with system.connect() as connection:
        bound = bind(dataset, connection, source=str(path))   # schema: refused as table.column
    create_index_tables(index_engine)                  # index
    index_pass(bound, system=system, index=index_engine, pseudonymiser=pseudonymiser)
    # before each batch of commands (rows written since the last pass are found then), and
    # forget_deleted_rows(...) now and then

    with system.begin() as connection:                 # one transaction per command
        counts = erase(                                # erase: raises ErasureFailed
            bound, connection, category=command.category,
            target=SubjectScope(message_key, command.scope), pseudonymiser=pseudonymiser,
            index_connection=None,  # or a connection on index_engine, when it is another
            dry_run=False,
        )
    # then confirm through the API

After a backup restore, ``restore.restore_check(bound, fetch_proofs(...), ...)`` erases again,
by their proofs, the erasures executed since the backup (``gallring agent restore-check``).
"""
