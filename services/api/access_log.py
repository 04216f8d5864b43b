"""uvicorn's access log without personal identity numbers.

The access log writes each request line as the client sent it, and a careless client may put a
personnummer in a path or a query (``GET /v1/recipients/19811218-9876``). The API refuses such
requests, but the refusal is logged too: this filter takes the number out of the line first.
"""

import logging
import re
from urllib.parse import unquote

from shared.domain.national_id import redact_national_ids

ACCESS_LOGGER = "uvicorn.access"
# uvicorn percent-encodes the path: a '+' separator arrives as %2B, a '-' sometimes as %2D.
_ENCODED_SEPARATOR = re.compile(r"%2[BbDd]")


class RequestLineRedaction(logging.Filter):
    """Rewrites the path of uvicorn's access records (``client, method, path, version,
    status``); other records pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            if isinstance(path, str):
                readable = _ENCODED_SEPARATOR.sub(lambda escape: unquote(escape[0]), path)
                record.args = (client, method, redact_national_ids(readable), version, status)
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger, once however often the app starts."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RequestLineRedaction) for existing in logger.filters):
        logger.addFilter(RequestLineRedaction())
