"""The `ml-assets` command line."""

import argparse
import getpass
import json
import os
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
    demo.add_argument("--weeks", type=int, default=2, help="weeks of models to train at the end (0: none)")

    live = commands.add_parser("live-setup", help="prepare the live environment (data/live) up to a day")
    live.add_argument("--until", type=_date, default=date(2013, 9, 30), help="the last day before the replay")
    replay = commands.add_parser("replay", help="drop 2013's days into the landing zone one by one")
    replay.add_argument("--start", type=_date, help="first day (default: the day after live-setup's)")
    replay.add_argument("--days", type=int, default=21)
    replay.add_argument("--seconds-per-day", type=float, default=120.0, help="wait between two days")
    replay.add_argument("--shift", help="inject a shift, e.g. 'visib*0.3' or 'dep_delay+45,arr_delay+45' or 'schedule+180'")
    replay.add_argument("--shift-from", type=_date, help="first shifted day (default: the first day)")
    replay.add_argument("--serve-url", help="also post each day's events to the online service there")
    replay.add_argument("--timeline", action="store_true", help="print what the running loop did with each day, then exit")

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    suites = bench.add_subparsers(dest="suite", required=True)
    pipeline = suites.add_parser("pipeline", help="raw → features: Dagster vs bare polars")
    pipeline.add_argument("--start", type=_date, default=date(2013, 1, 1))
    pipeline.add_argument("--end", type=_date, default=date(2013, 12, 31), help="inclusive")
    pipeline.add_argument("--repeat", type=int, default=3)
    pipeline.add_argument("--json", help="also write the figures to this file")

    serving = suites.add_parser("serving", help="the online service under load, against `mlflow models serve`")
    serving.add_argument("--rates", default="300,500", help="fixed request rates, per second")
    serving.add_argument("--duration", type=float, default=3.0, help="seconds per load step (low rates: long enough for 200 requests)")
    serving.add_argument("--runs", type=int, default=1, help="repetitions; the figures are their medians")
    serving.add_argument("--workers", type=int, default=2, help="worker processes of our service")
    serving.add_argument("--json", help="also write the figures to this file")

    quality = suites.add_parser("model-quality", help="models and baselines on the DESIGN protocol")
    quality.add_argument("--json", help="also write the figures to this file")
    quality.add_argument("--n-trials", type=int, default=30, help="LightGBM Optuna trials")
    quality.add_argument("--max-epochs", type=int, default=60, help="torch epochs (early stopping)")

    monitoring = suites.add_parser("monitoring", help="drift checks on 2013: cost, false alarms, detection delay")
    monitoring.add_argument("--json", help="also write the figures to this file")
    monitoring.add_argument("--n-trials", type=int, default=5, help="LightGBM Optuna trials of the champion")

    promote = commands.add_parser("promote", help="move the champion alias to a model version")
    promote.add_argument("--version", help="registered version (default: the current challenger)")
    promote.add_argument("--reason", required=True, help="why, recorded in the alias log")
    rollback = commands.add_parser("rollback", help="move the champion back to the previous one")
    rollback.add_argument("--reason", required=True, help="why, recorded in the alias log")

    exporter = commands.add_parser(
        "metrics-exporter", help="serve the Dagster instance's runs and asset checks as Prometheus metrics"
    )
    exporter.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a pod)")
    exporter.add_argument("--port", type=int, default=9464)
    exporter.add_argument(
        "--window-seconds", type=float, default=3600, help="runs that ended this long ago still count"
    )
    serve = commands.add_parser("serve", help="the online prediction service (FastAPI on uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--warm-from-lake", action="store_true",
                       help="first push the last materialized day's features and replay its events")  # fmt: skip
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port, each a whole service")
    rollout = commands.add_parser("rollout", help="roll the challenger out in the service: shadow, canary, promote, abort")
    rollout.add_argument("action", choices=["shadow", "canary", "promote", "abort", "status"])
    rollout.add_argument("--percent", type=float, help="share of flights (canary: required; shadow: default 100)")
    rollout.add_argument("--reason", help="why, recorded in the alias log (required but for status)")

    args = parser.parse_args(argv)
    # MLflow's INFO lines (database set-up, input-example validation) and progress bars are noise here
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.command == "metrics-exporter":
        from ml_assets.observability.exporter import serve

        serve(args.host, args.port, args.window_seconds)
        return 0
    if args.command in ("promote", "rollback"):
        return move_champion(args)
    if args.command == "live-setup":
        from ml_assets.replay import setup

        return 0 if setup(args.until) else 1
    if args.command == "replay":
        from ml_assets.replay import replay, timeline

        if args.timeline:
            print(timeline())
            return 0
        replay(args.start, args.days, args.seconds_per_day, args.shift, args.shift_from, args.serve_url)
        return 0
    if args.command == "serve":
        from ml_assets.serving.server import run_server

        return run_server(args.host, args.port, args.warm_from_lake, args.workers)
    if args.command == "rollout":
        from ml_assets.models.rollouts import rollout_command

        return rollout_command(args.action, args.percent, args.reason)
    if args.command == "bench" and args.suite == "serving":
        from ml_assets.bench.serving import run as run_serving_bench

        figures = run_serving_bench([float(r) for r in args.rates.split(",")], args.duration, args.runs, args.workers)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=2)
        return 0
    if args.command == "demo":
        from ml_assets.demo import run_demo

        return 0 if run_demo(args.start, args.end, args.weeks) else 1
    if args.command == "bench" and args.suite == "pipeline":
        from ml_assets.bench.pipeline import run

        figures = run(args.start, args.end, args.repeat)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=2)
        return 0
    if args.command == "bench" and args.suite == "model-quality":
        from ml_assets.bench.model_quality import run

        figures = run(args.n_trials, args.max_epochs)
        print(json.dumps({"models": figures["models"], "targets": figures["targets"]}, indent=2))
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=2)
        return 0
    if args.command == "bench" and args.suite == "monitoring":
        from ml_assets.bench.monitoring import run

        figures = run(args.n_trials)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(figures, out, indent=2, default=str)
        return 0
    return 2


def move_champion(args: argparse.Namespace) -> int:
    """`promote` / `rollback` on the environment's registry; every move lands in the alias log."""
    import dagster as dg
    from mlflow.exceptions import MlflowException

    from ml_assets.models.registry import (
        CHALLENGER,
        CorruptModelArtifactError,
        NoPreviousChampionError,
    )
    from ml_assets.models.tracking import MlflowUnavailableError
    from ml_assets.resources import resources_for_env

    with dg.build_resources({"mlflow": resources_for_env()["mlflow"]}) as resources:
        registry = resources.mlflow.registry()
    who = f"{getpass.getuser()} (ml-assets {args.command})"
    try:
        if args.command == "rollback":
            move = registry.rollback(args.reason, moved_by=who)
        else:
            version = args.version or registry.version_for(CHALLENGER)
            if version is None:
                raise LookupError(f"{registry.model_name} has no challenger: pass --version")
            move = registry.promote(version, args.reason, moved_by=who)
    except (
        CorruptModelArtifactError, NoPreviousChampionError, MlflowUnavailableError, MlflowException,
        LookupError, ValueError,
    ) as error:  # fmt: skip
        print(f"ml-assets {args.command}: refused: {error}", file=sys.stderr)
        return 1
    before = f"v{move.from_version}" if move.from_version else "none"
    print(f"{registry.model_name}: champion {before} -> v{move.to_version} ({move.reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
