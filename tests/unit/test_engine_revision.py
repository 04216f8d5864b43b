"""The purger erases settled subjects on their stored verdicts, if those were reached under the
running policy and ``ENGINE_REVISION``. A change to the engine that can change a verdict must
raise the revision, else old verdicts are acted on as if the new engine had reached them."""

import hashlib
from pathlib import Path

from shared.engine.evaluate import ENGINE_REVISION

ROOT = Path(__file__).resolve().parents[2]
#: The engine's and the policy model's source as of the last decision on ENGINE_REVISION.
DECIDED_FOR = "6522e4140b36f6a824d0fba977240eed97887deeac4c860229fe575d3f3d5144"


def test_a_change_to_the_engine_comes_with_a_decision_on_its_revision() -> None:
    sources = sorted([*ROOT.glob("shared/engine/*.py"), *ROOT.glob("shared/policy/*.py")])
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    assert digest.hexdigest() == DECIDED_FOR, (
        "shared/engine or shared/policy changed. If verdicts can change, raise ENGINE_REVISION "
        f"(now {ENGINE_REVISION}) in shared/engine/evaluate.py; then set DECIDED_FOR in "
        f"{Path(__file__).name} to {digest.hexdigest()}."
    )
