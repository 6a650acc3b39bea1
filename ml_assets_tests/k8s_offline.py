"""Offline Kubernetes checks shared by the deployment tests: Helm's merge of values files, the chart's
JSON schemas with their Kubernetes `$ref`s resolved to the definitions `kubernetes-validate` ships,
strict manifest validation, and step Jobs built the way the k8s_job_executor builds them."""

import copy
import hashlib
import json
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from ml_assets.settings import PROJECT_ROOT

KUBERNETES_VERSION = "1.30.0"
CHART = Path(__file__).parent / "data" / "dagster-helm-1.10.4"
HELM_VALUES = PROJECT_ROOT / "helm-values"
DEPLOY = PROJECT_ROOT / "deploy"
# The chart's schemas point their Kubernetes types at this document (a web URL).
KUBERNETES_SCHEMA_URL = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
VALUES_FILES = [HELM_VALUES / "dagster.yaml", HELM_VALUES / "gpu.yaml"]  # in `helm -f` order
NAMESPACE, SERVICE_ACCOUNT = "ml-assets", "dagster"  # the chart's service account in our namespace


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def helm_merge(base: dict, override: dict) -> dict:
    """Helm's coalescing of a values file onto the values so far: maps merge key by key, a null
    deletes the key, anything else (lists included) replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def chart_values(files: list[Path] = VALUES_FILES) -> dict:
    """The main chart's defaults, then each values file in order."""
    values = load_yaml(CHART / "values.yaml")
    for path in files:
        values = helm_merge(values, load_yaml(path))
    return values


def subchart_values(values: dict) -> dict:
    """What the dagster-user-deployments subchart sees: its defaults, then the parent's section
    for it, with the parent's `global` values."""
    section = {k: v for k, v in values["dagster-user-deployments"].items() if k not in ("enabled", "enableSubchart")}
    merged = helm_merge(load_yaml(CHART / "user-deployments.values.yaml"), section)
    merged["global"] = helm_merge(merged.get("global", {}), values.get("global", {}))
    return merged


@cache
def _kubernetes_definitions(strict: bool) -> dict:
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    name = f"v{KUBERNETES_VERSION}-local" + ("-strict" if strict else "")
    definitions = json.loads((folder / name / "_definitions.json").read_text())
    definitions["definitions"] = definitions["$defs"]  # the chart's refs say #/definitions/...
    return definitions


def chart_validator(schema_file: str, strict_kubernetes: bool = False) -> jsonschema.Draft7Validator:
    """A validator for one of the chart's values schemas, its Kubernetes refs served offline."""
    registry = Registry().with_resource(
        KUBERNETES_SCHEMA_URL, Resource.from_contents(_kubernetes_definitions(strict_kubernetes), default_specification=DRAFT7)
    )
    schema = json.loads((CHART / schema_file).read_text())
    return jsonschema.Draft7Validator(schema, registry=registry)


