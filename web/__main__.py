"""The room: ``python -m web`` serves every avatar from one process on 127.0.0.1.

Each browser connection is its own session; models are loaded once and shared.
"""

from __future__ import annotations

import argparse
import sys

from bots.config import AvatarConfigError
from bots.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m web", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine)")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    import uvicorn

    from web.app import create_app

    try:
        app = create_app()
    except (AvatarConfigError, SettingsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n  The room is at http://{args.host}:{args.port}/\n", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
