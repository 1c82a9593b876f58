"""EntroPIC TRL plug-in on CPU with a tiny model: loss, gradient-accumulation split, resume, 2 ranks.

Run: ``bash scripts/engine_tests.sh trl`` (its own pinned environment, .ci/engines/trl.txt).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import require_engine

pytestmark = [
    pytest.mark.trl,
    # transformers 5.23 deprecates the gradient_checkpointing names TRL 1.16 still calls
    pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning"),
]
trl = require_engine("trl", "trl")

import torch  # noqa: E402  (after the engine check: skip cleanly where TRL is absent)

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("trl_scenarios", HERE / "trl_scenarios.py")
sc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sc)

from entropic_trl import STATE_FILE, EntroPICGRPOTrainer  # noqa: E402
from pic import PIController  # noqa: E402

STEPS = 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return sc.build_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def reference(model_dir, tmp_path_factory):
    """GA 1 × batch 32 for 3 steps, checkpoint at step 2 (shared by the split and resume tests)."""
    out = tmp_path_factory.mktemp("ref")
    trainer = sc.make_trainer(model_dir, out, batch=32, grad_accum=1, steps=STEPS, save_steps=2)
    trainer.train()
    return trainer, out


# --------------------------------------------------------------------------- (a) the loss
class ProbeTrainer(EntroPICGRPOTrainer):
    """Records, for every micro-step, our loss, TRL's own loss and a hand-computed α·term on the same inputs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        alpha = float(self.controller.alpha)  # before: the last micro-step of a window updates the controller
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with torch.no_grad():
            base = trl.GRPOTrainer._compute_loss(self, model, inputs)  # TRL's loss, this very state
            self.records.append(
                {
                    "ours": loss.detach().item(),
                    "trl": base.item(),
                    "alpha": alpha,
                    **hand_term(self, model, inputs),
                }
            )
        return loss


