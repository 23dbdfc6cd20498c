"""Peer implementations the benchmarks compare against (run in their own processes)."""
