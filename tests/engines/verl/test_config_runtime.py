"""Config validation, the atomic controller file, and the entropy tap, each in one process."""

from __future__ import annotations

import json
import os

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402

from entropic_verl import STATE_FILE, EntroPICConfig, EntroPICRuntime, EntropyTap, check_actor_config  # noqa: E402
from pic.controller import PIController  # noqa: E402

P = r"actor_rollout_ref\.entropic\."


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target": -0.1}, P + r"target: value must be a finite entropy >= 0 nats, got -0\.1"),
        ({"target": float("nan")}, P + r"target: value must be a finite entropy >= 0 nats, got nan"),
        ({"kp": -1}, P + r"kp must be a finite number >= 0, got -1"),
        ({"ki": "0.01"}, P + r"ki must be a finite number >= 0, got '0\.01'"),
        ({"tau": 1.0}, P + r"tau must be in \(0, 1\), got 1\.0"),
        ({"tau": 0}, P + r"tau must be in \(0, 1\), got 0"),
        ({"normalization": "mean"}, P + r"normalization must be one of \('all_tokens', 'high_prob_tokens'\)"),
        ({"anti_windup": "yes"}, P + r"anti_windup must be one of \('none', 'clamp', 'back_calculation'\)"),
        ({"alpha_min": 1.0}, P + r"alpha_min must be < alpha_max, got 1\.0 >= 1\.0"),
        ({"integral_limit": 0}, P + r"integral_limit must be > 0 or null, got 0"),
        ({"tracking_gain": 2}, P + r"tracking_gain must be in \(0, 1\], got 2"),
        ({"on_nonfinite": "skip"}, P + r"on_nonfinite must be one of \('raise', 'hold'\)"),
        ({"kp ": 1}, r"actor_rollout_ref\.entropic has unknown keys \['kp '\]; known keys: \['target'"),
    ],
)
def test_one_line_errors_name_key_and_range(overrides, message):
    with pytest.raises(ValueError, match=message) as info:
        EntroPICConfig.from_mapping({"target": 0.1, **overrides})
    assert "\n" not in str(info.value)


def test_target_is_required():
    with pytest.raises(ValueError, match=P + "target is required"):
        EntroPICConfig.from_mapping({"kp": 1.0})
    with pytest.raises(ValueError, match=r"actor_rollout_ref\.entropic is missing: add at least \+"):
        EntroPICConfig.from_mapping(None)


def test_from_omegaconf_with_interpolation_and_defaults():
    node = OmegaConf.create({"t": 0.2, "entropic": {"target": "${t}", "ki": 0}})
    cfg = EntroPICConfig.from_mapping(node.entropic)
    assert (cfg.target, cfg.kp, cfg.ki, cfg.tau, cfg.normalization) == (0.2, 1.0, 0, 0.95, "all_tokens")
    controller = cfg.build_controller()
    assert isinstance(controller, PIController)  # the project's controller, not a copy
    assert controller.output_limits == (-1.0, 1.0) and controller.anti_windup == "none"


def test_actor_checks():
    good = {"policy_loss": {"loss_mode": "entropic"}, "calculate_entropy": True, "loss_agg_mode": "token-mean"}
    check_actor_config(good)
    check_actor_config({**good, "calculate_entropy": False, "entropy_coeff": 0.001})  # entropy is computed anyway
    with pytest.raises(ValueError, match=r"loss_agg_mode must be 'token-mean'.*got 'seq-mean-token-sum'"):
        check_actor_config({**good, "loss_agg_mode": "seq-mean-token-sum"})
    with pytest.raises(ValueError, match=r"megatron\.pipeline_model_parallel_size must be 1.*got 2"):
        check_actor_config({**good, "strategy": "megatron", "megatron": {"pipeline_model_parallel_size": 2}})


def make_runtime(**kw) -> EntroPICRuntime:
    return EntroPICRuntime(EntroPICConfig(target=0.3, kp=1.0, ki=0.1, **kw))


