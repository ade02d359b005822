"""Ambient: agentic work as durable, policy-checked, auditable Kubernetes Sessions.

The repository keeps the design's top-level folders (crds/, operator/, webhooks/,
runners/); they are importable only as ``ambient.<folder>`` so that nothing shadows the
standard library's ``operator`` module.
"""

__version__ = "0.1.0"
