"""Running one benchmark module on its own: ``--quick``, ``--json FILE``, a printed table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path


def table(rows: list[dict]) -> str:
    """Rows of dicts as aligned text columns (the keys of the first row)."""
    cols = list(rows[0])
    width = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(n) for c, n in zip(cols, width))]
    lines += ["  ".join(str(r.get(c)).ljust(n) for c, n in zip(cols, width)) for r in rows]
    return "\n".join(lines)


def standalone_main(doc: str, measure: Callable[[bool], list[dict]],
                    show: Callable[[list[dict]], str] = table) -> None:
    """Parse ``--quick`` and ``--json``, run ``measure(quick)``, print ``show(rows)``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    rows = measure(args.quick)
    print(show(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
