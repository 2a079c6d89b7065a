#!/usr/bin/env bash
# `make run`: the main job on the default preset, on CPU. Output goes under reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
bash scripts/install_corpora.sh          # the real-world stage needs them: fail now, not in minutes
mkdir -p reports
echo "== 1. exact solvers on the bundled example (both methods)"
$BIN/modgen-bench solve examples/three_domains.json --method waterfill
$BIN/modgen-bench solve examples/three_domains.json --method cvxpy
echo "== 2. the Lemma 1 counterexample under both support conventions"
$BIN/modgen-bench solve examples/lemma1_counterexample.json --support domains
$BIN/modgen-bench solve examples/lemma1_counterexample.json --support union
echo "== 3. exact-solver benchmark at small sizes (full table: make bench)"
$BIN/modgen-bench bench exact --sizes 1e3 1e4 --ps 2 8 --csv reports/bench_exact.csv
echo "== 4. theory checks, quick budget (verdict table; report in reports/checks/)"
$BIN/modgen-bench check --out reports/checks
echo "== 5. synthetic suite, quick preset: convergence study + conflicting-successor sequences"
$BIN/modgen-bench run synthetic --preset quick --device cpu --out reports
echo "== 6. real-world suite, quick preset: offline corpora, experts, SPD gate, retrains, router"
$BIN/modgen-bench run real_world --preset quick --device cpu --out reports
echo "== 7. the gate-vs-monolith crossover, a small slice of real_world/scaling (smoke slice, about 2.5 min)"
$BIN/modgen-bench run real_world/scaling/smoke --preset quick --device cpu --out reports
echo "== 8. one landing page for everything above"
$BIN/modgen-bench report reports --index
echo "== done: open reports/index.html (or reports/index.md)"
