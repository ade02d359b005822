"""Filters (CEL) and templates (sandboxed Jinja2): compiled once, bounded, and a filter
given only the parts of the payload it names answers as on the whole payload."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambient.webhooks.ingress import compiled
from ambient.webhooks.ingress.compiled import CompileError, FilterError, RenderError


def test_a_filter_is_compiled_once_per_text() -> None:
    assert compiled.compile_filter("event == 'x'") is compiled.compile_filter("event == 'x'")
    assert compiled.compile_template("{{ event }}") is compiled.compile_template("{{ event }}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("body.x ==", "not valid CEL"),
        ("shell('rm')", "unknown functions: shell"),
        ("secrets.token == 'x'", "names secrets"),
        ("x" * 1025, "longer than 1024"),
        (
            "body.a.all(x, body.b.all(y, body.c.all(z, body.d.all(w, true))))",
            "more than 3 comprehensions",
        ),
    ],
)
def test_bad_filters_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        compiled.compile_filter(text)


def test_filters_see_body_headers_event_and_source() -> None:
    flt = compiled.compile_filter(
        'body.labels.exists(l, l.name == "bug") && headers["x-kind"] == "a" '
        '&& event.startsWith("issues.") && source == "github"'
    )
    body = {"labels": [{"name": "bug"}], "other": "x"}
    assert flt.matches(body, {"x-kind": "a"}, "issues.opened", "github")
    assert not flt.matches(body, {"x-kind": "b"}, "issues.opened", "github")


def test_a_filter_that_is_not_a_bool_or_fails_raises_filter_error() -> None:
    with pytest.raises(FilterError, match="not a bool"):
        compiled.compile_filter("body.n + 1").matches({"n": 1}, {}, "e", "s")
    with pytest.raises(FilterError):
        compiled.compile_filter("body.n.m == 1").matches({}, {}, "e", "s")


def test_a_filter_gets_only_the_paths_it_names() -> None:
    flt = compiled.compile_filter(
        'has(body.a.b) && body["c"].size() > 0 && body.d.exists(x, x == 1)'
    )
    assert flt.paths == (("c",), ("d",), ("a", "b"))
    body = {"a": {"b": 1, "z": 2}, "c": "s", "d": [1], "big": list(range(1000))}
    assert flt.project(body) == {"a": {"b": 1}, "c": "s", "d": [1]}
    assert compiled.compile_filter("size(body) > 1").paths is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=12,
)
_FILTERS = [
    "has(body.a.b)",
    "has(body.a) && body.a == body.b",
    'body.a.b == "a" || has(body.c.a.b)',
    "size(body.b) > 1",
    'has(body.c) && body.c.exists(x, x == "a")',
]


def _answer(flt: compiled.Filter, body: Any) -> Any:
    try:
        return flt.program.execute({"body": body, "headers": {}, "event": "", "source": ""})
    except Exception as exc:
        return type(exc)


@given(st.dictionaries(st.sampled_from("abc"), _JSON), st.sampled_from(_FILTERS))
def test_the_projection_answers_as_the_whole_payload(body: dict[str, Any], text: str) -> None:
    flt = compiled.compile_filter(text)
    assert _answer(flt, flt.project(body)) == _answer(flt, body)


def test_templates_render_strictly_and_in_a_sandbox() -> None:
    tpl = compiled.compile_template("Review {{ body.pr.url }}: {{ body.pr.title | upper }}")
    assert tpl.render({"pr": {"url": "u", "title": "t"}}, {}, "e", "s") == "Review u: T"
    with pytest.raises(RenderError, match="UndefinedError"):
        tpl.render({"pr": {}}, {}, "e", "s")
    sneaky = compiled.compile_template("{{ body.__class__.__mro__ }}")
    with pytest.raises(RenderError):
        sneaky.render({}, {}, "e", "s")
    with pytest.raises(RenderError, match="SecurityError"):
        compiled.compile_template("{{ 'a' * 100000 }}").render({}, {}, "e", "s")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{% for x in body %}", "not valid Jinja"),
        ("{{ x }", "not valid Jinja"),
        ("{% for a in body %}{% for b in body %}{% endfor %}{% endfor %}", "loop inside a loop"),
        ("y" * 4097, "longer than 4096"),
    ],
)
def test_bad_templates_are_refused(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        compiled.compile_template(text)


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' * 100000 }}",
        "{{ 'x'.ljust(100000000) }}",
        "{{ 'x' | center(100000000) }}",
        "{{ '%0100000000d' | format(1) }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ range(100000000) | list }}",
        "{{ (2 ** 60) ** 60 ** 2 }}",
    ],
)
def test_templates_cannot_allocate_without_bound(text: str) -> None:
    # range is Jinja2's own bound (MAX_RANGE), the others ours
    with pytest.raises(RenderError, match=r"SecurityError|Range too big"):
        compiled.compile_template(text).render({}, {}, "e", "s")


def test_small_widths_and_repeats_render() -> None:
    tpl = compiled.compile_template(
        "{{ 'a'.ljust(3) }}|{{ '{:>3}'.format(1) }}|{{ '%03d' % 7 }}|{{ 'ab' * 2 }}|"
        "{{ '#%d' % body.n }}|{{ '{}'.format(body.n) }}|{{ body.n * 2 }}"
    )
    assert tpl.render({"n": 123456}, {}, "e", "s") == "a  |  1|007|abab|#123456|123456|246912"
