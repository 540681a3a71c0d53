"""The room: ``python -m web`` serves every avatar from one process.

By default it listens on 127.0.0.1 only: nobody else can reach it. ``--lan`` opens it to the
local network (all interfaces, or ``--host``), and then a room passcode is required before
anyone can sign up (``--passcode``, ``AVATARS_ROOM_PASSCODE``, or one generated and printed
now). Browsers give the microphone only to ``localhost`` or HTTPS pages, so testers on other
laptops need ``--https`` (a self-signed certificate, made once; each browser asks to accept it
the first time).

Each browser connection is its own session; models are loaded once and shared.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from typing import Any

from bots.config import AvatarConfigError
from bots.patches import PatchVersionError
from bots.runtime import EVENT_LOOP, Runtime
from bots.settings import SettingsError, load_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m web", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lan", action="store_true", help="open the room to the local network")
    parser.add_argument("--host", help="bind address (default 127.0.0.1; with --lan 0.0.0.0)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--passcode", help="room passcode asked at sign-up (with --lan)")
    parser.add_argument("--https", action="store_true", help="serve HTTPS (self-signed)")
    parser.add_argument(
        "--insecure-lan",
        action="store_true",
        help="allow --lan without --https (passwords then cross the network in clear)",
    )
    parser.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        help="a reverse proxy whose X-Forwarded-For is believed (default: none is)",
    )
    parser.add_argument("--dev", action="store_true", help="serve the API docs at /docs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve until interrupted."""
    args = parse_args(argv)
    host = args.host or ("0.0.0.0" if args.lan else "127.0.0.1")
    if host not in LOOPBACK and not args.lan:
        print("error: to listen beyond this machine, add --lan", file=sys.stderr)
        return 2
    if args.lan and not args.https and not args.insecure_lan:
        print(
            "error: --lan sends passwords over the network: add --https (a self-signed"
            " certificate is made for you), or --insecure-lan to accept that on purpose",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from bots.capacity import cores
    from web.app import create_app
    from web.auth import RoomOptions
    from web.ray_workers import ClusterError
    from web.tls import lan_addresses, self_signed_cert

    try:
        settings = load_settings()
        passcode = None
        if args.lan:
            passcode = args.passcode or settings.room_passcode or secrets.token_hex(4)
        addresses = lan_addresses() if args.lan else []
        if args.lan and host not in ("0.0.0.0", "::"):
            addresses = [host]
        scheme = "https" if args.https else "http"
        urls = [f"{scheme}://{a}:{args.port}/" for a in addresses]
        local = f"{scheme}://127.0.0.1:{args.port}/" if host in ("0.0.0.0", "::", *LOOPBACK) else ""
        names = [*LOOPBACK, *addresses]
        if args.lan:  # testers may type the machine's name instead of its address
            names += [socket.gethostname(), f"{socket.gethostname()}.local"]
            names += [host] if host not in ("0.0.0.0", "::") else []
        room = RoomOptions(
            lan=args.lan, passcode=passcode, https=args.https, urls=urls, hosts=names, dev=args.dev
        )
        cluster = bool(settings.ray_address)
        # -1: one per core here, or (0) one per CPU of the cluster.
        workers = settings.workers if settings.workers >= 0 else (0 if cluster else cores())
        app = create_app(Runtime.start(settings), room=room, workers=workers, cluster=cluster)
    except (AvatarConfigError, PatchVersionError, SettingsError, ClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tls: dict[str, Any] = {}
    if args.https:
        cert, key = self_signed_cert(settings.data_dir / "tls", addresses)
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    lines = ["", f"  The room is at {local or urls[0]}"]
    if args.lan:
        lines += [f"  Testers on your network open: {u}" for u in urls]
        lines += [f"  Room passcode (asked at sign-up): {passcode}"]
        if not args.https:
            lines += [
                "  Warning (--insecure-lan): passwords cross the network in clear, and",
                "  browsers allow the microphone only on localhost or HTTPS.",
            ]
    print("\n".join([*lines, ""]), flush=True)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local script could
    # then pick the address the sign-in limiter keys on. Only a named proxy is believed.
    uvicorn.run(
        app,
        host=host,
        port=args.port,
        log_level="warning",
        loop=EVENT_LOOP,
        proxy_headers=bool(args.trusted_proxy),
        forwarded_allow_ips=args.trusted_proxy,
        **tls,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
