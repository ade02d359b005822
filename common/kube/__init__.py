"""The one Kubernetes access layer: configuration, errors and the clients."""
