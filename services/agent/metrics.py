"""The agent's Prometheus metrics, on a registry of its own. Labels are outcomes, categories and
table names: never a pseudonym, an identity or a scope value."""

from prometheus_client import CollectorRegistry, Counter, Histogram

#: What became of a command: erased (and confirmed), skipped (another system's, or a category
#: the dataset does not hold), failed (dead-lettered), dry_run (logged, nothing changed).
OUTCOMES = ("erased", "skipped", "failed", "dry_run")


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "gallring_agent_commands_total",
            "Erasure commands by outcome: erased (and confirmed), skipped, failed (sent to the "
            "dead-letter topic), dry_run.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.commands.labels(outcome)
        self.rows_erased = Counter(
            "gallring_agent_rows_erased_total",
            "Rows deleted, or with columns nulled or masked, by table.",
            ["table"],
            registry=self.registry,
        )
        self.index_pass_seconds = Histogram(
            "gallring_agent_index_pass_seconds",
            "How long an index pass took (one before each batch of commands).",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
            registry=self.registry,
        )
        self.index_rows = Counter(
            "gallring_agent_index_rows_read_total",
            "Rows the index passes read (written since the pass before), by table.",
            ["table"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "gallring_agent_dead_letters_total",
            "Commands sent to the dead-letter topic (not valid, or never applicable).",
            registry=self.registry,
        )
