"""Launch one avatar: ``python -m bots <avatar> [--port N] [--transport webrtc|local|daily]``.

``webrtc`` (default) serves the avatar's talk page at http://127.0.0.1:<port>/ (sign in as in
the room; each browser connection is its own session). ``local`` talks through this machine's
microphone and speakers. ``daily`` joins a Daily room (opt-in; audio leaves this machine).

With ``local`` and ``daily`` there is no sign-in: memories are kept for ``--user``, by default
the operating-system account running the command (the person at this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import sys

from bots.config import AvatarConfigError
from bots.llm_backend import LLMUnavailableError
from bots.models import ModelMissingError
from bots.patches import PatchVersionError
from bots.runtime import EVENT_LOOP, Runtime, run
from bots.settings import SettingsError, load_settings


def parse_args(argv: list[str] | None, avatar_ids: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bots", description=__doc__)
    parser.add_argument("avatar", help=f"avatar id ({', '.join(avatar_ids)})")
    parser.add_argument("--transport", choices=["webrtc", "local", "daily"], default="webrtc")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--no-greeting", action="store_true", help="don't greet on connect")
    parser.add_argument("--room-url", help="Daily room URL (with --transport daily)")
    parser.add_argument("--token", help="Daily meeting token (private rooms)")
    parser.add_argument("--user", help="whose memories (local/daily; default: your OS user name)")
    parser.add_argument("--dev", action="store_true", help="API docs and GC stats (webrtc)")
    return parser.parse_args(argv)


def serve_page(args: argparse.Namespace, runtime: Runtime) -> None:
    """Serve the avatar's page (SmallWebRTC and WebSocket) until interrupted.

    The one place ``bots`` reaches up into ``web``: this launch command serves the same page
    as the room (see the import-linter contracts in pyproject.toml).
    """
    import uvicorn

    from web.app import RoomOptions, create_app  # web.app is the one door into web

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(
            f"--host {args.host}: one avatar's page stays on this machine. To open avatars to "
            "your network, run the room: `python -m web --lan` (passcode, logins, HTTPS)."
        )
    room = RoomOptions(dev=args.dev)
    app = create_app(runtime, [args.avatar], greet=not args.no_greeting, room=room)
    print(f"\n  {args.avatar} is at http://{args.host}:{args.port}/\n", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        loop=EVENT_LOOP,
        proxy_headers=False,  # X-Forwarded-For from any local script is not believed
    )


async def run_single(args: argparse.Namespace, runtime: Runtime) -> None:
    """Run one session on a local or Daily transport until it ends."""
    from bots.sessions import SessionManager
    from bots.warmup import warm_llm, warm_up_models

    avatar = runtime.avatars.load(args.avatar)
    if args.transport == "local":
        from transports.local import local_audio_transport

        transport = local_audio_transport
    else:
        from transports.daily import check_room_url, daily_transport

        check_room_url(args.room_url or "")  # before anything is loaded
        transport = functools.partial(daily_transport, args.room_url or "", args.token, avatar.name)
    await asyncio.to_thread(warm_up_models, runtime, [avatar])
    await warm_llm(runtime, [avatar])
    manager = SessionManager(runtime, greet=not args.no_greeting)
    config, backend = await manager.prepare(args.avatar)
    user = args.user or f"os-{getpass.getuser()}"
    running = await manager.start(config, backend, transport, user_id=user, username=user)
    if args.transport == "local" and not args.no_greeting:
        await running.session.greet()  # no client "connects" to a sound card
    await running.task
    await runtime.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point; turns known failures into one readable line and a non-zero exit."""
    try:
        settings = load_settings()
        runtime = Runtime.start(settings)
        args = parse_args(argv, runtime.avatars.ids())
        runtime.avatars.load(args.avatar)
        if args.transport == "webrtc":
            serve_page(args, runtime)
        else:
            run(run_single(args, runtime))
    except (
        AvatarConfigError,
        LLMUnavailableError,
        ModelMissingError,
        PatchVersionError,
        SettingsError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # e.g. a malformed Daily room URL
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
