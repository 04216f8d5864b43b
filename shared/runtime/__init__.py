"""What every Gallring process runs on: settings, logging, the worker process and its status
server, child processes, garbage-collector tuning."""
