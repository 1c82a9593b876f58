"""Configuration: one dataclass per command, declared once (type, default, one-line doc per field).

The same dataclasses give the command-line flags and ``--help`` (via tyro, `llm.cli`), the TOML
loading and ``--set`` overrides (`load_config`), the ``--help-keys`` listing (`config_keys`) and
the run's ``config.json`` (`config_to_dict`, which loads back unchanged). Precedence: defaults ←
TOML file ← ``--set key=value`` (dotted keys, values parsed as TOML literals, a bare word taken
as a string) ← flags. Each dataclass validates its ranges in one ``check()``, called once on the
finished configuration, before any work starts; every error is one line naming the field.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import os
import textwrap
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tomllib
import typeguard
import tyro

from pic.levers import LEVERS
from pic.params import EntroPICParams
from pic.validation import ParameterError, is_finite_number, need

from .tasks import TASKS

__all__ = [
    "ConfigError",
    "ControlConfig",
    "DataConfig",
    "DemoConfig",
    "EvalConfig",
    "InitTinyConfig",
    "KLConfig",
    "LeverConfig",
    "MakeDataConfig",
    "ModelConfig",
    "OptimConfig",
    "PPOConfig",
    "PlotConfig",
    "RLConfig",
    "RewardConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "build_config",
    "config_keys",
    "config_to_dict",
    "field_docs",
    "load_config",
    "structure",
    "structure_value",
    "toml_literal",
]

T = TypeVar("T")

ConfigError = ParameterError
"""A bad configuration value; the message is one line naming the field."""

Dtype = Literal["auto", "float32", "bfloat16"]
Schedule = Literal["constant", "linear", "cosine"]
Advantage = Literal["grpo", "dr_grpo"]
OldLogprobs = Literal["rollout", "recompute"]
Parallel = Literal["ddp", "fsdp"]
Arch = Literal["qwen2", "llama"]
DataFormat = Literal["plain", "gsm8k", "math", "verl"]
ChatTemplate = Literal["auto", "none"]
Truncated = Literal["keep", "mask", "penalty"]
KLEstimator = Literal["k1", "k3"]
TokenizerKind = Literal["char", "bpe"]
Engine = Literal["static", "eager"]
Compile = Literal["auto", "on", "off"]
Shape = Literal["", "qwen2.5-0.5b", "qwen2.5-1.5b"]
LeverName = Literal[tuple(sorted(LEVERS))]  # read from the registry, never typed by hand
TaskName = Literal[tuple(sorted(TASKS))]

ENTROPIC_LEVERS = ("entropic", "entropic_p", "entropic_auto")


def toml_flag(hint: Any) -> tyro.constructors.PrimitiveConstructorSpec:
    """How tyro reads a field holding a TOML value or table: one TOML literal, e.g. ``'{kind = "cosine"}'``."""
    return tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="TOML",
        instance_from_str=lambda strings: structure_value(parse_value(strings[0]), hint, "value"),
        is_instance=lambda value: True,
        str_from_instance=lambda value: [toml_literal(value)],
    )


def _check_device(device: str, field: str) -> None:
    need(device == "auto" or device.split(":")[0] in ("cpu", "cuda"), field, "'auto', 'cpu' or 'cuda[:N]'", device)


def _check_choice(value: Any, hint: Any, field: str) -> None:
    """Literal fields set in Python (not through the loader) are checked here too."""
    choices = typing.get_args(hint)
    need(value in choices, field, f"one of {choices}", value)


# --------------------------------------------------------------------------- sections


def default_threads() -> int:
    """torch CPU threads by default: half the cores, at least 1, at most 4 (a 2-core machine gets 1).

    torch's own default (every core) oversubscribes a small shared machine: ``sft --steps 50``
    took 2.5–150 s with 2 threads on a busy 2-core machine and 4.3 s with 1.
    """
    return max(1, min(4, (os.cpu_count() or 1) // 2))


@dataclasses.dataclass
class ModelConfig:
    """The policy model ([model] table)."""

    path: str = ""
    """Local Hugging Face model directory (config.json, safetensors weights, tokenizer)."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'."""
    dtype: Dtype = "auto"
    """Rollout precision: 'auto' (float32 on CPU, bfloat16 on CUDA), 'float32' or 'bfloat16'. Master weights and
    optimizer state are always float32; on CUDA the training forward runs under bf16 autocast and, unless
    'float32', rollouts sample from a bf16 copy of the weights (FSDP: bf16 parameters, fp32 gradient reduce)."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in the backward pass (saved activations ~1 tensor per block, not ~20)."""

    def check(self) -> None:
        _check_choice(self.dtype, Dtype, "model.dtype")
        _check_device(self.device, "model.device")


