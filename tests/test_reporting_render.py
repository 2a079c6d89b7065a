"""Rendering pieces of the reports: Markdown with maths never linked,
headline statistics against numpy/scipy, verdict counts, readable figure axes, PNG + SVG + alt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from modgen_bench.reporting import (
    Headline,
    Section,
    auto_yscale,
    gate_vs_monolith_headline,
    paired_differences,
    render_markdown,
    save_figure,
    verdict_headline,
    write_report,
)


@pytest.mark.parametrize("maths", ["E[k](x)", "P_k[A](B)", "max_k E[k](x) / pi(x)", "g[x](k)"])
def test_glued_brackets_are_maths_not_links(maths):
    html = render_markdown(f"Lemma: {maths} <= 1.")
    assert "<a " not in html and maths.replace("<", "&lt;") in html


def test_markdown_renders_emphasis_lists_code_and_real_links():
    html = render_markdown(
        "**holds** on `E[k](x)`\n\n- one\n- two\n\nsee [the file](a.json) <b>x</b>"
    )
    assert "<strong>holds</strong>" in html and "<code>E[k](x)</code>" in html
    assert html.count("<li>") == 2 and '<a href="./a.json">the file</a>' in html
    assert "<b>" not in html and "**" not in html and "`" not in html


@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=8),
    st.integers(0, 3),
)
def test_paired_differences_match_scipy(pairs, shift):
    """mean, s.e. and the 95% t-interval of gate - mono per mixture, against scipy.stats.t."""
    rows = []
    for seed, (a, b) in enumerate(pairs):
        for lam, off in (("0.2,0.8", 0.0), ("0.7,0.3", float(shift))):
            rows += [
                {"method": "gate", "seed": seed, "lam": lam, "value": a + off},
                {"method": "mono", "seed": seed, "lam": lam, "value": b},
            ]
    got = paired_differences(pd.DataFrame(rows), "gate", "mono").set_index("lam")
    for lam, off in (("0.2,0.8", 0.0), ("0.7,0.3", float(shift))):
        d = np.array([a + off - b for a, b in pairs])
        r = got.loc[lam]
        assert r["n"] == len(d) and r["mean"] == pytest.approx(d.mean(), abs=1e-9)
        if len(d) >= 2 and d.std(ddof=1) > 0:
            lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
            assert (r["lo"], r["hi"]) == pytest.approx((lo, hi), abs=1e-9)
            want = "a better" if hi < 0 else ("b better" if lo > 0 else "undecided")
            assert r["decision"] == want
        if len(d) < 2:
            assert r["decision"] == "undecided"  # one seed never decides
    assert got.loc["0.7,0.3", "x"] == pytest.approx(0.7)


def test_gate_vs_monolith_headline_names_each_mixture(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        for lam, gap in (("0,1", -1.0), ("0.5,0.5", 0.0), ("1,0", 1.0)):
            noise = 0.01 * rng.standard_normal()
            rows += [
                {
                    "method": "gate-kl",
                    "seed": seed,
                    "lam": lam,
                    "metric": "kl",
                    "value": 2 + gap + noise,
                },
                {"method": "mono-d16", "seed": seed, "lam": lam, "metric": "kl", "value": 2.0},
            ]
    h = gate_vs_monolith_headline(pd.DataFrame(rows), "gate-kl", "mono-d16", tmp_path, "kl")
    assert "gate better at lam_0 = 0;" in h.text and "monolith better at lam_0 = 1;" in h.text
    assert "undecided at lam_0 = 0.5." in h.text
    assert h.figure.path.is_file() and h.figure.path.with_suffix(".svg").is_file()
    assert "0,1" in h.figure.alt and h.tone == "bad"
    h2 = gate_vs_monolith_headline(
        pd.DataFrame(rows), "gate-kl", "mono-d16", tmp_path, "kl", title="case 2"
    )
    assert h2.figure.path != h.figure.path  # two boxes never share (overwrite) one figure file


def test_verdict_counts_and_tone():
    h = verdict_headline(["holds", "fails", "holds", "vacuous"], failing=["lemma1: x"])
    assert h.counts == {"holds": 2, "fails": 1, "vacuous": 1} and h.tone == "bad"
    assert "- lemma1: x" in h.text
    assert verdict_headline(["holds"]).tone == "ok"


def test_auto_yscale_linear_below_a_decade():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert auto_yscale(ax, [0.58, 0.76]) == "linear"  # a successor NLL range
    assert auto_yscale(ax, [1e-4, 0.5]) == "log"
    assert auto_yscale(ax, [0.0, 0.5]) == "linear"
    plt.close(fig)


def test_report_page_has_headline_details_links_and_alt(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.6, 0.7])
    png = save_figure(fig, tmp_path / "figures" / "curve", alt="a line from 0.6 to 0.7")
    (tmp_path / "results.csv").write_text("a\n1\n")
    (tmp_path / "counterexamples").mkdir()
    (tmp_path / "counterexamples" / "lemma1.json").write_text("{}")
    h = Headline("Verdicts", "2 verdicts", counts={"holds": 1, "fails": 1}, tone="bad")
    write_report(
        tmp_path,
        "T",
        [Section("S", "text with **bold**", figures=[("a curve", png)])],
        [{"versions": {"numpy": "x"}, "git_commit": "abc"}],
        headlines=[h],
    )
    page = (tmp_path / "index.html").read_text()
    assert '<span class="badge fails">1 fails</span>' in page
    assert 'alt="a line from 0.6 to 0.7"' in page and 'href="./figures/curve.svg"' in page
    assert 'href="./results.csv"' in page and 'href="./counterexamples/lemma1.json"' in page
    assert 'href="../index.html"' in page and "<strong>bold</strong>" in page
    before_details = page.split("<details><summary>full provenance")[0]
    assert '"versions"' not in before_details  # raw JSON only inside <details>


def test_auto_headline_pairs_replicates_and_prefers_the_uniform_monolith(tmp_path):
    from modgen_bench.reporting.headline import auto_headline

    rows = []
    for seed in range(2):
        for resample in range(2):
            for lam in ("1,0,0", "0.3333,0.3333,0.3333"):
                for method, v in (
                    ("gate_excess", 1.0),
                    ("gate_excess_logZ", 9.0),
                    ("mono_lamstar", 0.0),
                    ("mono_uniform", 2.0),
                ):
                    rows.append(
                        {
                            "method": method,
                            "seed": seed,
                            "resample": resample,
                            "lam": lam,
                            "metric": "nll_per_token",
                            "value": v + 0.01 * (seed + 2 * resample),
                        }
                    )
    h = auto_headline(pd.DataFrame(rows), tmp_path)
    assert h.title == "gate_excess vs mono_uniform" and "paired on seed x resample" in h.text
    assert (
        "over 4 replicates" in h.text
        and "gate better at lam = `0.3333,0.3333,0.3333`; lam = `1,0,0`" in h.text
    )
    assert "Chosen automatically" in h.text
    assert (
        auto_headline(
            pd.DataFrame(rows).query("method != 'mono_uniform' and method != 'mono_lamstar'"),
            tmp_path,
        )
        is None
    )


def test_table_headers_may_wrap_at_underscores_and_stay_escaped(tmp_path):
    from modgen_bench.reporting.report import breakable

    assert str(breakable("compute_ratio")) == "compute_<wbr>ratio"
    assert str(breakable("<b>x_y</b>")) == "&lt;b&gt;x_<wbr>y&lt;/b&gt;"
    _, html = write_report(
        tmp_path, "t", [Section("s", "", tables=[("c", pd.DataFrame({"<i>a_b": ["c_d"]}))])], [{}]
    )
    page = html.read_text()
    assert "<th>&lt;i&gt;a_<wbr>b</th>" in page and "<td>c_d</td>" in page
