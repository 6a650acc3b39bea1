"""deploy/: every manifest valid for Kubernetes 1.30 (strict), listed in the kustomization, locked
down, wired to what the code and the Helm values name; checkov's Kubernetes checks pass (every
skip carries its reason)."""

import json
import os
import re
import subprocess

import pytest
import yaml

from ml_assets.k8s.step_pods import K8S_PARTITIONS_PER_RUN, MLFLOW_CLIENT, ONLINE_STORE_CLIENT, TRAINING_IMAGE_ENV
from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.k8s_offline import DEPLOY, chart_values, load_all_yaml, load_yaml, validate_manifest

MANIFESTS = DEPLOY / "manifests"
CHECKOV = PROJECT_ROOT / "build" / "checkov-venv" / "bin" / "checkov"
WORKLOADS = ("Deployment", "StatefulSet")


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in load_all_yaml(path)]


def named(objects, kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(objects) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] in WORKLOADS}


def test_every_manifest_is_strictly_valid_for_kubernetes_1_30(objects):
    assert len(objects) >= 30
    for manifest in objects:
        validate_manifest(manifest)


def test_the_kustomization_applies_every_manifest_and_generates_the_monitoring_config_maps(objects):
    kustomization = load_yaml(DEPLOY / "kustomization.yaml")

    assert sorted(kustomization["resources"]) == sorted(f"manifests/{p.name}" for p in MANIFESTS.glob("*.yaml"))
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    assert generated == {
        "ml-assets-alert-rules": ["monitoring/alert-rules.yaml"],
        "ml-assets-grafana-dashboard": ["monitoring/grafana-dashboard.json"],
    }
    for name, files in generated.items():  # what kustomize generates is a valid ConfigMap too
        data = {f.split("/")[-1]: (DEPLOY / f).read_text() for f in files}
        validate_manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    assert all(o["metadata"].get("namespace") == "ml-assets" for o in objects if o["kind"] not in ("Namespace", "PriorityClass"))


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def test_every_pod_runs_locked_down_with_requests_and_limits(objects):
    for name, spec in pod_specs(objects).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] >= 10000 and pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == name, name
        for container in containers(spec):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"], name
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"] == resources["limits"]["memory"], name


