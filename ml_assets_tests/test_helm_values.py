"""helm-values/ against the official chart (1.10.4), offline: merged onto the chart's defaults in
`helm -f` order, validated with the chart's own schemas (main chart and user-deployments subchart,
Kubernetes refs resolved to kubernetes-validate's definitions), the embedded Kubernetes objects
checked strictly, and the instance config the chart renders from them loaded by Dagster itself."""

import copy
import re

import pytest
import yaml

from ml_assets_tests.k8s_offline import (
    CHART,
    HELM_VALUES,
    VALUES_FILES,
    chart_instance_config,
    chart_validator,
    chart_values,
    errors,
    helm_merge,
    kubernetes_type_validator,
    load_yaml,
    sha256,
    subchart_values,
)


@pytest.fixture(scope="module")
def values() -> dict:
    return chart_values()


def test_the_vendored_chart_files_are_the_official_ones():
    listed = dict(re.findall(r"^(\S+)\s+\S+.*\s([0-9a-f]{64})$", (CHART / "README.txt").read_text(), re.MULTILINE))
    assert len(listed) == 6
    for name, digest in listed.items():
        assert sha256(CHART / name) == digest, name


def test_every_values_file_is_installed_and_in_order():
    assert sorted(HELM_VALUES.glob("*.yaml")) == sorted(VALUES_FILES)
    assert VALUES_FILES[0].name == "dagster.yaml"  # the overlay comes after the base


def test_helm_merge_semantics():
    base = {"a": {"b": 1, "c": [1, 2], "d": 4}, "e": 5}
    merged = helm_merge(base, {"a": {"b": 2, "c": [3], "d": None}, "f": 6})
    assert merged == {"a": {"b": 2, "c": [3]}, "e": 5, "f": 6}  # maps merge, lists replace, null deletes
    assert base == {"a": {"b": 1, "c": [1, 2], "d": 4}, "e": 5}


def test_the_merged_values_validate_against_the_main_chart_schema(values):
    assert errors(chart_validator("values.schema.json"), values) == []


def test_the_user_deployments_subchart_values_validate_against_its_schema(values):
    assert errors(chart_validator("user-deployments.values.schema.json"), subchart_values(values)) == []


def test_each_file_alone_on_the_defaults_validates_too():
    for path in VALUES_FILES:
        assert errors(chart_validator("values.schema.json"), chart_values([path])) == [], path.name


def test_the_schema_validation_catches_a_bad_value_through_a_kubernetes_ref(values):
    broken = copy.deepcopy(values)
    broken["dagsterWebserver"]["securityContext"]["runAsUser"] = "root"
    broken["runLauncher"]["config"]["k8sRunLauncher"]["imagePullPolicy"] = "Sometimes"

    found = errors(chart_validator("values.schema.json"), broken)
    assert any("runAsUser: 'root' is not of type 'integer'" in e for e in found), found
    assert any("imagePullPolicy" in e for e in found), found


# Where our files put Kubernetes objects, and their type: checked strictly (an unknown or misspelt
# field is an error), which the chart's schema does not do.
KUBERNETES_OBJECTS = {
    ("dagsterWebserver", "podSecurityContext"): "io.k8s.api.core.v1.PodSecurityContext",
    ("dagsterWebserver", "securityContext"): "io.k8s.api.core.v1.SecurityContext",
    ("dagsterWebserver", "resources"): "io.k8s.api.core.v1.ResourceRequirements",
    ("dagsterWebserver", "readinessProbe"): "io.k8s.api.core.v1.Probe",
    ("dagsterWebserver", "livenessProbe"): "io.k8s.api.core.v1.Probe",
    ("dagsterDaemon", "podSecurityContext"): "io.k8s.api.core.v1.PodSecurityContext",
    ("dagsterDaemon", "securityContext"): "io.k8s.api.core.v1.SecurityContext",
    ("dagsterDaemon", "resources"): "io.k8s.api.core.v1.ResourceRequirements",
    ("runLauncher", "config", "k8sRunLauncher", "securityContext"): "io.k8s.api.core.v1.SecurityContext",
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "containerConfig", "resources"): "io.k8s.api.core.v1.ResourceRequirements",
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "podSpecConfig", "securityContext"): "io.k8s.api.core.v1.PodSecurityContext",
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "jobSpecConfig"): "io.k8s.api.batch.v1.JobSpec",
}  # fmt: skip
DEPLOYMENT_OBJECTS = {
    "podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
    "securityContext": "io.k8s.api.core.v1.SecurityContext",
    "resources": "io.k8s.api.core.v1.ResourceRequirements",
}
LISTS = {"volumes": "io.k8s.api.core.v1.Volume", "volumeMounts": "io.k8s.api.core.v1.VolumeMount"}


