"""Observation encoders: ``Encoder(observation_shape, **options) -> nn.Module``.

An encoder maps observations ``[batch, *observation_shape]`` to features ``[batch, features]``;
the algorithm's heads (``actor_net``, ``critic_net``, ``q_net``) map features to logits, means,
values or Q-values. The algorithms find the number of features by one forward pass of a zero
observation (:func:`feature_size`), so any ``nn.Module`` taking the observation shape as its
first argument works, e.g. ``encoder: {class_path: mypkg.MyEncoder, init_args: {width: 32}}``.

The CNNs take ``uint8`` frames and scale them to [0, 1] inside (so the replay buffer and the
collector keep one byte per pixel); float frames are taken as they are.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from rl_lightning.errors import ConfigError

#: An encoder builder: ``builder(observation_shape) -> nn.Module`` (``[B, *shape] -> [B, F]``).
EncoderBuilder = Callable[[tuple[int, ...]], nn.Module]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def looks_like_image(shape: Sequence[int], dtype: str) -> bool:
    """Whether observations of ``shape`` and NumPy ``dtype`` name look like images: 3-D or
    more, or 2-D with an integer dtype."""
    integer = not dtype.startswith(("float", "bfloat"))
    return len(shape) >= 3 or (len(shape) == 2 and integer)


def feature_size(encoder: nn.Module, observation_shape: tuple[int, ...], dtype: str = "float32",
                 key: str = "model.encoder") -> int:
    """Number of features ``encoder`` outputs, from one forward pass of a zero observation
    (batch of one) of ``dtype``; a :class:`ConfigError` naming ``key`` unless it returns
    ``[1, features]``."""
    probe = torch.zeros((1, *observation_shape), dtype=getattr(torch, dtype))
    was_training = encoder.training
    encoder.eval()  # no batch-norm statistics update from the probe
    try:
        with torch.no_grad():
            out = encoder(probe)
    except Exception as error:
        raise ConfigError(
            f"{key} ({type(encoder).__name__}) cannot encode observations {tuple(observation_shape)} {dtype}: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        encoder.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{key} ({type(encoder).__name__}) must map observations [batch, *{tuple(observation_shape)}] to "
            f"features [batch, features]; for a batch of one it returned {got}."
        )
    return int(out.shape[1])


def encode(encoder: nn.Module, obs: torch.Tensor, observation_dims: int) -> torch.Tensor:
    """``encoder`` on observations with any number of batch dimensions (e.g. ``[envs, steps]``):
    they are merged into one for the call and split again, so encoders only ever see
    ``[batch, *observation_shape]``."""
    batch = obs.shape[: obs.dim() - observation_dims]
    if len(batch) == 1:
        return encoder(obs)
    out = encoder(obs.reshape(-1, *obs.shape[obs.dim() - observation_dims :]))
    return out.reshape(*batch, out.shape[-1])


def _orthogonal(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal weights and zero biases on every linear and convolution layer (as the MLPs)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Flatten(nn.Module):
    """No parameters: ``[batch, *shape] -> [batch, prod(shape)]`` as float32 (the default for
    vector observations; heads then see exactly the flat observation).

    Args:
        observation_shape: shape of one observation; given by the algorithm.
    """

    def __init__(self, observation_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = len(observation_shape)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs if obs.is_floating_point() else obs.float()
        return obs if self.dims == 1 else obs.flatten(-self.dims)


class MLPEncoder(nn.Sequential):
    """Fully connected layers over the flattened observation; features are the last hidden layer.

    Args:
        observation_shape: shape of one observation; given by the algorithm.
        hidden_sizes: width of each layer (the last is the number of features), at least one.
        activation: activation after each layer.
    """

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh",
    ) -> None:
        if not hidden_sizes:
            raise ConfigError("MLPEncoder needs at least one hidden size (model.encoder.init_args.hidden_sizes).")
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"MLPEncoder activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
        layers: list[nn.Module] = [Flatten(observation_shape)]
        sizes = (math.prod(observation_shape), *hidden_sizes)
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        super().__init__(*layers)
        _orthogonal(self)


class _ImageInput(nn.Module):
    """Frames ``[B, *shape]`` -> float ``[B, C, H, W]``: uint8 scaled to [0, 1], channel-last
    moved first, grayscale ``(H, W)`` given one channel."""

    def __init__(self, observation_shape: tuple[int, ...], channels_last: bool | None, name: str) -> None:
        super().__init__()
        shape = tuple(observation_shape)
        if len(shape) == 2:
            channels_last = False
            shape = (1, *shape)
        elif len(shape) != 3:
            raise ConfigError(
                f"{name} takes image observations (C, H, W), (H, W, C) or (H, W); got shape {tuple(observation_shape)} "
                "(use rl_lightning.networks.Flatten or MLPEncoder for vectors)."
            )
        if channels_last is None:
            # channels are the small axis: (H, W, C) when the last axis is at most 4 and smaller
            # than the first (e.g. 84x84x3); otherwise channel-first (e.g. 4x84x84)
            channels_last = shape[-1] <= 4 and shape[-1] < shape[0]
        self.grayscale = len(observation_shape) == 2
        self.channels_last = bool(channels_last)
        self.chw = (shape[2], shape[0], shape[1]) if self.channels_last else shape

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        if self.grayscale:
            return x.unsqueeze(-3)
        return x.movedim(-1, -3) if self.channels_last else x


class _ConvEncoder(nn.Module):
    """What the CNN encoders share: frames in (:class:`_ImageInput`), ``cnn`` then ``linear``
    with ReLU to ``features_dim`` features, orthogonal initialization, any batch dimensions."""

    def _finish(self, cnn: nn.Module, features_dim: int) -> None:
        self.cnn = cnn
        with torch.no_grad():
            n = self.cnn(torch.zeros(1, *self.input.chw)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n, features_dim), nn.ReLU())
        _orthogonal(self)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.input(obs)
        batch = x.shape[:-3]
        out = self.linear(self.cnn(x.reshape(-1, *x.shape[-3:])))
        return out.reshape(*batch, out.shape[-1])


class NatureCNN(_ConvEncoder):
    """The DQN Nature network's convolutions (Mnih et al. 2015): 32 8x8 filters stride 4, 64 4x4
    stride 2, 64 3x3 stride 1, then a linear layer; ReLU after each.

    Args:
        observation_shape: ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``; given by the algorithm.
        features_dim: size of the last linear layer (the features).
        channels_last: whether the last axis holds the channels; ``None`` guesses from the
            shape (last axis of at most 4 and smaller than the first).
    """

    def __init__(self, observation_shape: tuple[int, ...], features_dim: int = 512,
                 channels_last: bool | None = None) -> None:
        super().__init__()
        self.input = _ImageInput(observation_shape, channels_last, "NatureCNN")
        c, h, w = self.input.chw
        if h < 36 or w < 36:
            raise ConfigError(
                f"NatureCNN needs frames of at least 36x36 pixels, got {h}x{w} (observations {tuple(observation_shape)}); "
                "use ImpalaCNN or a smaller network for small frames."
            )
        self._finish(nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        ), features_dim)


class _Residual(nn.Module):
    """ReLU-conv-ReLU-conv with a skip connection (IMPALA's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaCNN(_ConvEncoder):
    """The IMPALA network (Espeholt et al. 2018): per stage a 3x3 convolution, 3x3 max-pool
    stride 2 and two residual blocks; then ReLU, a linear layer and ReLU.

    Args:
        observation_shape: ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``; given by the algorithm.
        channels: channels of each stage.
        features_dim: size of the last linear layer (the features).
        channels_last: whether the last axis holds the channels; ``None`` guesses from the shape.
    """

    def __init__(self, observation_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 32, 32),
                 features_dim: int = 256, channels_last: bool | None = None) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("ImpalaCNN needs at least one stage (model.encoder.init_args.channels).")
        self.input = _ImageInput(observation_shape, channels_last, "ImpalaCNN")
        c = self.input.chw[0]
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       _Residual(out), _Residual(out)]
            c = out
        self._finish(nn.Sequential(*layers, nn.ReLU(), nn.Flatten()), features_dim)


