"""Research: delivery history as tidy tables over many pumps (``tables``), the cohort engine
that builds them in parallel (``cohort``, local processes or Dask), their plots (``plots``),
and the analysis scored against simulated ground truth (``scoring``).  Off the bedside path:
nothing in the two-hour check imports this package."""
