"""Shared fixtures: one torch thread, quiet logs, runs inside a temporary folder."""

import os

import pytest
import torch

os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
# every jsonargparse deprecation, not only the first of its kind (often Lightning's): one raised
# at a call of ours then fails the test (pyproject.toml's filterwarnings)
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "all")
torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder (run folders land in ``tmp_path/experiments``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return tmp_path
