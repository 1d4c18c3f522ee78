"""paper_tables' summaries on a hand-made result table."""

from __future__ import annotations

import pandas as pd
import pytest

from simlabel.pipelines.paper_tables.nodes import summarise_paper_tables


def _results():
    # Two seeds, two methods, annotators a, b, c; c has no test label in either seed.
    rows = []
    for seed, (skip_a, blend_a) in enumerate([(1, 3), (2, 4)]):
        for method, correct_a in (("skip", skip_a), ("simlabel_blend", blend_a)):
            for annotator, n_test, n_correct in (("a", 4, correct_a), ("b", 2, 1), ("c", 0, 0)):
                rows.append({"architecture": "heads", "r": 0.0, "seed": seed, "method": method,
                             "annotator_id": annotator, "n_test": n_test, "n_correct": n_correct})
    return pd.DataFrame(rows)


def test_macro_means_leave_out_annotators_without_test_labels_and_say_how_many():
    table2, _, _, paired, _, markdown, _ = summarise_paper_tables(_results())
    macro = table2.set_index("method")["macro"]
    # skip: seed 0 (1/4 + 1/2) / 2 = 0.375, seed 1 (2/4 + 1/2) / 2 = 0.5 -> 0.4375; blend: 0.625, 0.75.
    assert macro["skip"] == pytest.approx(0.4375)
    assert macro["simlabel_blend"] == pytest.approx(0.6875)
    row = paired[(paired["method"] == "simlabel_blend") & (paired["vs"] == "skip")].iloc[0]
    assert row["mean_difference"] == pytest.approx(0.25) and row["wins"] == 2
    assert "1 of 3 annotators have none and are left out of the macro means" in markdown


def test_paired_differences_plot_shows_each_reference_with_its_intervals():
    from simlabel.pipelines.paper_tables.nodes import paired_differences_plot

    _, _, _, paired, _, _, _ = summarise_paper_tables(_results())
    figure = paired_differences_plot(paired)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["minus skip"]
    (points,) = panels[0].collections[-1:]  # the scatter of mean differences
    assert points.get_offsets().tolist() == [[0.25, 1.0]]  # simlabel_blend - skip (by hand above), row 1
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["skip", "simlabel_blend"]
    assert "no paired differences" in paired_differences_plot(paired.iloc[0:0]).texts[0].get_text()


def test_every_method_is_paired_against_the_papers_simlabel_too():
    results = _results()
    simlabel = results[results["method"] == "skip"].assign(method="simlabel")
    simlabel.loc[simlabel["annotator_id"] == "a", "n_correct"] = [2, 2]  # seeds 0, 1: a scores 2/4
    _, _, _, paired, _, _, _ = summarise_paper_tables(pd.concat([results, simlabel]))
    assert list(dict.fromkeys(paired["vs"])) == ["skip", "simlabel"]
    row = paired[(paired["method"] == "simlabel_blend") & (paired["vs"] == "simlabel")].iloc[0]
    # blend - simlabel: seed 0 (3/4 - 2/4) / 2 = 0.125, seed 1 (4/4 - 2/4) / 2 = 0.25.
    assert row["mean_difference"] == pytest.approx(0.1875) and row["wins"] == 2
