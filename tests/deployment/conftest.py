"""Deployment tests read files and run no container: no Docker engine, no network."""

from pathlib import Path

import pytest

from tests.deployment import files


@pytest.fixture
def deployment_copy(tmp_path: Path) -> Path:
    """The deployment files copied, for a test to break one and see a check notice."""
    return files.copy_deployment_files(tmp_path)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels built from the Dockerfile's install step, by the content they were built from:
    the repository's is built once a session, a broken copy's on its own."""
    return tmp_path_factory.mktemp("wheels")
