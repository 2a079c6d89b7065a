"""Stage 2, the experts: p frozen causal LMs, one per domain, from one of three sources
(PAPER.md section 1: frozen, pre-trained experts E[k]; DESIGN.md, "Expert sources"):

- ``train``: one LM per domain trained from scratch on that domain alone (the built-in family);
- ``branch``: one base LM trained on the union of the domains (equal windows from each), then a
  copy fine-tuned on each domain (BTM-style: the experts share an initialisation);
- ``load``: one saved Hugging Face model folder per domain, in corpus order (`experts.hf`).

Inputs: `Splits`, the expert `LMTrain` sizes, the training seed (train, branch) or the folders.
Outputs: `Experts`: p `ExpertLM`s (the only view of them later stages take), their final training
losses (NaN when loaded), parameters of one expert, the family that builds the monolith, and
where each expert came from. Cache key: `experts_key` (splits key, sizes, seed; for ``load``
the sha256 of every file of every folder); each trained expert's `train_lm` checkpoint lives at
``store.path("expert-<name>", key)`` and doubles as the stage output (a rerun loads it; a killed
run resumes inside training).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from ..data.corpora import random_windows
from ..experts import same_tokenizer
from ..experts.builtin import BuiltinFamily
from ..logs import label
from ..models import TransformerLM
from ..provenance import stable_seed
from ..sequence.train import train_lm
from .config import LMTrain
from .context import StageRun
from .data import Splits, domain_batches, load_splits
from .store import stage_key

__all__ = [
    "Experts",
    "make_lm",
    "experts_key",
    "train_experts",
    "branch_experts",
    "load_experts",
    "experts_and_splits",
]


@dataclass
class Experts:
    experts: list  # p frozen `ExpertLM`s (eval mode, no gradients, on the device)
    final_loss: list  # per expert: mean loss of the last 10% of steps (NaN: loaded)
    n_params: int  # parameters of one expert
    key: str
    T: int  # tokens per window, BOS included
    family: object = field(default_factory=BuiltinFamily)  # builds LMs of the experts' kind
    sources: list = field(default_factory=list)  # per expert: where it came from
    base_state: dict | None = None  # branch: the shared base's weights (what merging needs)

    @property
    def modules(self) -> list:
        """The experts' torch modules (both adapters wrap one with `TransformerLM`'s forward
        API), for methods that need whole next-token distributions or the weights themselves."""
        return [e.model for e in self.experts]

    @property
    def vocab_size(self) -> int:
        """Token ids the experts can score or emit: the gate's and the router's embedding size."""
        return max(e.vocab_size for e in self.experts)

    @property
    def tokenizer_hash(self) -> str:
        return same_tokenizer(self.experts)


def make_lm(spec: LMTrain, d_model: int, T: int, seed: int) -> TransformerLM:
    """A fresh `TransformerLM` of ``spec``'s depth and ``d_model`` width, seeded by ``seed``."""
    return BuiltinFamily().make(spec.n_layer, spec.n_head, d_model, spec.d_ff, T, seed)


def experts_key(splits: Splits, spec: LMTrain, seed: int) -> str:
    return stage_key("experts", splits.key, asdict(spec), seed)


def _windows(tokens, T: int, n: int, bos: int):
    """batches(generator) -> (n, T): random windows of one domain's tokens."""
    return lambda g: random_windows(tokens, T, n, g, bos)


def _fit(
    run: StageRun, spec: LMTrain, key: str, model, batches, steps: int, what: str, batch_seed: int
) -> float:
    """`train_lm` of one expert (or the branch base), checkpointed at ``expert-<what>``; its
    final loss."""
    log = train_lm(
        model,
        batches,
        steps,
        spec.lr,
        run.device,
        seed=batch_seed,
        checkpoint=run.store.path(f"expert-{what}", key),
        progress=run.progress,
        label=label("train_lm", model=f"expert-{what}", seed=run.seed, rep=run.resample),
        warmup=spec.warmup,
        checkpoint_every=run.checkpoint_every,
    )
    return log["final_loss"]


def train_experts(splits: Splits, spec: LMTrain, run: StageRun, *, family=None) -> Experts:
    """Train (or reload) one expert per domain on ``spec.batch_size`` random windows per step.

    Seeds: initialisation from (seed, expert, corpus); batches from (seed, resample, expert,
    corpus).
    """
    family = family or BuiltinFamily()
    T, key = splits.T, experts_key(splits, spec, run.seed)
    experts, final = [], []
    for name, tokens in zip(splits.corpora, splits.train, strict=True):
        e = family.make(
            spec.n_layer,
            spec.n_head,
            spec.d_model,
            spec.d_ff,
            T,
            stable_seed(run.seed, "init", "expert", name),
        )
        final.append(
            _fit(
                run,
                spec,
                key,
                e,
                _windows(tokens, T, spec.batch_size, splits.bos),
                spec.steps,
                name,
                run.sub("expert", name),
            )
        )
        experts.append(family.expert(e, name, run.device))
    sources = [{"expert": n, "source": "train", "family": family.name} for n in splits.corpora]
    return Experts(experts, final, experts[0].n_params, key, T, family, sources)


