"""The database: the tables of every service and their migrations, connections, bulk inserts,
pruning, and the queries more than one process reads (a subject's facts, the clock forecast)."""
