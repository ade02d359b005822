"""ci/production-values.yaml does not block what it enables, nor log what it must not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "ambient"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _values() -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        yaml.safe_load((CHART / "values.yaml").read_text()),
        yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text()),
    )


def nginx_size(text: str) -> int:
    """nginx's size syntax (client_max_body_size): bytes, or k/m/g as powers of 1024."""
    m = re.fullmatch(r"(\d+)([kmg]?)", text.strip().lower())
    assert m, f"not an nginx size: {text!r}"
    return int(m[1]) * _UNITS[m[2]]


def test_nginx_size_parses_like_nginx() -> None:
    assert nginx_size("25m") == 26214400
    assert nginx_size("1m") == 1048576
    assert nginx_size("512k") == 524288
    assert nginx_size("100") == 100


def test_nginx_body_limit_allows_the_largest_stored_payload() -> None:
    defaults, prod = _values()
    assert prod["operator"]["store"]["bucket"], "production values enable the store"
    stored = prod["ingress"].get("maxStoredBodyBytes", defaults["ingress"]["maxStoredBodyBytes"])
    annotations = prod["ingress"]["ingress"]["annotations"]
    limit = nginx_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert limit >= stored, f"nginx refuses bodies above {limit} but the ingress takes {stored}"


def test_public_ingress_does_not_log_urls_that_carry_keys() -> None:
    _, prod = _values()
    ingress = prod["ingress"]["ingress"]
    assert ingress["enabled"] and ingress["tlsSecretName"]
    assert ingress["annotations"]["nginx.ingress.kubernetes.io/enable-access-log"] == "false"
