"""``auralize serve``: replay a finished run on the live page (play, pause, seek)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  auralize serve --run runs/demo                    # http://127.0.0.1:8765/
  auralize serve --run runs/demo --port 9000
  auralize serve --run runs/demo --host 0.0.0.0     # reachable from elsewhere: prints a token URL
  ssh -L 8765:127.0.0.1:8765 gpu-box                # or keep loopback and tunnel the port
"""


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="replay a run folder on a web page (play/pause/seek, mixer, charts)",
        description="Serve the live page for a finished run folder (or metrics CSV / TensorBoard "
                    "log): the server renders its sound with the same engine and streams it; "
                    "the page plays it, charts loss and gradient norms and mixes the voices.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", dest="run_dir", default="runs/demo", help="run folder or log (default runs/demo)")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1; any other requires the printed token)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any free)")
    p.add_argument("--token", default=None, help="access token for non-loopback binds "
                   "(default: generated)")
    p.add_argument("--play", action="store_true", help="start playing without waiting for a page")
    p.set_defaults(run=run)


def run(args) -> int:
    import asyncio

    from auralize.errors import AuralizeError
    from auralize.web.replay_stream import load_streamed_replay
    from auralize.web.server import WebServer

    if not 0 <= args.port <= 65535:
        raise AuralizeError(f"--port must be 0..65535, got {args.port}")
    source, _config = load_streamed_replay(args.run_dir)  # memory bounded for any run length
    duration_s = source.duration_s
    source.set_playing(args.play)
    server = WebServer(source, host=args.host, port=args.port, token=args.token,
                       title=str(args.run_dir))

    async def main() -> None:
        try:
            await server.start()
        except OSError as exc:
            raise AuralizeError(f"cannot listen on {args.host}:{args.port} ({exc})") from None
        print(f"replaying {source.steps} steps ({duration_s:.1f} s of sound) from {args.run_dir}")
        print(f"open {server.url}   (Ctrl+C to stop)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("stopped")
    return 0
