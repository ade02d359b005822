"""The runner registry: framework type and version → image, command, resources.

It is configuration (runners/registry.yaml, or a ConfigMap the chart mounts), read once at
start-up; ``resolve`` is a pure lookup so that the operator and the admission webhook give
the same answer and the same message.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DEFAULT_REGISTRY_FILE = Path(__file__).resolve().parent / "registry.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Resources(_Model):
    """Container requests and limits, as Kubernetes quantities."""

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class ModelPrice(_Model):
    """What one model costs, per million tokens, in the budgets' currency."""

    input_per_m_tok: str = Field(pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$")
    output_per_m_tok: str = Field(pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$")


class RunnerVersion(_Model):
    """How one version of a framework runs."""

    image: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    timeout_seconds: int | None = Field(default=None, ge=1)
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)
    """The cluster admin's prices by model name, for runners whose framework reports
    tokens but no cost; passed to the runner in its context file. Sessions cannot set it."""


class FrameworkEntry(_Model):
    """A framework type and its versions."""

    description: str = ""
    default_version: str
    versions: dict[str, RunnerVersion] = Field(min_length=1)


class Defaults(_Model):
    """What applies when a version does not say."""

    timeout_seconds: int = Field(default=3600, ge=1)
    resources: Resources = Field(default_factory=Resources)


class Registry(_Model):
    """Every framework the operator can run."""

    frameworks: dict[str, FrameworkEntry]
    defaults: Defaults = Field(default_factory=Defaults)


class ResolvedRunner(_Model):
    """What the operator needs to build a runner Job."""

    framework: str
    version: str
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    resources: Resources
    timeout_seconds: int
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)


class UnknownFrameworkError(LookupError):
    """The Session names a framework type or version the registry does not have."""


def _has_registry_host(image: str) -> bool:
    """Whether an image reference starts with a registry host, as container runtimes read it."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def load(path: Path = DEFAULT_REGISTRY_FILE) -> Registry:
    """Read and validate a registry file; a bad file fails start-up with pydantic's message."""
    return Registry.model_validate(yaml.safe_load(path.read_text()))


def check(registry: Registry, framework: str, version: str = "latest") -> None:
    """What ``resolve`` checks, without building the runner (the admission webhook asks
    this on every Session create): raise UnknownFrameworkError, or return."""
    _lookup(registry, framework, version)


def _lookup(registry: Registry, framework: str, version: str) -> tuple[str, RunnerVersion]:
    entry = registry.frameworks.get(framework)
    if entry is None:
        known = ", ".join(sorted(registry.frameworks))
        raise UnknownFrameworkError(
            f"framework type {framework!r} is not in the runner registry (known: {known})"
        )
    chosen = entry.default_version if version in ("", "latest") else version
    runner = entry.versions.get(chosen)
    if runner is None:
        known = ", ".join(sorted(entry.versions))
        raise UnknownFrameworkError(
            f"framework {framework!r} has no version {chosen!r} in the runner registry "
            f"(known: {known})"
        )
    return chosen, runner


def resolve(
    registry: Registry, framework: str, version: str = "latest", image_prefix: str = ""
) -> ResolvedRunner:
    """Look up a framework; raise UnknownFrameworkError with a message a person can act on."""
    chosen, runner = _lookup(registry, framework, version)
    image = runner.image
    if image_prefix and not _has_registry_host(image):
        image = f"{image_prefix.rstrip('/')}/{image}"
    return ResolvedRunner(
        framework=framework,
        version=chosen,
        image=image,
        command=runner.command,
        args=runner.args,
        env=runner.env,
        # A copy: manifests built from it must never alias the shared registry.
        resources=(runner.resources or registry.defaults.resources).model_copy(deep=True),
        timeout_seconds=runner.timeout_seconds or registry.defaults.timeout_seconds,
        pricing={k: v.model_copy() for k, v in runner.pricing.items()},
    )
