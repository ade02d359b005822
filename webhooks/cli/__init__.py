"""The admins' commands: ``python -m ambient.webhooks.cli.keys`` (ingress keys) and
``python -m ambient.webhooks.cli.deliveries`` (the delivery log: list, show, replay)."""
