"""Plot and table functions of chapters 03 and 07, built from small hand-made evaluate() results
(no model, no judge): the tables hold the right numbers and the figures save readable PNGs."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ssui_lib.book import plots  # noqa: E402
from ssui_lib.core.errors import SSUIError  # noqa: E402
from ssui_lib.core.taxonomy import L1_CATEGORIES  # noqa: E402


def rate(value, lo, hi, n=10, unscored=0):
    return {"value": value, "ci": [lo, hi], "n": n, "unscored": unscored}


def result(s=0.5, e=0.8, se=0.4, paths=True, over=0.25):
    """A result shaped like ssui_lib.eval.evaluate.evaluate's (fractions; null when undefined)."""
    metrics = {"S": rate(s, s - 0.2, min(1.0, s + 0.2)), "E": rate(e, e - 0.1, min(1.0, e + 0.1)),
               "SE": rate(se, se - 0.2, se + 0.2)}
    if paths:
        metrics.update({"SR": rate(0.6, 0.3, 0.9), "ER": rate(0.7, 0.4, 0.9), "SER": rate(None, None, None, n=0)})
    return {"metrics": metrics, "over_refusal": rate(over, 0.0, 0.6, n=4),
            "by_category": {"Violence": {"S": rate(1.0, 1.0, 1.0, n=2), "SER": rate(0.5, 0.0, 1.0, n=2)},
                            "Privacy Violations": {"S": rate(0.0, 0.0, 0.0, n=1)}}}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_rates_long_in_percent_with_nan_for_undefined():
    long = plots.rates_long({"base": result(), "ICL": result(s=0.9)}, ("S", "SE", "SER", "over_refusal"))
    assert list(long.columns) == ["variant", "metric", "value", "lo", "hi", "n", "unscored"]
    assert len(long) == 8
    row = long[(long["variant"] == "ICL") & (long["metric"] == "S")].iloc[0]
    assert row["value"] == pytest.approx(90.0) and row["lo"] == pytest.approx(70.0) and row["hi"] == pytest.approx(100.0)
    assert set(long["metric"]) == {"S", "S&E", "SER", "Over-refusal"}
    ser = long[long["metric"] == "SER"].iloc[0]
    assert math.isnan(ser["value"]) and math.isnan(ser["lo"]) and ser["n"] == 0


def test_rates_long_names_a_missing_metric():
    with pytest.raises(SSUIError, match="'ICL'.*no metric 'SR'"):
        plots.rates_long({"ICL": result(paths=False)}, ("S", "SR"))


def test_rates_table_is_laid_out_like_ssui_table_1():
    t = plots.rates_table({("embedded", "✗"): result(), ("embedded", "✓"): result(s=0.75)},
                          ("S", "E", "SE", "over_refusal"), index_names=("model", "SSUI"))
    assert t.index.names == ["model", "SSUI"]
    assert list(t.columns) == ["S", "E", "S&E", "Over-refusal", "n", "unscored"]
    assert t.loc[("embedded", "✓"), "S"] == "75.0 [55.0, 95.0]"
    assert t.loc[("embedded", "✗"), "Over-refusal"] == "25.0 [0.0, 60.0]"
    assert t.loc[("embedded", "✗"), "n"] == 10
    flat = plots.rates_table({"base": result()}, ("SER",))
    assert flat.loc["base", "SER"] == "n/a"


def test_benchmark_table_one_row_per_variant_and_a_dash_where_not_run():
    t = plots.benchmark_table({("base", "SIUO"): result(), ("base", "VLSBench"): result(se=0.1),
                               ("SRPO", "SIUO"): result(se=0.7)}, ("S", "SE"))
    assert list(t.index) == ["base", "SRPO"]
    assert list(t.columns) == [("SIUO", "S"), ("SIUO", "S&E"), ("SIUO", "n"),
                               ("VLSBench", "S"), ("VLSBench", "S&E"), ("VLSBench", "n")]
    assert t.loc["SRPO", ("SIUO", "S&E")] == "70.0 [50.0, 90.0]"
    assert t.loc["SRPO", ("VLSBench", "S&E")] == "–"
    with pytest.raises(SSUIError, match="variant, benchmark"):
        plots.benchmark_table({"base": result()})


