"""Transport factories build without touching the network; Daily says it is not private."""

from __future__ import annotations

import pytest

from bots.__main__ import main
from transports.daily import DailyConfigError, daily_transport


def test_daily_transport_builds_offline_and_warns(caplog):
    from loguru import logger

    logger.add(caplog.handler, level="WARNING")
    transport = daily_transport("https://demo.daily.co/room", None, "Lumina")
    assert type(transport).__name__ == "DailyTransport"
    assert transport._params.audio_in_enabled and transport._params.audio_out_enabled
    assert "pass through Daily's servers" in caplog.text


def test_daily_needs_a_daily_room_url():
    with pytest.raises(DailyConfigError, match="--room-url"):
        daily_transport("http://example.com/room", None, "Lumina")


def test_launch_with_daily_and_no_room_url_is_a_readable_error(capsys):
    assert main(["lumina", "--transport", "daily"]) == 2
    assert capsys.readouterr().err.startswith("error: --room-url must look like")
