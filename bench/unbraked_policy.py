"""The default policy without the brakes of disposition review, for the benchmarks that measure
how fast the purger erases: of a million due clocks the sweep would otherwise erase a category's
``max_per_day`` and stop the rest for a review, and the figures would be of something else."""

from pathlib import Path

from shared.domain.policy import Policy, load_default_policy
from shared.domain.policy.model import Review


def unbraked_policy() -> Policy:
    policy = load_default_policy()
    categories = {
        category: rules.model_copy(update={"review": Review()})
        for category, rules in policy.categories.items()
    }
    return policy.model_copy(update={"categories": categories})


def unbraked_policy_file(directory: Path) -> Path:
    """The same as a file for ``GALLRING_POLICY_FILE`` (JSON, which a YAML reader reads)."""
    path = directory / "unbraked-policy.json"
    path.write_text(unbraked_policy().model_dump_json(exclude_defaults=True), encoding="utf-8")
    return path
