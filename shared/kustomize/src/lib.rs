//! A kustomize-compatible engine: builds a kustomization tree into Kubernetes objects the way kustomize v5.5.0 does.
