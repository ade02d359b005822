"""What both apps (the operator and the webhooks) use: policy evaluation, retention rules,
the Kubernetes client, the object store and the audit trail (see docs/architecture.md)."""
