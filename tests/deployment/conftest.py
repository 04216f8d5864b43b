"""Deployment tests read files and run no container: no Docker engine, no network."""

from pathlib import Path

import pytest

from tests.deployment import files


@pytest.fixture
def deployment_copy(tmp_path: Path) -> Path:
    """The deployment files copied, for a test to break one and see a check notice."""
    return files.copy_deployment_files(tmp_path)
