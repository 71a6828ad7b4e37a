"""Benchmarks: never part of the test run. See README.md, "Benchmarks"."""
