"""Loggers, validate and play through the real command line."""

import glob
from pathlib import Path

import imageio.v3 as iio
import pytest

from tests.test_cli import PPO, TINY, rows, run_cli


def only_run(root: Path) -> Path:
    (run,) = (root / "experiments" / "ppo-CartPole-v1").iterdir()
    return run


def test_tensorboard_logger_gets_the_scalars_and_the_video(in_tmp):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_cli("fit", "--config", PPO, *TINY, "--trainer.logger+=TensorBoard",
            "--trainer.callbacks+=rl_lightning.callbacks.Video", "--trainer.callbacks.every_evaluations", "1",
            "--trainer.callbacks.max_frames", "30")
    run = only_run(in_tmp)
    assert (run / "metrics.csv").is_file()  # CSV stays on beside TensorBoard
    (events,) = glob.glob(str(run / "tensorboard" / "events.out.tfevents.*"))
    acc = EventAccumulator(events, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    returns = acc.Scalars("eval/return_mean")
    assert [e.step for e in returns] == [1024, 2048]
    assert returns[-1].value == pytest.approx(float(rows(run / "metrics.csv")[-1]["eval/return_mean"]))
    assert "train/episode_return" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Images("eval/video")] == [1024, 2048]
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["frames-1024.mp4", "frames-2048.mp4"]


def test_wandb_offline_holds_config_tags_and_no_secret(in_tmp, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "sk-test-secret-0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_cli("fit", "--config", PPO, *TINY, "--trainer.logger+=WandbLogger",
            "--trainer.logger.init_args.tags", "[ppo, smoke]", "--trainer.logger.init_args.group", "g1")
    run = only_run(in_tmp)
    (offline,) = (run / "wandb").glob("offline-run-*")
    (log,) = offline.glob("run-*.wandb")  # the offline run's record log (protobuf), what `wandb sync` uploads
    blob = log.read_bytes()
    for text in (b"eval/return_mean", b"train/episode_return", b"loss/policy",  # history
                 b'"env_id"', b"CartPole-v1", b'"frames_per_batch"',  # the whole config, not only hparams
                 b"smoke", b"g1"):  # tags and group
        assert text in blob, text
    for path in run.rglob("*"):
        if path.is_file():
            assert b"sk-test-secret" not in path.read_bytes(), path


def test_validate_prints_the_table_and_matches_the_last_evaluation(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    run = only_run(in_tmp)
    last_eval = float(rows(run / "metrics.csv")[-1]["eval/return_mean"])
    capsys.readouterr()
    run_cli("validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))
    out = capsys.readouterr().out
    for key in ("eval/return_mean", "eval/return_std", "eval/return_min", "eval/return_max", "eval/length_mean"):
        assert key in out
    line = next(line for line in out.splitlines() if "eval/return_mean" in line)
    assert float(line.replace("│", " ").split()[-1]) == pytest.approx(last_eval, rel=1e-5)
    run_cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "best")
    assert "eval/return_mean" in capsys.readouterr().out


def test_validate_with_a_missing_checkpoint_names_it(in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("validate", "--config", PPO, "--ckpt_path", "nowhere/last.ckpt")
    assert exit_.value.code == 2
    assert "nowhere/last.ckpt" in capsys.readouterr().err


def test_play_without_display_writes_an_mp4(in_tmp, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    run_cli("fit", "--config", PPO, *TINY)
    run = only_run(in_tmp)
    capsys.readouterr()
    run_cli("play", str(run))
    out = capsys.readouterr().out
    assert "episode 0: return" in out
    video = run / "videos" / "play-best.mp4"
    assert f"wrote {video}" in out
    length = int(out.split("length ")[1].split()[0])
    assert len(iio.imread(video)) == length + 1


def test_profiler_flag_works(in_tmp, capsys, caplog):
    run_cli("fit", "--config", PPO, *TINY, "--trainer.profiler", "simple")
    captured = capsys.readouterr()
    report = captured.out + captured.err + caplog.text
    assert "FIT Profiler Report" in report and "training_step" in report
