import lightning as L
import torch

from rl_lightning.algorithms import PPO
from rl_lightning.callbacks import Evaluation, FrameCheckpoint
from rl_lightning.callbacks.evaluation import evaluate
from rl_lightning.data import OnPolicyDataModule
from rl_lightning.envs import EnvSpec, make_vector_env


def test_evaluate_plays_one_episode_per_env_and_repeats_with_the_seed():
    model = PPO()
    model.connect_spec(EnvSpec.from_env("CartPole-v1", make_vector_env("CartPole-v1", 1)))
    env = make_vector_env("CartPole-v1", 4)
    first = evaluate(model, env, 4, seed=3)
    second = evaluate(model, env, 4, seed=3)
    assert first["lengths"].tolist() == second["lengths"].tolist()
    assert (first["returns"] == first["lengths"]).all()  # CartPole: reward 1 per step
    short = make_vector_env("tests.helpers.envs:Countdown-v0", 3, {"length": 4})
    model2 = PPO()
    model2.connect_spec(EnvSpec.from_env("Countdown-v0", short))
    assert evaluate(model2, short, 3, seed=0)["lengths"].tolist() == [4, 4, 4]


def test_callback_states_survive_a_checkpoint(tmp_path):
    L.seed_everything(0)
    data = OnPolicyDataModule("CartPole-v1", num_envs=4, frames_per_batch=128, total_frames=1024)
    evaluation = Evaluation(every_frames=512, episodes=2)
    checkpoint = FrameCheckpoint(every_frames=512, dirpath=tmp_path / "ckpt")
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[evaluation, checkpoint], default_root_dir=tmp_path)
    trainer.fit(PPO(epochs=1, minibatch_size=128), datamodule=data)
    assert evaluation.next_frame == 1536 and evaluation.last
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert ckpt["rl_lightning"]["env_spec"]["env_id"] == "CartPole-v1"
    assert ckpt["OnPolicyDataModule"]["frames"] == 1024
    restored = Evaluation(every_frames=512, episodes=2)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("Evaluation")]
    restored.load_state_dict(state)
    assert restored.state_dict() == evaluation.state_dict()
    assert not list((tmp_path / "ckpt").glob("*.tmp"))
