"""Configuration: one dataclass per command, from defaults ← TOML file ← ``--set`` overrides.

Every command's config is a (possibly nested) dataclass. `load_config` merges, in order,
the dataclass defaults, a TOML file (tables map to nested dataclasses) and ``key=value``
overrides with dotted keys (``--set ppo.epochs=2 --set control.target=0.3``; values are
parsed as TOML, so ``true``, ``1e-5``, ``"text"`` and ``{kind = "cosine", ...}`` work, and a
bare word is taken as a string). Unknown keys and wrong types are refused with one line
naming the field; each dataclass checks its ranges in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

__all__ = [
    "ConfigError",
    "ControlConfig",
    "DataConfig",
    "EvalConfig",
    "InitTinyConfig",
    "LeverConfig",
    "MakeDataConfig",
    "ModelConfig",
    "OptimConfig",
    "PPOConfig",
    "RLConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "build_config",
    "config_to_dict",
    "load_config",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the field."""


def _need(ok: bool, field: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{field} must be {rule}, got {value!r}")


# --------------------------------------------------------------------------- sections
@dataclasses.dataclass
class ModelConfig:
    path: str = ""
    """Local Hugging Face model directory (config.json, safetensors weights, tokenizer)."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'."""
    dtype: str = "auto"
    """'auto' (float32 on CPU, bfloat16 on CUDA), 'float32' or 'bfloat16'."""

    def __post_init__(self):
        _need(
            self.dtype in ("auto", "float32", "bfloat16"), "model.dtype", "'auto', 'float32' or 'bfloat16'", self.dtype
        )
        _need(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda"),
            "model.device",
            "'auto', 'cpu' or 'cuda[:N]'",
            self.device,
        )


@dataclasses.dataclass
class DataConfig:
    train: str = ""
    """Training prompts (JSONL: prompt, answer, task, meta)."""
    test: str = ""
    """Held-out prompts for evaluation ('' = none)."""
    prompts_per_step: int = 16
    """Prompts per RL step; each is sampled group_size times."""
    shuffle: bool = True

    def __post_init__(self):
        _need(self.prompts_per_step >= 1, "data.prompts_per_step", "an integer >= 1", self.prompts_per_step)


@dataclasses.dataclass
class RolloutConfig:
    group_size: int = 8
    """Completions per prompt (the GRPO group)."""
    max_new_tokens: int = 16
    temperature: float = 1.0
    """Sampling temperature; also the temperature of the training log-probs and of the entropy."""

    def __post_init__(self):
        _need(self.group_size >= 2, "rollout.group_size", "an integer >= 2", self.group_size)
        _need(self.max_new_tokens >= 1, "rollout.max_new_tokens", "an integer >= 1", self.max_new_tokens)
        _need(self.temperature > 0 and math.isfinite(self.temperature), "rollout.temperature", "> 0", self.temperature)


@dataclasses.dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0
    """Max global grad norm per optimizer step (0 disables clipping)."""
    schedule: str = "constant"
    """'constant', 'linear' or 'cosine' decay over train.steps, after warmup."""
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    """Final lr as a fraction of lr for the linear/cosine schedules."""

    def __post_init__(self):
        _need(self.lr > 0, "optim.lr", "> 0", self.lr)
        _need(self.weight_decay >= 0, "optim.weight_decay", ">= 0", self.weight_decay)
        _need(0 <= self.beta1 < 1, "optim.beta1", "in [0, 1)", self.beta1)
        _need(0 <= self.beta2 < 1, "optim.beta2", "in [0, 1)", self.beta2)
        _need(self.eps > 0, "optim.eps", "> 0", self.eps)
        _need(self.grad_clip >= 0, "optim.grad_clip", ">= 0", self.grad_clip)
        _need(
            self.schedule in ("constant", "linear", "cosine"),
            "optim.schedule",
            "'constant', 'linear' or 'cosine'",
            self.schedule,
        )
        _need(self.warmup_steps >= 0, "optim.warmup_steps", ">= 0", self.warmup_steps)
        _need(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", "in [0, 1]", self.min_lr_ratio)


@dataclasses.dataclass
class PPOConfig:
    epochs: int = 1
    """Passes over each rollout batch. epochs = minibatches = 1 is on-policy (ratio ≡ 1)."""
    minibatches: int = 1
    """Optimizer steps per epoch; the batch of sequences is split evenly."""
    micro_batch_size: int = 0
    """Sequences per forward/backward (gradient accumulation); 0 = the whole mini-batch."""
    eps_low: float = 0.2
    eps_high: float = 0.2
    """Clip range [1 − eps_low, 1 + eps_high] of the ratio (DAPO clip-higher: 0.28)."""
    dual_clip: float = 3.0
    """Dual clip c for negative advantages (0 disables)."""
    advantage: str = "grpo"
    """'grpo' (group mean and std) or 'dr_grpo' (group mean only)."""
    adv_eps: float = 1e-6
    old_logprobs: str = "rollout"
    """Behaviour log-probs for the off-policy ratio: 'rollout' (from sampling) or 'recompute'."""

    def __post_init__(self):
        _need(self.epochs >= 1, "ppo.epochs", "an integer >= 1", self.epochs)
        _need(self.minibatches >= 1, "ppo.minibatches", "an integer >= 1", self.minibatches)
        _need(self.micro_batch_size >= 0, "ppo.micro_batch_size", "an integer >= 0", self.micro_batch_size)
        _need(0 <= self.eps_low < 1, "ppo.eps_low", "in [0, 1)", self.eps_low)
        _need(self.eps_high >= 0, "ppo.eps_high", ">= 0", self.eps_high)
        _need(self.dual_clip == 0 or self.dual_clip > 1, "ppo.dual_clip", "0 (off) or > 1", self.dual_clip)
        _need(self.advantage in ("grpo", "dr_grpo"), "ppo.advantage", "'grpo' or 'dr_grpo'", self.advantage)
        _need(self.adv_eps >= 0, "ppo.adv_eps", ">= 0", self.adv_eps)
        _need(
            self.old_logprobs in ("rollout", "recompute"),
            "ppo.old_logprobs",
            "'rollout' or 'recompute'",
            self.old_logprobs,
        )

    @property
    def on_policy(self) -> bool:
        return self.epochs == 1 and self.minibatches == 1


@dataclasses.dataclass
class ControlConfig:
    enabled: bool = True
    """False trains plain GRPO (α ≡ 0); the entropy is still measured and logged."""
    kp: float = 1.0
    ki: float = 0.01
    """ki = 0 is P control."""
    target: Any = 0.1
    """Entropy setpoint in nats, or a schedule table ({kind = "linear", start = .., end = .., steps = ..})."""
    tau: float = 0.95
    """The actuator acts on tokens whose current probability exceeds tau."""
    normalization: str = "all_tokens"
    """'all_tokens' (weights exactly 1 ± α, the paper) or 'high_prob_tokens' (the official code)."""
    alpha_limit: float = 1.0
    """α is clipped to [−alpha_limit, alpha_limit]."""
    anti_windup: str = "none"
    """'none' (official), 'clamp' or 'back_calculation'."""
    integral_limit: float = 0.0
    """Bound on |integral| (0 = none)."""
    tracking_gain: float = 1.0

    def __post_init__(self):
        from pic import ANTI_WINDUP_MODES
        from pic.actuator import NORMALIZATIONS

        _need(self.kp >= 0 and math.isfinite(self.kp), "control.kp", "a finite number >= 0", self.kp)
        _need(self.ki >= 0 and math.isfinite(self.ki), "control.ki", "a finite number >= 0", self.ki)
        _need(0 < self.tau < 1, "control.tau", "in (0, 1)", self.tau)
        _need(
            self.normalization in NORMALIZATIONS,
            "control.normalization",
            f"one of {NORMALIZATIONS}",
            self.normalization,
        )
        _need(self.alpha_limit > 0, "control.alpha_limit", "> 0", self.alpha_limit)
        _need(
            self.anti_windup in ANTI_WINDUP_MODES,
            "control.anti_windup",
            f"one of {ANTI_WINDUP_MODES}",
            self.anti_windup,
        )
        _need(self.integral_limit >= 0, "control.integral_limit", ">= 0 (0 = none)", self.integral_limit)
        _need(0 < self.tracking_gain <= 1, "control.tracking_gain", "in (0, 1]", self.tracking_gain)
        try:
            self.schedule()
        except ValueError as exc:
            raise ConfigError(f"control.target: {exc}") from None

    def schedule(self):
        """The target as a `pic.setpoint` schedule."""
        from pic.setpoint import schedule_from_dict

        return schedule_from_dict(self.target)

    def max_target(self, steps: int) -> float:
        import numpy as np

        return float(np.max(self.schedule()(np.arange(max(steps, 1)))))


@dataclasses.dataclass
class LeverConfig:
    """The entropy-control method (`pic.levers`); EntroPIC by default.

    ``name = "entropic"`` (PI) or ``"entropic_p"`` (P) take their parameters from the
    ``[control]`` table; ``control.enabled = false`` with those names trains plain GRPO. Every
    other method takes its parameters from ``params`` (``[lever.params]`` in TOML, or
    ``--set lever.params.coef=0.01``), with the lever's own defaults for the rest.
    """

    name: str = "entropic"
    """A name from `pic.levers.LEVERS`: grpo, entropic, entropic_p, entropy_bonus, kl_penalty,
    adaptive_entropy_skywork, adaptive_entropy_trl, sac_temperature, clip_higher, ce_gppo,
    flexec_{id,did,od,static}, clip_cov, kl_cov."""
    params: dict = dataclasses.field(default_factory=dict)
    """Parameters of a non-EntroPIC lever."""

    def __post_init__(self):
        from pic.levers import LEVERS

        _need(self.name in LEVERS, "lever.name", f"one of {sorted(LEVERS)}", self.name)
        _need(
            not (self.params and self.name in ENTROPIC_LEVERS),
            "lever.params",
            "empty for EntroPIC (its parameters live in [control])",
            self.params,
        )


ENTROPIC_LEVERS = ("entropic", "entropic_p")


@dataclasses.dataclass
class TrainConfig:
    out: str = ""
    """Run directory (metrics.jsonl, TensorBoard events, checkpoints, config.json)."""
    steps: int = 100
    """RL steps (one rollout batch each)."""
    seed: int = 0
    save_every: int = 50
    """Checkpoint every N steps (0 = only at the end)."""
    keep_last: int = 2
    """Checkpoints kept on disk."""
    resume: bool = False
    """Continue from the newest checkpoint in `out`."""
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    parallel: str = "ddp"
    """Under torchrun: 'ddp' (a full replica per rank, gradients summed) or 'fsdp' (FSDP2:
    parameters, gradients and optimizer state sharded across the ranks)."""

    def __post_init__(self):
        _need(self.parallel in ("ddp", "fsdp"), "train.parallel", "'ddp' or 'fsdp'", self.parallel)
        _need(self.steps >= 1, "train.steps", "an integer >= 1", self.steps)
        _need(self.save_every >= 0, "train.save_every", "an integer >= 0", self.save_every)
        _need(self.keep_last >= 1, "train.keep_last", "an integer >= 1", self.keep_last)
        _need(self.threads >= 0, "train.threads", "an integer >= 0", self.threads)


@dataclasses.dataclass
class RLConfig:
    """``python -m llm train``: GRPO/PPO with the EntroPIC controller."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    control: ControlConfig = dataclasses.field(default_factory=ControlConfig)
    lever: LeverConfig = dataclasses.field(default_factory=LeverConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self):
        from pic.levers import check_plant

        lever = self.build_lever()  # refuses bad lever parameters with the field named
        try:
            check_plant(
                lever,
                updates_per_rollout=self.ppo.epochs * self.ppo.minibatches,
                field_hint="ppo.epochs >= 2 or ppo.minibatches >= 2",
            )
        except ValueError as exc:
            raise ConfigError(f"lever.name: {exc}") from None
        batch = self.data.prompts_per_step * self.rollout.group_size
        if batch % self.ppo.minibatches:
            raise ConfigError(
                f"ppo.minibatches must divide data.prompts_per_step × rollout.group_size = {batch}, "
                f"got {self.ppo.minibatches}"
            )
        mini = batch // self.ppo.minibatches
        micro = self.ppo.micro_batch_size
        if micro and mini % micro:
            raise ConfigError(f"ppo.micro_batch_size must divide the mini-batch of {mini} sequences, got {micro}")

    @property
    def lever_name(self) -> str:
        """The method actually trained: 'grpo' when EntroPIC is disabled."""
        if self.lever.name in ENTROPIC_LEVERS and not self.control.enabled:
            return "grpo"
        return self.lever.name

    def build_lever(self, loops: int = 1):
        """The configured `pic.levers.Lever` (fresh state)."""
        from pic.levers import make_lever

        name = self.lever_name
        if name in ENTROPIC_LEVERS:
            c = self.control
            params = {
                "kp": c.kp,
                "ki": 0.0 if name == "entropic_p" else c.ki,
                "target": c.schedule(),
                "tau": c.tau,
                "normalization": c.normalization,
                "alpha_limit": c.alpha_limit,
                "anti_windup": c.anti_windup,
                "integral_limit": c.integral_limit or None,
                "tracking_gain": c.tracking_gain,
            }
        else:
            params = dict(self.lever.params)
        try:
            return make_lever(name, loops=loops, **params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"lever.params: {exc}") from None

    def check_paths(self) -> None:
        """Refuse missing input paths (called by the trainer, not on construction)."""
        _need(bool(self.model.path), "model.path", "a model directory", self.model.path)
        _need(Path(self.model.path).is_dir(), "model.path", "an existing directory", self.model.path)
        _need(bool(self.data.train), "data.train", "a JSONL file", self.data.train)
        _need(Path(self.data.train).is_file(), "data.train", "an existing file", self.data.train)
        _need(
            not self.data.test or Path(self.data.test).is_file(), "data.test", "an existing file or ''", self.data.test
        )
        _need(bool(self.train.out), "train.out", "a run directory", self.train.out)


# ------------------------------------------------------------------ other commands
@dataclasses.dataclass
class InitTinyConfig:
    """``python -m llm init-tiny``: a small random model and a character tokenizer."""

    out: str = ""
    arch: str = "qwen2"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position_embeddings: int = 256
    seed: int = 0

    def __post_init__(self):
        _need(self.arch in ("qwen2", "llama"), "arch", "'qwen2' or 'llama'", self.arch)
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "max_position_embeddings"):
            _need(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _need(
            self.hidden_size % self.num_heads == 0,
            "hidden_size",
            f"a multiple of num_heads={self.num_heads}",
            self.hidden_size,
        )
        _need(
            self.num_heads % self.num_kv_heads == 0,
            "num_kv_heads",
            f"a divisor of num_heads={self.num_heads}",
            self.num_kv_heads,
        )


@dataclasses.dataclass
class MakeDataConfig:
    """``python -m llm make-data``: synthetic verifiable tasks as JSONL train/test splits."""

    out: str = ""
    task: str = "arithmetic"
    n_train: int = 2000
    n_test: int = 200
    difficulty: int = 2
    ops: str = ""
    """Arithmetic operations, e.g. "+" or "+-" ('' = the default for the difficulty)."""
    seed: int = 0

    def __post_init__(self):
        _need(self.n_train >= 1, "n_train", "an integer >= 1", self.n_train)
        _need(self.n_test >= 0, "n_test", "an integer >= 0", self.n_test)
        _need(self.difficulty >= 1, "difficulty", "an integer >= 1", self.difficulty)


@dataclasses.dataclass
class SFTConfig:
    """``python -m llm sft``: supervised warm start on (prompt, answer) pairs."""

    model: str = ""
    data: str = ""
    out: str = ""
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0

    def __post_init__(self):
        _need(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        _need(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _need(self.lr > 0, "lr", "> 0", self.lr)
        _need(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)


@dataclasses.dataclass
class EvalConfig:
    """``python -m llm eval``: avg@k and pass@k on a test split."""

    model: str = ""
    data: str = ""
    k: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 16
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    out: str = ""
    """Optional JSON file for the results."""

    def __post_init__(self):
        _need(self.k >= 1, "k", "an integer >= 1", self.k)
        _need(self.temperature > 0, "temperature", "> 0", self.temperature)
        _need(self.max_new_tokens >= 1, "max_new_tokens", "an integer >= 1", self.max_new_tokens)
        _need(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)


# -------------------------------------------------------------------------- loading
def config_to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def _coerce(value: Any, hint: Any, field: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(hint):
            try:
                return _coerce(value, arm, field)
            except ConfigError:
                continue
        raise ConfigError(f"{field} has the wrong type: {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{field} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{field} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{field} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{field} must be a string, got {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{field} must be a table, got {value!r}")
        return _build(hint, value, field + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{field} must be a list, got {value!r}")
        (arm,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, arm, f"{field}[{i}]") for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{field} must be a table, got {value!r}")
        return value
    return value


def _build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"unknown key {prefix}{name}; valid keys here: {', '.join(sorted(fields))}")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise ConfigError(f"{prefix}{exc}") from None
        raise


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from defaults, an optional TOML file and ``key=value`` overrides."""
    tree: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        try:
            tree = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return build_config(cls, tree, overrides)


def build_config(cls: type[T], tree: dict[str, Any], overrides: list[str] | None = None) -> T:
    """Build ``cls`` from a nested dict of values and ``key=value`` overrides (applied in order)."""
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, _, text = item.partition("=")
        _set_dotted(tree, key.strip(), _parse_value(text.strip()))
    return _build(cls, tree)
