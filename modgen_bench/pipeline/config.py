"""The real-text pipeline's configuration: TOML preset -> dataclasses (unknown keys are errors).

One `PipelineConfig` describes a replicate's every stage (PAPER.md section 5, "Real text"); the
suite presets (real_world/*.toml) change its sizes, never the code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..config_utils import build
from ..errors import UserError

__all__ = ["LMTrain", "SmallNet", "RouterTrain", "PipelineConfig", "EXPERT_SOURCES"]

#: where a study's experts come from (`pipeline.experts`)
EXPERT_SOURCES = ("train", "branch", "load")


@dataclass
class LMTrain:
    """A causal LM's sizes and its training (experts: per domain; mono: per domain in each
    batch)."""

    n_layer: int
    n_head: int
    d_model: int  # 0 (mono only): choose it so the count matches experts + gate
    d_ff: int  # 0: 4 * d_model
    steps: int
    batch_size: int  # sequences per step (mono: per domain)
    lr: float
    warmup: int = 0


@dataclass
class SmallNet:
    """Sizes of the gate and of the router (a `GateConfig` without vocabulary and block size)."""

    n_layer: int
    n_head: int
    d_model: int
    d_ff: int


@dataclass
class RouterTrain:
    steps: int
    batch_size: int
    lr: float


@dataclass
class PipelineConfig:
    corpora: list  # registered names or file tables (`data.files`)
    block_size: int  # tokens per sequence, BOS included
    seeds: list  # training seeds (data resample 0)
    resamples: list  # data resamples (training seed seeds[0])
    n_gate_train: int  # cached training windows per domain for SPD
    n_eval: int  # test (and validation) windows per domain
    n_proposal: int  # draws per expert for SPD's Z: 0 = spd.steps * spd.per_domain
    n_draws: int  # draws from q for SIR, Z and rejection sampling
    mixtures: list  # test mixtures (>= 7: vertices, uniform, code-heavy)
    expert: LMTrain
    mono: LMTrain
    gate: SmallNet
    spd: dict  # SPDConfig fields (lam_signal and seed are set here)
    router: RouterTrain
    conflict_every: int  # training steps between gradient-conflict probes
    conflict_batch: int  # windows per domain in a probe
    oracle: list = field(default_factory=list)  # indices into mixtures retrained on (full preset)
    signals: list = field(default_factory=lambda: ["excess", "nll"])
    checkpoint_every: int = 200  # LM training steps between checkpoints
    cpu_threads: int = 1  # torch threads on CPU (tiny models run faster on one)
    seed: int = 0
    match: str = "params"  # monolith matching convention (`modgen_bench.matching`)
    ratio: float = 1.0  # target non-embedding ratio r (match != "params")
    n_restore: int = 4096  # draws per expert on which the gates' Z = 1 is restored (0: none)
    combiners: dict = field(
        default_factory=dict
    )  # rivals of the gate: name -> settings (`combiners`)
    experts_from: str = "train"  # train | branch | load (`pipeline.experts`)
    expert_dirs: list = field(default_factory=list)  # load: one model folder per corpus, in order
    base_dir: str = ""  # load: the folder of the base they branch from ("": none)
    finetune_steps: int = 0  # branch: each domain's fine-tune steps (0: expert.steps)
    score_batch: int = 64  # load: windows per scoring batch of a loaded expert
    bf16: bool = True  # load: run loaded experts in bf16 on CUDA

    @classmethod
    def from_dict(cls, d: dict) -> "PipelineConfig":
        d = dict(d)
        sub = {"expert": LMTrain, "mono": LMTrain, "gate": SmallNet, "router": RouterTrain}
        for key, kind in sub.items():
            if key not in d:
                raise UserError(f"missing table [{key}] in the real_world preset")
            d[key] = build(kind, d[key], f"[{key}]") if isinstance(d[key], dict) else d[key]
        cfg = build(cls, d, "[preset]")
        if cfg.block_size < 2:
            raise UserError(f"block_size must be >= 2 (BOS and one token; got {cfg.block_size})")
        if not cfg.seeds:
            raise UserError("seeds must name at least one seed (got [])")
        from ..data.files import register

        cfg.corpora = [register(c) for c in cfg.corpora]  # file tables -> registered names
        p = len(cfg.corpora)
        for m in cfg.mixtures:
            if len(m) != p or min(m) < 0 or abs(sum(m) - 1) > 1e-9:
                raise UserError(f"mixture {m} is not a point of the {p}-simplex")
        if not cfg.signals or cfg.signals[0] != "excess":
            raise UserError("signals must start with 'excess' (its lam* weights the lam* retrain)")
        from ..matching import CONVENTIONS

        if cfg.match not in CONVENTIONS:
            raise UserError(
                f"match = {cfg.match!r} is not a matching convention; choose one of "
                f"{', '.join(CONVENTIONS)}"
            )
        if not cfg.ratio > 0:
            raise UserError(f"ratio must be > 0 (got {cfg.ratio})")
        if cfg.experts_from not in EXPERT_SOURCES:
            raise UserError(
                f"experts_from = {cfg.experts_from!r} is not an expert source; choose "
                f"one of {', '.join(EXPERT_SOURCES)}"
            )
        if cfg.experts_from == "load" and len(cfg.expert_dirs) != p:
            raise UserError(
                f"experts_from = 'load' needs expert_dirs with one folder per corpus "
                f"({p}: {', '.join(cfg.corpora)}), got {len(cfg.expert_dirs)}"
            )
        if cfg.finetune_steps < 0 or cfg.score_batch < 1:
            raise UserError(
                f"finetune_steps must be >= 0 and score_batch >= 1 (got "
                f"{cfg.finetune_steps}, {cfg.score_batch})"
            )
        if cfg.n_restore < 0:
            raise UserError(f"n_restore must be >= 0 draws per expert (got {cfg.n_restore})")
        from ..algorithms.spd import SPDConfig

        spd_draws = int(cfg.spd.get("steps", SPDConfig.steps)) * int(
            cfg.spd.get("per_domain", SPDConfig.per_domain)
        )
        if cfg.n_proposal == 0:
            cfg.n_proposal = spd_draws
        elif cfg.n_proposal < spd_draws:
            raise UserError(
                f"n_proposal = {cfg.n_proposal} is below SPD's total draws per expert, "
                f"spd.steps x spd.per_domain = {spd_draws}: SPD would reuse proposal draws "
                f"and bias its Z; set n_proposal >= {spd_draws}, or 0 to size it so"
            )
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def replicates(self) -> list[tuple[int, int]]:
        """(seed, resample) of every replicate: each seed on resample 0, then each resample with
        seeds[0]."""
        return [(s, 0) for s in self.seeds] + [(self.seeds[0], r) for r in self.resamples if r != 0]