def hand_term(trainer, model, inputs):
    """Σ_{mask ∧ π>τ} (−ratio·|A|) / D from a plain forward of the model (not TRL's fused head)."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    k = inputs["completion_ids"].size(1)
    logits = model(input_ids=ids, attention_mask=att).logits[:, -k - 1 : -1] / trainer.temperature  # (B, T, V)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
    mask = inputs["completion_mask"].float()
    old = inputs.get("old_per_token_logps")
    old = logp if old is None else old
    ratio = torch.exp(torch.clamp(logp - old, -20, 20))
    adv = inputs["advantages"].unsqueeze(1).abs()
    high = (torch.exp(logp) > trainer.tau).float() * mask
    total = (-ratio * adv * high).sum().item()
    ga, spg = trainer.args.gradient_accumulation_steps, trainer.args.steps_per_generation
    if trainer.normalization == "high_prob_tokens":
        denom = high.sum().item() * ga
    elif trainer.loss_type == "dapo":
        denom = inputs["num_items_in_batch"].item() / trainer.accelerator.num_processes * ga / spg
    else:
        denom = mask.sum().item() * ga
    ratio_dev = ((ratio - 1).abs() * mask).max().item()
    return {"term": total / max(denom, 1.0), "n_high": high.sum().item(), "ratio_dev": ratio_dev}


@pytest.mark.parametrize(
    ("loss_type", "normalization"),
    [("dapo", "all_tokens"), ("dapo", "high_prob_tokens"), ("grpo", "all_tokens")],
)
def test_loss_is_trl_loss_plus_alpha_term(model_dir, tmp_path, loss_type, normalization):
    ctl = sc.controller()
    ctl.load_state_dict({"step": 0, "integral": 0.0, "alpha": 0.4, "error": 0.0})  # α ≠ 0 from step 1
    # GA 2 (the 1/GA scaling); one generation for 2 optimizer steps, so step 2 is off-policy (ratio ≠ 1)
    trainer = sc.make_trainer(
        model_dir,
        tmp_path,
        batch=16,
        grad_accum=2,
        steps=2,
        steps_per_generation=4,
        loss_type=loss_type,
        normalization=normalization,
        trainer_cls=ProbeTrainer,
        ctl=ctl,
    )
    trainer.train()
    recs = trainer.records
    assert len(recs) == 4  # 2 optimizer steps × 2 micro-steps
    for r in recs:
        assert r["ours"] == pytest.approx(r["trl"] + r["alpha"] * r["term"], abs=2e-6), r
    assert [r["alpha"] for r in recs[:2]] == [0.4, 0.4]  # constant over the window, updated after it
    assert recs[2]["alpha"] == recs[3]["alpha"] != 0.4
    assert all(r["n_high"] > 0 for r in recs) and all(r["term"] < -1e-3 for r in recs)  # not a vacuous check
    assert max(r["ratio_dev"] for r in recs[2:]) > 1e-3  # the off-policy ratio was exercised
    # α > 0 lowers the loss on confident tokens: the term is −ratio·|A| ≤ 0
    assert all(r["ours"] < r["trl"] for r in recs if r["alpha"] > 0)


# ---------------------------------------------------------------- (b) accumulation split
def test_alpha_invariant_to_gradient_accumulation_split(model_dir, reference, tmp_path):
    ref, _ = reference
    split = sc.make_trainer(model_dir, tmp_path, batch=8, grad_accum=4, steps=STEPS)
    split.train()
    a_ref, a_split = sc.history(ref, "entropic/alpha"), sc.history(split, "entropic/alpha")
    h_ref, h_split = sc.history(ref, "entropic/entropy"), sc.history(split, "entropic/entropy")
    assert len(a_ref) == len(a_split) == STEPS  # one update per optimizer step, not per micro-step
    assert split.controller.step == ref.controller.step == STEPS
    # Step 1: the same samples and weights, so the window token mean is the same number.
    assert h_split[0] == pytest.approx(h_ref[0], abs=1e-6)
    # Later steps: TRL's own gradient already differs between the splits by float summation order
    # (~1e-5 relative at step 1 here), which the weights carry forward: measured |Δα| ≤ 7e-5. A mean
    # of micro-batch means (TRL's logged `entropy` under GA 4) is off by more than 1e-2 at step 2.
    assert a_split == pytest.approx(a_ref, abs=5e-4)
    assert h_split == pytest.approx(h_ref, abs=1e-3)
    mean_of_means = sc.history(split, "entropy")
    assert max(abs(a - b) for a, b in zip(mean_of_means, h_split, strict=True)) > 5e-3  # the check can tell
    # GA 1: the window is the micro-batch, so H is TRL's own logged entropy
    assert h_ref == pytest.approx(sc.history(ref, "entropy"), abs=1e-6)
    # α is the project's controller fed the window entropies, with a one-step delay (e = H − H*)
    for trainer, hs, alphas in ((ref, h_ref, a_ref), (split, h_split, a_split)):
        replay = PIController(sc.KP, sc.KI, sc.TARGET)
        assert alphas == pytest.approx([0.0] + [replay.update(h) for h in hs[:-1]], abs=1e-12)
        replay.update(hs[-1])
        assert trainer.controller.state_dict() == pytest.approx(replay.state_dict(), abs=1e-12)
    assert all(h > sc.TARGET for h in h_ref) and all(a > 0 for a in a_ref[1:])  # too high → α > 0
    for key in ("entropic/term", "entropic/high_frac", "entropic/integral"):
        assert len(sc.history(ref, key)) == STEPS
    assert 0 < min(sc.history(ref, "entropic/high_frac")) <= max(sc.history(ref, "entropic/high_frac")) < 1


# ---------------------------------------------------------------------------- (c) resume
def test_resume_restores_controller(model_dir, reference, tmp_path):
    ref, out = reference
    ckpt = out / "checkpoint-2"
    saved = json.loads((ckpt / STATE_FILE).read_text())
    assert [p.name for p in ckpt.iterdir() if ".tmp" in p.name] == []  # written atomically
    assert saved["global_step"] == 2 and saved["controller"]["step"] == 2
    a_ref = sc.history(ref, "entropic/alpha")
    assert saved["controller"]["alpha"] == a_ref[2] != 0  # the α step 3 applied

    resumed = sc.make_trainer(model_dir, out, batch=32, grad_accum=1, steps=STEPS, save_steps=2)
    assert resumed.controller.alpha == 0.0 and resumed.controller.step == 0  # fresh before resuming
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert sc.history(resumed, "entropic/alpha", after=2) == [a_ref[2]]  # restored exactly
    # TRL restores weights, optimizer, RNG and data position too, so on CPU the resumed step 3 is
    # bit-identical to the uninterrupted one, and so is the controller state after it
    assert sc.history(resumed, "entropic/entropy", after=2) == sc.history(ref, "entropic/entropy")[2:]
    assert resumed.controller.state_dict() == ref.controller.state_dict()
    assert resumed.controller.step == STEPS


def test_checkpoint_state_round_trip(model_dir, reference, tmp_path):
    ref, out = reference
    fresh = sc.make_trainer(model_dir, tmp_path, steps=1)
    fresh.load_entropic_state(json.loads((out / "checkpoint-2" / STATE_FILE).read_text()))
    saved = json.loads((out / "checkpoint-2" / STATE_FILE).read_text())["controller"]
    assert fresh.controller.state_dict() == saved  # α and integral exactly
    with pytest.raises(ValueError, match="format"):
        fresh.load_entropic_state({"controller": saved})


# -------------------------------------------------------------------------- (d) 2 ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_agree(model_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(_free_port()), str(HERE / "trl_scenarios.py"), str(model_dir), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2 and r0["distributed_type"].endswith("MULTI_CPU")
    assert len(r0["alpha"]) == STEPS  # 2 steps + 1 resumed step
    assert r0["alpha"] == r1["alpha"] and r0["entropy"] == r1["entropy"]  # bitwise: the same global sums
    assert r0["state_2"] == r1["state_2"] and r0["state_3"] == r1["state_3"]
    assert r0["alpha"][2] == r0["state_2"]["alpha"] != 0  # both ranks resumed the saved α
    for w0, w1, h in zip(r0["windows"], r1["windows"], r0["entropy"], strict=True):
        assert w0["global"] == w1["global"]
        assert w0["global"] == pytest.approx([a + b for a, b in zip(w0["local"], w1["local"], strict=True)])
        assert h == pytest.approx(w0["global"][0] / w0["global"][1], abs=1e-12)
    # the ranks saw different data: without the all-reduce their α would differ
    local_h = [[w["local"][0] / w["local"][1] for w in r["windows"]] for r in (r0, r1)]
    assert all(not math.isclose(a, b, abs_tol=1e-4) for a, b in zip(*local_h, strict=True))


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": 1.0}, r"tau must be in \(0, 1\), got 1\.0"),
        ({"tau": 0.0}, r"tau must be in \(0, 1\), got 0\.0"),
        ({"normalization": "tokens"}, "normalization must be one of"),
        ({"ctl": PIController([1.0, 2.0], 0.1, 0.3)}, "scalar gains"),
        ({"use_adaptive_entropy": True}, "use_adaptive_entropy"),
    ],
)
def test_bad_arguments(model_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sc.make_trainer(model_dir, tmp_path, steps=1, **kwargs)


def test_controller_must_be_pi_controller(model_dir, tmp_path):
    with pytest.raises(ValueError, match="controller must be a pic.PIController"):
        EntroPICGRPOTrainer(model=None, controller=0.5)
