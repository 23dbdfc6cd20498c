"""Do the RL Zoo overlays (configs/zoo/<algorithm>/<env>.yaml) reach RL Zoo's published scores?

    python benchmarks/zoo_check.py --runs ppo/CartPole-v1 sac/Pendulum-v1 [--seeds 1 2 3] [--jobs 2]
        [--frames N] [--options <fit options for every run>]
    python benchmarks/zoo_check.py --runs all --seeds 1     # every overlay, cheapest first
    python benchmarks/zoo_check.py --list                   # the overlays, their budgets and references

Each run is ``python -m rl_lightning fit --config configs/zoo/<run>.yaml --seed_everything <seed>``
at the overlay's own budget (RL Zoo's ``n_timesteps``; ``--frames`` overrides it for shorter checks)
through ``benchmarks/learning.py``: its table (seeds reaching the reference score, frames to it,
final evaluation per seed) and return curves, then one line per run with the final and best
evaluation return beside RL Zoo's score, and the runs that could not be run (a missing Box2D
extra, a failed fit) with the reason.

Reference scores: rl-baselines3-zoo ``benchmark.md`` ("Performance of trained agents": mean and
std of the episode return of one trained agent, deterministic policy, about 150k evaluation
steps). Its LunarLander rows were measured on LunarLander-v2 / LunarLanderContinuous-v2; the
overlays use the v3 environments with the same hyperparameters.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # benchmarks/learning.py

ZOO = learning.ROOT / "configs" / "zoo"

#: rl-baselines3-zoo benchmark.md: (mean_reward, std_reward) of its trained agent per overlay
REFERENCE = {
    "a2c/Acrobot-v1": (-83.353, 17.213),
    "a2c/BipedalWalker-v3": (299.754, 23.459),
    "a2c/CartPole-v1": (500.0, 0.0),
    "a2c/LunarLander-v3": (155.751, 80.419),  # measured on LunarLander-v2
    "a2c/LunarLanderContinuous-v3": (84.225, 145.906),  # measured on LunarLanderContinuous-v2
    "a2c/MountainCar-v0": (-111.263, 24.087),
    "a2c/MountainCarContinuous-v0": (91.166, 0.255),
    "a2c/Pendulum-v1": (-162.965, 103.210),
    "dqn/Acrobot-v1": (-76.639, 11.752),
    "dqn/CartPole-v1": (500.0, 0.0),
    "dqn/LunarLander-v3": (154.382, 79.241),  # measured on LunarLander-v2
    "dqn/MountainCar-v0": (-100.849, 9.925),
    "ppo/Acrobot-v1": (-73.506, 18.201),
    "ppo/BipedalWalker-v3": (287.939, 2.448),
    "ppo/CartPole-v1": (500.0, 0.0),
    "ppo/LunarLander-v3": (242.119, 31.823),  # measured on LunarLander-v2
    "ppo/LunarLanderContinuous-v3": (270.863, 32.072),  # measured on LunarLanderContinuous-v2
    "ppo/MountainCar-v0": (-110.423, 19.473),
    "ppo/MountainCarContinuous-v0": (88.343, 2.572),
    "ppo/Pendulum-v1": (-172.225, 104.159),
    "sac/BipedalWalker-v3": (297.668, 33.060),
    "sac/LunarLanderContinuous-v3": (260.390, 65.467),  # measured on LunarLanderContinuous-v2
    "sac/MountainCarContinuous-v0": (94.679, 1.134),
    "sac/Pendulum-v1": (-156.995, 88.714),
    "td3/BipedalWalker-v3": (305.990, 56.886),
    "td3/LunarLanderContinuous-v3": (207.451, 67.562),  # measured on LunarLanderContinuous-v2
    "td3/MountainCarContinuous-v0": (93.483, 0.075),
    "td3/Pendulum-v1": (-151.855, 90.227),
}


def overlays() -> list[str]:
    """Every overlay as ``<algorithm>/<env>``, from the files in configs/zoo."""
    return sorted(str(path.relative_to(ZOO).with_suffix("")) for path in ZOO.glob("*/*.yaml"))


def tasks() -> dict[str, dict]:
    """A ``learning.task`` per overlay: its file, RL Zoo's mean score as target, its own budget."""
    out = {}
    for name in overlays():
        config = yaml.safe_load((ZOO / f"{name}.yaml").read_text())
        data = config["data"]["init_args"]
        algorithm = config["model"]["class_path"].rsplit(".", 1)[-1]
        out[name] = learning.task([f"zoo/{name}.yaml"], REFERENCE[name][0], algorithm, data["env_id"],
                                  data["total_frames"])
    return out


def cost(spec: dict) -> float:
    """Rough CPU cost of an overlay (for cheapest-first order): frames, plus off-policy updates."""
    config = yaml.safe_load((learning.ROOT / spec["args"][1]).read_text())
    data = config["data"]["init_args"]
    updates = data.get("updates_per_batch", 0) / data.get("frames_per_batch", 1)
    return spec["frames"] * (1 + 10 * updates)


def try_run(spec: dict, seed: int, frames: int | None, extra: tuple[str, ...]) -> dict | str:
    """``learning.run``, or the reason it could not run."""
    try:
        return learning.run(spec, seed, frames, extra)
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line or "error" in line), lines[-1])
        return reason.strip()[:300]


def main() -> None:
    """Run the chosen overlays over seeds; print learning.py's report and the comparison with RL Zoo."""
    specs = tasks()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["ppo/CartPole-v1"], choices=["all", *specs],
                        help="overlays as <algorithm>/<env>, or all (cheapest first)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--frames", type=int, default=None, help="override every overlay's budget (shorter checks)")
    parser.add_argument("--list", action="store_true", help="print the overlays, budgets and references, run nothing")
    parser.add_argument("--options", nargs=argparse.REMAINDER, default=[],
                        help="further fit options for every run, e.g. --options --evaluation.episodes 5")
    args = parser.parse_args()
    names = sorted(specs, key=lambda n: cost(specs[n])) if "all" in args.runs else list(dict.fromkeys(args.runs))
    if args.list:
        for name in sorted(specs, key=lambda n: cost(specs[n])):
            mean, std = REFERENCE[name]
            print(f"{name:32s} {specs[name]['frames']:>9d} frames   RL Zoo {mean:8.1f} +- {std:.1f}")
        return
    jobs = [(name, seed) for name in names for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(lambda job: try_run(specs[job[0]], job[1], args.frames, tuple(args.options)), jobs))
    done = [(job, r) for job, r in zip(jobs, outcomes) if isinstance(r, dict)]
    failed = [(job, r) for job, r in zip(jobs, outcomes) if isinstance(r, str)]
    ran = [name for name in names if any(job[0] == name for job, _ in done)]
    if done:
        learning.report(specs, ran, [job for job, _ in done], [r for _, r in done], args.frames)
        print(f"\n{'overlay':32s} {'seed':>4s} {'frames':>9s} {'final eval':>10s} {'best eval':>10s} "
              f"{'RL Zoo (benchmark.md)':>22s}")
        for (name, seed), r in done:
            mean, std = REFERENCE[name]
            frames = r["curve"][-1][0]
            print(f"{name:32s} {seed:>4d} {frames:>9d} {r['final']:10.1f} {r['best']:10.1f} "
                  f"{f'{mean:.1f} +- {std:.1f}':>22s}")
    if failed:
        print("\nnot run:")
        for (name, seed), reason in failed:
            print(f"  {name} seed {seed}: {reason}")


if __name__ == "__main__":
    main()
