"""Benchmarks of the riskd kernels; run ``python -m bench.kernels`` (see bench/README.md)."""
