"""deploy/make-secrets.sh writes the secret files docker-compose.yml mounts, and never replaces
one: a new pseudonym secret would change every pseudonym."""

import stat
import subprocess
from pathlib import Path

from tests.deployment import files

SCRIPT = "deploy/make-secrets.sh"


def make_secrets(root: Path) -> str:
    return subprocess.run(
        ["sh", str(root / SCRIPT)], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def test_it_writes_every_secret_the_compose_file_mounts(deployment_copy: Path) -> None:
    make_secrets(deployment_copy)
    secrets_dir = deployment_copy / "deploy/secrets"
    for secret in files.compose(deployment_copy)["secrets"].values():
        assert (deployment_copy / secret["file"]).is_file()
    password = (secrets_dir / "postgres_password").read_text().strip()
    database_url = (secrets_dir / "gallring_database_url").read_text().strip()
    assert database_url == f"postgresql+psycopg://gallring:{password}@postgres:5432/gallring"
    assert len((secrets_dir / "gallring_pseudonym_secret").read_text().strip()) >= 32
    sealing_key = (secrets_dir / "gallring_secret_sealing_key").read_text().strip()
    assert len(sealing_key) >= 32
    assert sealing_key != (secrets_dir / "gallring_pseudonym_secret").read_text().strip()
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets_dir / "postgres_password").stat().st_mode) == 0o644


def test_it_keeps_what_exists(deployment_copy: Path) -> None:
    make_secrets(deployment_copy)
    secrets_dir = deployment_copy / "deploy/secrets"
    before = {p.name: p.read_text() for p in secrets_dir.iterdir()}
    (secrets_dir / "gallring_database_url").unlink()
    output = make_secrets(deployment_copy)
    assert "kept" in output
    assert {p.name: p.read_text() for p in secrets_dir.iterdir()} == before


def test_git_ignores_every_file_there_but_its_own_gitignore() -> None:
    def ignored(path: str) -> bool:
        check = ["git", "check-ignore", "--quiet", "--no-index", path]
        return subprocess.run(check, cwd=files.REPO).returncode == 0

    assert ignored("deploy/secrets/gallring_pseudonym_secret")
    assert ignored("deploy/secrets/any_other_secret")
    assert not ignored("deploy/secrets/.gitignore")
