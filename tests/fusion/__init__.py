"""Tests of the `fusion` mechanism kind: its conformance checks and its built-ins."""
