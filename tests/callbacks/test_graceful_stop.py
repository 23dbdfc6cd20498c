import signal
from types import SimpleNamespace

import pytest

from rl_lightning.callbacks import GracefulStop


def test_a_signal_that_comes_with_the_last_batch_ends_the_run_as_finished():
    trainer = SimpleNamespace(datamodule=SimpleNamespace(total_frames=1024))
    stop = GracefulStop()
    stop.signal_received = signal.SIGINT
    try:
        stop.on_train_end(trainer, SimpleNamespace(frames=1024))
    except KeyboardInterrupt:
        pytest.fail("a run that spent its whole budget was reported interrupted")
    with pytest.raises(KeyboardInterrupt, match="stopped by SIGINT"):
        stop.on_train_end(trainer, SimpleNamespace(frames=768))
