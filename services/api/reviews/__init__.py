"""Disposition reviews seen from outside: the erasures a sweep stopped past the policy's review
limits, and a DPO's decision on them."""
