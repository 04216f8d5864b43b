"""``/v1/holds``: the register of legal holds — why each stands, who owns it, when it is to be
reviewed, what it covers now, and what its release would erase; released only when a second key
approves."""
