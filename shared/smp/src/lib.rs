//! Strategic merge patch for Kubernetes objects, with merge keys and strategies from the Kubernetes OpenAPI schema.
