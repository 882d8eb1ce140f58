"""Planning and executing a run: run options, the plan of cells, the runner and its executors
(worker processes, isolation, Ray), conformance screening and provenance."""