def test_rate_bars_saves_a_labelled_png(tmp_path):
    long = plots.rates_long({"embedded · zero-shot": result(), "embedded · 2-shot": result(s=1.0, se=0.9),
                             "srpo": result()}, ("SR", "ER", "SER"))
    fig = plots.rate_bars(long, title="RSBench", xlabel="variant")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "rate (%)" and ax.get_xlabel() == "variant"
    assert "95%" in ax.get_legend().get_title().get_text()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SR", "ER", "SER"]
    first = ax.get_xticklabels()[0].get_text()
    assert "zero-shot" in first  # never split at a hyphen
    assert "(n = 0–10)" in first  # SR / ER scored 10 paths, the undefined SER none
    assert any(t.get_text() == "n/a" for t in ax.texts)  # the undefined SER is marked, not drawn as 0
    out = plots.savefig(fig, "test", "07_rsbench", root=tmp_path)
    assert out == tmp_path / "figures/test/07_rsbench.png" and out.stat().st_size > 10_000


def test_category_long_lists_every_class_and_heatmap_saves(tmp_path):
    long = plots.category_long({"base": result(), "ICL": result()}, "S")
    assert len(long) == 2 * len(L1_CATEGORIES)
    v = long.set_index(["variant", "category"])
    assert v.loc[("base", "Violence"), "value"] == pytest.approx(100.0) and v.loc[("base", "Violence"), "n"] == 2
    assert math.isnan(v.loc[("base", "Pornography"), "value"]) and v.loc[("base", "Pornography"), "n"] == 0
    fig = plots.category_heatmap(long, metric="S")
    assert fig.axes[0].get_xlabel() == "variant"
    assert fig.axes[1].get_ylabel() == "S (%)"  # the colour bar says what the colour means
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert "100\nn=2" in cells and "–" in cells
    assert plots.savefig(fig, "test", "03_by_category", root=tmp_path).stat().st_size > 10_000


def test_agreement_table_formats_accuracy_and_kappa():
    agr = {"safe": {"accuracy": rate(0.9, 0.8, 1.0), "kappa": rate(0.8, 0.6, 1.0), "n": 20, "unscored": 1},
           "effective": {"accuracy": rate(1.0, 1.0, 1.0), "kappa": rate(float("nan"), float("nan"), float("nan")),
                         "n": 10, "unscored": 0}}
    t = plots.agreement_table(agr)
    assert isinstance(t, pd.DataFrame) and list(t.index) == ["safe", "effective"]
    assert t.loc["safe", "accuracy (%)"] == "90.0 [80.0, 100.0]"
    assert t.loc["safe", "Cohen's κ"] == "0.80 [0.60, 1.00]"
    assert t.loc["effective", "Cohen's κ"] == "undefined"
    assert t.loc["safe", "unscored"] == 1


def test_loss_curves_draw_each_epoch_mean_of_a_multi_epoch_run():
    two = pd.DataFrame({"step": [1, 2, 3, 4], "loss": [4.0, 2.0, 1.0, 1.0], "epoch": [1, 1, 2, 2]})
    one = pd.DataFrame({"step": [1, 2], "loss": [0.7, 0.5], "epoch": [1, 1]})
    fig = plots.loss_curves({"SRPO": two, "DPO": one})
    ax = fig.axes[0]
    bars = [c for c in ax.collections if len(c.get_segments()) == 1]
    means = sorted(c.get_segments()[0][0][1] for c in bars)
    assert means == [1.0, 3.0]  # SRPO's two epochs; DPO has one epoch, so no bar
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SRPO", "DPO", "epoch mean"]
    plt.close(fig)
    fig = plots.loss_curves({"DPO": one})
    assert "epoch mean" not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
