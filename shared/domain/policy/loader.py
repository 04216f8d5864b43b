"""Reading a policy file, and refusing a bad one with the line and field that are wrong: one
that does not fit the model, and one that goes below its floors (:mod:`.floors`). Every reader
of a policy (``gallring policy check``, the services at start, the CLI's other commands) comes
through here, so none of them can run a policy below its floors."""

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from shared.domain.policy.floors import floor_violations
from shared.domain.policy.model import Policy
from shared.domain.yaml_document import (
    YamlDocumentError,
    line_of,
    read_yaml,
    validation_problems,
)

DEFAULT_POLICY_RESOURCE = "default_policy.yaml"


class PolicyError(ValueError):
    """The policy file cannot be used; ``problems`` lists each as ``file:line: field: why``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid policy {source}:\n  " + "\n  ".join(problems))


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(str(path), [f"cannot read it: {error.strerror}"]) from None
    return parse_policy(text, source=str(path))


def load_default_policy() -> Policy:
    text = (
        resources.files("shared.domain.policy").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    )
    return parse_policy(text, source=DEFAULT_POLICY_RESOURCE)


def parse_policy(text: str, *, source: str) -> Policy:
    try:
        root, document = read_yaml(text, source=source)
    except YamlDocumentError as error:
        raise PolicyError(source, error.problems) from None
    if not isinstance(document, dict):
        raise PolicyError(source, [f"{source}:1: expected a mapping with version and categories"])
    try:
        policy = Policy.model_validate(document)
    except ValidationError as error:
        raise PolicyError(source, validation_problems(error, root, source)) from None
    below = sorted(
        ((line_of(root, list(v.path)), v) for v in floor_violations(policy)),
        key=lambda line_and_violation: line_and_violation[0],
    )
    if below:
        raise PolicyError(
            source,
            [f"{source}:{line}: {'.'.join(map(str, v.path))}: {v.why}" for line, v in below],
        )
    return policy
