"""Every change this product makes to code it does not own, installed in one place.

A few things the product needs have no option in the libraries that do them, so the library's
own code is replaced (each replacement is defined, with the measurement that called for it,
next to its subject: ``transports/webrtc.py`` and ``bots/wait_for.py``). Replacing someone
else's code is only safe against the exact code it was written for, so each :class:`Patch`
names the version it was written against, and :func:`install_patches` refuses to start when
the installed one differs, saying which patch to re-check. A patch that a newer Python or
library makes unnecessary is not installed at all (``needed``), or is gone: the draining UDP
read that 8 calls in one room needed is what uvloop, the loop the product runs on, does itself
(``bench/udp_drain.py``).

Installed by the process's ``Runtime`` (``bots.runtime``) when it starts, never as a side
effect of an import. Installing twice is harmless.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

_MARK = "__avatars_patch__"


class PatchVersionError(RuntimeError):
    """Installed code differs from what a patch was written against; the message says what to do."""


@dataclass(frozen=True)
class Patch:
    """One replaced attribute of third-party code.

    Attributes:
        name: the attribute replaced, as ``module.Class.attr``.
        why: what it buys, in a line (the measurement is in ``where``).
        where: the module that defines the replacement and explains it.
        package: the distribution it patches.
        versions: the versions it was written against (exact).
        owner: a callable returning the object whose attribute is replaced.
        attr: the attribute.
        replacement: given the original attribute, the one to install.
        needed: whether this Python and these libraries still need it.
    """

    name: str
    why: str
    where: str
    package: str
    versions: tuple[str, ...]
    owner: Callable[[], Any]
    attr: str
    replacement: Callable[[Any], Any]
    needed: Callable[[], bool] = lambda: True

    def check(self) -> None:
        """Raise PatchVersionError unless the installed code is what this was written for."""
        installed = metadata.version(self.package)
        if installed in self.versions:
            return
        written = " or ".join(self.versions)
        raise PatchVersionError(
            f"{self.name} is replaced for {self.package} {written} ({self.where}: {self.why}), "
            f"but {self.package} {installed} is installed. Check that the replacement still "
            f"fits the new code, then add {installed} to its versions in bots/patches.py; or "
            "reinstall the pinned versions (`make install`)."
        )

    def install(self) -> bool:
        """Replace the attribute (once); whether it is in place."""
        if not self.needed():
            return False
        owner = self.owner()
        current = getattr(owner, self.attr)
        if getattr(current, _MARK, None) == self.name:
            return True
        self.check()
        new = self.replacement(current)
        setattr(new, _MARK, self.name)
        setattr(owner, self.attr, new)
        return True


def _jitter_buffer_owner() -> Any:
    import aiortc.rtcrtpreceiver

    return aiortc.rtcrtpreceiver


def _ice_connection() -> Any:
    import aioice.ice

    return aioice.ice.Connection


def _stun_protocol() -> Any:
    import aioice.ice

    return aioice.ice.StunProtocol


def _short_jitter_buffer(_original: Any) -> Any:
    from transports.webrtc import ShortAudioJitterBuffer

    return ShortAudioJitterBuffer


def _tolerant_consent(_original: Any) -> Any:
    from transports.webrtc import tolerant_query_consent

    return tolerant_query_consent


def _big_buffer(original: Any) -> Any:
    from transports.webrtc import with_big_receive_buffer

    return with_big_receive_buffer(original)


def _smallwebrtc_transport() -> Any:
    import pipecat.transports.smallwebrtc.transport

    return pipecat.transports.smallwebrtc.transport


def _packet_sized_track(_original: Any) -> Any:
    from transports.webrtc import PacketSizedAudioTrack

    return PacketSizedAudioTrack


def _wait_for_312(_original: Any) -> Any:
    import pipecat  # noqa: F401  (its import installs wait_for2, which this replaces)

    from bots.wait_for import wait_for

    return wait_for


PATCHES: tuple[Patch, ...] = (
    Patch(
        name="asyncio.wait_for",
        why="Pipecat's wait_for2 costs 3 loop iterations per audio frame on Python 3.11",
        where="bots/wait_for.py",
        package="pipecat-ai",
        versions=("1.14.0",),
        owner=lambda: asyncio,
        attr="wait_for",
        replacement=_wait_for_312,
        # 3.12 has this wait_for itself (and Pipecat uses it there); 3.11.0-3.11.2's
        # asyncio.timeout lacks the fix it relies on.
        needed=lambda: (3, 11, 3) <= sys.version_info < (3, 12),
    ),
    Patch(
        name="aiortc.rtcrtpreceiver.JitterBuffer",
        why="the bot hears each audio frame 60 ms sooner",
        where="transports/webrtc.py",
        package="aiortc",
        versions=("1.16.0",),
        owner=_jitter_buffer_owner,
        attr="JitterBuffer",
        replacement=_short_jitter_buffer,
    ),
    Patch(
        name="aioice.ice.Connection.query_consent",
        why="a busy event loop no longer closes every call",
        where="transports/webrtc.py",
        package="aioice",
        versions=("0.13.0",),
        owner=_ice_connection,
        attr="query_consent",
        replacement=_tolerant_consent,
    ),
    Patch(
        name="aioice.ice.StunProtocol.connection_made",
        why="4 MB UDP receive buffers ride out a late event loop",
        where="transports/webrtc.py",
        package="aioice",
        versions=("0.13.0",),
        owner=_stun_protocol,
        attr="connection_made",
        replacement=_big_buffer,
    ),
    Patch(
        name="pipecat.transports.smallwebrtc.transport.RawAudioTrack",
        why="the bot's audio leaves in 20 ms frames, not 10: half the per-frame trips",
        where="transports/webrtc.py",
        package="pipecat-ai",
        versions=("1.14.0",),
        owner=_smallwebrtc_transport,
        attr="RawAudioTrack",
        replacement=_packet_sized_track,
    ),
)


def install_patches(patches: tuple[Patch, ...] = PATCHES) -> tuple[str, ...]:
    """Install every patch this process needs; returns the names of those in place.

    Raises:
        PatchVersionError: a patched library (or Python) is not the version a patch was
            written for.
    """
    return tuple(p.name for p in patches if p.install())
