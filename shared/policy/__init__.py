"""The retention policy: what the privacy notice promises, as data the engine applies."""

from shared.policy.loader import PolicyError, load_default_policy, load_policy
from shared.policy.model import CategoryPolicy, Policy, Retention

__all__ = [
    "CategoryPolicy",
    "Policy",
    "PolicyError",
    "Retention",
    "load_default_policy",
    "load_policy",
]