def branch_experts(
    splits: Splits, spec: LMTrain, run: StageRun, *, finetune_steps: int, family=None
) -> Experts:
    """One base LM trained ``spec.steps`` steps on the union (``spec.batch_size // p`` windows per
    domain and step, at least 1), then a copy fine-tuned ``finetune_steps`` steps on each domain.

    Seeds: the base's initialisation from (seed, 'base'), its batches from (seed, resample,
    'base'); each fine-tune's batches from (seed, resample, 'finetune', corpus)."""
    family = family or BuiltinFamily()
    T, p = splits.T, splits.p
    key = stage_key(
        "experts-branch", splits.key, asdict(spec), finetune_steps, run.seed, family.name
    )
    base = family.make(
        spec.n_layer, spec.n_head, spec.d_model, spec.d_ff, T, stable_seed(run.seed, "init", "base")
    )
    union = domain_batches(splits.train, T, max(1, spec.batch_size // p), splits.bos)
    base_loss = _fit(run, spec, key, base, union, spec.steps, "base", run.sub("base"))
    experts, final = [], []
    for name, tokens in zip(splits.corpora, splits.train, strict=True):
        e = copy.deepcopy(base).train().requires_grad_(True)
        final.append(
            _fit(
                run,
                spec,
                key,
                e,
                _windows(tokens, T, spec.batch_size, splits.bos),
                finetune_steps,
                name,
                run.sub("finetune", name),
            )
        )
        experts.append(family.expert(e, name, run.device))
    sources = [
        {
            "expert": n,
            "source": "branch",
            "family": family.name,
            "base_final_loss": base_loss,
            "base_steps": spec.steps,
            "finetune_steps": finetune_steps,
        }
        for n in splits.corpora
    ]
    base_state = {k: v.detach().cpu().clone() for k, v in base.state_dict().items()}
    return Experts(experts, final, experts[0].n_params, key, T, family, sources, base_state)


def load_experts(
    folders,
    names,
    T: int,
    device="cpu",
    batch_size: int = 64,
    bf16: bool = True,
    base_dir: str = "",
) -> Experts:
    """One Hugging Face model folder per domain (``save_pretrained``), loaded offline; they must
    share one tokenizer (`experts.same_tokenizer`: a mismatch names the two experts).
    ``base_dir``: the folder of the model they were fine-tuned from, when known (its weights are
    what merging needs; same tokenizer and architecture, checked)."""
    from ..errors import UserError
    from ..experts.hf import HFFamily, folder_sha256, load_hf_expert

    if len(folders) != len(names):
        raise UserError(
            f"expert_dirs names {len(folders)} folders for {len(names)} corpora "
            f"({', '.join(names)}): give one folder per corpus, in corpus order"
        )
    pairs = zip(folders, names, strict=True)
    experts = [load_hf_expert(f, n, device, batch_size, bf16) for f, n in pairs]
    same_tokenizer(experts)
    for e in experts:
        if T > e.model.block_size:
            raise UserError(
                f"expert '{e.name}' has {e.model.block_size} positions, fewer than block_size = {T}"
            )
    sources = []
    for f, e in zip(folders, experts, strict=True):
        files = folder_sha256(f)
        fmt = "safetensors" if any(k.endswith(".safetensors") for k in files) else "other"
        sources.append(
            {
                "expert": e.name,
                "source": "load",
                "family": type(e.model.hf).__name__,
                "folder": str(f),
                "format": fmt,
                "files": files,
            }
        )
    key = stage_key("experts-load", [s["files"] for s in sources])
    family = HFFamily(experts[0].model.hf.config, experts[0].tokenizer)
    loss = [float("nan")] * len(experts)
    base_state = None
    if base_dir:
        base = load_hf_expert(base_dir, "base", "cpu", batch_size, bf16=False)
        same_tokenizer([*experts, base])
        base_state = base.model.state_dict()
        if set(base_state) != set(experts[0].model.state_dict()):
            raise UserError(f"base_dir {base_dir}: its architecture differs from the experts'")
        key = stage_key("experts-load", [s["files"] for s in sources], folder_sha256(base_dir))
    return Experts(experts, loss, experts[0].n_params, key, T, family, sources, base_state)


def experts_and_splits(cfg, run: StageRun) -> tuple[Splits, Experts]:
    """Stages 1-2 under ``cfg.experts_from`` (a `PipelineConfig`): loaded experts come first,
    since their tokenizer tokenizes the splits; trained and branched ones are byte LMs."""
    names, T = list(cfg.corpora), cfg.block_size
    if cfg.experts_from == "load":
        experts = load_experts(
            cfg.expert_dirs, names, T, run.device, cfg.score_batch, cfg.bf16, cfg.base_dir
        )
        tokens = experts.family.tokens
        return load_splits(names, T, cfg.n_gate_train, cfg.n_eval, run.resample, tokens), experts
    splits = load_splits(names, T, cfg.n_gate_train, cfg.n_eval, run.resample)
    if cfg.experts_from == "branch":
        steps = cfg.finetune_steps or cfg.expert.steps
        return splits, branch_experts(splits, cfg.expert, run, finetune_steps=steps)
    return splits, train_experts(splits, cfg.expert, run)
