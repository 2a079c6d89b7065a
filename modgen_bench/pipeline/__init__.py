"""The stages of the real-text study (PAPER.md section 5), as a library: one module per stage.

Every stage is a function ``stage(inputs..., run, *, settings) -> Output``: its data inputs (the
upstream stages' outputs), one `context.StageRun` (the store, device, seeds and progress every
stage shares) and its own settings by keyword. The output dataclass carries ``key``, a hash of
everything the stage depends on (its settings and its upstream stages' keys), and the stage
keeps its result in ``run.store.path(<stage>, key)`` (`store.Store`, atomic writes, rank 0 only
under torchrun), so a rerun loads instead of computing, and two sweep cells that share a stage
share its file. The models and their training (`modgen_bench.models`,
`modgen_bench.sequence.train_lm`) live below this package; the stages only call them.

==========  ==========================  ===========================================  ===========
stage       function                    output                                        module
==========  ==========================  ===========================================  ===========
1 data      `load_splits`               `Splits` (train tokens, SPD pool, test, val)  data
2 experts   `experts_and_splits`        `Experts` (p `ExpertLM`s: train/branch/load)  experts
3 cache     `cache_experts`             `ExpertCache` (log E[k], draws from E[k])     loglik
4 gate      `train_gate`                `GateResult` (SPD gate restored to Z = 1)     gate
5 retrains  `train_retrain`             `Retrain` (matched monolith on a mixture)     retrain
6 router    `distil_router`             `RouterResult` (causal router)                router
7 sampling  `sample_gates`              `SamplingResult` (SIR per gate, rejection)    sample
8 eval      `gate_nll`, `lm_nll`, ...   per-window NLL per token                      evaluate
9 conflict  `ConflictProbe`, ...        [(step, mean pairwise cosine)]                conflict
==========  ==========================  ===========================================  ===========

`modgen_bench.replicate.run_replicate` (above this package, beside the combiners it also
runs) composes them for one (seed, resample) and returns tidy rows: it is a
`modgen_bench.launch.Job` function, so replicates (or sweep cells composed the same way) run
through ``--launcher serial|joblib|submitit``. `report.report` turns the rows into sections.
A sketch of a new study reusing the stages::

    splits = load_splits(["code", "scripture"], 65, 256, 64, resample=0)
    run = StageRun(Store(out_dir), seed=0, resample=0)
    experts = train_experts(splits, LMTrain(2, 4, 64, 256, 1200, 32, 2e-3), run)
    cache = cache_experts(experts, splits, run, n_proposal=512, seed=1, n_restore=2048)
    gate = train_gate(splits, cache, run, spec=SmallNet(1, 2, 32, 128), spd={"steps": 600},
                      signal="excess")
"""

from .config import LMTrain, PipelineConfig, RouterTrain, SmallNet
from .conflict import ConflictProbe, gate_conflict, lm_domain_losses, probe_windows
from .context import StageRun
from .data import Splits, domain_batches, load_splits
from .evaluate import expert_nll, gate_nll, lm_nll, per_domain, router_nll
from .experts import (
    Experts,
    branch_experts,
    experts_and_splits,
    load_experts,
    make_lm,
    train_experts,
)
from .gate import GateResult, gate_config, train_gate
from .loglik import ExpertCache, cache_experts, spd_sampler
from .retrain import Retrain, matched_d_model, train_retrain
from .router import RouterResult, distil_router
from .sample import SamplingResult, sample_gates, sampling_seed
from .store import Store, stage_key

__all__ = [
    "LMTrain",
    "SmallNet",
    "RouterTrain",
    "PipelineConfig",
    "Store",
    "stage_key",
    "StageRun",
    "Splits",
    "load_splits",
    "domain_batches",
    "Experts",
    "make_lm",
    "train_experts",
    "branch_experts",
    "load_experts",
    "experts_and_splits",
    "ExpertCache",
    "cache_experts",
    "spd_sampler",
    "GateResult",
    "gate_config",
    "train_gate",
    "Retrain",
    "matched_d_model",
    "train_retrain",
    "RouterResult",
    "distil_router",
    "SamplingResult",
    "sample_gates",
    "sampling_seed",
    "per_domain",
    "lm_nll",
    "gate_nll",
    "router_nll",
    "expert_nll",
    "ConflictProbe",
    "gate_conflict",
    "lm_domain_losses",
    "probe_windows",
]
