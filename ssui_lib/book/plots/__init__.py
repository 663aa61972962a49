"""Figures of the book, styled like a paper's (labelled axes, units, legends, readable PNGs),
saved under ``figures/<profile>/<chapter>_<name>.png`` relative to the book root.

One module per chapter family — style (shared), dataset (02), rates (03, 07), exploration (04),
training (05, 06) — re-exported here: ``from ssui_lib.book import plots; plots.rate_bars(...)``.
"""
from ssui_lib.book.plots.style import (  # noqa: F401
    PALETTE, paper_style, savefig, figure_title, irs_grid, chain_figure,
)
from ssui_lib.book.plots.dataset import (  # noqa: F401
    curation_funnel, category_kind_counts, category_kind_figure, query_length_figure, split_figure,
    taxonomy_figure,
)
from ssui_lib.book.plots.rates import (  # noqa: F401
    RATE_LABELS, rates_long, rates_table, benchmark_table,
    rate_bars, category_long, category_heatmap, agreement_table,
)
from ssui_lib.book.plots.training import (  # noqa: F401
    loss_curves, sweep_figure,
)
from ssui_lib.book.plots.exploration import (  # noqa: F401
    F_COLORS, F_NAMES, wilson_interval, positive_rate_figure, branch_tree_figure, margin_figure,
)
