"""Offers no call can come of are refused before a peer connection is made (fast)."""

from __future__ import annotations

import pytest

from testkit.webrtc_client import offer_sdp
from transports.webrtc import MAX_SDP_CHARS, OfferError, check_candidate, check_offer


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


HOST = "candidate:1 1 udp 2130706431 {ip} 54400 typ host"


@pytest.mark.parametrize(
    "ip", ["192.168.1.20", "10.0.0.7", "127.0.0.1", "fe80::1", "fd00::9", "4b1e0.local"]
)
def test_lan_candidates_are_taken(ip):
    check_candidate(HOST.format(ip=ip))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (HOST.format(ip="8.8.8.8"), "local network"),  # the room would probe a stranger
        (HOST.format(ip="2001:4860::8888"), "local network"),
        ("candidate:1 1 udp", "could not be read"),
        ("candidate:1 9 udp 1 10.0.0.7 5 typ host", "component"),
        (HOST.format(ip="not-an-address"), "IP address"),
        (HOST.format(ip="10.0.0.7") + " x" * 300, "at most"),
    ],
)
def test_candidates_beyond_the_lan_or_malformed_are_refused(text, why):
    with pytest.raises(OfferError, match=why):
        check_candidate(text)


def test_a_callers_own_public_address_is_taken():
    check_candidate(HOST.format(ip="130.37.1.5"), caller="130.37.1.5")
    with pytest.raises(OfferError):
        check_candidate(HOST.format(ip="130.37.1.6"), caller="130.37.1.5")


async def test_an_offer_naming_a_stranger_or_too_many_candidates_is_refused():
    sdp = await offer_sdp("audio")
    audio = sdp.index("m=audio")
    end = sdp.index("\r\n", audio) + 2
    stranger = sdp[:end] + "a=" + HOST.format(ip="8.8.8.8") + "\r\n" + sdp[end:]
    with pytest.raises(OfferError, match="local network"):
        check_offer(stranger, "offer")
    many = "".join(f"a={HOST.format(ip=f'10.0.0.{i}')}\r\n" for i in range(40))
    with pytest.raises(OfferError, match="at most 32"):
        check_offer(sdp[:end] + many + sdp[end:], "offer")
