"""Tiny environments and helpers for the tests."""
