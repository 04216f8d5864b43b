"""The purger erases settled subjects on their stored verdicts, if those were reached under the
running policy and ``ENGINE_REVISION``. A change to the engine that can change a verdict must
raise the revision, else old verdicts are acted on as if the new engine had reached them."""

import hashlib
from pathlib import Path

from shared.domain.engine.evaluate import ENGINE_REVISION

ROOT = Path(__file__).resolve().parents[2]
#: The engine's and the policy model's source as of the last decision on ENGINE_REVISION.
DECIDED_FOR = "8ef34ef758008bbded5edd81d2c24ca8d9842d60860f551ddca4ba5574efd9c7"


def test_a_change_to_the_engine_comes_with_a_decision_on_its_revision() -> None:
    sources = sorted(
        [*ROOT.glob("shared/domain/engine/*.py"), *ROOT.glob("shared/domain/policy/*.py")]
    )
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    assert digest.hexdigest() == DECIDED_FOR, (
        "shared/domain/engine or shared/domain/policy changed. If verdicts can change, raise "
        f"ENGINE_REVISION (now {ENGINE_REVISION}) in shared/domain/engine/evaluate.py; then set "
        f"DECIDED_FOR in {Path(__file__).name} to {digest.hexdigest()}."
    )
