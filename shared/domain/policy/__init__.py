"""The retention policy: what the privacy notice promises, as data the engine applies."""

from shared.domain.policy.loader import PolicyError, load_default_policy, load_policy
from shared.domain.policy.model import CategoryPolicy, Policy, Retention

__all__ = [
    "CategoryPolicy",
    "Policy",
    "PolicyError",
    "Retention",
    "load_default_policy",
    "load_policy",
]
