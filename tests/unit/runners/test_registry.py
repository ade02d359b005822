"""The runner registry: the shipped file, lookups and their error messages."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from ambient.runners.registry import (
    DEFAULT_REGISTRY_FILE,
    Registry,
    UnknownFrameworkError,
    check,
    load,
    resolve,
)

SHIPPED = {"claude-code", "script", "langgraph", "crewai", "agno", "n8n"}


def test_shipped_registry_loads(registry: Registry) -> None:
    assert DEFAULT_REGISTRY_FILE.name == "registry.yaml" and DEFAULT_REGISTRY_FILE.exists()
    assert set(registry.frameworks) >= SHIPPED
    assert registry.defaults.timeout_seconds == 3600
    for name, entry in registry.frameworks.items():
        assert entry.default_version in entry.versions, name
        for version in entry.versions.values():
            assert "/" in version.image and ":" in version.image, "tagged, host-less images"


@pytest.mark.parametrize("framework", sorted(SHIPPED))
def test_every_shipped_framework_resolves(registry: Registry, framework: str) -> None:
    runner = resolve(registry, framework)
    assert runner.framework == framework
    assert runner.command[0] == "ambient-runner"
    assert runner.timeout_seconds == 3600
    assert runner.resources.limits["memory"] == "2Gi"


@pytest.mark.parametrize("version", ["latest", ""])
def test_latest_is_the_default_version(registry: Registry, version: str) -> None:
    runner = resolve(registry, "langgraph", version)
    assert runner.version == "1.2.22"
    assert runner.image == "ambient/runner-langgraph:0.2.0"
    assert resolve(registry, "langgraph", "1.2.22") == runner


def test_unknown_type_lists_known_types(registry: Registry) -> None:
    with pytest.raises(UnknownFrameworkError) as info:
        resolve(registry, "autogen")
    message = str(info.value)
    assert "'autogen'" in message
    for name in SHIPPED:
        assert name in message
    assert isinstance(info.value, LookupError)


def test_unknown_version_lists_known_versions(registry: Registry) -> None:
    with pytest.raises(UnknownFrameworkError) as info:
        resolve(registry, "crewai", "9.9")
    message = str(info.value)
    assert "'crewai'" in message and "'9.9'" in message
    assert "known: 1.15.30" in message


def test_check_refuses_exactly_what_resolve_refuses(registry: Registry) -> None:
    check(registry, "crewai")
    check(registry, "langgraph", "1.2.22")
    # The versions of years ago are gone: a Session that names one is refused.
    with pytest.raises(UnknownFrameworkError, match=r"known: 1\.2\.22"):
        check(registry, "langgraph", "0.2")
    for framework, version in (("autogen", "latest"), ("crewai", "9.9")):
        with pytest.raises(UnknownFrameworkError) as checked:
            check(registry, framework, version)
        with pytest.raises(UnknownFrameworkError) as resolved:
            resolve(registry, framework, version)
        assert str(checked.value) == str(resolved.value)


def _registry(image: str) -> Registry:
    return Registry.model_validate(
        {
            "frameworks": {
                "x": {"defaultVersion": "1", "versions": {"1": {"image": image, "command": ["r"]}}}
            }
        }
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ambient/runner-script:0.1.0", "registry.example.com/team/ambient/runner-script:0.1.0"),
        ("ghcr.io/acme/runner:1", "ghcr.io/acme/runner:1"),
        ("registry.example.com/ambient/r:1", "registry.example.com/ambient/r:1"),
    ],
)
def test_image_prefix_only_for_hostless_images(image: str, expected: str) -> None:
    runner = resolve(_registry(image), "x", image_prefix="registry.example.com/team/")
    assert runner.image == expected


def test_no_prefix_leaves_images_alone(registry: Registry) -> None:
    assert resolve(registry, "script").image == "ambient/runner-script:0.1.0"


@pytest.mark.parametrize("image", ["localhost:5000/ambient/r:1", "localhost/ambient/r:1"])
def test_image_prefix_recognises_localhost_registries(image: str) -> None:
    runner = resolve(_registry(image), "x", image_prefix="registry.example.com")
    assert runner.image == image


def test_image_prefix_applies_to_single_component_images() -> None:
    runner = resolve(_registry("python:3.12"), "x", image_prefix="registry.example.com")
    assert runner.image == "registry.example.com/python:3.12"


def test_version_timeout_overrides_default() -> None:
    registry = Registry.model_validate(
        {
            "frameworks": {
                "x": {
                    "defaultVersion": "1",
                    "versions": {
                        "1": {
                            "image": "a/b:1",
                            "command": ["r"],
                            "timeoutSeconds": 60,
                            "resources": {"limits": {"cpu": "1"}},
                        }
                    },
                }
            },
            "defaults": {"timeoutSeconds": 99},
        }
    )
    runner = resolve(registry, "x")
    assert runner.timeout_seconds == 60
    assert runner.resources.limits == {"cpu": "1"}


def test_bad_registry_file_fails_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "registry.yaml"
    bad.write_text("frameworks:\n  x:\n    defaultVersion: '1'\n    versions: {}\n")
    with pytest.raises(pydantic.ValidationError):
        load(bad)
    bad.write_text(
        "frameworks:\n  x:\n    defaultVersion: '1'\n    imagee: typo\n    versions:\n"
        "      '1': {image: a/b, command: [r]}\n"
    )
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        load(bad)
