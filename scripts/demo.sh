#!/usr/bin/env bash
# The main demo: simulate, prove, train. Figures and results land in ${1:-runs/demo}.
#   1. the linear loop (P leaves b/(k·kp), PI does not)
#   2. bandit: GRPO vs P vs PI on- and off-policy, the reachable band, windup
#   3. bandit: 64×64 gain sweeps vs the Jury prediction
#   4. sympy proofs of the theorems, with numeric twins
#   5. a tiny language model: SFT, then GRPO vs EntroPIC from the same checkpoint
set -euo pipefail
out="${1:-runs/demo}"
mkdir -p "$out"
python -m sim linear --out "$out/sim"
python -m sim compare --out "$out/sim"
python -m sim stability --out "$out/sim"
python -m proofs --json "$out/proofs.json"
python -m llm demo --out "$out/llm"
echo "demo complete; figures:"
find "$out" -name "*.png" | sort | sed "s/^/  /"
echo "results: $out/llm/summary.json, $out/sim/compare.json, $out/sim/stability_{on,off}.json, $out/sim/methods/report.md, $out/sim/methods/targets.md, $out/proofs.json"
