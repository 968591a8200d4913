"""Benchmarks of trufor_lab: ``python -m bench`` times the reference forward against the exact
and fast inference modes (time, peak memory, deviation); see bench/README.md."""