@dataclasses.dataclass
class DataConfig:
    """The prompts ([data] table)."""

    train: str = ""
    """Training prompts: a .jsonl, .json, .parquet or .arrow file, or a directory of them (see llm.datasets)."""
    test: str = ""
    """Held-out prompts for evaluation, same formats ('' = none)."""
    prompts_per_step: int = 16
    """Prompts per RL step (>= 1); each is sampled rollout.group_size times."""
    shuffle: bool = True
    """Reshuffle the prompts every epoch (seeded by train.seed); false keeps the file's order."""
    format: DataFormat = "plain"
    """Row layout: 'plain' (prompt, answer, task), 'gsm8k' (question, answer after ####), 'math' (problem,
    \\boxed{} of solution) or 'verl' (chat-list prompt, reward_model.ground_truth)."""
    prompt_key: str = ""
    """Field holding the prompt ('' = the format's; a dotted key reads a nested field)."""
    answer_key: str = ""
    """Field holding the gold answer, used as it is ('' = the format's, with its extraction)."""
    task: str = ""
    """Reward of rows without a task field ('' = plain rows must name one; the other formats use 'math')."""
    chat_template: ChatTemplate = "auto"
    """'auto' applies the tokenizer's chat template (add_generation_prompt) when it has one; 'none' never."""
    system_prompt: str = ""
    """System message put before every prompt ('' = none)."""
    prompt_template: str = ""
    """Template of a question string with one {question} field ('' = the question as it is)."""

    def check(self) -> None:
        need(self.prompts_per_step >= 1, "data.prompts_per_step", "an integer >= 1", self.prompts_per_step)
        _check_choice(self.format, DataFormat, "data.format")
        _check_choice(self.chat_template, ChatTemplate, "data.chat_template")
        if self.prompt_template:
            try:
                self.prompt_template.format(question="q")
                ok = "{question}" in self.prompt_template
            except (KeyError, IndexError, ValueError):
                ok = False
            need(ok, "data.prompt_template", "a template with one {question} field", self.prompt_template)


@dataclasses.dataclass
class RolloutConfig:
    """Sampling ([rollout] table)."""

    group_size: int = 8
    """Completions per prompt (the GRPO group), >= 2."""
    max_new_tokens: int = 16
    """Most tokens sampled per completion (>= 1)."""
    temperature: float = 1.0
    """Sampling temperature (> 0); also the temperature of the training log-probs and of the entropy."""
    stop_strings: list[str] = dataclasses.field(default_factory=list)
    """Texts that end a completion besides the stop token ids (the text is cut before them)."""
    truncated: Truncated = "keep"
    """A response hitting max_new_tokens without a stop: 'keep', 'mask' (out of the loss) or 'penalty' (DAPO)."""
    overlong_buffer: int = 0
    """DAPO's soft-overlong buffer L_c in tokens, in [1, max_new_tokens] (0 = max_new_tokens // 4)."""
    overlong_penalty: float = 1.0
    """Scale of DAPO's overlong penalty (>= 0): the reward falls by up to this much over the buffer."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1] (1 = off); log-probs and entropy stay those of the full distribution."""
    top_k: int = 0
    """Sample among the k most likely tokens (>= 0; 0 = off); log-probs/entropy of the full distribution."""
    engine: Engine = "static"
    """'static' (static KV cache, lean decode step; falls back to 'eager' for models it cannot run) or 'eager'."""
    compile: Compile = "auto"
    """torch.compile the static decode step: 'auto' (on CUDA, with CUDA graphs), 'on' or 'off'."""
    batch_size: int = 0
    """Sequences per generate call (>= 0; 0 = the rank's whole share at once); bounds the KV cache."""

    def check(self) -> None:
        _check_choice(self.truncated, Truncated, "rollout.truncated")
        need(all(self.stop_strings), "rollout.stop_strings", "non-empty strings", self.stop_strings)
        need(
            0 <= self.overlong_buffer <= self.max_new_tokens,
            "rollout.overlong_buffer",
            f"in [0, rollout.max_new_tokens = {self.max_new_tokens}]",
            self.overlong_buffer,
        )
        need(
            is_finite_number(self.overlong_penalty) and self.overlong_penalty >= 0,
            "rollout.overlong_penalty",
            ">= 0",
            self.overlong_penalty,
        )
        _check_choice(self.engine, Engine, "rollout.engine")
        _check_choice(self.compile, Compile, "rollout.compile")
        need(is_finite_number(self.top_p) and 0 < self.top_p <= 1, "rollout.top_p", "in (0, 1]", self.top_p)
        need(self.top_k >= 0, "rollout.top_k", "an integer >= 0", self.top_k)
        need(self.batch_size >= 0, "rollout.batch_size", "an integer >= 0", self.batch_size)
        need(self.group_size >= 2, "rollout.group_size", "an integer >= 2", self.group_size)
        need(self.max_new_tokens >= 1, "rollout.max_new_tokens", "an integer >= 1", self.max_new_tokens)
        need(
            is_finite_number(self.temperature) and self.temperature > 0, "rollout.temperature", "> 0", self.temperature
        )


