"""Real-text benchmark: frozen domain experts + a robust gate vs a matched monolithic retrain.

PAPER.md section 5 ("Real text") on offline corpora (`modgen_bench.data.corpora`). This plug-in
only composes the library's stages (`modgen_bench.pipeline`): each replicate (a training seed, a
data resample) is one launcher job (`modgen_bench.launch`, ``--launcher serial|joblib|submitit``)
running `replicate.run_replicate`:

1. one causal byte-level expert per domain, trained on that domain (checkpointed);
2. the experts' log-likelihoods cached once for every split, plus draws from each expert;
3. the gate trained by SPD (PAPER.md section 4) with lam signal ``excess`` and the paper's ``nll``;
4. a monolithic LM whose parameter count matches experts + gate, retrained on the uniform mixture
   and on lam* (section 4.4), and in the full preset on selected test mixtures (oracle);
5. the gate's Z by SIR, rejection sampling from the gated model, a distilled causal router;
6. gradient conflict along training for the monolith and the gate.

Rows: case "test"/"val" (metric nll_per_token, bits_per_byte, lam = mixture), "Z", "sampling",
"params", "lam_star", "conflict", "train". The report is `modgen_bench.pipeline.report.report`.
real_world/cpu_medium/modular_text.py is a symbolic link to this file (one plug-in, two folders).
"""

from modgen_bench.pipeline import PipelineConfig
from modgen_bench.pipeline.report import report  # noqa: F401  (the suite's report hook)
from modgen_bench.replicate import launch_replicates

Config = PipelineConfig


def run(ctx) -> None:
    """Every replicate as a launcher job (`replicate.launch_replicates`)."""
    launch_replicates(ctx, ctx.config)