def test_the_kubernetes_objects_in_the_values_are_strictly_valid(values):
    def at(path):
        node = values
        for key in path:
            node = node[key]
        return node

    for path, kind in KUBERNETES_OBJECTS.items():
        node = at(path)
        if kind.endswith("JobSpec"):  # the chart merges these fields into the JobSpec it writes
            node = {"template": {}, **node}
        assert errors(kubernetes_type_validator(kind), node) == [], path
    startup = {k: v for k, v in values["dagsterWebserver"]["startupProbe"].items() if k != "enabled"}
    assert errors(kubernetes_type_validator("io.k8s.api.core.v1.Probe"), startup) == []
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for key, kind in DEPLOYMENT_OBJECTS.items():
        assert errors(kubernetes_type_validator(kind), deployment[key]) == [], key
    for owner in (deployment, values["dagsterWebserver"], values["dagsterDaemon"]):
        for key, kind in LISTS.items():
            for item in owner[key]:
                assert errors(kubernetes_type_validator(kind), item) == [], item


def test_every_dagster_pod_runs_locked_down(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    containers = [values["dagsterWebserver"], values["dagsterDaemon"], deployment]
    for security in [c["securityContext"] for c in containers] + [launcher["securityContext"]]:
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    pods = [c["podSecurityContext"] for c in containers] + [launcher["runK8sConfig"]["podSpecConfig"]["securityContext"]]
    assert all(p["runAsNonRoot"] and p["seccompProfile"] == {"type": "RuntimeDefault"} for p in pods)
    for owner in containers + [launcher["runK8sConfig"]["containerConfig"]]:
        resources = owner["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] == resources["limits"]["memory"]


def test_one_image_for_every_dagster_component(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    images = [values["dagsterWebserver"]["image"], values["dagsterDaemon"]["image"], deployment["image"]]
    assert all(image == images[0] for image in images)  # the same Dagster version everywhere
    assert images[0]["repository"].endswith("/ml-assets") and re.fullmatch(r"\d+\.\d+\.\d+", images[0]["tag"])


def test_the_code_location_and_its_runs(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "ml_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]  # env, volumes, labels reach run and step pods
    assert {c["name"] for c in deployment["envConfigMaps"]} == {"ml-assets-config"}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    pod = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert pod["priorityClassName"] == "ml-assets-training"


def test_no_secret_in_the_values_files():
    for path in VALUES_FILES:
        text = path.read_text().lower()
        assert not re.search(r"(password|secret|token|key)\s*:\s*[\"']?[a-z0-9+/]{8,}", text.replace("secretname", "")), path
    merged = chart_values()
    assert merged["postgresql"]["postgresqlPassword"] == "" and merged["generatePostgresqlPasswordSecret"] is False


def test_the_gpu_overlay_changes_what_it_says_over_the_base():
    base, merged = chart_values(VALUES_FILES[:1]), chart_values()
    overlay = load_yaml(HELM_VALUES / "gpu.yaml")

    assert "default_limit" not in base["additionalInstanceConfig"]["concurrency"]["pools"]
    assert merged["additionalInstanceConfig"]["concurrency"]["pools"]["default_limit"] == 1
    assert merged["dagsterDaemon"]["runMonitoring"]["startTimeoutSeconds"] == overlay["dagsterDaemon"]["runMonitoring"]["startTimeoutSeconds"]
    assert merged["dagsterDaemon"]["runMonitoring"]["maxRuntimeSeconds"] == base["dagsterDaemon"]["runMonitoring"]["maxRuntimeSeconds"]
    # the base's null settings deleted the chart defaults, the overlay's maps merged into the base's
    queued = merged["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "maxConcurrentRuns" not in queued and "dequeueNumWorkers" not in queued
    assert merged["additionalInstanceConfig"]["concurrency"]["runs"] == base["additionalInstanceConfig"]["concurrency"]["runs"]


# --- the instance config the chart renders, loaded by Dagster 1.13 itself -----------------------------


def load_instance_config(tmp_path, config: dict) -> dict:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    loaded, _ = dagster_instance_config(str(tmp_path))
    return loaded


def test_dagster_loads_the_instance_config_rendered_from_the_values(values, tmp_path):
    loaded = load_instance_config(tmp_path, chart_instance_config(values))

    assert loaded["concurrency"]["pools"] == {"granularity": "op", "op_granularity_run_buffer": 1, "default_limit": 1}
    assert loaded["concurrency"]["runs"]["max_concurrent_runs"] == 10
    assert "config" not in loaded["run_coordinator"]
    assert loaded["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert loaded["run_monitoring"]["start_timeout_seconds"] == 1200


def test_the_run_queue_settings_of_the_chart_defaults_would_break_the_instance(values, tmp_path):
    """Why the values empty `queuedRunCoordinator`: with the chart's defaults it renders
    `max_concurrent_runs: -1`, which Dagster refuses next to the concurrency settings."""
    from dagster import DagsterInvalidConfigError

    defaults = load_yaml(CHART / "values.yaml")["dagsterDaemon"]["runCoordinator"]
    broken = copy.deepcopy(values)
    broken["dagsterDaemon"]["runCoordinator"] = defaults

    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        load_instance_config(tmp_path, chart_instance_config(broken))


def test_the_run_launcher_config_is_valid_for_dagster_k8s(values):
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher

    config = chart_instance_config(values)["run_launcher"]["config"]
    result = validate_config(K8sRunLauncher.config_type(), config)  # the class is not constructed

    assert result.success, result.errors
    assert config["run_k8s_config"]["job_spec_config"]["ttlSecondsAfterFinished"] == 86400
