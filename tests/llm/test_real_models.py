"""End to end on CPU with a real tokenizer: init-tiny --tokenizer bpe, GSM8K-format word problems, the chat
template, multi-eos stops, evaluation and samples during training, verl parquet, KL + EntroPIC together."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from llm.cli import main  # noqa: E402
from llm.config import RLConfig, load_config  # noqa: E402
from llm.kl import add_kl, kl_per_token  # noqa: E402
from llm.metrics import read_metrics  # noqa: E402
from llm.model import load_model  # noqa: E402
from llm.trainer import Trainer, train  # noqa: E402


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe")
    model, data = root / "model", root / "data"
    size = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--num-kv-heads", "1"]
    assert main(["init-tiny", "--out", str(model), "--tokenizer", "bpe", "--vocab-size", "400", *size]) == 0
    assert main(["make-data", "--out", str(data), "--task", "wordproblem", "--n-train", "40", "--n-test", "6"]) == 0
    return model, data


def _cfg(model, train_file, out, *extra):
    keys = [f"model.path={json.dumps(str(model))}", f"data.train={json.dumps(str(train_file))}"]
    keys += [f"train.out={json.dumps(str(out))}", "data.prompts_per_step=2", "rollout.group_size=2"]
    keys += ["rollout.max_new_tokens=6", "train.steps=2", "train.progress=false", "train.tensorboard=false"]
    return load_config(RLConfig, None, [*keys, "control.target=1.0", *extra])


def test_bpe_model_has_qwen_tokens_a_chat_template_and_two_stop_ids(bpe_run):
    model, tok = load_model(bpe_run[0])
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert model.generation_config.eos_token_id == [im_end, eot] and tok.eos_token_id == im_end
    assert (
        tok.pad_token_id == eot and tok.chat_template and tok.convert_tokens_to_ids("<|im_start|>") != tok.unk_token_id
    )
    text = "Mia has 12 apples. #### 12"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert model.config.model_type == "qwen2"
    row = json.loads((bpe_run[1] / "train.jsonl").read_text().splitlines()[0])
    assert set(row) == {"question", "answer"} and "\n#### " in row["answer"]


def test_gsm8k_training_logs_templated_samples_and_eval_rows(bpe_run, tmp_path):
    model, data = bpe_run
    out = tmp_path / "run"
    extra = ["data.format=gsm8k", f"data.test={json.dumps(str(data / 'test.jsonl'))}", "train.eval_every=1"]
    extra += ["train.eval_k=2", "train.eval_prompts=3", "train.sample_every=2", "train.sample_count=3"]
    rows = train(_cfg(model, data / "train.jsonl", out, *extra, "data.system_prompt=Answer briefly."))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 <= r["eval_pass_at_k"] <= 1 and 0 <= r["truncated_frac"] <= 1 for r in rows)
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [(e["step"], e["k"], e["n"]) for e in evals] == [(1, 2, 3), (2, 2, 3)]
    assert [e["avg@k"] for e in evals] == [r["eval_avg_at_k"] for r in read_metrics(out)]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [2, 2, 2]
    assert all(set(s) == {"step", "prompt", "completion", "reward"} for s in samples)
    assert all(
        s["prompt"].startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\n") for s in samples
    )
    assert all(s["prompt"].endswith("<|im_start|>assistant\n") for s in samples)


def test_verl_parquet_trains(bpe_run, tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    model, data = bpe_run
    rows = []
    for line in (data / "train.jsonl").read_text().splitlines()[:8]:
        g = json.loads(line)
        prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": g["question"]}]
        gold = g["answer"].rsplit("#### ", 1)[1]
        rows.append({"data_source": "wordproblem", "prompt": prompt, "reward_model": {"ground_truth": gold}})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    out = tmp_path / "run"
    cfg = _cfg(model, tmp_path / "train.parquet", out, "data.format=verl", "train.sample_every=1")
    assert len(train(cfg)) == 2
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")


def test_kl_estimators_match_their_formulas():
    gen = torch.Generator().manual_seed(0)
    logp, ref = -torch.rand(3, 5, generator=gen) * 3, -torch.rand(3, 5, generator=gen) * 3
    delta = (ref - logp).numpy()
    assert torch.allclose(kl_per_token(logp, ref, "k1"), torch.from_numpy(-delta))
    k3 = torch.from_numpy(__import__("numpy").exp(delta) - delta - 1)
    assert torch.allclose(kl_per_token(logp, ref, "k3"), k3, atol=1e-6)
    assert (kl_per_token(logp, ref, "k3") >= 0).all() and kl_per_token(logp, logp, "k3").abs().max() == 0
    mask = (torch.rand(3, 5, generator=gen) > 0.4).float()
    cfg = type("KL", (), {"coef": 0.5, "estimator": "k3"})()
    loss, stats = add_kl((torch.tensor(1.0), {"pg": 1.0}), logp, ref, mask, 7.0, cfg)
    assert loss.item() == pytest.approx(1.0 + 0.5 * float((k3 * mask).sum()) / 7.0, rel=1e-5)
    assert stats["kl_ref"] == pytest.approx(float((k3 * mask).sum()), rel=1e-5)
    cfg.coef = 0.0
    assert add_kl((torch.tensor(1.0), {}), logp, ref, mask, 7.0, cfg) == (torch.tensor(1.0), {})


def test_kl_to_a_reference_with_entropic_on(bpe_run, tmp_path, monkeypatch):
    model, data = bpe_run
    (tmp_path / "len_reward.py").write_text("def short(completion, example):\n    return -float(len(completion))\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # a user reward by import path: rewards that differ in a group
    extra = ["data.format=gsm8k", "kl.coef=0.5", "optim.lr=1e-2", "reward.fn=len_reward:short"]
    cfg = _cfg(model, data / "train.jsonl", tmp_path / "run", *extra)
    cfg.train.steps = 3
    trainer = Trainer(cfg)
    assert trainer.ref_model is not None and trainer.lever.name == "entropic"
    rows = trainer.train()
    assert rows[0]["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # the first update: the policy is the reference
    assert rows[-1]["kl_ref"] > 0 and all("alpha" in r for r in rows) and rows[0]["reward_mean"] < 0
    # an independent recomputation of KL(π‖π_ref) (k3) on a fresh rollout against the frozen copy
    batch, _, _ = trainer.rollout(trainer.stream.next_batch(2))
    chunk = (torch.arange(batch.response_ids.shape[0]), 0, batch.response_ids.shape[1])
    with torch.no_grad():
        logp, _ = trainer._score(batch, chunk, False)
        ref, _ = trainer._score(batch, chunk, False, model=trainer.ref_model)
    assert not torch.allclose(logp, ref)
