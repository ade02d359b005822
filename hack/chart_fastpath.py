"""Write (or with --check, compare) charts/ambient/files/admission-fastpath.json: the
admission fast path's CEL (webhooks/admission/fastpath.py) for the chart's templates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ambient.webhooks.admission.fastpath import chart_file

TARGET = Path(__file__).resolve().parent.parent / "charts/ambient/files/admission-fastpath.json"


def main() -> int:
    text = json.dumps(chart_file(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run 'make chart-crds'", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
