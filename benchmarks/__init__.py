"""Benchmark harness of redis-atp: ``python -m benchmarks.bench`` (see bench.py)."""
