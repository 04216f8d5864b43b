"""Reading a YAML file into a Pydantic model, and saying what is wrong with it line by line.

The policy file and the agent's dataset file are read alike: a key given twice is refused (YAML
would silently keep the last), and each validation error becomes ``file:line: field: why``, the
line being that of the deepest node of the error's location that exists in the file.
"""

from collections.abc import Hashable
from typing import Any

import yaml
from pydantic import ValidationError


class YamlDocumentError(ValueError):
    """The text is no YAML document; ``problems`` says where and why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def read_yaml(text: str, *, source: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its plain value, or
    :class:`YamlDocumentError`."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except DuplicateKeyError as error:
        raise YamlDocumentError([f"{source}:{error.line}: {error}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise YamlDocumentError(
            [f"{where}: not valid YAML: {getattr(error, 'problem', error)}"]
        ) from None
    finally:
        loader.dispose()
    return root, document


def validation_problems(error: ValidationError, root: yaml.Node | None, source: str) -> list[str]:
    """Each of Pydantic's errors as ``file:line: field: why``, never repeating the input."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        path = [part for part in detail["loc"] if not _is_validator_label(part)]
        line = line_of(root, path)
        field = ".".join(str(part) for part in path) or "(top level)"
        problems.append(f"{source}:{line}: {field}: {detail['msg'].removeprefix('Value error, ')}")
    return problems


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


def line_of(node: yaml.Node | None, path: list[str | int]) -> int:
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
