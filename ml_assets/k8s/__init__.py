"""Kubernetes: what each step pod asks for (sizes, network access, the training image) and the
executor that runs one pod per step. Imported only when ML_ASSETS_ENV=k8s or by tests."""
