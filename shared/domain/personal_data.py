"""Personal data in free text Gallring keeps (a legal hold's reason, its matter): what can be told
by its shape, a personal identity number (``shared.domain.national_id``) or an e-mail address.

A name or an address cannot be told from other words; the fields that take free text say so and
ask for words about the matter, never about the person. What can be found is refused, so that
it never reaches a table, a topic or a log.
"""

import re

from shared.domain.national_id import contains_national_id

#: An address as people write one: something, ``@``, a domain with a dot and a top-level part.
_EMAIL_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def personal_data_in(text: str) -> str | None:
    """What kind of personal data ``text`` holds, named as a message may name it (never the
    value), or None if none can be told."""
    if contains_national_id(text):
        return "a personal identity or coordination number"
    if _EMAIL_ADDRESS.search(text):
        return "an e-mail address"
    return None
