"""Exact resume: 2N frames in one go == N frames, stop, resume, N more frames."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.test_cli import PPO, run_cli

ROOT = Path(__file__).resolve().parent.parent
ATARI = str(ROOT / "configs" / "env" / "atari.yaml")
QUIET = ["--progress_bar.refresh_rate", "0", "--evaluation.episodes", "2"]
NORMALIZED = ["--data.normalize_observation", "true", "--data.normalize_reward", "true"]
DQN = ["--config", str(ROOT / "configs" / "dqn.yaml"), "--data.total_frames", "1536", "--data.frames_per_batch", "128",
       "--data.updates_per_batch", "16", "--data.batch_size", "32", "--data.init_random_frames", "256",
       "--evaluation.every_frames", "512", "--checkpoint.every_frames", "512", *QUIET]
GRPO = ["--config", str(ROOT / "configs" / "grpo.yaml"), "--data.num_envs", "16", "--model.group_size", "4",
        "--data.total_frames", "3072", "--evaluation.every_frames", "1024", "--checkpoint.every_frames", "1024",
        "--model.kl_coef", "0.05", *QUIET]
#: (command line, frame to stop at and resume from, the data module's key in checkpoints)
CASES = {
    "ppo": (["--config", PPO, "--data.total_frames", "3072", "--evaluation.every_frames", "1024",
             "--checkpoint.every_frames", "1024", *QUIET], 2048, "OnPolicyDataModule"),
    "dqn": (DQN, 1024, "ReplayDataModule"),
    # one RMSprop step per 40-frame batch: the optimizer's square averages are checkpointed
    "a2c": (["--config", str(ROOT / "configs" / "a2c.yaml"), "--data.total_frames", "1200", "--evaluation.every_frames",
             "400", "--checkpoint.every_frames", "400", *QUIET], 800, "OnPolicyDataModule"),
    # prioritized replay (sampler state), 3-step returns, memory-mapped buffer (snapshot folder)
    "dqn-per-nstep-memmap": ([*DQN, "--data.prioritized", "true", "--data.n_step", "3", "--data.memmap", "true",
                              "--model.double_q", "true"], 1024, "ReplayDataModule"),
    # rows every 350 frames: the episode finished at frame 200 is still unlogged at the stop
    "sac": (["--config", str(ROOT / "configs" / "sac.yaml"), "--data.total_frames", "480", "--data.frames_per_batch", "4",
             "--data.updates_per_batch", "4", "--data.batch_size", "64", "--evaluation.every_frames", "160",
             "--checkpoint.every_frames", "160", "--log_every_frames", "350", *QUIET], 320, "ReplayDataModule"),
    # MuJoCo: the physics state (mj_getState) is part of the checkpoint
    "sac-mujoco": (["--config", str(ROOT / "configs" / "sac.yaml"), "--config", str(ROOT / "configs" / "env" / "mujoco_sac.yaml"),
                    "--data.env_kwargs", "{max_episode_steps: 60}", "--data.total_frames", "480",
                    "--data.frames_per_batch", "4", "--data.updates_per_batch", "4", "--data.batch_size", "64",
                    "--data.init_random_frames", "100", "--data.buffer_size", "1000", "--evaluation.every_frames", "160",
                    "--checkpoint.every_frames", "160", "--log_every_frames", "0", *QUIET], 320, "ReplayDataModule"),
    # dm_control (through shimmy): physics, step counters and the task's random state
    "sac-dmc": (["--config", str(ROOT / "configs" / "sac.yaml"), "--config",
                 str(ROOT / "configs" / "env" / "dmc_cartpole_swingup.yaml"), "--data.total_frames", "480",
                 "--data.frames_per_batch", "4", "--data.updates_per_batch", "4", "--data.batch_size", "64",
                 "--data.init_random_frames", "100", "--data.buffer_size", "1000", "--evaluation.every_frames", "160",
                 "--checkpoint.every_frames", "160", "--log_every_frames", "0", *QUIET], 320, "ReplayDataModule"),
    # normalization on: the statistics and each environment's running return are model state
    "ppo-normalized": (["--config", PPO, "--data.total_frames", "3072", "--evaluation.every_frames", "1024",
                        "--checkpoint.every_frames", "1024", *NORMALIZED, *QUIET], 2048, "OnPolicyDataModule"),
    "sac-normalized": (["--config", str(ROOT / "configs" / "sac.yaml"), "--data.total_frames", "480",
                        "--data.frames_per_batch", "4", "--data.updates_per_batch", "4", "--data.batch_size", "64",
                        "--evaluation.every_frames", "160", "--checkpoint.every_frames", "160", "--data.n_step", "2",
                        *NORMALIZED, *QUIET], 320, "ReplayDataModule"),
    # a row per batch: the first round after the stop logs the actor loss of the round before;
    # 3-step returns over 4-frame batches: the pending steps of each window are checkpointed
    "td3": (["--config", str(ROOT / "configs" / "td3.yaml"), "--data.total_frames", "480", "--data.frames_per_batch", "4",
             "--data.n_step", "3",
             "--data.updates_per_batch", "4", "--data.batch_size", "64", "--data.init_random_frames", "100",
             "--evaluation.every_frames", "160", "--checkpoint.every_frames", "160", "--log_every_frames", "0",
             *QUIET], 320, "ReplayDataModule"),
    # batched torch environments (data.backend torch): the state, generator and statistics are tensors
    "ppo-torch": (["--config", str(ROOT / "configs" / "ppo_torch_cartpole.yaml"), "--data.total_frames", "3072",
                   "--data.num_envs", "32", "--data.frames_per_batch", "512", "--model.minibatch_size", "256",
                   "--model.epochs", "2", "--evaluation.every_frames", "1024", "--checkpoint.every_frames", "1024",
                   *QUIET], 2048, "OnPolicyDataModule"),
    # group rollouts: every batch starts from a reset; batches end at the episodes' ends, so frame counts vary
    "grpo": (GRPO, 2048, "OnPolicyDataModule"),
    # an algorithm written outside the package with an ordinary training_step
    "reinforce-example": (["--config", str(ROOT / "examples" / "reinforce.yaml"), "--data.total_frames", "3072",
                           "--data.frames_per_batch", "512", "--evaluation.every_frames", "1024",
                           "--checkpoint.every_frames", "1024", *QUIET], 2048, "OnPolicyDataModule"),
    "grpo-torch": ([*GRPO, "--data.backend", "torch", "--model.advantage", "reward_to_go", "--model.kl_coef", "0.1",
                    "--model.ref_update_every", "2"], 2048, "OnPolicyDataModule"),
    # recurrent memory per environment (stopped mid-episode), observation normalization
    "recurrent-ppo": (["--config", str(ROOT / "configs" / "recurrent_ppo.yaml"), "--data.total_frames", "1536",
                       "--model.epochs", "2", "--model.sequence_length", "8", "--model.minibatch_size", "64",
                       "--evaluation.every_frames", "512", "--checkpoint.every_frames", "512", *QUIET], 1024,
                      "OnPolicyDataModule"),
    "dqn-torch": ([*DQN, "--data.backend", "torch", "--data.num_envs", "16", "--data.n_step", "3"], 1024,
                  "ReplayDataModule"),
    "sac-torch": (["--config", str(ROOT / "configs" / "sac.yaml"), "--data.backend", "torch", "--data.num_envs", "8",
                   "--data.total_frames", "480", "--data.frames_per_batch", "8", "--data.updates_per_batch", "4",
                   "--data.batch_size", "64", "--evaluation.every_frames", "160", "--checkpoint.every_frames", "160",
                   *QUIET], 320, "ReplayDataModule"),
    # Atari (ale-py): the emulator's serialized state with its sticky-action random numbers, the
    # frame buffers of AtariPreprocessing, a life lost mid-game (EpisodicLife), whole-game statistics
    "ppo-atari": (["--config", str(ROOT / "configs" / "ppo_atari.yaml"), "--config", ATARI, "--data.num_envs", "2",
                   "--data.frames_per_batch", "128", "--data.total_frames", "384", "--model.epochs", "1",
                   "--model.minibatch_size", "64", "--evaluation.every_frames", "128", "--checkpoint.every_frames",
                   "128", *QUIET], 256, "OnPolicyDataModule"),
    "dqn-atari": (["--config", str(ROOT / "configs" / "dqn_atari.yaml"), "--config", ATARI, "--data.buffer_size", "300",
                   "--data.init_random_frames", "64", "--data.frames_per_batch", "32", "--data.updates_per_batch", "2",
                   "--data.total_frames", "384", "--evaluation.every_frames", "128", "--checkpoint.every_frames", "128",
                   *QUIET], 256, "ReplayDataModule"),
}


def test_every_algorithm_and_config_has_an_exact_resume_case():
    """A new algorithm or config file cannot be left out of the exact-resume test."""
    import rl_lightning.algorithms as algorithms
    from rl_lightning.algorithms.base import RLModule

    exported = {name for name in algorithms.__all__
                if isinstance(getattr(algorithms, name), type) and issubclass(getattr(algorithms, name), RLModule)
                and getattr(algorithms, name) is not RLModule}
    configs = {str(path) for path in (ROOT / "configs").glob("*.yaml")}  # the algorithms' configs
    used = {args[args.index("--config") + 1] for args, _, _ in CASES.values()}
    assert configs <= used, sorted(configs - used)
    covered = {yaml.safe_load(open(path))["model"]["class_path"].rsplit(".", 1)[-1] for path in used}
    assert exported <= covered, sorted(exported - covered)


def metric_rows(run):
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


@pytest.mark.parametrize("case", sorted(CASES))
def test_resumed_run_equals_the_uninterrupted_one(in_tmp, case):
    if "atari" in case:
        pytest.importorskip("ale_py", reason="the Atari cases need ale-py: pip install -e '.[atari]'")
    common, stop, data_key = CASES[case]
    run_cli("fit", *common, "--experiment", "straight")
    run_cli("fit", *common, "--experiment", "resumed", "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit",
            "--trainer.callbacks.frames", str(stop))  # an evaluation point of both runs
    run_cli("fit", *common, "--experiment", "resumed", "--ckpt_path", "last")
    (straight,) = (in_tmp / "experiments" / "straight").iterdir()
    (resumed,) = (in_tmp / "experiments" / "resumed").iterdir()
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    total = int(common[common.index("--data.total_frames") + 1])
    assert a[data_key]["frames"] == b[data_key]["frames"] >= total
    if not case.startswith("grpo"):  # group batches end with their episodes, past the budget
        assert a[data_key]["frames"] == total
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    if "--data.normalize_observation" in common:  # the statistics moved, and came back exactly
        assert float(b["state_dict"]["normalizer.obs_rms.count"]) == pytest.approx(total, abs=1e-3)
    rows_a, rows_b = metric_rows(straight), metric_rows(resumed)
    assert [r["frames"] for r in rows_a] == [r["frames"] for r in rows_b]
    assert rows_a == rows_b  # every logged value, evaluations included
    if "--data.memmap" in common:  # the checkpoint names a snapshot of the buffer inside the run
        assert (resumed / b[data_key]["buffer_dir"]).parent == resumed / "checkpoints" / "replay"
        assert len(list((resumed / "checkpoints" / "replay").iterdir())) <= 2


SMALL_DQN = ["--config", str(ROOT / "configs" / "dqn.yaml"), "--data.frames_per_batch", "64",
             "--data.init_random_frames", "64", "--data.batch_size", "16", "--data.updates_per_batch", "2",
             "--evaluation.every_frames", "128", "--checkpoint.every_frames", "128", *QUIET, "--experiment", "dqn"]


def test_resume_refuses_the_options_a_checkpoint_fixes_and_leaves_the_run_untouched(in_tmp, capsys):
    run_cli("fit", *SMALL_DQN, "--data.total_frames", "128")
    (run,) = (in_tmp / "experiments" / "dqn").iterdir()
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", *SMALL_DQN, "--data.total_frames", "256", "--ckpt_path", "last", "--data.buffer_size", "500",
                "--data.n_step", "3", "--data.prioritized", "true", "--data.num_envs", "2",
                "--data.frames_per_batch", "64", "--data.normalize_observation", "true", "--data.clip_reward", "5",
                "--data.wrappers", "[{class_path: gymnasium.wrappers.ClipReward, init_args: {min_reward: -1, max_reward: 1}}]")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and f"{run.name}/checkpoints/last.ckpt" in err
    for fixed in ("data.buffer_size (checkpoint 100000, config 500)", "data.n_step (checkpoint 1, config 3)",
                  "data.prioritized (checkpoint False, config True)", "data.num_envs (checkpoint 1, config 2)",
                  # the model holds normalization statistics of the checkpoint's kind
                  "data.normalize_observation (checkpoint False, config True)",
                  "data.clip_reward (checkpoint 10.0, config 5.0)",
                  # the running episodes were captured through the wrapper layers
                  "data.wrappers (checkpoint None, config [{'class_path': 'gymnasium.wrappers.ClipReward'"):
        assert fixed in err, fixed
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # no config.resume-*.yaml, checkpoints and metrics as they were


def test_resume_applies_the_options_a_checkpoint_does_not_fix(in_tmp):
    """Batch sizes and update counts apply on resume; an in-memory buffer moves to memory-mapped files."""
    run_cli("fit", *SMALL_DQN, "--data.total_frames", "128")
    run_cli("fit", *SMALL_DQN, "--data.total_frames", "384", "--ckpt_path", "last", "--data.memmap", "true",
            "--data.frames_per_batch", "128", "--data.batch_size", "8")
    (run,) = (in_tmp / "experiments" / "dqn").iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["ReplayDataModule"]
    assert state["frames"] == 384 and ckpt["datamodule_hyper_parameters"]["batch_size"] == 8
    snapshot = run / state["buffer_dir"]
    assert np.load(snapshot / "reward.npy", allow_pickle=False).shape == (384,)  # the first 128 came along
    assert [float(r["frames"]) for r in metric_rows(run)] == [64, 128, 256, 384]
