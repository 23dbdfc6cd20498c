"""``python -m rl_lightning play <run folder or checkpoint>``: watch a trained agent."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from rl_lightning.errors import ConfigError


def resolve(target: str) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` from a run folder (its best, else last checkpoint) or a
    checkpoint file inside ``<run>/checkpoints/``."""
    path = Path(target)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path, path / "checkpoints" / name
        raise ConfigError(f"{target}: no checkpoints/best.ckpt or checkpoints/last.ckpt in this folder.")
    if path.is_file():
        return path.resolve().parent.parent, path
    raise ConfigError(f"{target}: no such run folder or checkpoint file.")


def load_agent(run: Path, ckpt: Path):
    """The run's algorithm and data module, built from ``config.yaml``, with the
    checkpoint's weights."""
    from rl_lightning.cli import RLCLI

    class Builder(RLCLI):
        """Parses and instantiates like ``validate`` but runs nothing."""

        def _run_subcommand(self, subcommand: str) -> None:
            return None

    config = run / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"{run}: no config.yaml, so the run's classes cannot be rebuilt.")
    cli = Builder(args=["validate", "--config", str(config), "--ckpt_path", str(ckpt), "--trainer.logger", "false",
                        "--progress_bar.refresh_rate", "0"])
    model, data = cli.model, cli.datamodule
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, data


def main(argv: list[str]) -> None:
    """Play episodes of a trained agent: in a window when a display exists, else to an mp4."""
    parser = argparse.ArgumentParser(prog="python -m rl_lightning play", description=main.__doc__)
    parser.add_argument("target", help="a run folder (uses best.ckpt, else last.ckpt) or a checkpoint file")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")
    parser.add_argument("--output", default=None, help="write an mp4 here instead of opening a window")
    parser.add_argument("--fps", type=int, default=30, help="frames per second of the video")
    args = parser.parse_args(argv)
    from rl_lightning.callbacks.video import write_mp4
    from rl_lightning.episodes import record_episode

    run, ckpt = resolve(args.target)
    model, data = load_agent(run, ckpt)
    window = args.output is None and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    env = data.make_single_env("human" if window else "rgb_array")  # the run's pipeline: same wrappers
    frames = []
    for episode in range(args.episodes):
        shown, total, length = record_episode(model, env, args.seed + episode)
        frames += shown
        print(f"episode {episode}: return {total:.1f}, length {length}")
    env.close()
    if not window:
        output = Path(args.output) if args.output else run / "videos" / f"play-{ckpt.stem}.mp4"
        print(f"No display: wrote {write_mp4(frames, output, args.fps)}")
