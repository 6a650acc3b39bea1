"""What each step pod asks Kubernetes for, decided in one table.

With the `k8s_job_executor` every step is its own pod. Its size comes from `SIZE_BY_ASSET`, else
from the asset's group in `SIZE_BY_GROUP`, else `DEFAULT_SIZE`, so an asset added later gets its
group's size (or the default) without touching this file. A step that only runs asset checks is
sized by the check's name in `SIZE_BY_ASSET`, else by its asset's group. Sizes are fitted to the
peak memory measured per step (`python -m ml_assets.bench.step_memory`, figures in
deploy/measurements/step-memory.json): the data layers at ten times 2013's flights per day in runs
of `K8S_PARTITIONS_PER_RUN` days, the weekly steps on a 13-week window at ten times the volume.

Memory is requested and limited at the same value (memory cannot be throttled: a pod over its
limit is killed, and a node would otherwise be overcommitted); CPU is requested, not limited.

Placement on GPU nodes stays with the asset (`torch_model`'s `dagster-k8s/config` op tags: the
GPU limit, node selector and toleration); a step whose tags ask for a GPU runs in the CUDA image
named by ML_ASSETS_TRAINING_IMAGE. Steps that use the MLflow or online-store resource carry the
labels the NetworkPolicies in deploy/ admit.
"""

import os
from dataclasses import dataclass

import dagster as dg

from ml_assets.assets.training import POD_TRAINING_THREADS

GPU_RESOURCE = "nvidia.com/gpu"
TRAINING_IMAGE_ENV = "ML_ASSETS_TRAINING_IMAGE"

# The run size the sizes below hold for; deploy/manifests/config.yaml sets the same value.
K8S_PARTITIONS_PER_RUN = 31


@dataclass(frozen=True)
class PodSize:
    cpu: str  # requested
    memory: str  # requested and limited

    def resources(self) -> dict:
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory}}


# Peak memory measured per step (MiB, deploy/measurements/step-memory.json): data layers at 10x
# volume in runs of 31 days, weekly steps on a 13-week window at 10x volume; sizes leave >= 1.25x.
SIZE_BY_GROUP = {
    "raw": PodSize(cpu="500m", memory="1Gi"),  # raw_flights 630
    "processed": PodSize(cpu="1", memory="1536Mi"),  # flights 885
    "features": PodSize(cpu="1", memory="2Gi"),  # flight_features 1200
    "training": PodSize(cpu="500m", memory="1Gi"),  # training_set 640
    "evaluation": PodSize(cpu="1", memory="6Gi"),  # model_evaluation 3887 (its baselines fit on the window)
    # groups not measured yet (other issues): a day of drift statistics against a reference; a
    # day of batch scoring and online-store pushes
    "monitoring": PodSize(cpu="1", memory="4Gi"),
    "serving": PodSize(cpu="500m", memory="2Gi"),
}
SIZE_BY_ASSET = {  # assets, and checks run on their own
    "lgbm_model": PodSize(cpu=str(POD_TRAINING_THREADS), memory="4Gi"),  # 2348
    "torch_model": PodSize(cpu=str(POD_TRAINING_THREADS), memory="4Gi"),  # 2585
    "champion_promotion": PodSize(cpu="500m", memory="1Gi"),  # 428
    "freshness_check": PodSize(cpu="250m", memory="512Mi"),  # reads the event log only (raw_planes: 218)
}
DEFAULT_SIZE = PodSize(cpu="1", memory="4Gi")

# Labels the NetworkPolicies admit to MLflow and to the online store (deploy/manifests/network-policies.yaml).
MLFLOW_CLIENT = {"ml-assets/mlflow-client": "true"}
ONLINE_STORE_CLIENT = {"ml-assets/online-store-client": "true"}
LABELS_BY_RESOURCE = {"mlflow": MLFLOW_CLIENT, "online_store": ONLINE_STORE_CLIENT}


def _bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else float(quantity)


def _cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def step_size(names: list[str], groups: list[str]) -> PodSize:
    """The size for a step that materializes the assets (or runs the checks) `names` of `groups`:
    the largest that applies (a step holding several needs the most any of them needs)."""
    sizes = [SIZE_BY_ASSET[n] for n in names if n in SIZE_BY_ASSET] or [
        SIZE_BY_GROUP[g] for g in groups if g in SIZE_BY_GROUP
    ]
    if not sizes:
        return DEFAULT_SIZE
    return PodSize(
        cpu=max((s.cpu for s in sizes), key=_cores), memory=max((s.memory for s in sizes), key=_bytes)
    )


def asks_for_gpu(op_tags: dict) -> bool:
    """Whether an op's `dagster-k8s/config` tag limits a GPU."""
    from dagster_k8s.job import get_user_defined_k8s_config

    container = get_user_defined_k8s_config(op_tags).container_config
    return GPU_RESOURCE in container.get("resources", {}).get("limits", {})


def step_k8s_config(names: list[str], groups: list[str], gpu: bool, resources: set[str] = frozenset()) -> dict:
    """The executor's `per_step_k8s_config` entry of one step: size, access labels (from the
    resources it uses), CUDA image."""
    container: dict = {"resources": step_size(names, groups).resources()}
    if gpu and os.environ.get(TRAINING_IMAGE_ENV):
        container["image"] = os.environ[TRAINING_IMAGE_ENV]
    labels: dict = {}
    for resource in sorted(resources):
        labels |= LABELS_BY_RESOURCE.get(resource, {})
    config: dict = {"container_config": container}
    if labels:
        config["pod_template_spec_metadata"] = {"labels": labels}
    return config


def per_step_k8s_config(definitions: list) -> dict[str, dict]:
    """`per_step_k8s_config` for every op of the given asset and asset-check definitions, keyed by
    op name as the k8s_job_executor looks it up. A check-only op takes the group of its asset."""
    group_by_key = {
        spec.key: spec.group_name
        for d in definitions
        if isinstance(d, dg.AssetsDefinition)
        for spec in d.specs
    }
    configs = {}
    for definition in definitions:
        if not isinstance(definition, dg.AssetsDefinition) or not definition.is_executable:
            continue
        if definition.keys:
            keys, names = definition.keys, [key.to_user_string() for key in definition.keys]
        else:  # checks only
            keys = {check.asset_key for check in definition.check_keys}
            names = sorted({check.name for check in definition.check_keys})
        groups = sorted({group_by_key[key] for key in keys if group_by_key.get(key)})
        for op in definition.node_def.iterate_op_defs():
            configs[op.name] = step_k8s_config(names, groups, asks_for_gpu(op.tags), set(definition.required_resource_keys))
    return configs
