"""The training assets' `dagster-k8s/config` op tags make valid step Jobs: the torch model's pod asks
for a GPU on a GPU node (selector and toleration). Built offline with `construct_dagster_k8s_job`,
as the k8s_job_executor does for each step, and validated against the Kubernetes schemas."""

import kubernetes
import kubernetes_validate
import pytest
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
from kubernetes_validate.utils import latest_version

from ml_assets.assets.training import TRAINING_THREADS
from ml_assets.definitions import defs

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def step_job(asset: str) -> dict:
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="registry.example.com/ml-assets-cuda:0.1.0",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{asset.replace('_', '-')}",
        user_defined_k8s_config=get_user_defined_k8s_config(defs.resolve_assets_def(asset).op.tags),
        component="step_worker",
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


@pytest.mark.parametrize("asset", ["lgbm_model", "torch_model"])
def test_training_step_jobs_are_valid_kubernetes_jobs(asset):
    manifest = step_job(asset)

    kubernetes_validate.validate(manifest, latest_version(), strict=True)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == str(TRAINING_THREADS)  # what training uses


def test_the_torch_step_lands_on_a_gpu_node_with_a_gpu():
    pod = step_job("torch_model")["spec"]["template"]["spec"]

    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert GPU_TOLERATION in pod["tolerations"]


def test_the_lightgbm_step_stays_off_gpu_nodes():
    pod = step_job("lgbm_model")["spec"]["template"]["spec"]

    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
