"""Building vectorized Gymnasium environments and describing their spaces."""

from rl_lightning.envs.gym import EnvSpec, check_env, check_env_id, make_vector_env

__all__ = ["EnvSpec", "check_env", "check_env_id", "make_vector_env"]
