"""A warm-started tiny model and its data, built locally: init-tiny → make-data → SFT.

Used by the demo and by the comparison runner when no model is given. Nothing is
downloaded. A finished preparation (``prepared.json`` present) is reused as it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pic.io import atomic_write_json

from .config import SFTConfig, load_config
from .data import write_jsonl
from .model import build_tiny
from .sft import sft
from .tasks import alphabet, make_dataset

__all__ = ["prepare_base"]


def prepare_base(out: str | Path, spec: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """Build ``out/tiny``, ``out/data/{train,test}.jsonl`` and the SFT model ``out/sft``.

    ``spec`` has the tables ``tiny`` (`llm.model.build_tiny` arguments), ``data`` (task,
    difficulty, ops, n_train, n_test) and ``sft`` (`SFTConfig` fields), and optionally
    ``threads`` (torch CPU threads). Returns the paths, the
    SFT summary and the seconds taken, also written to ``out/prepared.json``.
    """
    out = Path(out)
    done = out / "prepared.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_tiny(out / "tiny", alphabet=alphabet(), seed=seed, **spec["tiny"])
    d = spec["data"]
    train_set, test_set = make_dataset(d["task"], d["n_train"], d["n_test"], d["difficulty"], seed, d["ops"])
    write_jsonl(out / "data" / "train.jsonl", train_set)
    write_jsonl(out / "data" / "test.jsonl", test_set)
    setup_s = time.perf_counter() - t0
    t = time.perf_counter()
    sft_cfg = load_config(
        SFTConfig,
        None,
        [
            f"model={json.dumps(str(out / 'tiny'))}",
            f"data={json.dumps(str(out / 'data' / 'train.jsonl'))}",
            f"out={json.dumps(str(out / 'sft'))}",
            f"seed={seed}",
            f"threads={spec.get('threads', 0)}",
            *(f"{k}={v}" for k, v in spec["sft"].items()),
        ],
    )
    summary = sft(sft_cfg)
    result = {
        "model": str(out / "sft"),
        "train": str(out / "data" / "train.jsonl"),
        "test": str(out / "data" / "test.jsonl"),
        "sft": summary,
        "seconds": {"setup_s": setup_s, "sft_s": time.perf_counter() - t},
    }
    atomic_write_json(done, result)
    return result
