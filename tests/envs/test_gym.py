import pytest

from rl_lightning.envs import EnvSpec, check_env_id, make_vector_env
from rl_lightning.errors import ConfigError


def test_unknown_id_names_it_and_close_matches():
    with pytest.raises(ConfigError) as err:
        check_env_id("CartPol-v1")
    assert "'CartPol-v1'" in str(err.value)
    assert "CartPole-v1" in str(err.value)


def test_module_prefix_imports_and_registers():
    check_env_id("tests.helpers.envs:Countdown-v0")
    env = make_vector_env("tests.helpers.envs:Countdown-v0", 2)
    spec = EnvSpec.from_env("Countdown-v0", env)
    assert spec.discrete and spec.n_actions == 2 and spec.observation_shape == (1,)
    env.close()


def test_unimportable_module_is_named():
    with pytest.raises(ConfigError, match="no_such_module"):
        check_env_id("no_such_module:Thing-v0")


def test_spec_round_trips_through_plain_dict():
    env = make_vector_env("Pendulum-v1", 1)
    spec = EnvSpec.from_env("Pendulum-v1", env)
    assert not spec.discrete and spec.action_shape == (1,) and spec.action_high == (2.0,)
    assert EnvSpec.from_dict(spec.to_dict()) == spec
    env.close()
