"""Offers no call can come of are refused before a peer connection is made (fast)."""

from __future__ import annotations

import pytest

from testkit.webrtc_client import offer_sdp
from transports.webrtc import MAX_SDP_CHARS, OfferError, check_offer


async def test_a_browser_like_offer_passes():
    check_offer(await offer_sdp("audio"), "offer")
    check_offer(await offer_sdp("audio", "video"), "offer")


@pytest.mark.parametrize(
    ("sdp", "why"),
    [
        ("not an sdp at all", "0 media sections"),
        ("v=0\r\n" + "a=x\r\n" * 2000, "0 media sections"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 300\r\n", "could not be read"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "lacks ICE credentials"),
        ("v=0\r\n" + "x" * MAX_SDP_CHARS, "characters long"),
    ],
)
async def test_malformed_offers_are_refused_saying_why(sdp, why):
    with pytest.raises(OfferError, match=why):
        check_offer(sdp, "offer")


async def test_an_offer_without_audio_or_of_the_wrong_type_is_refused():
    data_only = await offer_sdp()
    with pytest.raises(OfferError, match="no audio section"):
        check_offer(data_only, "offer")
    with pytest.raises(OfferError, match="expected an SDP offer"):
        check_offer(await offer_sdp("audio"), "answer")
