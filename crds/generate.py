"""Generate the CRD YAML from the pydantic models (the models are the source of truth).

``python -m ambient.crds.generate`` writes the files; ``--check`` exits 1 when the
committed files differ from what the models produce.

Pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: every node
typed, no ``$ref``, no ``anyOf`` that introduces types, no ``title``. ``structural`` does
that conversion as a pure function so it can be tested on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ambient.crds.models import (
    GROUP,
    SESSION_RULES,
    VERSION,
    NamespacePolicySpec,
    NamespacePolicyStatus,
    SessionSpec,
    SessionStatus,
)

HERE = Path(__file__).resolve().parent

_DROP = {"title", "examples", "$defs"}
_PRESERVE = "x-kubernetes-preserve-unknown-fields"


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a $ref, letting the referring node's own keys (its description) win."""
    out = dict(node)
    ref = out.pop("$ref", None)
    if ref is None:
        return out
    target = dict(defs[ref.rsplit("/", 1)[-1]])
    target.update(out)
    return _resolve(target, defs)


def structural(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        branches = [b for b in any_of if b.get("type") != "null"]
        if node.get(_PRESERVE) or len(branches) != 1:
            # A union of several types (string or list) cannot be structural; the field
            # keeps its description and validations and preserves what it is given.
            node[_PRESERVE] = True
        else:
            merged = _resolve(branches[0], defs)
            merged.update({k: v for k, v in node.items() if k != "default"})
            node = merged
    if node.get("default") is None or isinstance(node.get("default"), dict | list):
        node.pop("default", None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out[_PRESERVE] = True
            elif value is not False:
                out["additionalProperties"] = structural(value, defs)
        else:
            out[key] = value
    if out.get(_PRESERVE) and "type" not in out and "properties" not in out:
        return out
    if "properties" in out or _PRESERVE in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    description: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    spec_required: bool,
    selectable: tuple[str, ...] = (),
    rules: list[Any] | None = None,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string", "description": "API version: ambient.ai/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind: {kind}."},
            # A name is at most 253 characters anyway; saying so bounds the cost of the
            # root-level CEL rules that read it.
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 253}},
            },
            "spec": model_schema(spec),
            "status": model_schema(status),
        },
    }
    if spec_required:
        root["required"] = ["spec"]
    if rules:
        root["x-kubernetes-validations"] = rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "ambient"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["ambient"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    **(
                        {"selectableFields": [{"jsonPath": p} for p in selectable]}
                        if selectable
                        else {}
                    ),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def session_crd() -> dict[str, Any]:
    """The Session CRD."""
    return _crd(
        kind="Session",
        plural="sessions",
        short_names=["sess"],
        description=(
            "A Session is a durable, policy-checked, auditable unit of agentic work: what "
            "triggered it, which framework runs it, under which constraints, and an "
            "append-only history of what happened."
        ),
        spec=SessionSpec,
        status=SessionStatus,
        spec_required=True,
        rules=SESSION_RULES,
        # `kubectl get sessions --field-selector status.phase=Running` (and cheap lists).
        selectable=(
            ".status.phase",
            ".status.reason",
            ".spec.framework.type",
            ".spec.trigger.source",
        ),
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            {"name": "Framework", "type": "string", "jsonPath": ".spec.framework.type"},
            {"name": "Source", "type": "string", "jsonPath": ".spec.trigger.source"},
            {"name": "Event", "type": "string", "jsonPath": ".spec.trigger.event", "priority": 1},
            {
                "name": "Job",
                "type": "string",
                "jsonPath": ".status.workload.jobName",
                "priority": 1,
            },
            # The newest entry's seq: the whole trail (archived entries included) holds
            # one more than this, however many are still in the object.
            {
                "name": "LastSeq",
                "type": "integer",
                "jsonPath": ".status.history[-1:].seq",
                "priority": 1,
                "description": "seq of the newest history entry; the full trail, archived "
                "entries included, has one more entry than this",
            },
            _age(),
        ],
    )


def policy_crd() -> dict[str, Any]:
    """The NamespacePolicy CRD."""
    return _crd(
        kind="NamespacePolicy",
        plural="namespacepolicies",
        short_names=["nspol", "nsp"],
        description=(
            "A NamespacePolicy sets what Sessions in its namespace may do: models and "
            "monthly budget, tools, approval, retention, notifications and ingress keys. "
            "One per namespace."
        ),
        spec=NamespacePolicySpec,
        status=NamespacePolicyStatus,
        spec_required=False,
        columns=[
            {"name": "Models", "type": "string", "jsonPath": ".spec.models.allowed"},
            {"name": "Budget", "type": "string", "jsonPath": ".spec.models.budget.monthly"},
            {"name": "Currency", "type": "string", "jsonPath": ".spec.models.budget.currency"},
            {"name": "Spent", "type": "string", "jsonPath": ".status.monthToDateSpend"},
            {"name": "Running", "type": "integer", "jsonPath": ".status.runningSessions"},
            {"name": "Max", "type": "integer", "jsonPath": ".spec.maxConcurrentSessions"},
            {"name": "Approval", "type": "boolean", "jsonPath": ".spec.approval.required"},
            _age(),
        ],
    )


def rendered() -> dict[Path, str]:
    """Every CRD file and its content."""
    header = "# Generated from crds/models.py by `make crds`. Do not edit.\n"
    out: dict[Path, str] = {}
    for crd in (session_crd(), policy_crd()):
        name = crd["metadata"]["name"]
        group_first = f"{GROUP}_{name.split('.', 1)[0]}.yaml"
        out[HERE / group_first] = header + yaml.safe_dump(crd, sort_keys=False, width=100)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the CRD files, or with --check report drift."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files drift")
    args = parser.parse_args(argv)
    drift = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(path.name)
        else:
            path.write_text(text)
            sys.stdout.write(f"wrote {path}\n")
    if drift:
        sys.stderr.write(
            f"CRD YAML out of date with crds/models.py: {', '.join(drift)}. Run `make crds`.\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
