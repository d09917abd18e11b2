"""Benchmarks: run from the repository root, e.g. ``python -m bench.soap_search`` (see README.md)."""
