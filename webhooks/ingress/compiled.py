"""Route filters (CEL) and templates (Jinja2, sandboxed), compiled once per text. Pure.

A NamespacePolicy's routes are compiled when the policy is indexed (``keyindex``) and when
it is written (the admission webhook refuses what does not compile); a delivery only runs
what was compiled. Compilation is cached by the expression's text, so a re-list of
unchanged policies compiles nothing.

The CEL library is ``common-expression-language`` (the Rust interpreter): evaluating a
compiled filter takes microseconds, where the pure-Python ``cel-python`` takes
milliseconds per filter on a GitHub payload; what costs in either is turning the payload
into CEL values (about 5 ms for a pull_request payload), so a filter is given only the
parts of ``body`` it names (``Filter.project``). Neither library bounds the cost of one
evaluation, so the bound is in the expression: its length (the CRD's maxLength) and at
most ``MAX_COMPREHENSIONS`` comprehension macros, over a payload whose size is bounded by
the ingress's body limit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cel
import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ambient.crds.models import MAX_ROUTE_FILTER, MAX_ROUTE_TEMPLATE

VARIABLES = frozenset({"body", "headers", "event", "source"})
"""What a filter and a template see: the payload, the request's headers (lower-case
names), the event (with its action) and the source."""
MAX_COMPREHENSIONS = 3
"""Comprehension macros (all, exists, exists_one, map, filter) one filter may use."""
MAX_RENDERED = 16 * 1024
"""The longest rendered task or config value: longer output is refused, not cut."""

# The core functions of the Rust interpreter (no Python callbacks: none is registered).
# A filter calling anything else cannot work, so it is refused when the policy is written.
_FUNCTIONS = frozenset(
    {
        "size", "has", "all", "exists", "exists_one", "map", "filter", "int", "uint",
        "double", "string", "bytes", "bool", "timestamp", "duration", "dyn", "type",
        "contains", "startsWith", "endsWith", "matches", "max", "min",
        "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate",
        "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_COMPREHENSION = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*\(")
# body followed by static selectors (.name, ["name"]); a selector followed by "(" is a
# method call on what precedes it, not a field.
_BODY_PATH = re.compile(
    r"(?<![\w.])body((?:\s*\.\s*[A-Za-z_]\w*(?!\w)(?!\s*\()|\s*\[\s*\"[^\"\\]*\"\s*\])*)"
)
_SELECTOR = re.compile(r"\.\s*([A-Za-z_]\w*)|\[\s*\"([^\"\\]*)\"\s*\]")


class CompileError(ValueError):
    """A filter or template that cannot be used; the message says why."""


@dataclass(frozen=True)
class Filter:
    """A compiled CEL filter."""

    text: str
    program: cel.Program
    paths: tuple[tuple[str, ...], ...] | None
    """The parts of body the expression names, or None when it may read any of it."""

    def project(self, body: Mapping[str, Any]) -> Any:
        """``body`` cut to the parts this filter names: the same values on every path it
        can read, and the payload's other parts never converted to CEL."""
        return body if self.paths is None else _project(body, self.paths)

    def matches(
        self, body: Mapping[str, Any], headers: Mapping[str, str], event: str, source: str
    ) -> bool:
        """True when the filter holds; raises FilterError when it cannot be evaluated
        (a missing field, a wrong type) or is not a bool."""
        return self.holds(Inputs((self,), body, headers, event, source))

    def holds(self, inputs: Inputs) -> bool:
        """``matches`` on inputs shared by the filters of one delivery."""
        try:
            value = self.program.execute(inputs.context())
        except Exception as exc:  # the library raises KeyError, TypeError, RuntimeError, ...
            raise FilterError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
        if not isinstance(value, bool):
            raise FilterError(f"the filter gave {type(value).__name__}, not a bool")
        return value


