"""Report prose from templates (`modgen_bench.reporting.prose`): paragraphs unwrapped to one line,
values inserted as they are, every argument required."""

from __future__ import annotations

import jinja2
import pytest

from modgen_bench.reporting.prose import prose, unwrap


def test_unwrap_joins_the_lines_of_a_paragraph_and_keeps_paragraphs_apart():
    src = "  first line\n   second line  \n\n\tnext paragraph\n  goes on\n"
    assert unwrap(src) == "first line second line\n\nnext paragraph goes on"


def test_whitespace_control_joins_a_sentence_without_a_space(tmp_path):
    (tmp_path / "t.md.j2").write_text(
        "{% macro m(n, extra) %}\nThere are {{ n | f(',.0f') }}\nitems.\n"
        "{%- if extra %} Also {{ extra }}.{% endif %}\n{% endmacro %}\n"
    )
    assert prose("t.md.j2", "m", tmp_path, n=12345.0, extra=None) == "There are 12,345 items."
    assert prose("t.md.j2", "m", tmp_path, n=2, extra="<b>") == "There are 2 items. Also <b>."


def test_a_missing_or_unknown_argument_is_an_error(tmp_path):
    (tmp_path / "t.md.j2").write_text("{% macro m(n) %}n = {{ n }}{% endmacro %}")
    with pytest.raises(jinja2.UndefinedError):
        prose("t.md.j2", "m", tmp_path)
    with pytest.raises(TypeError):
        prose("t.md.j2", "m", tmp_path, n=1, m=2)


@pytest.mark.parametrize(
    "macro, values, expected_end",
    [
        (
            "headline",
            dict(
                match="params",
                r=0.5,
                compute_ratio=1.0,
                token_ratio=2.0,
                params_ratio=float("nan"),
                covered=3,
                gates=4,
                const_vs_mono=None,
            ),
            "holds 1 for 3 of 4 gates.",
        ),
        (
            "headline",
            dict(
                match="params",
                r=0.5,
                compute_ratio=1.0,
                token_ratio=2.0,
                params_ratio=1.0,
                covered=3,
                gates=4,
                const_vs_mono="a better on 1",
            ),
            "gates. Constant 1/p gate vs the monolith: a better on 1.",
        ),
        (
            "setup",
            dict(
                experts_plus_gate=1234567,
                expert=1000,
                gate=10,
                mono=2000,
                d_model=32,
                steps=float("nan"),
                match="compute",
                bytes=True,
            ),
            "mean over replicates).",
        ),
        ("tables", dict(wins=None), "reported per domain below."),
        ("tables", dict(wins=["x", "y"]), "reported per domain below."),
        (
            "conflict",
            dict(verdict="more", gate=-0.25, mono=0.125),
            "which this metric cannot show.",
        ),
    ],
)
def test_real_text_prose_is_one_line_with_single_spaces(macro, values, expected_end):
    text = prose("real_text.md.j2", macro, **values)
    assert "\n" not in text and "  " not in text and text.endswith(expected_end)
    if macro == "setup":
        assert "hold 1,234,567 parameters" in text and "nan steps" in text
        assert "bits per byte = NLL / ln 2. Replicates:" in text
    if macro == "tables" and values["wins"]:
        assert "independently). x; y. Cross-entropy" in text
    if macro == "tables" and not values["wins"]:
        assert "independently). Cross-entropy" in text
    if macro == "conflict":
        assert "(-0.250 vs +0.125)" in text
