"""Mutation pass over the modules that guard data and models (`make mutation`).

mutmut 3 supplies the mutants (its libcst operators, `# pragma: no mutate` and the
`do_not_mutate_patterns` of `[tool.mutmut]` in pyproject.toml). Its own runner is not used: it
never mutates a decorated function, and the assets and sensors this pass exists for are all
decorated (`@dg.asset`, `@dg.sensor`). Here each mutant is written into a staged copy of the
project and judged by its module's mapped tests in a child forked from a process that has already
imported the heavy third-party libraries (those the tests import, then those the unmutated run
loaded lazily: torch, lightgbm, the MLflow stores); the child imports `ml_assets` afresh, so a
mutant in module-level code, a decorated function or a Config default takes effect like any other.

Per module the mapped tests run once under coverage, one context per test file and phase; a
mutant then runs only the files whose tests executed its lines (all mapped files when a fixture
or the import did), stops at the first failure, and is killed, survives, or times out. A mutant
on lines no mapped test executes survives without a run. Mutants listed in
`equivalent_mutants.toml` (id and why) are reported as equivalent, not as survivors.

With `--since REV` only the mutants on lines added or changed since the git revision REV are
judged (a branch's own lines: the pass a pull request needs). With `--sample N` a seeded random
sample of N mutants per module is judged, for the modules whose tests take minutes per mutant
(the training and evaluation assets): the score is then an estimate, printed with its 95 % Wilson
interval.

    python -m ml_assets_tests.mutation.driver [--module ml_assets/sensors.py ...] [--jobs 2] [--sample 40] [--since main]
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from ml_assets_tests.threads import limit_openmp_to_share_of_cores

REPO = Path(__file__).resolve().parents[2]
WORK_DIR = REPO / "build" / "mutation"
EQUIVALENT_FILE = Path(__file__).with_name("equivalent_mutants.toml")

# Guarded module -> the test files that exercise it.
TESTS_BY_MODULE = {
    "ml_assets/sensors.py": ["ml_assets_tests/test_sensors.py", "ml_assets_tests/test_monitoring_sensors.py"],
    "ml_assets/quality/gates.py": [
        "ml_assets_tests/test_quality_gates.py",
        "ml_assets_tests/test_validation.py",
        "ml_assets_tests/test_short_deliveries.py",
        "ml_assets_tests/test_sources.py",
        "ml_assets_tests/test_feed_corrections.py",
    ],
    "ml_assets/quality/validation.py": [
        "ml_assets_tests/test_validation.py",
        "ml_assets_tests/test_quality_gates.py",
        "ml_assets_tests/test_leakage.py",
        "ml_assets_tests/test_sources.py",
        "ml_assets_tests/test_feed_corrections.py",
    ],
    "ml_assets/resources/storage.py": ["ml_assets_tests/test_storage.py"],
    "ml_assets/models/registry.py": [
        "ml_assets_tests/models/test_registry.py",
        "ml_assets_tests/test_promotion.py",
        # the logged-model id a tracking server needs (a local store ignores it)
        "ml_assets_tests/test_production_storages.py::test_promotion_and_rollback_on_the_postgres_backed_server",
    ],
    "ml_assets/models/comparison.py": ["ml_assets_tests/models/test_comparison.py"],
    "ml_assets/models/quality.py": ["ml_assets_tests/models/test_quality.py"],
    "ml_assets/assets/evaluation.py": ["ml_assets_tests/test_promotion.py", "ml_assets_tests/test_training_assets.py"],
    "ml_assets/assets/training.py": [
        "ml_assets_tests/test_training_assets.py",
        "ml_assets_tests/test_k8s_step_pods.py",
        "ml_assets_tests/test_promotion.py",
    ],
    "ml_assets/monitoring/drift.py": ["ml_assets_tests/monitoring/test_drift.py", "ml_assets_tests/test_monitoring_assets.py"],
    "ml_assets/monitoring/reference.py": [
        "ml_assets_tests/monitoring/test_reference.py",
        "ml_assets_tests/test_monitoring_assets.py",
    ],
    "ml_assets/monitoring/thresholds.py": [
        "ml_assets_tests/monitoring/test_drift.py",
        "ml_assets_tests/monitoring/test_performance.py",
        "ml_assets_tests/monitoring/test_reference.py",
        "ml_assets_tests/test_monitoring_assets.py",
        "ml_assets_tests/test_monitoring_sensors.py",
    ],
    "ml_assets/monitoring/retraining.py": ["ml_assets_tests/test_monitoring_sensors.py"],
    "ml_assets/monitoring/performance.py": [
        "ml_assets_tests/monitoring/test_performance.py",
        "ml_assets_tests/test_monitoring_assets.py",
    ],
    "ml_assets/serving/guardrails.py": ["ml_assets_tests/serving/test_guardrails.py"],
    "ml_assets/models/rollouts.py": ["ml_assets_tests/serving/test_rollouts.py", "ml_assets_tests/serving/test_rollout_cli.py"],
}
PYTEST_ARGS = ["-q", "-x", "-p", "no:cacheprovider", "-W", "ignore"]
# A mutant's tests may take this many times their unmutated duration (plus the constant); one that
# runs out is judged again with RETRY_FACTOR times that time (a busy machine is not a hang) before
# it counts as a timeout (an endless loop, a hang), which kills it.
TIMEOUT_FACTOR, TIMEOUT_CONSTANT_S, RETRY_FACTOR = 3.0, 30.0, 3.0
UNMUTATED_TIMEOUT_S = 3600.0


@dataclass
class Mutant:
    id: str  # module:function:n, stable while the function is unchanged
    module: str
    line: int
    end_line: int
    diff: str
    source: str


def generate_mutants(module: str) -> list[Mutant]:
    """Every mutant of `module` that mutmut's operators make, decorated functions included."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider
    from mutmut.mutation.file_mutation import MutationVisitor, deep_replace
    from mutmut.mutation.mutators import mutation_operators
    from mutmut.mutation.pragma_handling import get_ignored_lines

    class AllFunctionsVisitor(MutationVisitor):
        """mutmut's visitor, except that a decorated function's body is mutated too (its
        decorators stay untouched: mutmut skips every `cst.Decorator`)."""

        def _skip_node_and_children(self, node):
            if isinstance(node, cst.FunctionDef) and node.decorators:
                position = self.get_metadata(PositionProvider, node, None)
                return bool(position and position.start.line in self._ignored_node_lines)
            return super()._skip_node_and_children(node)

    code = (REPO / module).read_text()
    wrapper = MetadataWrapper(cst.parse_module(code))
    visitor = AllFunctionsVisitor(mutation_operators, get_ignored_lines(module, code, wrapper))
    tree = wrapper.visit(visitor)
    positions = wrapper.resolve(PositionProvider)

    names = {}
    for statement in tree.body:
        if isinstance(statement, cst.FunctionDef):
            names[statement] = statement.name.value
        elif isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock):
            for member in statement.body.body:
                label = member.name.value if isinstance(member, cst.FunctionDef) else "attributes"
                names[member] = f"{statement.name.value}.{label}"

    original_lines = code.splitlines()
    mutants, count_by_scope = [], {}
    for mutation in visitor.mutations:
        scope = names.get(mutation.contained_by_top_level_function, "module")
        count_by_scope[scope] = count_by_scope.get(scope, 0) + 1
        position = positions[mutation.original_node]
        source = deep_replace(tree, mutation.original_node, mutation.mutated_node).code
        diff = "\n".join(
            line
            for line in difflib.unified_diff(original_lines, source.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )
        mutants.append(
            Mutant(
                id=f"{module}:{scope}:{count_by_scope[scope]}",
                module=module,
                line=position.start.line,
                end_line=position.end.line,
                diff=diff,
                source=source,
            )
        )
    return mutants


def changed_lines(module: str, since: str, repo: Path = REPO) -> set[int]:
    """Lines of `module`, as it is in the work tree, added or changed since the git revision
    `since` (where lines were only deleted, the line before them)."""
    diff = subprocess.run(
        ["git", "diff", "--unified=0", since, "--", module], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    lines = set()
    for start, count in re.findall(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, flags=re.MULTILINE):
        lines.update(range(int(start), int(start) + max(int(count or 1), 1)))
    return lines


def stage(path: Path) -> None:
    """A copy of the project's files (tracked and new, not ignored) at `path`, without caches."""
    if path.exists():
        shutil.rmtree(path)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, path / name)


def preload(stage_dir: Path, test_files: list[str]) -> None:
    """Import pytest, the tests and through them every third-party library, then forget
    `ml_assets` and the tests so that each child imports them afresh."""
    os.chdir(stage_dir)
    sys.path.insert(0, str(stage_dir))
    with open(os.devnull, "w") as devnull:
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull.fileno(), 1), os.dup2(devnull.fileno(), 2)
        try:
            pytest.main(["--collect-only", *PYTEST_ARGS, *test_files])
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
    forget_project_modules()
    sys.path.remove(str(stage_dir))


