"""The `ml-assets` command line."""

import argparse
import json
import sys
from datetime import date


def _date(text: str) -> date:
    return date.fromisoformat(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="materialize every layer into the local instance")
    demo.add_argument("--start", type=_date, default=date(2013, 1, 1))
    demo.add_argument("--end", type=_date, default=date(2013, 12, 31), help="inclusive")

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    suites = bench.add_subparsers(dest="suite", required=True)
    pipeline = suites.add_parser("pipeline", help="raw → features: Dagster vs bare polars")
    pipeline.add_argument("--start", type=_date, default=date(2013, 1, 1))
    pipeline.add_argument("--end", type=_date, default=date(2013, 12, 31), help="inclusive")
    pipeline.add_argument("--repeat", type=int, default=3)
    pipeline.add_argument("--json", help="also write the figures to this file")

    args = parser.parse_args(argv)
    if args.command == "demo":
        from ml_assets.demo import run_demo

        return 0 if run_demo(args.start, args.end) else 1
    if args.command == "bench" and args.suite == "pipeline":
        from ml_assets.bench.pipeline import run

        figures = run(args.start, args.end, args.repeat)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=2)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
