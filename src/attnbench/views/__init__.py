"""What is shown from the store: leaderboards, grids, history, compare, statistics, the terminal
and the static site."""
