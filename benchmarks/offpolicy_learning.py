"""Off-policy learning over seeds: do the shipped configs reach RL Zoo's scores in RL Zoo's budgets?

    python benchmarks/offpolicy_learning.py [--tasks dqn-cartpole sac-pendulum td3-pendulum]
        [--seeds 1 2 3] [--jobs 2] [--frames N]

``benchmarks/learning.py`` with the off-policy tasks (see it for what is run and printed):
each run is ``python -m rl_lightning fit --config <config> --seed_everything <seed>`` with the
config's own evaluation schedule; a seed reaches the target when an evaluation's mean return
does within the budget. ``sac-lunarlander`` (LunarLanderContinuous-v3, 500k frames, hours on
two cores) runs only when named. ``--jobs 2`` runs two seeds at once (one torch thread each).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning

TASKS = {name: learning.TASKS[name] for name in ("dqn-cartpole", "sac-pendulum", "td3-pendulum", "sac-lunarlander")}

if __name__ == "__main__":
    learning.main(TASKS, ["dqn-cartpole", "sac-pendulum", "td3-pendulum"], __doc__)
