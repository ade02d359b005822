"""Benchmark: what the admission fast path's CEL costs a Session create, per evaluation,
in kube-apiserver's own CEL library, without a cluster.

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_admission_cel.py``).
Prints figures, asserts nothing.

``bench_admission.py`` measures what the fast path costs creates through a real API
server, but on a shared machine its rounds move by several percent, more than one
expression's share. This measures each part alone: ``tests/bench/admission_cel`` is a
small Go program on the control plane version's k8s.io/apiserver (built once, from the
Go module proxy, into ~/.cache/ambient/bin) that compiles the matchConditions the
fast path registers (``registration.registrations``) as the API server compiles them,
and evaluates them for the benchmark's Session create (``bench_admission.session``) the
way it does (the request converted, the object and the NamespacePolicy bound, then each
expression). Printed per part: microseconds per evaluation (median and best of the
repeats; the parts take turns), bytes allocated per evaluation, and both against the
floor measured in the same run: a webhook's or a policy's single ``true`` condition.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_admission import policy, session
from support import go_harness, say

from ambient.runners import registry
from ambient.webhooks.admission.registration import registrations

HARNESS = Path(__file__).resolve().parent / "admission_cel"
NAMESPACE = "bench-adm"
OPERATOR = "system:serviceaccount:ambient-system:ambient-operator"


def created(now: datetime) -> dict[str, Any]:
    """The benchmark's Session as admission sees it: the API server has set its namespace,
    uid, creation time and managed fields."""
    obj = session("r0-0001")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["metadata"].update(
        namespace=NAMESPACE,
        uid="6f1c3c1e-0000-4000-8000-000000000001",
        creationTimestamp=stamp,
        generation=1,
        managedFields=[
            {
                "manager": "bench",
                "operation": "Update",
                "apiVersion": "ambient.ai/v1alpha1",
                "time": stamp,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {".": {}, "f:framework": {}, "f:policy": {}}},
            }
        ],
    )
    return obj


def parts() -> list[dict[str, Any]]:
    """The conditions a Session create meets, as registered, named by what they are; the
    creator's both ways: the MutatingAdmissionPolicy's condition, and the stamping
    webhook's, which creates meet where the API server does not serve that policy."""
    items = registrations(
        b"CA", registry.load(), url="https://x/validate", mutating_policy=True,
        operator_usernames=[OPERATOR],
    )  # fmt: skip
    sets: list[dict[str, Any]] = [
        {"name": "floor: a webhook's condition `true`", "kind": "webhook",
         "conditions": [{"name": "true", "expression": "true"}]},
        {"name": "floor: a policy's condition `true`", "kind": "policy",
         "conditions": [{"name": "true", "expression": "true"}], "variables": []},
    ]  # fmt: skip
    for item in items:
        kind, spec = item["kind"], item.get("spec", {})
        if kind == "ValidatingAdmissionPolicy":
            sets.append({"name": "the policy's rules (its condition)", "kind": "policy",
                         "conditions": spec["matchConditions"],
                         "variables": spec.get("variables", [])})  # fmt: skip
        elif kind == "MutatingAdmissionPolicy":
            sets.append({"name": "the creator policy's condition", "kind": "policy",
                         "conditions": spec["matchConditions"], "variables": []})  # fmt: skip
        elif kind.endswith("WebhookConfiguration"):
            hook = item["webhooks"][0]
            name = (
                "the validating webhook's condition"
                if kind.startswith("Validating")
                else "the stamping webhook's (no creator policy)"
            )
            sets.append({"name": name, "kind": "webhook",
                         "conditions": hook["matchConditions"]})  # fmt: skip
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000, help="evaluations per batch")
    parser.add_argument("--repeats", type=int, default=21, help="batches per part")
    args = parser.parse_args()
    binary = go_harness(HARNESS, "admission-cel")
    now = datetime.now(UTC)
    params = policy()
    params["metadata"]["namespace"] = NAMESPACE
    # The operator records the month's spend: the rules read it.
    params["status"] = {"month": now.strftime("%Y-%m"), "monthToDateSpend": "12.34"}
    body = {
        "object": created(now),
        "params": params,
        "sets": parts(),
        "iterations": args.iterations,
        "repeats": args.repeats,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(body, f)
        f.flush()
        say(f"{len(body['sets'])} condition sets, {args.repeats} batches of {args.iterations}")
        out = subprocess.run([str(binary), f.name], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stdout, out.stderr, file=sys.stderr)
        return 1
    results = json.loads(out.stdout)
    floors = {"webhook": results[0], "policy": results[1]}
    kinds = {s["name"]: s["kind"] for s in body["sets"]}
    print()
    print(f"{'part (a compliant Session create)':44} {'us median':>9} {'us best':>8} "
          f"{'KiB':>6} {'x floor':>8} {'KiB x floor':>11}  matched")  # fmt: skip
    for r in results:
        if r.get("error"):
            print(f"{r['name']:44} error: {r['error']}")
            continue
        floor = floors[kinds[r["name"]]]
        print(
            f"{r['name']:44} {r['median_us']:>9.1f} {r['best_us']:>8.1f} "
            f"{r['alloc_bytes'] / 1024:>6.1f} {r['median_us'] / floor['median_us']:>7.2f}x "
            f"{r['alloc_bytes'] / floor['alloc_bytes']:>10.2f}x  "
            f"{'yes' if r['matches'] else 'no'}"
        )
    by_name = {r["name"]: r for r in results if not r.get("error")}
    rules, validating = "the policy's rules (its condition)", "the validating webhook's condition"
    for creator in ("the creator policy's condition", "the stamping webhook's (no creator policy)"):
        met = [by_name[n] for n in (rules, validating, creator) if n in by_name]
        total = sum(r["median_us"] for r in met)
        floor_total = sum(floors[kinds[r["name"]]]["median_us"] for r in met)
        label = "a create, with the creator " + ("policy" if "policy's" in creator else "webhook")
        print(
            f"{label:44} {total:>9.1f} {'':>8} "
            f"{sum(r['alloc_bytes'] for r in met) / 1024:>6.1f} {total / floor_total:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
