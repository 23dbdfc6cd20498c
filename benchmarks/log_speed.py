"""Metric logging: Lightning's ``self.log_dict`` against ``RLModule.log_metrics``.

    python benchmarks/log_speed.py [--scalars 15] [--calls 200] [--repeats 3]

Inside a real ``Trainer.fit`` of ``configs/ppo.yaml``'s PPO on CartPole-v1 (CSV logger in a
temporary folder), a callback at the end of the first collected batch times, per call with
``--scalars`` Python floats: ``pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)``
(Lightning's result collection; the logger write happens later, at the step's end) and
``pl_module.log_metrics(metrics)`` followed by the module's ``on_train_batch_end`` (which
writes the row to the loggers, as once per collected batch in training). One torch thread;
the two alternate ``--repeats`` times; medians in milliseconds per call.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "ppo.yaml"


class _Time(L.Callback):
    def __init__(self, scalars: int, calls: int, repeats: int) -> None:
        self.scalars, self.calls, self.repeats = scalars, calls, repeats
        self.result: dict[str, float] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.result is not None or not pl_module.at_boundary:
            return
        metrics = {f"bench/m{i}": float(i) for i in range(self.scalars)}

        def lightning() -> None:
            pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

        def ours() -> None:
            pl_module.log_metrics(metrics)
            pl_module.on_train_batch_end(outputs, batch, batch_idx)

        ways = {"self.log_dict": lightning, "log_metrics + write": ours}
        times = {name: [] for name in ways}
        for _ in range(self.repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                for _ in range(self.calls):
                    way()
                times[name].append((time.perf_counter() - start) / self.calls * 1e3)
        self.result = {name: statistics.median(v) for name, v in times.items()}
        trainer.should_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalars", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    from rl_lightning.algorithms import PPO
    from rl_lightning.data import OnPolicyDataModule
    from rl_lightning.runs.csv_logger import RunCSVLogger

    cfg = yaml.safe_load(CONFIG.read_text())
    model = PPO(**cfg["model"]["init_args"])
    data = OnPolicyDataModule(**cfg["data"]["init_args"])
    callback = _Time(args.scalars, args.calls, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        L.Trainer(max_epochs=-1, logger=RunCSVLogger(Path(folder)), enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
                  callbacks=[callback]).fit(model, datamodule=data)
    print(f"Logging {args.scalars} scalars inside a PPO fit (median of {args.repeats} x {args.calls} calls)")
    for name, ms in callback.result.items():
        print(f"  {name:22s} {ms:8.3f} ms per call")
    a, b = callback.result.values()
    print(f"  ratio self.log_dict / log_metrics: x{a / b:.1f}")


if __name__ == "__main__":
    main()
