"""The executor of ML_ASSETS_ENV=k8s: every step in its own pod (a Kubernetes Job), sized and
labelled by `step_pods`. Run and step pods also inherit the run launcher's settings from the Helm
values (image, env, security context, priority class)."""

import dagster as dg

from ml_assets.k8s.step_pods import per_step_k8s_config


def step_pod_executor(definitions: list) -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(
        {"per_step_k8s_config": per_step_k8s_config(definitions)}, name="k8s_step_pods"
    )