@dataclasses.dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule ([optim] table)."""

    lr: float = 1e-4
    """Peak learning rate (> 0)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay (>= 0; 0 = none)."""
    beta1: float = 0.9
    """Adam first-moment decay, in [0, 1)."""
    beta2: float = 0.999
    """Adam second-moment decay, in [0, 1)."""
    eps: float = 1e-8
    """Adam denominator epsilon (> 0)."""
    grad_clip: float = 1.0
    """Max global grad norm per optimizer step (0 disables clipping)."""
    schedule: Schedule = "constant"
    """'constant', 'linear' or 'cosine' decay over train.steps, after warmup."""
    warmup_steps: int = 0
    """RL steps of linear warmup from 0 to lr (0 = none)."""
    min_lr_ratio: float = 0.0
    """Final lr as a fraction of lr for the linear/cosine schedules, in [0, 1]."""

    def check(self) -> None:
        need(is_finite_number(self.lr) and self.lr > 0, "optim.lr", "a finite number > 0", self.lr)
        need(self.weight_decay >= 0, "optim.weight_decay", ">= 0", self.weight_decay)
        need(0 <= self.beta1 < 1, "optim.beta1", "in [0, 1)", self.beta1)
        need(0 <= self.beta2 < 1, "optim.beta2", "in [0, 1)", self.beta2)
        need(self.eps > 0, "optim.eps", "> 0", self.eps)
        need(self.grad_clip >= 0, "optim.grad_clip", ">= 0", self.grad_clip)
        _check_choice(self.schedule, Schedule, "optim.schedule")
        need(self.warmup_steps >= 0, "optim.warmup_steps", ">= 0", self.warmup_steps)
        need(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", "in [0, 1]", self.min_lr_ratio)


@dataclasses.dataclass
class PPOConfig:
    """The clipped policy loss and its updates per rollout ([ppo] table)."""

    epochs: int = 1
    """Passes over each rollout batch (>= 1). epochs = minibatches = 1 is on-policy (ratio ≡ 1)."""
    minibatches: int = 1
    """Optimizer steps per epoch (>= 1); the batch of sequences is split evenly."""
    micro_batch_size: int = 0
    """Sequences per forward/backward (gradient accumulation); 0 = the whole mini-batch."""
    max_tokens_per_micro_batch: int = 0
    """Token budget per forward/backward (>= 0; 0 = off): sequences sorted by length, packed while
    rows × padded width <= budget (and rows <= micro_batch_size); the gradient is unchanged."""
    eps_low: float = 0.2
    """Lower clip range: the ratio is clipped at 1 − eps_low, eps_low in [0, 1)."""
    eps_high: float = 0.2
    """Upper clip range: the ratio is clipped at 1 + eps_high, >= 0 (DAPO clip-higher: 0.28)."""
    dual_clip: float = 3.0
    """Dual clip c > 1 for negative advantages (0 disables)."""
    advantage: Advantage = "grpo"
    """'grpo' (group mean and std) or 'dr_grpo' (group mean only)."""
    adv_eps: float = 1e-6
    """Added to the group std before dividing (>= 0)."""
    old_logprobs: OldLogprobs = "rollout"
    """Behaviour log-probs for the off-policy ratio: 'rollout' (from sampling) or 'recompute'."""

    def check(self) -> None:
        need(
            self.max_tokens_per_micro_batch >= 0,
            "ppo.max_tokens_per_micro_batch",
            "an integer >= 0",
            self.max_tokens_per_micro_batch,
        )
        need(self.epochs >= 1, "ppo.epochs", "an integer >= 1", self.epochs)
        need(self.minibatches >= 1, "ppo.minibatches", "an integer >= 1", self.minibatches)
        need(self.micro_batch_size >= 0, "ppo.micro_batch_size", "an integer >= 0", self.micro_batch_size)
        need(0 <= self.eps_low < 1, "ppo.eps_low", "in [0, 1)", self.eps_low)
        need(self.eps_high >= 0, "ppo.eps_high", ">= 0", self.eps_high)
        need(self.dual_clip == 0 or self.dual_clip > 1, "ppo.dual_clip", "0 (off) or > 1", self.dual_clip)
        _check_choice(self.advantage, Advantage, "ppo.advantage")
        need(self.adv_eps >= 0, "ppo.adv_eps", ">= 0", self.adv_eps)
        _check_choice(self.old_logprobs, OldLogprobs, "ppo.old_logprobs")

    @property
    def on_policy(self) -> bool:
        return self.epochs == 1 and self.minibatches == 1


@dataclasses.dataclass
class ControlConfig(EntroPICParams):
    """EntroPIC ([control] table): the fields of pic.params.EntroPICParams, plus enabled."""

    target: Annotated[Any, toml_flag(Any)] = EntroPICParams.target  # the same field, read as a TOML literal
    enabled: bool = True
    """False trains plain GRPO (α ≡ 0); the entropy is still measured and logged."""
    autotune: bool = False
    """True: the self-tuning controller (lever entropic_auto) places its own gains; kp, ki are ignored."""

    def check(self) -> None:  # type: ignore[override]
        from pic.setpoint import auto_target

        if auto_target(self.target) is None:
            super().check("control.")
        else:  # "initial" or {relative = …}: only the self-tuning controller (autotune) measures H₀
            need(self.autotune, "control.target", "a number or schedule unless control.autotune = true", self.target)
            super().check("control.", tuple(f.name for f in dataclasses.fields(EntroPICParams) if f.name != "target"))

    def max_target(self, steps: int) -> float:
        """The largest setpoint over steps 0..steps−1, in nats."""
        import numpy as np

        return float(np.max(self.schedule()(np.arange(max(steps, 1)))))


@dataclasses.dataclass
class LeverConfig:
    """The entropy-control method ([lever] table): entropic/entropic_p read [control], the others lever.params."""

    name: LeverName = "entropic"
    """A `pic.levers.LEVERS` name. entropic (PI) and entropic_p (P) take [control] (control.enabled = false:
    plain GRPO); every other method takes lever.params over its own preset."""
    params: Annotated[dict, toml_flag(dict)] = dataclasses.field(default_factory=dict)
    """Parameters of a non-EntroPIC lever, a table such as {coef = 0.01} (empty = the lever's preset)."""

    def check(self) -> None:
        need(self.name in LEVERS, "lever.name", f"one of {sorted(LEVERS)}", self.name)
        need(
            not (self.params and self.name in ENTROPIC_LEVERS),
            "lever.params",
            "empty for EntroPIC (its parameters live in [control])",
            self.params,
        )


@dataclasses.dataclass
class RewardConfig:
    """The reward ([reward] table): weight · fn + Σ extra weights · their rewards (llm.reward)."""

    fn: str = ""
    """'' (each row's task reward), a registered reward name, or 'package.module:function' (completion, example)."""
    weight: float = 1.0
    """Weight of fn (finite; 0 drops it)."""
    extra: Annotated[dict, toml_flag(dict)] = dataclasses.field(default_factory=dict)
    """More weighted rewards, a table {"pkg.mod:fn" = 0.1, math = 1.0} (name or import path → weight)."""
    timeout_s: float = 2.0
    """Deadline per completion (seconds, > 0) of a reward given by import path: it runs in a verifier
    worker that is killed past it (the completion scores 0 and counts in verifier_timeouts)."""

    def check(self) -> None:
        need(is_finite_number(self.weight), "reward.weight", "a finite number", self.weight)
        need(is_finite_number(self.timeout_s) and self.timeout_s > 0, "reward.timeout_s", "> 0 seconds", self.timeout_s)
        need(
            all(isinstance(k, str) and k and is_finite_number(v) for k, v in self.extra.items()),
            "reward.extra",
            "a table of reward name → finite weight",
            self.extra,
        )
        need(bool(self.weight) or bool(self.extra), "reward.weight", "non-zero when reward.extra is empty", 0)
        from .reward import resolve_reward

        for name in [self.fn, *self.extra] if self.fn else list(self.extra):
            try:
                resolve_reward(name)
            except ValueError as exc:
                raise ConfigError(f"reward.fn: {exc}") from None


@dataclasses.dataclass
class KLConfig:
    """KL to the frozen starting policy ([kl] table), added to the loss of any lever (llm.kl)."""

    coef: float = 0.0
    """Loss coefficient of the per-token KL estimate (>= 0; 0 = off, no reference model)."""
    estimator: KLEstimator = "k3"
    """'k1' (log π − log π_ref) or 'k3' (e^δ − δ − 1, δ = log π_ref − log π)."""

    def check(self) -> None:
        need(is_finite_number(self.coef) and self.coef >= 0, "kl.coef", ">= 0", self.coef)
        _check_choice(self.estimator, KLEstimator, "kl.estimator")


@dataclasses.dataclass
class TrainConfig:
    """The run ([train] table)."""

    out: str = ""
    """Run directory (metrics.jsonl, TensorBoard events, checkpoints, config.json)."""
    steps: int = 100
    """RL steps (>= 1), one rollout batch each."""
    seed: int = 0
    """Seed of the prompt order, the sampling and the model's dropout."""
    save_every: int = 50
    """Checkpoint every N steps (0 = only at the end)."""
    keep_last: int = 2
    """Checkpoints kept on disk (>= 1)."""
    resume: bool = False
    """Continue from the newest checkpoint in train.out."""
    tensorboard: bool = True
    """Write TensorBoard events under train.out/tb."""
    progress: bool = True
    """Show a progress bar on the terminal."""
    threads: int = dataclasses.field(default_factory=lambda: default_threads())
    """torch CPU threads (default: half the cores, 1 to 4, so 1 on a 2-core machine; 0 = torch's default, all cores)."""
    max_skipped_steps: int = 3
    """Consecutive skipped steps (non-finite entropy, loss or gradient) after which the run stops (>= 0)."""
    parallel: Parallel = "ddp"
    """Under torchrun: 'ddp' (a full replica per rank) or 'fsdp' (FSDP2: parameters, gradients, optimizer sharded)."""
    eval_every: int = 0
    """Evaluate avg@k and pass@k on data.test every N steps (0 = never); rows in eval.jsonl and the metrics."""
    eval_k: int = 4
    """Completions per test prompt in those evaluations (>= 1)."""
    eval_prompts: int = 0
    """Test prompts used per evaluation, the file's first N (0 = all)."""
    sample_every: int = 0
    """Write some of the step's completions to samples.jsonl (and TensorBoard) every N steps (0 = never)."""
    sample_count: int = 4
    """Completions written per sampled step (>= 1)."""

    def check(self) -> None:
        _check_choice(self.parallel, Parallel, "train.parallel")
        for name in ("eval_every", "eval_prompts", "sample_every"):
            need(getattr(self, name) >= 0, f"train.{name}", "an integer >= 0", getattr(self, name))
        need(self.eval_k >= 1, "train.eval_k", "an integer >= 1", self.eval_k)
        need(self.sample_count >= 1, "train.sample_count", "an integer >= 1", self.sample_count)
        need(self.steps >= 1, "train.steps", "an integer >= 1", self.steps)
        need(self.save_every >= 0, "train.save_every", "an integer >= 0", self.save_every)
        need(self.keep_last >= 1, "train.keep_last", "an integer >= 1", self.keep_last)
        need(self.threads >= 0, "train.threads", "an integer >= 0", self.threads)
        need(0 <= self.seed < 2**63, "train.seed", "an integer in [0, 2^63)", self.seed)
        need(self.max_skipped_steps >= 0, "train.max_skipped_steps", "an integer >= 0", self.max_skipped_steps)


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
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    kl: KLConfig = dataclasses.field(default_factory=KLConfig)

    def check(self) -> RLConfig:
        """Every section's ranges, then what ties sections together. Returns self."""
        from pic.levers import check_plant

        for f in dataclasses.fields(RLConfig):
            getattr(self, f.name).check()
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
        return self

    @property
    def lever_name(self) -> str:
        """The method actually trained: 'grpo' when EntroPIC is disabled."""
        if self.lever.name in ENTROPIC_LEVERS and not self.control.enabled:
            return "grpo"
        return "entropic_auto" if self.lever.name == "entropic" and self.control.autotune else self.lever.name

    def build_lever(self, loops: int = 1):
        """The configured `pic.levers.Lever` (fresh state); EntroPIC takes every field of `EntroPICParams`."""
        from pic.levers import make_lever
        from pic.setpoint import auto_target

        name = self.lever_name
        if name == "entropic_auto":
            c = self.control
            target = c.target if auto_target(c.target) else c.schedule("control.")
            params = {"target": target, "tau": c.tau, "normalization": c.normalization}
            params["alpha_limit"] = c.alpha_limit
        elif name in ENTROPIC_LEVERS:
            c = self.control
            params = {f.name: getattr(c, f.name) for f in dataclasses.fields(EntroPICParams)}
            params |= {"target": c.schedule("control."), "integral_limit": c.integral_limit or None}
            if name == "entropic_p":
                params["ki"] = 0.0
        else:
            params = dict(self.lever.params)
        try:
            return make_lever(name, loops=loops, **params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"lever.params: {exc}") from None

    def check_paths(self) -> None:
        """Refuse missing input paths (called by the trainer, not on construction)."""
        need(bool(self.model.path), "model.path", "a model directory", self.model.path)
        need(Path(self.model.path).is_dir(), "model.path", "an existing directory", self.model.path)
        need(bool(self.data.train), "data.train", "a data file", self.data.train)
        need(Path(self.data.train).exists(), "data.train", "an existing file or directory", self.data.train)
        need(not self.data.test or Path(self.data.test).exists(), "data.test", "an existing file or ''", self.data.test)
        need(
            not self.train.eval_every or bool(self.data.test),
            "train.eval_every",
            "0 when data.test is ''",
            self.train.eval_every,
        )
        need(bool(self.train.out), "train.out", "a run directory", self.train.out)


# ------------------------------------------------------------------ other commands
@dataclasses.dataclass
class InitTinyConfig:
    """``python -m llm init-tiny``: a small random model and a character tokenizer (no download)."""

    out: str = ""
    """Directory to write the model and tokenizer to (required)."""
    arch: Arch = "qwen2"
    """Architecture: 'qwen2' or 'llama'."""
    tokenizer: TokenizerKind = "char"
    """'char' (one token per task character) or 'bpe' (byte-level BPE trained here, Qwen chat tokens, qwen2 only)."""
    vocab_size: int = 512
    """BPE vocabulary size including special tokens (>= 300); ignored by the char tokenizer."""
    hidden_size: int = 128
    """Width of the residual stream (>= 1, a multiple of num_heads)."""
    num_layers: int = 4
    """Transformer blocks (>= 1)."""
    num_heads: int = 4
    """Attention heads (>= 1)."""
    num_kv_heads: int = 2
    """Key/value heads (>= 1, a divisor of num_heads; < num_heads is grouped-query attention)."""
    max_position_embeddings: int = 256
    """Longest sequence in tokens (>= 1)."""
    seed: int = 0
    """Seed of the random initialisation."""
    shape: Shape = ""
    """A published model's shape ('qwen2.5-0.5b', 'qwen2.5-1.5b'); overrides the sizes above and the vocabulary."""
    embedding_size: int = 0
    """Embedding rows (>= 0; 0 = the tokenizer's size); more rows are never produced by the tokenizer."""

    def check_paths(self) -> None:
        """Refuse a missing output path (called by the command before any work)."""
        need(bool(self.out), "out", "a directory path", self.out)

    def check(self) -> InitTinyConfig:
        _check_choice(self.arch, Arch, "arch")
        _check_choice(self.tokenizer, TokenizerKind, "tokenizer")
        need(self.vocab_size >= 300, "vocab_size", "an integer >= 300", self.vocab_size)
        need(self.tokenizer != "bpe" or self.arch == "qwen2", "arch", "'qwen2' with tokenizer = 'bpe'", self.arch)
        _check_choice(self.shape, Shape, "shape")
        need(self.embedding_size >= 0, "embedding_size", "an integer >= 0", self.embedding_size)
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "max_position_embeddings"):
            need(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        need(
            self.hidden_size % self.num_heads == 0,
            "hidden_size",
            f"a multiple of num_heads={self.num_heads}",
            self.hidden_size,
        )
        need(
            self.num_heads % self.num_kv_heads == 0,
            "num_kv_heads",
            f"a divisor of num_heads={self.num_heads}",
            self.num_kv_heads,
        )
        return self


@dataclasses.dataclass
class MakeDataConfig:
    """``python -m llm make-data``: synthetic verifiable tasks as JSONL train/test splits."""

    out: str = ""
    """Directory for train.jsonl and test.jsonl (required)."""
    task: TaskName = "arithmetic"
    """Task: 'arithmetic' (one answer per prompt), 'countdown' (many) or 'wordproblem' (GSM8K-format rows)."""
    n_train: int = 2000
    """Training prompts (>= 1); capped, with a notice, at what the task has left after the test split."""
    n_test: int = 200
    """Test prompts (>= 0), disjoint from the training prompts."""
    difficulty: int = 2
    """Arithmetic: digits per operand (1..6); countdown: numbers per prompt (2..5)."""
    ops: str = ""
    """Operators to draw from, a string of + - * (e.g. "+" or "+-"; '' = the task's default for the difficulty)."""
    seed: int = 0
    """Seed of the draw and of the split."""

    def check_paths(self) -> None:
        """Refuse a missing output path (called by the command before any work)."""
        need(bool(self.out), "out", "a directory path", self.out)

    def check(self) -> MakeDataConfig:
        _check_choice(self.task, TaskName, "task")
        need(self.n_train >= 1, "n_train", "an integer >= 1", self.n_train)
        need(self.n_test >= 0, "n_test", "an integer >= 0", self.n_test)
        need(self.difficulty >= 1, "difficulty", "an integer >= 1", self.difficulty)
        return self


@dataclasses.dataclass
class SFTConfig:
    """``python -m llm sft``: supervised warm start on (prompt, answer) pairs."""

    model: str = ""
    """Model directory to start from (required)."""
    data: str = ""
    """Training data file or directory (required; formats as data.train of train)."""
    out: str = ""
    """Directory for the fine-tuned model (required)."""
    format: DataFormat = "plain"
    """Row layout, as data.format of train; the target is the gold answer then the tokenizer's eos."""
    chat_template: ChatTemplate = "auto"
    """As data.chat_template of train: the prompt is templated exactly as RL will template it."""
    system_prompt: str = ""
    """As data.system_prompt of train."""
    prompt_template: str = ""
    """As data.prompt_template of train."""
    steps: int = 300
    """Optimizer steps (>= 1)."""
    batch_size: int = 64
    """Sequences per step (>= 1)."""
    lr: float = 1e-3
    """Peak learning rate (> 0), cosine-decayed after warmup."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay (>= 0; 0 = none)."""
    warmup_steps: int = 20
    """Steps of linear warmup (>= 0; 0 = none)."""
    grad_clip: float = 1.0
    """Max global grad norm (0 disables clipping)."""
    seed: int = 0
    """Seed of the batch order."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int = dataclasses.field(default_factory=lambda: default_threads())
    """torch CPU threads (default: half the cores, 1 to 4, so 1 on a 2-core machine; 0 = torch's default, all cores)."""

    def check_paths(self) -> None:
        """Refuse missing paths (called by the command before any work)."""
        for name in ("model", "data", "out"):
            need(bool(getattr(self, name)), name, "given", getattr(self, name))

    def check(self) -> SFTConfig:
        _check_choice(self.format, DataFormat, "format")
        _check_choice(self.chat_template, ChatTemplate, "chat_template")
        need(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        need(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        need(self.lr > 0, "lr", "> 0", self.lr)
        need(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        need(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        need(self.grad_clip >= 0, "grad_clip", ">= 0", self.grad_clip)
        need(self.threads >= 0, "threads", "an integer >= 0", self.threads)
        _check_device(self.device, "device")
        return self


@dataclasses.dataclass
class EvalConfig:
    """``python -m llm eval``: avg@k and pass@k on a test split."""

    model: str = ""
    """Model directory, checkpoint directory, run directory (its newest checkpoint) or RUN/checkpoints/latest."""
    data: str = ""
    """Test data file or directory (required; formats as data.test of train)."""
    format: DataFormat = "plain"
    """Row layout, as data.format of train."""
    chat_template: ChatTemplate = "auto"
    """As data.chat_template of train."""
    system_prompt: str = ""
    """As data.system_prompt of train."""
    prompt_template: str = ""
    """As data.prompt_template of train."""
    k: int = 8
    """Completions sampled per prompt (>= 1)."""
    temperature: float = 1.0
    """Sampling temperature (> 0)."""
    max_new_tokens: int = 16
    """Most tokens sampled per completion (>= 1)."""
    batch_size: int = 256
    """Sequences generated at once (>= 1)."""
    seed: int = 0
    """Seed of the sampling."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'."""
    out: str = ""
    """Optional JSON file for the results ('' = print only)."""

    def check_paths(self) -> None:
        """Refuse missing paths (called by the command before any work)."""
        for name in ("model", "data"):
            need(bool(getattr(self, name)), name, "given", getattr(self, name))

    def check(self) -> EvalConfig:
        _check_choice(self.format, DataFormat, "format")
        _check_choice(self.chat_template, ChatTemplate, "chat_template")
        need(self.k >= 1, "k", "an integer >= 1", self.k)
        need(is_finite_number(self.temperature) and self.temperature > 0, "temperature", "> 0", self.temperature)
        need(self.max_new_tokens >= 1, "max_new_tokens", "an integer >= 1", self.max_new_tokens)
        need(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _check_device(self.device, "device")
        return self


@dataclasses.dataclass
class PlotConfig:
    """``python -m llm plot``: entropy, alpha, integral and reward of runs, one figure."""

    runs: Annotated[list[str], tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run directories (each with metrics.jsonl)."""
    out: str
    """PNG file to write."""
    smooth: int = 10
    """Moving-average window in steps (>= 1; 1 = raw values)."""
    title: str = ""
    """Figure title ('' = none)."""
    verbose: Annotated[bool, tyro.conf.FlagCreatePairsOff, tyro.conf.arg(aliases=("-v",))] = False
    """Log progress."""

    def check(self) -> PlotConfig:
        need(bool(self.runs), "runs", "one or more run directories", self.runs)
        need(self.smooth >= 1, "smooth", "an integer >= 1", self.smooth)
        for run in self.runs:
            need((Path(run) / "metrics.jsonl").is_file(), "runs", "run directories with metrics.jsonl", run)
        return self


@dataclasses.dataclass
class DemoConfig:
    """``python -m llm demo``: init-tiny → make-data → SFT → GRPO vs EntroPIC, with a figure."""

    out: str
    """Output directory."""
    quick: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """A few-minute version (CI): fewer prompts, SFT steps and RL steps."""
    steps: Annotated[int | None, tyro.conf.arg(metavar="INT")] = None
    """RL steps per run (None = the demo's own, see llm.demo.DEMO and QUICK)."""
    verbose: Annotated[bool, tyro.conf.FlagCreatePairsOff, tyro.conf.arg(aliases=("-v",))] = False
    """Log progress."""

    def check(self) -> DemoConfig:
        need(bool(self.out), "out", "a directory path", self.out)
        need(self.steps is None or self.steps >= 1, "steps", "an integer >= 1", self.steps)
        return self


# --------------------------------------------------------------------- field docs
@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (its bases included), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "{" + ",".join(map(str, typing.get_args(hint))) + "}"
    if hint is Any:
        return "TOML"
    if hint is dict or typing.get_origin(hint) is dict:
        return "table"
    if typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
        return "list[table]"
    return getattr(hint, "__name__", None) if not typing.get_args(hint) else str(hint).replace("typing.", "")


def config_keys(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every ``--set`` key of ``cls`` as (dotted key, type, default, doc), sections expanded."""
    rows = []
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows += config_keys(hint, f"{prefix}{f.name}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        rows.append((prefix + f.name, _type_name(hint), default, docs.get(f.name, "")))
    return rows


# -------------------------------------------------------------------------- loading
def config_to_dict(cfg) -> dict[str, Any]:
    """The configuration as nested plain data (JSON/TOML); `build_config` loads it back unchanged."""
    return dataclasses.asdict(cfg)


def _rule(hint: Any) -> str:
    """How the one-line type error names what a field accepts."""
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if typing.get_origin(hint) is Literal:
        return f"one of {typing.get_args(hint)}"
    if hint is dict or typing.get_origin(hint) is dict:
        return "a table"
    if typing.get_origin(hint) is list:
        return f"a list of {_rule(typing.get_args(hint)[0])}"
    return _type_name(hint)


def structure(cls: type[T], tree: dict[str, Any], prefix: str = "") -> T:
    """``cls`` from nested plain data: tables become dataclasses, each value is type-checked.

    Type checks are typeguard's (`typeguard.check_type` against the field's annotation), except
    that a bool is not a number and an integer given for a float field becomes a float. Fields
    not in ``tree`` keep their defaults. Ranges are not checked here (see the ``check()`` methods).
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the configuration'} must be a table, got {tree!r}")
    for key in tree:
        if key not in names:
            raise ConfigError(f"unknown key {prefix}{key}; valid keys here: {', '.join(names)}")
    return cls(**{key: structure_value(value, hints[key], prefix + key) for key, value in tree.items()})


def structure_value(value: Any, hint: Any, field: str) -> Any:
    """``value`` checked against the annotation ``hint`` (tables become dataclasses); errors name ``field``."""
    if dataclasses.is_dataclass(hint):
        return structure(hint, value, field + ".")
    if typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        return [structure_value(v, item, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) and hint in (int, float):
        raise ConfigError(f"{field} must be {_rule(hint)}, got {value!r}")
    try:
        typeguard.check_type(value, hint)
    except typeguard.TypeCheckError:
        raise ConfigError(f"{field} must be {_rule(hint)}, got {value!r}") from None
    return float(value) if hint is float else value


def toml_literal(value: Any) -> str:
    """``value`` (plain data or a dataclass) as a TOML literal; `parse_value` reads it back."""
    if value is dataclasses.MISSING:
        return "(required)"
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (``2``, ``1e-5``, ``true``, ``"x"``, ``[0, 1]``, ``{k = 1}``), else a str."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``tree`` with each ``key=value`` (dotted key) set, in order."""
    tree = _copy_tables(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, _, text = item.partition("=")
        *path, leaf = key.strip().split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key.strip()}: {part!r} is a value, not a table")
        node[leaf] = parse_value(text.strip())
    return tree


def _copy_tables(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_tables(v) if isinstance(v, dict) else v for k, v in tree.items()}


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file; a missing or malformed file is one line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None


def build_config(cls: type[T], tree: dict[str, Any], overrides: list[str] | None = None, *, check: bool = True) -> T:
    """``cls`` from nested plain data and ``key=value`` overrides; validated unless ``check=False``."""
    cfg = structure(cls, apply_overrides(tree, list(overrides or [])))
    if check:
        cfg.check()
    return cfg


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None, *, check: bool = True
) -> T:
    """``cls`` from its defaults ← an optional TOML file ← ``key=value`` overrides."""
    return build_config(cls, read_toml(path) if path else {}, overrides, check=check)
