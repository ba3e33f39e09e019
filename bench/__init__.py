"""Benchmarks behind the README's speed claims: `make bench` (or `python -m bench [names] [--quick]`)."""
