"""``python -m benchmarks.curves record|simulate``: record learning curves once, replay searches on them."""

from __future__ import annotations

import argparse
import sys

from benchmarks.curves import record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    record.add_args(sub.add_parser("record", help="train configs of a space and save their curves"))
    args = parser.parse_args(argv)
    if args.command == "record":
        return record.record(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
