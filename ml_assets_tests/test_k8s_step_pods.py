"""Step pods on Kubernetes, offline: with ML_ASSETS_ENV=k8s every step is a pod (k8s_job_executor).
For every asset and check of the code location, the step Job is built the way the executor builds
it (the Helm values' run launcher and code-location config, the op's `dagster-k8s/config` tag, the
per-step config) with `construct_dagster_k8s_job`, and validated against Kubernetes 1.30. Only
`torch_model` gets a GPU; every pod is sized from measured peaks."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.k8s.step_pods import (
    DEFAULT_SIZE,
    K8S_PARTITIONS_PER_RUN,
    SIZE_BY_ASSET,
    SIZE_BY_GROUP,
    TRAINING_IMAGE_ENV,
    _bytes,
    per_step_k8s_config,
    step_size,
)
from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.k8s_offline import DEPLOY, chart_values, run_job, step_job, validate_manifest

CUDA_IMAGE = "registry.example.com/ml-assets-cuda:0.1.0"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def step_jobs() -> dict[str, dict]:
    """op name → its step Job, for every op of the code location."""
    values, definitions = chart_values(), defs.resolve_asset_graph().assets_defs  # what the executor sees
    previous = os.environ.get(TRAINING_IMAGE_ENV)
    os.environ[TRAINING_IMAGE_ENV] = CUDA_IMAGE
    try:
        per_step = per_step_k8s_config(definitions)
    finally:
        os.environ.pop(TRAINING_IMAGE_ENV) if previous is None else os.environ.update({TRAINING_IMAGE_ENV: previous})
    ops = {op.name: op for d in definitions for op in d.node_def.iterate_op_defs()}
    assert set(per_step) == set(ops)
    return {name: step_job(values, name, op.tags, per_step[name]) for name, op in ops.items()}


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def group_of(name: str) -> str | None:
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey(name)
    return graph.get(key).group_name if graph.has(key) else None


def test_every_step_job_is_a_valid_kubernetes_1_30_job(step_jobs):
    # every op of the graph (the fixture asserts it), the checks run on their own included
    assert {"raw_flights", "flight_features", "torch_model", "batch_predictions", "flight_features_feature_drift"} <= set(step_jobs)
    for job in step_jobs.values():
        validate_manifest(job)


def test_only_the_torch_step_gets_a_gpu_a_gpu_node_and_the_cuda_image(step_jobs):
    gpu = {name for name, job in step_jobs.items() if "nvidia.com/gpu" in pod(job)["containers"][0]["resources"]["limits"]}
    assert gpu == {"torch_model"} and group_of("torch_model") == "training"

    torch = pod(step_jobs["torch_model"])
    assert torch["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert torch["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and GPU_TOLERATION in torch["tolerations"]
    assert torch["containers"][0]["image"] == CUDA_IMAGE
    for name, job in step_jobs.items():
        if name != "torch_model":
            assert "nodeSelector" not in pod(job) and "tolerations" not in pod(job), name
            assert pod(job)["containers"][0]["image"] == "registry.example.com/ml-assets:0.1.0", name


def test_every_step_pod_is_sized_locked_down_and_below_serving(step_jobs):
    for name, job in step_jobs.items():
        spec, (container,) = pod(job), pod(job)["containers"]
        resources = container["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"], name
        assert "cpu" in resources["requests"] and "cpu" not in resources["limits"], name
        assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"], name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["priorityClassName"] == "ml-assets-training", name
        assert {v["name"] for v in spec["volumes"]} == {"tmp", "landing"}, name
        assert {"ml-assets-config"} <= {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e}


def test_steps_that_talk_to_mlflow_or_the_online_store_carry_the_labels_the_policies_admit(step_jobs):
    mlflow = {n for n, j in step_jobs.items() if j["spec"]["template"]["metadata"]["labels"].get("ml-assets/mlflow-client")}
    assert mlflow == {
        "lgbm_model", "torch_model", "model_evaluation", "champion_promotion",  # the registry
        "batch_predictions", "drift_reference", "flight_features_feature_drift", "batch_predictions_score_drift",
    }  # fmt: skip
    store = {n for n, j in step_jobs.items() if j["spec"]["template"]["metadata"]["labels"].get("ml-assets/online-store-client")}
    assert store == {"online_features", "served_predictions"}  # the daily push and the prediction log


def test_the_run_pod_validates_and_runs_below_serving():
    job = run_job(chart_values())
    validate_manifest(job)
    assert pod(job)["priorityClassName"] == "ml-assets-training"
    assert pod(job)["containers"][0]["resources"]["limits"]["memory"] == "1Gi"


MEASURED = json.loads((DEPLOY / "measurements" / "step-memory.json").read_text())


def measured_peaks() -> dict[str, int]:
    """Peak bytes per step where the sizes must hold: data layers at 10x in runs of
    K8S_PARTITIONS_PER_RUN days, weekly steps on a 13-week window at 10x."""
    data = next(s for s in MEASURED.values() if s["factor"] == 10 and s["days_per_run"] == K8S_PARTITIONS_PER_RUN)
    weekly = next(s for s in MEASURED.values() if s["factor"] == 10 and s["week"])
    peaks = {step: r["peak_rss_bytes"] for step, r in data["steps"].items()}
    return peaks | {step: r["peak_rss_bytes"] for step, r in weekly["steps"].items() if step not in peaks}


def test_the_sizes_fit_the_measured_peaks_at_ten_times_the_volume():
    peaks = measured_peaks()
    assert len(peaks) == 12
    largest: dict[str, int] = {}  # per line of the table: the largest peak of the steps it sizes
    for step, peak in peaks.items():
        memory = _bytes(step_size([step], [group_of(step)]).memory)
        assert memory >= 1.25 * peak, (step, peak / 2**20)  # headroom over every step's peak
        line = step if step in SIZE_BY_ASSET else group_of(step)
        largest[line] = max(largest.get(line, 0), peak)
    for line, peak in largest.items():
        size = SIZE_BY_ASSET.get(line) or SIZE_BY_GROUP[line]
        assert _bytes(size.memory) <= max(2.5 * peak, 2**30), (line, peak / 2**20)  # and not far above it


def test_a_run_ten_times_longer_than_the_pods_are_sized_for_would_not_fit():
    """Why the run size is bounded: at 10x, a 92-day run's features step outgrows its pod."""
    longer = next(s for s in MEASURED.values() if s["factor"] == 10 and s["days_per_run"] > K8S_PARTITIONS_PER_RUN)
    assert longer["steps"]["flight_features"]["peak_rss_bytes"] > _bytes(SIZE_BY_GROUP["features"].memory)


