"""Placeholder: the 'check_audio' sub-command (filled in by the live-audio work)."""


def register(sub):
    p = sub.add_parser("check-audio", help="(not yet available)")
    p.set_defaults(run=lambda args: print("not yet available") or 1)