class Inputs:
    """One delivery's variables for the filters that may run on it, turned into CEL values
    once (on first use) and shared: the payload cut to the union of the parts they name."""

    def __init__(
        self,
        filters: Sequence[Filter],
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        event: str,
        source: str,
    ) -> None:
        self._filters = filters
        self._values = (body, headers, event, source)
        self._context: cel.Context | None = None

    def context(self) -> cel.Context:
        if self._context is None:
            body, headers, event, source = self._values
            paths: list[tuple[str, ...]] = []
            for flt in self._filters:
                if flt.paths is None:
                    break
                paths.extend(flt.paths)
            else:
                body = _project(body, _shortest(paths))
            context = cel.Context()
            context.update(
                {"body": body, "headers": dict(headers), "event": event, "source": source}
            )
            self._context = context
        return self._context


class FilterError(ValueError):
    """A filter that could not be evaluated on this delivery."""


def _project(body: Mapping[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        _copy_path(body, out, path)
    return out


def _copy_path(src: Any, dst: dict[str, Any], path: tuple[str, ...]) -> None:
    for i, key in enumerate(path):
        if not isinstance(src, Mapping) or key not in src:
            return  # absent here, absent in the projection: the same answer from CEL
        if i == len(path) - 1:
            dst[key] = src[key]
            return
        src = src[key]
        if not isinstance(src, Mapping):
            dst[key] = src  # not a map: CEL fails (or has() answers) as on the payload
            return
        nxt = dst.get(key)
        if not isinstance(nxt, dict):
            nxt = dst[key] = {}
        dst = nxt


def _body_paths(text: str) -> tuple[tuple[str, ...], ...] | None:
    paths: list[tuple[str, ...]] = []
    for match in _BODY_PATH.finditer(text):
        path = tuple(a or b for a, b in _SELECTOR.findall(match.group(1)))
        if not path:
            return None  # body used whole (or under a dynamic index): give all of it
        paths.append(path)
    return _shortest(paths)


def _shortest(paths: Sequence[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """The paths without those another one covers (a prefix covers what is under it)."""
    out: list[tuple[str, ...]] = []
    for path in sorted(set(paths), key=lambda p: (len(p), p)):
        if not any(path[: len(p)] == p for p in out):
            out.append(path)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def compile_filter(text: str) -> Filter:
    """Compile a CEL filter; raises CompileError with the reason."""
    if len(text) > MAX_ROUTE_FILTER:
        raise CompileError(f"the filter is longer than {MAX_ROUTE_FILTER} characters")
    try:
        program = cel.compile(text)
    except Exception as exc:
        raise CompileError(f"the filter is not valid CEL: {_first_line(exc)}") from exc
    refs = program.references()
    unknown = sorted(
        f
        for f in refs.get("functions", [])
        if f[0].isalpha() and f not in _FUNCTIONS and f.split(".")[0] not in _FUNCTIONS
    )
    if unknown:
        raise CompileError(f"the filter calls unknown functions: {', '.join(unknown)}")
    bound = set(re.findall(r"\(\s*([A-Za-z_]\w*)\s*,", text))  # comprehension variables
    names = sorted(set(refs.get("variables", [])) - VARIABLES - bound)
    if names:
        raise CompileError(
            f"the filter names {', '.join(names)}: a filter sees body, headers, event and source"
        )
    if len(_COMPREHENSION.findall(text)) > MAX_COMPREHENSIONS:
        raise CompileError(
            f"the filter uses more than {MAX_COMPREHENSIONS} comprehensions "
            "(all, exists, exists_one, map, filter): its cost would have no bound"
        )
    return Filter(text, program, _body_paths(text))


MAX_REPEAT = 10_000
"""The most a template may repeat a string or list with * (or raise a number with **)."""


class _Env(SandboxedEnvironment):
    """The sandbox: no attribute starting with _, no unsafe callables (Jinja2's rules),
    an undefined value is an error (StrictUndefined), and no loader (no file is read).
    Its cost is bounded too: ranges by Jinja2's MAX_RANGE; no number over MAX_REPEAT or
    format width of 5 digits where it sizes the output (* and ** on sequences, %,
    str.ljust and its kin, the filters that take a width); no loop inside a loop
    (``compile_template``)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _bounded(operator, left)  # the format's widths; the values may be any size
        elif operator == "**":
            big = [v for v in (left, right) if isinstance(v, int) and v.bit_length() > 64]
            if big or (isinstance(right, int) and right > 64):
                raise SecurityError("** beyond 64-bit numbers or exponents over 64 is not allowed")
        elif isinstance(left, (str, list, tuple)):
            _bounded(operator, right)
        elif isinstance(right, (str, list, tuple)):
            _bounded(operator, left)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # noqa: N805 (Jinja2's signature: a keyword may be called "self")
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # range(10**9), "x".ljust(10**9), ...: refused before they allocate.
        name = getattr(__obj, "__name__", "")
        if name in _SIZED:
            _bounded(name, *args, *kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        # "{:>999999999}".format(1): Jinja2 wraps str.format when it is looked up.
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _bounded(value.__name__, value.__self__)
        return wrapped


# Calls whose numbers say how much they make (range's length, a padded width).
_SIZED = frozenset({"range", "ljust", "rjust", "center", "zfill", "expandtabs"})
_WIDE = re.compile(r"[%:][^a-zA-Z%{}]*?\d{5,}")


def _bounded(what: str, *values: Any) -> None:
    """Refuse a number over MAX_REPEAT, or a format string with a width of 5 digits or
    more, as an operand or argument: what could make a template allocate without bound."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_REPEAT:
            raise SecurityError(f"{what} with a number over {MAX_REPEAT} is not allowed")
        if isinstance(value, str) and _WIDE.search(value):
            raise SecurityError(f"{what} with a format width over 4 digits is not allowed")


def _bounded_filter(name: str, fn: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _bounded(name, *args, *kwargs.values())
        return fn(*args, **kwargs)

    return bounded


_ENV = _Env(undefined=jinja2.StrictUndefined, autoescape=False)
# The built-in tasks (tasks.py) render what a payload has: a field it lacks is empty.
_LENIENT = _Env(undefined=jinja2.ChainableUndefined, autoescape=False)
for _env in (_ENV, _LENIENT):
    # The filters that take a width or a format (the others only shorten or reorder).
    for _name in ("center", "indent", "wordwrap", "format"):
        _env.filters[_name] = _bounded_filter(_name, _env.filters[_name])


@dataclass(frozen=True)
class Template:
    """A compiled template of a task text or a config value."""

    text: str
    template: jinja2.Template

    def render(
        self, body: Mapping[str, Any], headers: Mapping[str, str], event: str, source: str
    ) -> str:
        """The rendered text; raises RenderError (an undefined value, a sandbox refusal,
        output past MAX_RENDERED)."""
        try:
            out = self.template.render(body=body, headers=headers, event=event, source=source)
        except Exception as exc:  # UndefinedError, SecurityError, TypeError, ...
            raise RenderError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
        if len(out) > MAX_RENDERED:
            raise RenderError(f"the rendered text is longer than {MAX_RENDERED} characters")
        return out


class RenderError(ValueError):
    """A template that could not be rendered for this delivery."""


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> Template:
    """Compile a template; raises CompileError with the reason."""
    if len(text) > MAX_ROUTE_TEMPLATE:
        raise CompileError(f"the template is longer than {MAX_ROUTE_TEMPLATE} characters")
    try:
        tree = _ENV.parse(text)
        for loop in tree.find_all(nodes.For):
            if any(True for _ in loop.find_all(nodes.For)):
                raise CompileError(
                    "the template has a loop inside a loop: its cost would have no bound"
                )
        return Template(text, _ENV.from_string(tree))
    except jinja2.TemplateSyntaxError as exc:
        raise CompileError(
            f"the template is not valid Jinja: line {exc.lineno}: {exc.message}"
        ) from exc


@functools.lru_cache(maxsize=64)
def compile_built_in(text: str) -> Template:
    """Compile a built-in task (ours, so it compiles), rendered leniently."""
    return Template(text, _LENIENT.from_string(text))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
