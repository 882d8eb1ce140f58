"""What attnbench shows: stored results (leaderboards, grids, history, compare, statistics, the
static site) and, in the terminal, a run's plan, progress and conformance reports and `list`."""