def test_state_file_round_trip(tmp_path):
    rt = make_runtime()
    for h in (0.9, 0.5, 0.2):
        rt.update(h)
    path = rt.save(str(tmp_path / "actor"))
    assert os.listdir(tmp_path / "actor") == [STATE_FILE] and path.endswith(STATE_FILE)
    other = make_runtime()
    assert other.load(str(tmp_path / "actor"))
    assert other.controller.state_dict() == rt.controller.state_dict()
    assert other.alpha == rt.alpha and other.controller.step == 3
    # the next update continues the same trajectory
    assert other.update(0.4) == rt.update(0.4)


def test_save_is_atomic(tmp_path, monkeypatch):
    rt = make_runtime()
    rt.update(0.9)
    rt.save(str(tmp_path))
    before = (tmp_path / STATE_FILE).read_text()
    rt.update(0.1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)  # the temporary file's write fails before the rename
    with pytest.raises(OSError, match="disk full"):
        rt.save(str(tmp_path))
    assert (tmp_path / STATE_FILE).read_text() == before  # the old file is intact
    assert os.listdir(tmp_path) == [STATE_FILE]  # and no temp file is left behind


def test_load_missing_and_foreign_files(tmp_path):
    rt = make_runtime()
    assert rt.load(str(tmp_path)) is False
    (tmp_path / STATE_FILE).write_text(json.dumps({"alpha": 1}))
    with pytest.raises(ValueError, match="not an EntroPIC state file"):
        rt.load(str(tmp_path))


def test_gains_come_from_the_current_config(tmp_path):
    rt = make_runtime()
    rt.update(0.9)
    rt.save(str(tmp_path))
    resumed = EntroPICRuntime(EntroPICConfig(target=0.3, kp=2.0, ki=0.1))
    resumed.load(str(tmp_path))
    assert resumed.controller.integral == pytest.approx(0.6)
    assert resumed.update(0.4) == pytest.approx(2.0 * 0.1 + 0.1 * 0.6)


def test_entropy_tap_sums_masked_response_entropy():
    """Σ H·m and Σ m in the padded response layout, only while collecting; the loss fn is called unchanged."""
    prompts = torch.ones(2, 2, dtype=torch.long)
    attention = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 0]])  # prompt lens 1, 2; response lens 3, 2
    response_mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # a masked token inside response 0
    data = TensorDict(
        {
            "prompts": prompts,
            "responses": torch.ones(2, 3, dtype=torch.long),
            "attention_mask": attention,
            "response_mask": response_mask,
        },
        batch_size=[2],
    )
    # entropy per position of prompt + response; the response's values sit at prompt_len - 1 ...
    seq0 = torch.tensor([0.5, 0.6, 0.7, 9.0])  # responses: 0.5 (m=1), 0.6 (m=0), 0.7 (m=1)
    seq1 = torch.tensor([9.0, 0.2, 0.3, 9.0])  # responses: 0.2, 0.3
    entropy = torch.nested.as_nested_tensor([seq0, seq1], layout=torch.jagged)
    calls = []
    tap = EntropyTap(lambda **kw: calls.append(kw) or ("loss", {}))
    assert tap(model_output={"entropy": entropy}, data=data) == ("loss", {})  # not collecting: no sums
    tap.start("cpu")
    tap(model_output={"entropy": entropy}, data=data, dp_group=None)
    tap(model_output={}, data=data)  # a micro-batch without entropy is counted as missing
    sums = tap.stop()
    assert sums.tolist() == pytest.approx([0.5 + 0.7 + 0.2 + 0.3, 4.0])
    assert (tap.micro_batches, tap.missing_entropy) == (2, 1)
    assert len(calls) == 3 and set(calls[1]) == {"model_output", "data", "dp_group"}
    # a logits-processor call (top-k distillation) is passed through untouched and not counted
    tap.start("cpu")
    tap(student_logits=torch.zeros(1, 3), data=data)
    assert tap.stop().tolist() == [0.0, 0.0] and tap.micro_batches == 0 and len(calls) == 4