def test_assets_added_later_get_their_groups_size_or_the_default_and_labels_from_their_resources():
    @dg.asset(group_name="serving", required_resource_keys={"online_store"})
    def pushes_features(): ...

    @dg.asset(group_name="brand_new")
    def something_else(): ...

    configs = per_step_k8s_config([pushes_features, something_else])
    assert configs["pushes_features"]["container_config"]["resources"] == SIZE_BY_GROUP["serving"].resources()
    assert configs["pushes_features"]["pod_template_spec_metadata"]["labels"] == {"ml-assets/online-store-client": "true"}
    assert configs["something_else"]["container_config"]["resources"] == DEFAULT_SIZE.resources()
    assert "pod_template_spec_metadata" not in configs["something_else"]


def executor_of(env: str) -> str:
    code = (
        "from ml_assets.definitions import defs; e = defs.resolve_job_def('data_layers').executor_def; "
        "s = e.config_schema; configured = s.resolve_config({}).value['config'] if hasattr(s, 'resolve_config') else {}; "
        "import json; print(json.dumps([e.name, sorted(configured.get('per_step_k8s_config', {}))]))"
    )
    environ = os.environ | {"ML_ASSETS_ENV": env, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_ml_assets_env_k8s_runs_every_step_in_its_own_pod():
    name, steps = json.loads(executor_of("k8s"))
    assert name == "k8s_step_pods" and "torch_model" in steps and "flight_features" in steps
    assert json.loads(executor_of("local"))[0] == "multi_or_in_process_executor"  # Dagster's, one training step at a time