def test_the_serving_deployment_honours_the_service_contract(objects):
    deployment = named(objects, "Deployment", "ml-assets-serving")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    assert deployment["spec"]["replicas"] >= 2
    assert container["command"] == ["ml-assets", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert env == {"ML_ASSETS_ONLINE_STORE": "ml-assets-online-store", "ML_ASSETS_API_TOKEN": "ml-assets-serving"}
    config = named(objects, "ConfigMap", "ml-assets-config")["data"]
    assert config["ML_ASSETS_ENV"] == "k8s" and config["MLFLOW_TRACKING_URI"].endswith(":5000")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/path"], annotations["prometheus.io/port"]) == ("/metrics", "8000")

    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    for kind in ("Service", "PodDisruptionBudget"):
        target = named(objects, kind, "ml-assets-serving")["spec"]["selector"]
        assert (target.get("matchLabels") or target).items() <= labels.items()
    assert selector.items() <= labels.items()
    hpa = named(objects, "HorizontalPodAutoscaler", "ml-assets-serving")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "ml-assets-serving" and hpa["minReplicas"] >= 2
    assert named(objects, "PodDisruptionBudget", "ml-assets-serving")["spec"]["minAvailable"] >= 1
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "ml-assets-serving"


def test_the_online_store_and_mlflow_admit_only_the_pods_that_need_them(objects):
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def sources(app: str) -> list[dict]:
        return [
            peer for spec in policies.values() if spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == app
            for rule in spec["ingress"] for peer in rule["from"]
        ]  # fmt: skip

    assert sources("ml-assets-redis") == [{"podSelector": {"matchLabels": ONLINE_STORE_CLIENT}}]
    mlflow = sources("ml-assets-mlflow")
    assert {"podSelector": {"matchLabels": MLFLOW_CLIENT}} in mlflow
    assert all("podSelector" in p and p["podSelector"]["matchLabels"] == MLFLOW_CLIENT or "namespaceSelector" in p for p in mlflow)
    # the clients really carry the labels: the serving pods here, the step pods from step_pods.py
    serving_labels = named(objects, "Deployment", "ml-assets-serving")["spec"]["template"]["metadata"]["labels"]
    assert ONLINE_STORE_CLIENT.items() <= serving_labels.items() and MLFLOW_CLIENT.items() <= serving_labels.items()


def test_nothing_leaves_the_cluster_but_the_api_and_the_uis_behind_the_auth_proxy(objects):
    assert all(o["spec"].get("type", "ClusterIP") == "ClusterIP" for o in objects if o["kind"] == "Service")
    quota = named(objects, "ResourceQuota", "ml-assets")["spec"]["hard"]
    assert quota["services.loadbalancers"] == "0" and quota["services.nodeports"] == "0"
    backends = {
        o["metadata"]["name"]: {p["backend"]["service"]["name"] for r in o["spec"]["rules"] for p in r["http"]["paths"]}
        for o in objects if o["kind"] == "Ingress"
    }  # fmt: skip
    assert backends == {
        "ml-assets-serving": {"ml-assets-serving"},
        "ml-assets-mlflow-ui": {"ml-assets-mlflow"},
        "ml-assets-oauth2-proxy": {"ml-assets-oauth2-proxy"},
    }
    auth_url = "http://ml-assets-oauth2-proxy.ml-assets.svc.cluster.local:4180/oauth2/auth"
    assert named(objects, "Ingress", "ml-assets-mlflow-ui")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"] == auth_url
    dagster_ui = chart_values()["ingress"]
    assert dagster_ui["enabled"] and dagster_ui["annotations"]["nginx.ingress.kubernetes.io/auth-url"] == auth_url
    serving_paths = [p["path"] for r in named(objects, "Ingress", "ml-assets-serving")["spec"]["rules"] for p in r["http"]["paths"]]
    assert serving_paths == ["/v2"]  # the API, not its /metrics
    assert all(o["spec"]["tls"] for o in objects if o["kind"] == "Ingress")


def test_the_exporter_reads_the_instance_the_chart_renders(objects):
    spec = named(objects, "Deployment", "ml-assets-metrics-exporter")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    values = chart_values()

    assert container["command"][:2] == ["ml-assets", "metrics-exporter"]
    volume = {v["name"]: v for v in spec["volumes"]}["instance"]
    assert volume["configMap"]["name"] == "dagster-instance"  # the chart's, release `dagster`
    mount = {m["name"]: m for m in container["volumeMounts"]}["instance"]
    assert mount["mountPath"] == f"{values['global']['dagsterHome']}/dagster.yaml"
    password = {e["name"]: e for e in container["env"]}["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": values["global"]["postgresqlSecretName"], "key": "postgresql-password"}


def test_the_deploy_config_matches_the_code_and_the_values(objects):
    config = named(objects, "ConfigMap", "ml-assets-config")["data"]
    values = chart_values()
    image = values["dagsterWebserver"]["image"]

    assert int(config["ML_ASSETS_PARTITIONS_PER_RUN"]) == K8S_PARTITIONS_PER_RUN  # what the pod sizes hold for
    assert config[TRAINING_IMAGE_ENV] == f"{image['repository']}-cuda:{image['tag']}"
    ours = [c["image"] for spec in pod_specs(objects).values() for c in containers(spec) if "/ml-assets" in c["image"]]
    assert set(ours) == {f"{image['repository']}:{image['tag']}"}
    kustomization = load_yaml(DEPLOY / "kustomization.yaml")
    assert kustomization["images"] == [{"name": image["repository"], "newTag": image["tag"]}]
    claim = values["dagster-user-deployments"]["deployments"][0]["volumes"][1]["persistentVolumeClaim"]["claimName"]
    assert named(objects, "PersistentVolumeClaim", claim)
    assert config["ML_ASSETS_LANDING_DIR"] == values["dagster-user-deployments"]["deployments"][0]["volumeMounts"][1]["mountPath"]


def secrets_used(objects) -> set[str]:
    text = json.dumps(objects)
    found = set(re.findall(r'"secretKeyRef": \{"name": "([^"]+)"', text)) | set(re.findall(r'"secretRef": \{"name": "([^"]+)"', text))
    return found | {t["secretName"] for o in objects if o["kind"] == "Ingress" for t in o["spec"]["tls"]}


def test_every_secret_is_referenced_never_written_and_the_runbook_creates_it(objects):
    assert not [o for o in objects if o["kind"] == "Secret"]
    runbook = (DEPLOY / "RUNBOOK.md").read_text()
    values = chart_values()
    names = secrets_used(objects) | {values["global"]["postgresqlSecretName"], values["ingress"]["dagsterWebserver"]["tls"]["secretName"]}
    names |= {s["name"] for s in values["dagster-user-deployments"]["deployments"][0]["envSecrets"]}
    missing = sorted(n for n in names if not re.search(rf"create secret \S+ {re.escape(n)}\b", runbook))
    assert missing == []


def run_checkov(*paths) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make checkov` (its own venv, pinned in .ci/checkov.lock)")
    env = os.environ | {"BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "--output", "json", *(a for p in paths for a in ("-f", str(p)))],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_kubernetes_checks_pass_and_every_skip_says_why(objects):
    report = run_checkov(*sorted(MANIFESTS.glob("*.yaml")))
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]

    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    scanned = {c["resource"].split(".")[-1] for c in report["results"]["passed_checks"]}
    assert {o["metadata"]["name"] for o in objects if o["kind"] in WORKLOADS} <= scanned  # every workload was read
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"]["suppress_comment"]) > 30, skipped["check_id"]


def test_checkov_fails_a_pod_that_is_not_locked_down(tmp_path, objects):
    """The checkov run above can fail: the serving Deployment without its security contexts."""
    deployment = named(objects, "Deployment", "ml-assets-serving")
    spec = deployment["spec"]["template"]["spec"]
    spec.pop("securityContext")
    spec["containers"][0].pop("securityContext")
    (tmp_path / "serving.yaml").write_text(yaml.safe_dump(deployment))

    failed = {c["check_id"] for c in run_checkov(tmp_path / "serving.yaml")["results"]["failed_checks"]}
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28"} <= failed
