"""``dagmm benchmark``: ``runner`` trains and tests grids of configs x data sets x seeds; ``report`` turns
their results files into tables and figures."""
