"""Replay storage that keeps each observation once (``data.compact_observations``) gives the same
minibatches as the plain layout, survives checkpoints and snapshots, and takes about half the
memory for images."""

import pytest
import torch
from tensordict import TensorDict

from rl_lightning.data.replay import NStepWindow, ReplayDataModule
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError

IMAGE = EnvSpec("Fake-v0", (4, 6, 6), True, n_actions=3, observation_dtype="uint8")


def stream(envs, steps, seed=0, shape=(4, 6, 6)):
    """A collector-like stream of uint8 frames: the next observation is the following step's
    observation, except at episode ends (terminated or truncated), where it is a final frame
    that no later step shows."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (envs, steps + 1, *shape), generator=g, dtype=torch.uint8)
    finals = torch.randint(0, 256, (envs, steps, *shape), generator=g, dtype=torch.uint8)
    terminated = torch.rand(envs, steps, generator=g) < 0.1
    truncated = (torch.rand(envs, steps, generator=g) < 0.07) & ~terminated
    done = terminated | truncated
    next_obs = torch.where(done.view(envs, steps, *[1] * len(shape)), finals, frames[:, 1:])
    return {"obs": frames[:, :-1], "next_obs": next_obs, "reward": torch.randn(envs, steps, generator=g),
            "terminated": terminated, "truncated": truncated,
            "action": torch.randint(0, 3, (envs, steps), generator=g)}


def batch(s, t0, t1):
    cut = lambda x: x[:, t0:t1]
    return TensorDict({
        "observation": cut(s["obs"]), "action": cut(s["action"]),
        "next": {"observation": cut(s["next_obs"]), "reward": cut(s["reward"]).unsqueeze(-1),
                 "terminated": cut(s["terminated"]).unsqueeze(-1), "truncated": cut(s["truncated"]).unsqueeze(-1),
                 "done": (cut(s["terminated"]) | cut(s["truncated"])).unsqueeze(-1)},
    }, batch_size=[s["obs"].shape[0], t1 - t0])


def module(compact, envs, buffer_size=37, n_step=1, prioritized=False, memmap=False, spec=IMAGE, **kw):
    """A replay data module with its buffer built as ``connect`` builds it (no environment)."""
    dm = ReplayDataModule("CartPole-v1", num_envs=envs, frames_per_batch=envs, buffer_size=buffer_size,
                          batch_size=16, n_step=n_step, prioritized=prioritized, memmap=memmap,
                          compact_observations=compact, init_random_frames=0, **kw)
    dm.spec = spec
    dm.gamma = 0.9
    dm._build_buffer(dm._resolve_compact(None, "test"))
    dm.window = NStepWindow(n_step, dm.gamma)
    return dm


class RunningCollector:
    """Stands in for a collector whose running episodes a checkpoint restored exactly."""

    _obs = torch.zeros(1)

    def load_state_dict(self, state, exact=True):
        pass


def same(a, b):
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("steps_per_batch", [1, 4])
def test_compact_storage_samples_what_plain_storage_samples(n_step, steps_per_batch):
    """Uniform rounds and single samples are identical, through wrap-around (37 rows, 3 envs),
    episode ends (terminated and truncated) and n-step windows across batches."""
    envs, steps = 3, 60
    s = stream(envs, steps)
    plain, compact = module(False, envs, n_step=n_step), module(True, envs, n_step=n_step)
    assert plain.compact is None and compact.compact is not None
    for t0 in range(0, steps, steps_per_batch):
        for dm in (plain, compact):
            dm.add(batch(s, t0, t0 + steps_per_batch))
        if len(plain.buffer) == 0:
            continue
        assert len(compact.buffer) == len(plain.buffer)
        torch.manual_seed(t0)
        a = plain.sample_round(5)
        torch.manual_seed(t0)
        b = compact.sample_round(5)
        same(a, b)
        torch.manual_seed(t0)
        a = plain.sample()
        torch.manual_seed(t0)
        same(a, compact.sample())
    # every stored row, not only the sampled ones
    rows = torch.arange(len(plain.buffer))
    stored = plain.buffer.storage.get(rows)
    assert torch.equal(compact.compact.next_observation(rows, compact._observations), stored["next_observation"])
    assert compact.buffer.storage.get(rows)["observation"].dtype == torch.uint8
    assert "next_observation" not in compact.buffer.storage.get(rows)


def test_compact_prioritized_sampling_matches_plain():
    envs, steps = 2, 50
    s = stream(envs, steps, seed=1)
    plain, compact = (module(c, envs, n_step=3, prioritized=True) for c in (False, True))
    for t0 in range(0, steps, 5):
        for dm in (plain, compact):
            dm.add(batch(s, t0, t0 + 5))
        if len(plain.buffer) == 0:
            continue
        torch.manual_seed(t0)
        a = plain.sample()
        torch.manual_seed(t0)
        b = compact.sample()
        same(a, b)
        errors = torch.rand(len(a["reward"]))
        plain.update_priorities(a["index"], errors)
        compact.update_priorities(b["index"], errors)


@pytest.mark.parametrize("memmap", [False, True])
def test_compact_storage_round_trips_through_a_checkpoint(memmap, in_tmp):
    """The state (tensors only, loaded with weights_only) restores rows, pointers, the side store
    and the frontier: the resumed buffer samples and grows exactly like the original."""
    envs, steps = 3, 40
    s = stream(envs, steps, seed=2)
    original = module(True, envs, n_step=3, memmap=memmap, scratch_dir=str(in_tmp / "live-a"))
    for t0 in range(0, 20, 2):
        original.add(batch(s, t0, t0 + 2))
    state = original.state_dict()
    assert state["compact_observations"] is True
    torch.save(state, in_tmp / "state.pt")
    state = torch.load(in_tmp / "state.pt", weights_only=True)
    resumed = module(True, envs, n_step=3, memmap=memmap, scratch_dir=str(in_tmp / "live-b"))
    resumed.collector = RunningCollector()
    resumed.load_state_dict(state)
    resumed.collector = None
    for t0 in range(20, steps, 2):
        for dm in (original, resumed):
            dm.add(batch(s, t0, t0 + 2))
        torch.manual_seed(t0)
        a = original.sample_round(3)
        torch.manual_seed(t0)
        same(a, resumed.sample_round(3))


def test_a_checkpoint_fixes_compact_observations(in_tmp):
    envs = 2
    s = stream(envs, 10)
    dm = module(True, envs)
    dm.add(batch(s, 0, 5))
    state = dm.state_dict()
    assert ReplayDataModule.options_fixed_by({}, state, {"compact_observations": False}) == [
        "data.compact_observations (checkpoint True, config False)"]
    assert ReplayDataModule.options_fixed_by({}, state, {"compact_observations": None}) == []
    plain = module(False, envs)
    with pytest.raises(ConfigError, match="data.compact_observations is fixed by the checkpoint"):
        plain.load_state_dict(state)
    auto = module(None, envs, spec=EnvSpec("Vec-v0", (4,), True, n_actions=3))  # auto: plain for vectors
    assert auto.compact is None
    auto.load_state_dict(state)  # auto takes the checkpoint's layout
    assert auto.compact is not None and len(auto.buffer) == 10


def test_auto_turns_compact_on_for_images_and_uint8_only():
    assert module(None, 1).compact is not None
    assert module(None, 1, spec=EnvSpec("Vec-v0", (4,), True, n_actions=2)).compact is None
    assert module(None, 1, spec=EnvSpec("Img-v0", (3, 8, 8), True, n_actions=2)).compact is not None


def test_memory_per_frame_is_about_halved_for_images():
    spec = EnvSpec("Atari-like", (4, 84, 84), True, n_actions=6, observation_dtype="uint8")
    envs = 4
    s = stream(envs, 200, shape=(4, 84, 84))
    plain, compact = module(False, envs, buffer_size=400, spec=spec), module(True, envs, buffer_size=400, spec=spec)
    frame = 4 * 84 * 84
    assert plain.replay_bytes_per_frame == pytest.approx(2 * frame, rel=0.01)  # before any row: from the spec
    for t0 in range(0, 200, 10):
        for dm in (plain, compact):
            dm.add(batch(s, t0, t0 + 10))
    assert plain.replay_bytes_per_frame == pytest.approx(2 * frame, rel=0.01)
    # one frame per row plus the final frames of the ~17% of steps that end an episode
    assert compact.replay_bytes_per_frame < 0.65 * plain.replay_bytes_per_frame
    assert "replay: 400 transitions x" in compact.memory_line()


@pytest.mark.parametrize("case", ["dqn", "dqn-per-nstep-memmap"])
def test_compact_replay_resumes_exactly_and_learns_like_plain_replay(in_tmp, monkeypatch, case):
    """Forced on for CartPole: a stopped and resumed run equals the uninterrupted one
    (in-memory and memory-mapped, prioritized 3-step), and the uninterrupted run logs exactly
    what the plain layout logs (the same minibatches, so the same updates)."""
    from tests import test_resume
    from tests.test_cli import run_cli

    common, stop, key = test_resume.CASES[case]
    monkeypatch.setitem(test_resume.CASES, "compact", ([*common, "--data.compact_observations", "true"], stop, key))
    test_resume.test_resumed_run_equals_the_uninterrupted_one(in_tmp, "compact")
    run_cli("fit", *common, "--data.compact_observations", "false", "--experiment", "plain")
    (compact,) = (in_tmp / "experiments" / "straight").iterdir()
    (plain,) = (in_tmp / "experiments" / "plain").iterdir()
    assert test_resume.metric_rows(compact) == test_resume.metric_rows(plain)
    ckpt = torch.load(compact / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt[key]["compact_observations"] is True


def test_uint8_frames_reach_the_replay_buffer_and_evaluation_as_uint8():
    """A pixel env end to end through the data module: uint8 rows, compact storage chosen
    automatically, uint8 next observations in sampled minibatches; ``evaluate`` hands the
    module uint8 frames too (networks convert them)."""
    import tests.helpers.image_envs  # noqa: F401  (registers PixelChoice-v0)
    from rl_lightning.callbacks.evaluation import evaluate
    from rl_lightning.data.link import AgentLink

    dm = ReplayDataModule("tests.helpers.image_envs:PixelChoice-v0", num_envs=2, frames_per_batch=8, buffer_size=64,
                          batch_size=8, init_random_frames=0, total_frames=1000, env_kwargs={"channels": 4})
    spec = dm.env_spec
    assert spec.observation_dtype == "uint8"
    dm.connect(AgentLink(policy=lambda obs: spec.random_actions(obs.shape[0]), spec=spec))
    for _ in range(3):
        dm.add(dm.collector.rollout())
    assert dm.compact is not None
    assert dm.buffer.storage.get(torch.arange(4))["observation"].dtype == torch.uint8
    minibatch = dm.sample_round(2)
    assert minibatch["observation"].dtype == minibatch["next_observation"].dtype == torch.uint8
    assert minibatch["next_observation"].shape == (2, 8, 4, 36, 36)

    seen = []

    class Module(torch.nn.Module):
        device = torch.device("cpu")

        def act(self, obs, deterministic):
            seen.append(obs.dtype)
            return {"env_action": torch.zeros(obs.shape[0], dtype=torch.int64)}

    evaluate(Module(), dm.make_env(2), episodes=2, seed=0)
    assert seen and set(seen) == {torch.uint8}
    dm.teardown("fit")


def test_checkpoints_from_before_the_option_resume_plain_under_auto():
    envs = 2
    s = stream(envs, 10)
    old = module(False, envs)
    old.add(batch(s, 0, 5))
    state = old.state_dict()
    del state["compact_observations"]  # written before data.compact_observations existed
    auto = module(None, envs)  # uint8 frames: auto would choose compact for a new run
    assert auto.compact is not None
    auto.load_state_dict(state)
    assert auto.compact is None and len(auto.buffer) == 10
