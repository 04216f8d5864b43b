"""Reading a policy file, and refusing a bad one with the line and field that are wrong."""

from collections.abc import Hashable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.domain.policy.model import Policy

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
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except DuplicateKeyError as error:
        raise PolicyError(source, [f"{source}:{error.line}: {error}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PolicyError(
            source, [f"{where}: not valid YAML: {getattr(error, 'problem', error)}"]
        ) from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise PolicyError(source, [f"{source}:1: expected a mapping with version and categories"])
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False, include_input=False):
            path = [part for part in detail["loc"] if not _is_validator_label(part)]
            line = _line_of(root, path)
            field = ".".join(str(part) for part in path) or "(top level)"
            problems.append(
                f"{source}:{line}: {field}: {detail['msg'].removeprefix('Value error, ')}"
            )
        raise PolicyError(source, problems) from None


class DuplicateKeyError(ValueError):
    def __init__(self, key: object, line: int) -> None:
        self.line = line
        super().__init__(f"{key}: given twice; remove one (YAML would silently keep the last)")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _is_validator_label(part: str | int) -> bool:
    # Pydantic names wrapped validators in error locations, e.g. "function-before[...]".
    return isinstance(part, str) and "[" in part and part.endswith("]")


def _line_of(node: yaml.Node | None, path: list[str | int]) -> int:
    """The 1-based line of the deepest node of ``path`` that exists in the YAML tree."""
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
