#!/usr/bin/env python3
"""Start, stop and inspect a real local Kubernetes control plane on loopback.

    python hack/cluster.py up            # idempotent; last stdout line is the kubeconfig
    python hack/cluster.py status        # exit 0 when up
    python hack/cluster.py kubeconfig    # the admin kubeconfig path
    python hack/cluster.py bin kubectl   # the path of a built binary
    python hack/cluster.py down [--purge]

The work is done by the package in hack/controlplane/ (its __init__ says which module does
what; settings.py lists the environment variables). Run as a script, this file's folder is
first on sys.path, so the package imports without installing anything.
"""

from __future__ import annotations

import sys

from controlplane.cli import main

if __name__ == "__main__":
    sys.exit(main())