class HistoryTransformer(nn.Module):
    """Causal self-attention over the K most recent observations, e.g. those of gymnasium's
    ``FrameStackObservation(stack_size=K)`` wrapper (``data.wrappers``), oldest first.

    Each of the K steps is a token: a linear embedding of its observation plus a positional
    encoding of its place in the window. A stack of pre-norm transformer encoder layers attends
    causally (a step sees itself and older steps only); the features are those of the last token,
    the current step, after a final layer norm: ``[batch, K, D] -> [batch, d_model]``.

    At the start of an episode the window is not yet full: ``FrameStackObservation`` fills it
    with copies of the reset observation (its default ``padding_type="reset"``; ``"zero"`` pads
    with zeros), so for the first K - 1 steps the encoder sees the reset observation repeated
    (as a standstill) in the older positions; nothing marks them as padding.

    Args:
        observation_shape: ``(K, D)``: K steps of D-entry observations; given by the algorithm.
        d_model: width of the tokens (the number of features).
        heads: attention heads; ``d_model`` must be a multiple.
        layers: transformer encoder layers.
        dim_feedforward: width of each layer's feed-forward network.
        dropout: dropout in the layers (0 keeps collecting and training on the same policy).
        positional: ``sinusoidal`` (fixed, Vaswani et al.) or ``learned`` positional encodings.
    """

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        d_model: int = 32,
        heads: int = 2,
        layers: int = 1,
        dim_feedforward: int = 64,
        dropout: float = 0.0,
        positional: Literal["sinusoidal", "learned"] = "sinusoidal",
    ) -> None:
        super().__init__()
        if len(observation_shape) != 2:
            raise ConfigError(
                f"HistoryTransformer takes a history of vector observations (K, D), got shape {tuple(observation_shape)}: "
                "stack them with data.wrappers [..., {class_path: gymnasium.wrappers.FrameStackObservation, "
                "init_args: {stack_size: 8}}]."
            )
        for name, value in (("d_model", d_model), ("heads", heads), ("layers", layers),
                            ("dim_feedforward", dim_feedforward)):
            if value < 1:
                raise ConfigError(f"HistoryTransformer {name} must be >= 1 (model.encoder.init_args.{name}), got {value}.")
        if d_model % heads:
            raise ConfigError(f"HistoryTransformer d_model ({d_model}) must be a multiple of heads ({heads}) "
                              "(model.encoder.init_args).")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"HistoryTransformer dropout must be in [0, 1) (model.encoder.init_args.dropout), got {dropout}.")
        if positional not in ("sinusoidal", "learned"):
            raise ConfigError(f"HistoryTransformer positional must be 'sinusoidal' or 'learned', got {positional!r}.")
        steps, size = (int(n) for n in observation_shape)
        self.embed = nn.Linear(size, d_model)
        if positional == "learned":
            self.position = nn.Parameter(torch.randn(steps, d_model) * 0.02)
        else:
            self.register_buffer("position", _sinusoidal(steps, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward, dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(steps), persistent=False)

    def tokens(self, obs: torch.Tensor) -> torch.Tensor:
        """The features of every step, ``[batch, K, d_model]`` (step k attends to steps <= k)."""
        x = self.embed(obs if obs.is_floating_point() else obs.float()) + self.position
        return self.norm(self.layers(x, mask=self.mask, is_causal=True))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.tokens(obs)[:, -1]


def _sinusoidal(steps: int, width: int) -> torch.Tensor:
    """Fixed sine/cosine positional encodings ``[steps, width]`` (Vaswani et al. 2017)."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10_000.0) / width))
    encoding = torch.zeros(steps, width)
    encoding[:, 0::2] = torch.sin(position * rate)
    encoding[:, 1::2] = torch.cos(position * rate[: width // 2])
    return encoding
