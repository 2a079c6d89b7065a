#!/usr/bin/env bash
# `make run`: the main job on the default preset, on CPU. Output goes under reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p reports
echo "== 1. exact solvers on the bundled example (both methods)"
$BIN/modgen-bench solve examples/three_domains.json --method waterfill
$BIN/modgen-bench solve examples/three_domains.json --method cvxpy
echo "== 2. the Lemma 1 counterexample under both support conventions"
$BIN/modgen-bench solve examples/lemma1_counterexample.json --support domains
$BIN/modgen-bench solve examples/lemma1_counterexample.json --support union
echo "== 3. exact-solver benchmark at small sizes (full table: make bench)"
$BIN/modgen-bench bench exact --sizes 1e3 1e4 --ps 2 8 --csv reports/bench_exact.csv
