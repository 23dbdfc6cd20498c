from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rl_lightning.callbacks.nan_guard import NanGuard, NonFiniteError


def boundary(metrics=None):
    """What the guard reads of a trainer at a batch boundary."""
    return SimpleNamespace(callback_metrics=metrics or {}, checkpoint_callbacks=[], global_step=7)


def module():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    net.frames, net.at_boundary = 640, True
    return net


def test_a_non_finite_parameter_is_named_with_the_frame():
    net, guard = module(), NanGuard()
    guard.on_train_start(None, net)
    guard.on_train_batch_end(boundary({"loss/value": torch.tensor(0.5)}), net, None, None, 0)  # finite: passes
    with torch.no_grad():
        net[1].weight[0, 1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"parameter 1\.weight holds NaN/Inf at frame 640"):
        guard.on_train_batch_end(boundary(), net, None, None, 0)


def test_a_non_finite_metric_is_named():
    net, guard = module(), NanGuard()
    guard.on_train_start(None, net)
    with pytest.raises(NonFiniteError, match=r"metric loss/value is nan at frame 640"):
        guard.on_train_batch_end(boundary({"loss/value": torch.tensor(float("nan"))}), net, None, None, 0)
