"""Building vectorized Gymnasium environments and describing their spaces."""

from rl_lightning.envs.gym import EnvError, EnvSpec, check_env_id
from rl_lightning.envs.pipeline import (
    CheckedVectorEnv,
    check_env,
    make_env,
    make_vector_env,
    observation_tensor,
)
from rl_lightning.envs.wrappers import Wrapper, resolve_wrappers

__all__ = [
    "CheckedVectorEnv",
    "EnvError",
    "EnvSpec",
    "Wrapper",
    "check_env",
    "check_env_id",
    "make_env",
    "make_vector_env",
    "observation_tensor",
    "resolve_wrappers",
]
