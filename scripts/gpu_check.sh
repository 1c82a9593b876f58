#!/usr/bin/env bash
# One-shot GPU check (< 8 min on one H200): the gpu-marked tests, the decode benchmark for the
# Qwen2.5-0.5B and -1.5B shapes at batch 1/64/256, one training step's time and MFU, peak memory.
# Every figure lands in one JSON file (default gpu_check.json; first argument overrides).
#
#   bash scripts/gpu_check.sh [out.json]
#
# Uses the machine's own python3 (torch with CUDA, transformers); packages it lacks (e.g.
# math-verify, tyro, hypothesis) are installed offline from wheels carried in ./wheels if that
# folder exists: see docs/tutorials/gpu.md. Each stage has its own time limit and a failing
# stage is recorded, not fatal, so the JSON always comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
OUT="${1:-gpu_check.json}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"

if [ -d wheels ]; then
    "$PY" -m pip install --no-index --find-links wheels --quiet wheels/*.whl 2>&1 | tail -n 3
fi

stage() {  # stage NAME SECONDS CMD...: run, keep its log, record its exit status
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    echo "{\"stage\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >>"$WORK/stages.jsonl"
    echo "== $name: rc $rc in $((SECONDS - t0)) s"
    tail -n 15 "$WORK/$name.log"
}

"$PY" - >"$WORK/env.json" <<'EOF'
import json, torch, transformers
p = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                  "cuda": torch.version.cuda, "gpu": p.name if p else None,
                  "gpu_memory_gib": round(p.total_memory / 2**30, 1) if p else None}))
EOF

stage gpu_tests 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/llm/test_gpu.py \
    --junitxml="$WORK/gpu_tests.xml"
# static = static cache + CUDA graphs (no torch.compile: one compile per batch shape costs minutes here)
for shape in qwen2.5-0.5b qwen2.5-1.5b; do
    stage "decode_$shape" 90 "$PY" benchmarks/rollout_decode.py --device cuda --shape "$shape" \
        --batch 1 64 256 --prompt 256 --new 64 --repeats 1 --engines eager static --json "$WORK/decode_$shape.json"
done
stage decode_compiled 100 "$PY" benchmarks/rollout_decode.py --device cuda --shape qwen2.5-1.5b \
    --batch 256 --prompt 256 --new 64 --repeats 1 --engines static+compile --json "$WORK/decode_compiled.json"
stage train_step 110 "$PY" benchmarks/train_memory.py --device cuda --shape qwen2.5-1.5b --rows 4 --tokens 1024 \
    --budget-gib 100 --json "$WORK/train_step.json"

"$PY" - "$WORK" "$OUT" <<'EOF'
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def load(name):
    f = work / name
    return json.loads(f.read_text()) if f.is_file() else None
report = {"env": load("env.json"),
          "stages": [json.loads(l) for l in (work / "stages.jsonl").read_text().splitlines()],
          "gpu_tests_log_tail": (work / "gpu_tests.log").read_text()[-3000:],
          "decode": {s: load(f"decode_{s}.json") for s in ("qwen2.5-0.5b", "qwen2.5-1.5b")},
          "decode_compiled_1.5b": load("decode_compiled.json"),
          "train_step": load("train_step.json")}
out.write_text(json.dumps(report, indent=2) + "\n")
print(f"wrote {out}")
EOF
