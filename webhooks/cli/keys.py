"""Key management for admins: python -m ambient.webhooks.cli.keys create|rotate|revoke.

create: a new key replaces any existing ones for the source. rotate: a new key is added
next to the current ones (both work until the old one is revoked with --hash).
revoke: removes one hash (--hash) or every key of the source. The key is printed once;
only its SHA-256 is stored in the NamespacePolicy.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from ambient.webhooks.ingress.keyindex import KEY_SOURCES, hashes_of, key_hash

SOURCES = KEY_SOURCES


def _say(message: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(message + "\n")


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe (it rides in the webhook URL)."""
    return secrets.token_urlsafe(32)


def hashes_after(
    action: str, current: Any, new_hash: str | None, revoke_hash: str | None
) -> list[str]:
    """The hash list after the action. Pure."""
    existing = hashes_of(current)
    if action == "create":
        return [new_hash] if new_hash else []
    if action == "rotate":
        return [*existing, new_hash] if new_hash else existing
    if revoke_hash is None:
        return []
    if revoke_hash.lower() not in existing:
        raise ValueError(f"hash {revoke_hash} is not among this source's keys")
    return [h for h in existing if h != revoke_hash.lower()]


def webhook_url(base_url: str, source: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/{source}/{key}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ambient.webhooks.cli.keys", description=__doc__
    )
    parser.add_argument("action", choices=("create", "rotate", "revoke"))
    parser.add_argument("--namespace", "-n", required=True)
    parser.add_argument("--source", "-s", required=True, choices=SOURCES)
    parser.add_argument(
        "--base-url",
        default="https://ingress.example.com",
        help="public URL of the ingress, to print the URL to paste",
    )
    parser.add_argument("--hash", dest="revoke_hash", help="revoke only this key hash")
    args = parser.parse_args(argv)

    from ambient.webhooks.ingress.sessions_api import SessionsApi  # noqa: PLC0415 - keeps --help fast

    kube = SessionsApi(connections=2)
    policy = kube.read_policy(args.namespace)
    if policy is None:
        _say(
            f"error: namespace {args.namespace} has no NamespacePolicy; create one first",
            err=True,
        )
        return 2
    current = policy.get("spec", {}).get("webhookAuth", {}).get("apiKeys", {}).get(args.source)
    key = new_key() if args.action in ("create", "rotate") else None
    try:
        hashes = hashes_after(
            args.action, current, key_hash(key) if key else None, args.revoke_hash
        )
    except ValueError as exc:
        _say(f"error: {exc}", err=True)
        return 2
    value: Any = None if not hashes else hashes[0] if len(hashes) == 1 else hashes
    meta = policy["metadata"]
    kube.set_key_hashes(args.namespace, meta["name"], args.source, value, meta["resourceVersion"])
    if key is None:
        _say(f"revoked; {len(hashes)} {args.source} key(s) remain in {args.namespace}")
        return 0
    _say(f"{args.source} key for namespace {args.namespace} (shown once, store it now):")
    _say(f"  key:  {key}")
    _say(f"  hash: {key_hash(key)}")
    _say(f"  URL to paste into {args.source}: {webhook_url(args.base_url, args.source, key)}")
    if args.source == "alertmanager":
        # Alertmanager can send the key as a header, which keeps it out of URLs and logs.
        _say(
            f"  or, in Alertmanager's webhook_configs: url: "
            f"{args.base_url.rstrip('/')}/webhooks/alertmanager with "
            "http_config.authorization.credentials set to the key"
        )
    if args.action == "rotate" and len(hashes) > 1:
        _say("  the older key(s) keep working until: revoke --hash <old hash>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