def kubernetes_type_validator(definition: str) -> jsonschema.Draft7Validator:
    """A strict validator for one Kubernetes type, e.g. io.k8s.api.core.v1.SecurityContext."""
    definitions = _kubernetes_definitions(strict=True)
    schema = {"$ref": f"{KUBERNETES_SCHEMA_URL}#/definitions/{definition}"}
    registry = Registry().with_resource(
        KUBERNETES_SCHEMA_URL, Resource.from_contents(definitions, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(schema, registry=registry)


def errors(validator: jsonschema.Draft7Validator, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def validate_manifest(manifest: dict) -> None:
    """Strict validation against Kubernetes' own schema (unknown fields are errors)."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- step Jobs, built the way the k8s_job_executor builds them ---------------------------------------


def run_k8s_config(values: dict) -> dict:
    """The run launcher's `run_k8s_config` as the chart renders it into the instance (camelCase keys
    of `runK8sConfig` become snake_case)."""
    names = {
        "containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }  # fmt: skip
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return {names[k]: v for k, v in (launcher.get("runK8sConfig") or {}).items() if v}


def _deployment_context(values: dict):
    """The code location's config that the chart gives every run it launches
    (includeConfigInLaunchedRuns: the subchart's `k8sContainerContext` helper)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return K8sContainerContext(
        image_pull_policy=deployment["image"]["pullPolicy"],
        env_config_maps=[f"dagster-{deployment['name']}-user-env"] + [c["name"] for c in deployment.get("envConfigMaps", [])],
        env_secrets=[s["name"] for s in deployment.get("envSecrets", [])],
        volumes=deployment.get("volumes"),
        volume_mounts=deployment.get("volumeMounts"),
        labels=deployment.get("labels"),
        resources=deployment.get("resources"),
        namespace=NAMESPACE,
        service_account_name=SERVICE_ACCOUNT,
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {"pod_spec_config": {"automount_service_account_token": True}}
        ),
    )


def _launcher_context(values: dict):
    """The K8sRunLauncher's own config, as the chart renders it into the instance."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return K8sContainerContext(
        image_pull_policy=launcher["imagePullPolicy"],
        service_account_name=SERVICE_ACCOUNT,
        env_config_maps=[c["name"] for c in launcher["envConfigMaps"]],
        env_secrets=[s["name"] for s in launcher["envSecrets"]],
        env_vars=launcher["envVars"],
        volumes=launcher["volumes"],
        volume_mounts=launcher["volumeMounts"],
        labels=launcher.get("labels"),
        resources=launcher.get("resources"),
        security_context=launcher.get("securityContext"),
        namespace=NAMESPACE,
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s_config(values)),
    )


def _job(values: dict, context, name: str, component: str, args: list[str], labels: dict) -> dict:
    import kubernetes
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image=f"{deployment['image']['repository']}:{deployment['image']['tag']}",
            dagster_home=values["global"]["dagsterHome"],
            instance_config_map="dagster-instance",
            postgres_password_secret=values["global"]["postgresqlSecretName"],
        ),
        args=args,
        job_name=name,
        pod_name=name,
        component=component,
        user_defined_k8s_config=context.run_k8s_config,
        labels=labels,
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def run_job(values: dict) -> dict:
    """The Job of a run's worker pod: the launcher's config, then the code location's."""
    context = _launcher_context(values).merge(_deployment_context(values))
    return _job(values, context, "dagster-run-0123", "run_worker", ["dagster", "api", "execute_run"], {"dagster/job": "data_layers"})


def step_job(values: dict, op_name: str, op_tags: dict, per_step: dict) -> dict:
    """The Job of one step, merged in the k8s_job_executor's order
    (`K8sStepHandler._get_container_context`): the run's context (launcher, then code location;
    run tags left out), the op's `dagster-k8s/config` tag, then the executor's per-step config."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, get_user_defined_k8s_config

    context = (
        _launcher_context(values)
        .merge(_deployment_context(values))
        .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags)))
        .merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(per_step)))
    )
    name = f"dagster-step-{op_name.replace('_', '-')}"
    return _job(values, context, name, "step_worker", ["dagster", "api", "execute_step"], {"dagster/op": op_name})


# --- the instance config the chart renders --------------------------------------------------------


def chart_instance_config(values: dict) -> dict:
    """dagster.yaml as the chart's templates/configmap-instance.yaml (1.10.4, with its helpers
    _postgresql, _run-launcher, _run-coordinator) renders it from the merged values, for the
    sections and settings these values use."""
    pg = values["postgresql"]
    postgres = {
        "postgres_db": {
            "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"], "params": pg["postgresqlParams"],
            **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
        }
    }  # fmt: skip
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    run_coordinator = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if any(queued.values()):  # the template renders `config:` unless every setting is empty
        max_runs = queued.get("maxConcurrentRuns")
        settings = {
            "tag_concurrency_limits": "tagConcurrencyLimits", "dequeue_interval_seconds": "dequeueIntervalSeconds",
            "dequeue_use_threads": "dequeueUseThreads", "dequeue_num_workers": "dequeueNumWorkers",
        }  # fmt: skip
        run_coordinator["config"] = {"max_concurrent_runs": -1 if max_runs is None else max_runs} | {
            name: queued[key] for name, key in settings.items() if queued.get(key)
        }
    monitoring, retries = daemon["runMonitoring"], daemon["runRetries"]
    config = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage", "config": postgres},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": postgres},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": postgres},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": chart_run_launcher_config(values)},
        "run_coordinator": run_coordinator,
        "compute_logs": {"module": "dagster.core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"},
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            **({"max_runtime_seconds": monitoring["maxRuntimeSeconds"]} if "maxRuntimeSeconds" in monitoring else {}),
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "run_retries": {
            "enabled": retries["enabled"],
            **({"max_retries": retries["maxRetries"]} if retries.get("maxRetries") else {}),
            **({"retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"]} if "retryOnAssetOrOpFailure" in retries else {}),
        },
        "sensors": {"use_threads": daemon["sensors"]["useThreads"], "num_workers": daemon["sensors"]["numWorkers"]},
        "schedules": {"use_threads": daemon["schedules"]["useThreads"], "num_workers": daemon["schedules"]["numWorkers"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }  # fmt: skip
    if values["retention"]["enabled"]:
        config["retention"] = {
            kind: {"purge_after_days": values["retention"][kind]["purgeAfterDays"]} for kind in ("sensor", "schedule")
        }
    return config | (values.get("additionalInstanceConfig") or {})


def chart_run_launcher_config(values: dict) -> dict:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": SERVICE_ACCOUNT,
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    optional = {"labels": "labels", "resources": "resources", "security_context": "securityContext"}
    config |= {name: launcher[key] for name, key in optional.items() if launcher.get(key)}
    if run_k8s_config(values):
        config["run_k8s_config"] = run_k8s_config(values)
    return config
