"""uvicorn's access log keeps the request line but not a personal identity number in it."""

import logging

import pytest

from services.api import access_log


@pytest.mark.parametrize(
    "path",
    [
        "/v1/recipients/19811218-9876",
        "/v1/recipients/19811218%2B9876",  # uvicorn logs the path percent-encoded
        "/v1/notifications?recipient_id=811218-9876&limit=5",
    ],
)
def test_the_access_log_line_names_no_personal_number(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger(access_log.ACCESS_LOGGER)
    access_log.install()
    access_log.install()  # twice, as a restarted app does: one filter
    assert sum(isinstance(f, access_log.RequestLineRedaction) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=access_log.ACCESS_LOGGER):
        # uvicorn's own call (uvicorn/protocols/http/h11_impl.py)
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 422)
    [line] = caplog.messages
    assert "9876" not in line
    assert line.startswith('127.0.0.1:5000 - "GET /v1/') and line.endswith('HTTP/1.1" 422')
    assert "[personal number removed]" in line
