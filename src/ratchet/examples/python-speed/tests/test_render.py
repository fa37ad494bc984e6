"""minitemplate's unit tests: the `tests` guard. A faster renderer must still pass all of them.

Frozen (the harness): a candidate that changes a test is refused before it runs.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from minitemplate import TemplateError, render


def test_text_and_variables() -> None:
    assert render("Hello, {{ name }}!", {"name": "Ada"}) == "Hello, Ada!"
    assert render("{{name}}{{ name }}", {"name": "x"}) == "xx"
    assert render("{{ first }} {{ last }}", {"first": "Ada", "last": "Lovelace"}) == "Ada Lovelace"
    assert render("no tags at all", {}) == "no tags at all"


def test_whitespace_and_braces_are_kept() -> None:
    source = "  two  spaces,\n\ta tab, a { brace } and {x}\n"
    assert render(source, {}) == source


def test_dotted_names_reach_into_dicts_and_attributes() -> None:
    context = {"user": {"name": "Ada", "team": SimpleNamespace(title="Engines")}}
    assert render("{{ user.name }} / {{ user.team.title }}", context) == "Ada / Engines"
    assert render("[{{ missing }}][{{ user.nothing.deeper }}]", context) == "[][]"


def test_filters_chain_left_to_right() -> None:
    assert render("{{ name|upper }}", {"name": "ada"}) == "ADA"
    assert render("{{ name | strip | title }}", {"name": "  ada lovelace "}) == "Ada Lovelace"
    assert render("{{ items|length }}", {"items": [1, 2, 3]}) == "3"


def test_escape_filter() -> None:
    assert render("{{ html|escape }}", {"html": '<a href="x">&</a>'}) == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"


def test_for_loops_nest_and_shadow() -> None:
    source = "{% for row in rows %}[{% for x in row %}{{ x }}{% endfor %}]{% endfor %}"
    assert render(source, {"rows": [[1, 2], [], [3]]}) == "[12][][3]"
    assert render("{% for x in xs %}{{ x }}{% endfor %}{{ x }}", {"xs": [1, 2], "x": "out"}) == "12out"
    assert render("{% for x in nothing %}never{% endfor %}", {}) == ""


def test_if_else() -> None:
    source = "{% if admin %}admin{% else %}user{% endif %}:{% if items %}{{ items|length }}{% endif %}"
    assert render(source, {"admin": True, "items": [1]}) == "admin:1"
    assert render(source, {"admin": False, "items": []}) == "user:"


@pytest.mark.parametrize(
    "source", ["{{ name", "{% if x %}open", "{% endfor %}", "{% while x %}{% endwhile %}", "{{ x|shout }}"]
)
def test_malformed_templates_raise(source: str) -> None:
    with pytest.raises(TemplateError):
        render(source, {"x": 1})