def forget_project_modules() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in ("ml_assets", "ml_assets_tests")]:
        del sys.modules[name]


class TestCoverage:
    """pytest plugin: coverage of one module with one context per test and phase, and the time
    each test and each test file takes."""

    def __init__(self, module_path: str):
        import coverage

        self.coverage = coverage.Coverage(data_file=None, include=[module_path], branch=False)
        self.seconds_by_file: dict[str, float] = {}
        self.seconds_by_test: dict[str, float] = {}

    def _phase(self, item, phase):
        self.coverage.switch_context(f"{item.nodeid}|{phase}")
        started = time.monotonic()
        yield
        seconds, file = time.monotonic() - started, item.location[0]
        self.seconds_by_file[file] = self.seconds_by_file.get(file, 0.0) + seconds
        self.seconds_by_test[item.nodeid] = self.seconds_by_test.get(item.nodeid, 0.0) + seconds

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        yield from self._phase(item, "setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield from self._phase(item, "call")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item):
        yield from self._phase(item, "teardown")


def fork(stage_dir: Path, run, log_path: Path) -> int:
    """Start `run()` (returns an exit code) in a forked child, in its own process group, in
    `stage_dir`; its output goes to `log_path`."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setsid()
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1), os.dup2(log, 2)
            os.chdir(stage_dir)
            sys.path.insert(0, str(stage_dir))
            code = run()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 3)
    return pid


def outcome(pid: int, deadline: float) -> str | None:
    """'passed', 'failed', 'timeout' (the child is killed), or None while it runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return "passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"
    if time.monotonic() > deadline:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "timeout"
    return None


def run_unmutated(stage_dir: Path, run, log: Path, failure: str) -> None:
    """Run `run()` in a forked child on the unmutated project; stop the pass if it fails."""
    pid, deadline = fork(stage_dir, run, log), time.monotonic() + UNMUTATED_TIMEOUT_S
    while (status := outcome(pid, deadline)) is None:
        time.sleep(0.1)
    if status != "passed":
        raise SystemExit(f"{failure}, see {log}")


def measure(module: str, stage_dir: Path) -> dict:
    """Run the module's tests unmutated under coverage: which tests (and phases) execute each
    line, and how long each test file takes. Stops the pass if they do not pass."""
    name = module.replace("/", "__")
    out, log = WORK_DIR / "coverage" / f"{name}.json", WORK_DIR / "coverage" / f"{name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)

    def run():
        plugin = TestCoverage(str(stage_dir / module))
        plugin.coverage.start()
        code = pytest.main([*PYTEST_ARGS, *TESTS_BY_MODULE[module]], plugins=[plugin])
        plugin.coverage.stop()
        contexts = plugin.coverage.get_data().contexts_by_lineno(str(stage_dir / module))
        measured = {"contexts": contexts, "seconds": plugin.seconds_by_file, "test_seconds": plugin.seconds_by_test}
        out.write_text(json.dumps(measured | {"modules": list(sys.modules)}))
        return int(code)

    run_unmutated(stage_dir, run, log, f"{module}: its mapped tests fail unmutated")
    return json.loads(out.read_text())


def warm_imports(modules: list[str]) -> int:
    """Import, in the order the unmutated tests loaded them, the third-party modules those tests
    imported lazily (torch, lightgbm, the MLflow stores...), so that each forked child finds them
    loaded instead of importing them again. Returns how many were imported."""
    imported = 0
    for name in modules:
        if name in sys.modules or name.split(".")[0] in ("ml_assets", "ml_assets_tests", "__main__"):
            continue
        try:
            importlib.import_module(name)
            imported += 1
        except Exception:  # noqa: BLE001 - a module made at run time (a pickled model's code, ...)
            pass
    return imported


def check_warm(module: str, stage_dir: Path) -> float:
    """The module's tests pass unmutated in a child of the warmed process: what the parent
    imported does not break (or hang) the children, whose failures and timeouts count as kills."""
    log = WORK_DIR / "coverage" / f"{module.replace('/', '__')}.warm.log"
    started = time.monotonic()

    def tests() -> int:
        return int(pytest.main([*PYTEST_ARGS, *TESTS_BY_MODULE[module]]))

    run_unmutated(stage_dir, tests, log, f"{module}: its mapped tests fail unmutated after the preload")
    return time.monotonic() - started


def tests_for(mutant: Mutant, measured: dict) -> list[str]:
    """The tests to judge `mutant` with, quickest first: those that ran its lines, widened to
    their whole file when a fixture did (its results may be asserted by the file's other tests),
    to every mapped file when the import did; none when nothing ran them."""
    contexts = set()
    for line in range(mutant.line, mutant.end_line + 1):
        contexts.update(measured["contexts"].get(str(line), []))
    if not contexts:
        return []
    if "" in contexts:
        return TESTS_BY_MODULE[mutant.module]
    selected = set()
    for context in contexts:
        nodeid, phase = context.rsplit("|", 1)
        selected.add(nodeid if phase == "call" else nodeid.split("::")[0])
    files = {s for s in selected if "::" not in s}
    tests = [s for s in selected if s in files or s.split("::")[0] not in files]
    seconds = measured["seconds"] | measured["test_seconds"]
    return sorted(tests, key=lambda test: (seconds.get(test, 0.0), test))


def timeout_for(tests: list[str], measured: dict) -> float:
    files = {t.split("::")[0] for t in tests}
    return TIMEOUT_FACTOR * sum(measured["seconds"].get(f, 10.0) for f in files) + TIMEOUT_CONSTANT_S


class Judges:
    """Up to `jobs` mutants judged at once, each in a staged copy of its own."""

    def __init__(self, stage_dirs: list[Path]):
        self.free = list(stage_dirs)
        self.running: dict[int, tuple] = {}

    def submit(self, mutant: Mutant, tests: list[str], measured: dict, patience: float = 1.0) -> None:
        stage_dir = self.free.pop()
        target = stage_dir / mutant.module
        original = target.read_text()
        target.write_text(mutant.source)
        log = stage_dir.with_suffix(".log")
        pid = fork(stage_dir, lambda: int(pytest.main([*PYTEST_ARGS, *tests])), log)
        self.running[pid] = (mutant, stage_dir, original, time.monotonic() + patience * timeout_for(tests, measured))

    def collect(self, block: bool):
        """Yield (mutant, status) of finished children; with `block`, until one has finished."""
        while True:
            finished = []
            for pid, (mutant, stage_dir, original, deadline) in list(self.running.items()):
                status = outcome(pid, deadline)
                if status is not None:
                    (stage_dir / mutant.module).write_text(original)
                    del self.running[pid]
                    self.free.append(stage_dir)
                    finished.append((mutant, {"passed": "survived", "failed": "killed"}.get(status, status)))
            yield from finished
            if finished or not block or not self.running:
                return
            time.sleep(0.05)


def load_equivalents() -> dict[str, str]:
    if not EQUIVALENT_FILE.exists():
        return {}
    return {entry["id"]: entry["why"] for entry in tomllib.loads(EQUIVALENT_FILE.read_text()).get("mutant", [])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", choices=sorted(TESTS_BY_MODULE), help="default: all")
    parser.add_argument("--jobs", type=int, default=1, help="mutants judged at once")
    parser.add_argument(
        "--survivors", action="store_true", help="judge again only the mutants the last pass did not kill"
    )
    parser.add_argument("--sample", type=int, help="judge a seeded random sample of this many mutants per module")
    parser.add_argument("--since", metavar="REV", help="judge only the mutants on lines changed since this git revision")
    args = parser.parse_args()
    modules = args.module or list(TESTS_BY_MODULE)

    sys.dont_write_bytecode = True
    limit_openmp_to_share_of_cores(args.jobs)  # before the preload loads LightGBM and torch
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results_path = WORK_DIR / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    equivalents = load_equivalents()
    stage_dirs = [WORK_DIR / f"stage-{job}" for job in range(args.jobs)]
    for stage_dir in stage_dirs:
        stage(stage_dir)
    started = time.monotonic()
    preload(stage_dirs[0], sorted({f for m in modules for f in TESTS_BY_MODULE[m]}))

    rows, results = [], dict(previous)
    for module in modules:
        module_started = time.monotonic()
        mutants = generate_mutants(module)
        every_id = {mutant.id for mutant in mutants}
        print(f"{module}: {len(mutants)} mutants", flush=True)
        if args.since:
            changed = changed_lines(module, args.since)
            mutants = [m for m in mutants if changed.intersection(range(m.line, m.end_line + 1))]
            print(f"{module}: {len(mutants)} on lines changed since {args.since}", flush=True)
            if not mutants:
                continue
        if args.sample and args.sample < len(mutants):
            mutants = sorted(random.Random(module).sample(mutants, args.sample), key=lambda m: m.line)
            print(f"{module}: judging a random sample of {len(mutants)}", flush=True)

        print(f"{module}: measuring its tests", flush=True)
        measured = measure(module, stage_dirs[0])
        preloaded, cold = warm_imports(measured["modules"]), sum(measured["seconds"].values())
        warm = check_warm(module, stage_dirs[0])
        print(f"{module}: {preloaded} more modules preloaded; its tests pass unmutated in {warm:.0f} s "
              f"(before the preload, under coverage: {cold:.0f} s)", flush=True)  # fmt: skip
        judges = Judges(stage_dirs)
        counts = dict.fromkeys(["killed", "survived", "equivalent", "timeout"], 0)
        counted: dict[str, str] = {}

        def record(mutant: Mutant, status: str) -> None:
            if status == "survived" and mutant.id in equivalents:
                status = "equivalent"
            counts[status] += 1
            counted[mutant.id] = status
            if len(counted) % 25 == 0:
                minutes = (time.monotonic() - module_started) / 60
                print(f"  {len(counted)} of {len(mutants)} judged in {minutes:.0f} min", flush=True)
            results[mutant.id] = {**asdict(mutant), "status": status}
            del results[mutant.id]["source"]
            if status == "survived":
                print(f"  survived {mutant.id} (line {mutant.line})\n    " + mutant.diff.replace("\n", "\n    "), flush=True)

        queue, retried = list(reversed(mutants)), set()

        def settle(block: bool) -> None:
            for mutant, status in judges.collect(block):
                if status == "timeout" and mutant.id not in retried:
                    retried.add(mutant.id)
                    queue.append(mutant)  # judged again next, with more time
                else:
                    record(mutant, status)

        while queue or judges.running:
            if not queue or not judges.free:
                settle(block=True)
                continue
            mutant = queue.pop()
            earlier = previous.get(mutant.id, {})
            tests = tests_for(mutant, measured)
            if args.survivors and earlier.get("diff") == mutant.diff and earlier.get("status") in ("killed", "timeout"):
                record(mutant, earlier["status"])
            elif not tests:
                record(mutant, "survived")  # no mapped test runs its lines
            else:
                judges.submit(mutant, tests, measured, RETRY_FACTOR if mutant.id in retried else 1.0)
        results_path.write_text(json.dumps(results, indent=1))

        total = sum(counts.values())
        judged = total - counts["equivalent"]
        score = 100.0 * (counts["killed"] + counts["timeout"]) / judged if judged else 100.0
        rows.append((module, total, *counts.values(), score, time.monotonic() - module_started))
        print(format_row(rows[-1]), flush=True)
        if args.sample and judged:
            low, high = wilson_interval(counts["killed"] + counts["timeout"], judged)
            print(f"  sampled: score {score:.1f} %, 95 % interval {low:.1f}-{high:.1f} %", flush=True)
        for mutant_id in sorted(i for i in equivalents if i.startswith(module + ":")):
            status = counted.get(mutant_id, "not a mutant (any more)" if mutant_id not in every_id else "not judged")
            if status not in ("equivalent", "not judged"):
                print(f"  stale equivalent: {mutant_id} is {status}", flush=True)

    print_table(rows, time.monotonic() - started)
    return 0


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion, in percent."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return 100 * (centre - half), 100 * (centre + half)


def format_row(row) -> str:
    module, total, killed, survived, equivalent, timeout, score, seconds = row
    return (
        f"{module:<36} {total:>6} {killed:>7} {survived:>9} {equivalent:>11} {timeout:>8} {score:>6.1f}% {seconds:>6.0f}s"
    )


def print_table(rows, seconds: float) -> None:
    header = f"{'module':<36} {'total':>6} {'killed':>7} {'survived':>9} {'equivalent':>11} {'timeout':>8} {'score':>7} {'time':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(format_row(row))
    sums = [sum(row[i] for row in rows) for i in range(1, 6)]
    judged = sums[0] - sums[3]
    score = 100.0 * (sums[1] + sums[4]) / judged if judged else 100.0
    print("-" * len(header))
    print(format_row(("overall", *sums, score, seconds)))
    print("score = (killed + timeout) / (total - equivalent); equivalents: " + str(EQUIVALENT_FILE.relative_to(REPO)))


if __name__ == "__main__":
    sys.exit(main())
