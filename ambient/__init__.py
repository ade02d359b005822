"""Ambient: agentic work as durable, policy-checked, auditable Kubernetes Sessions.

The repository keeps the design's top-level folders (crds/, common/, operator/, webhooks/,
runners/); they are importable only as ``ambient.<folder>`` so that nothing shadows the
standard library's ``operator`` module. docs/architecture.md draws the layers, follows a
delivery to a Job and back, and numbers the invariants that docstrings cite ("invariant 2").
"""

__version__ = "0.1.0"
