"""Real-text benchmark: frozen domain experts + a robust gate vs a matched monolithic retrain.

PAPER.md section 5 ("Real text") on offline corpora (`modgen_bench.data.corpora`). One replicate
(a training seed, a data resample) runs:

1. one causal byte-level expert per domain (`TransformerLM`), trained on that domain (checkpointed);
2. the experts' log-likelihoods cached once for every split: SPD training windows, validation and
   test windows (per token, for distillation) and sequences drawn from the experts (the proposal
   q = (1/p) sum_k E[k], for SPD's unbiased Z estimate);
3. the gate (`SequenceGate`) trained by SPD (PAPER.md section 4) with lam signal ``excess`` and,
   as the paper's variant, ``nll``;
4. a monolithic LM whose parameter count matches experts + gate, retrained on the uniform mixture
   and on lam* (the ``excess`` gate's least-favourable mixture, section 4.4); in the full preset
   also oracle retrains on selected test mixtures;
5. the gate's Z by importance sampling (SIR, with ESS and a 95% interval), rejection sampling
   from the gated model (acceptance vs the 1/p bound), and a causal router distilled on
   rejection-sampled sequences (PAPER.md section 4, Structural Distillation);
6. the gradient conflict (mean pairwise cosine of per-domain gradients, `modgen_bench.conflict`)
   along training, for the monolith and for the gate.

Evaluation: per-domain test NLL per token (nats) and bits per byte for every model; mixtures are
linear in it (every window has the same number of tokens), so the worst case over the simplex is
the worst vertex. Rows: case "test"/"val" (metric nll_per_token, bits_per_byte, lam = mixture),
"Z", "sampling", "params", "lam_star", "conflict", "train".
"""

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modgen_bench.algorithms.spd import SPDConfig, log_pi, train_spd
from modgen_bench.conflict import domain_gradients, mean_pairwise_cosine
from modgen_bench.data.corpora import (BOS, VOCAB_SIZE, eval_windows, load_slices, random_windows)
from modgen_bench.distill import student_logprob, train_router
from modgen_bench.models import (CausalRouter, GateConfig, LMConfig, SequenceGate, TransformerLM,
                                 count_params)
from modgen_bench.provenance import stable_seed
from modgen_bench.results import lam_label
from modgen_bench.sampling import (LMProposal, RejectionResult, accept, draw_from_q, log_gate,
                                   sir_from_draws)
from modgen_bench.sequence.cache import cache_logliks, cache_token_logprobs
from modgen_bench.sequence.evaluate import model_logliks
from modgen_bench.sequence.sampler import CachedProposalSampler
from modgen_bench.sequence.train import train_lm

LN2 = math.log(2.0)


# ---- configuration (TOML -> dataclasses; unknown keys are errors) -------------------------------

def _build(cls, data: dict, where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"[{where}]: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
    return cls(**data)


@dataclass
class LMTrain:
    """A causal LM's sizes and its training (experts: per domain; mono: per domain in each batch)."""

    n_layer: int
    n_head: int
    d_model: int            # 0 (mono only): choose it so the count matches experts + gate
    d_ff: int               # 0: 4 * d_model
    steps: int
    batch_size: int         # sequences per step (mono: per domain)
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
class Config:
    corpora: list
    block_size: int                      # tokens per sequence, BOS included
    seeds: list                          # training seeds (data resample 0)
    resamples: list                      # data resamples (training seed seeds[0])
    n_gate_train: int                    # cached training windows per domain for SPD
    n_eval: int                          # test (and validation) windows per domain
    n_proposal: int                      # sequences drawn from each expert for SPD's Z
    n_draws: int                         # draws from q for SIR, Z and rejection sampling
    mixtures: list                       # test mixtures (>= 7: vertices, uniform, code-heavy)
    expert: LMTrain
    mono: LMTrain
    gate: SmallNet
    spd: dict                            # SPDConfig fields (lam_signal and seed are set here)
    router: RouterTrain
    conflict_every: int                  # training steps between gradient-conflict probes
    conflict_batch: int                  # windows per domain in a probe
    oracle: list = field(default_factory=list)   # indices into mixtures retrained on (full preset)
    signals: list = field(default_factory=lambda: ["excess", "nll"])
    checkpoint_every: int = 200          # LM training steps between checkpoints
    cpu_threads: int = 1                 # torch threads on CPU (tiny models run faster on one)
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        d = dict(d)
        sub = {"expert": LMTrain, "mono": LMTrain, "gate": SmallNet, "router": RouterTrain}
        for key, kind in sub.items():
            if key not in d:
                raise ValueError(f"missing table [{key}] in the real_world preset")
            d[key] = _build(kind, d[key], key)
        cfg = _build(cls, d, "preset")
        p = len(cfg.corpora)
        for m in cfg.mixtures:
            if len(m) != p or min(m) < 0 or abs(sum(m) - 1) > 1e-9:
                raise ValueError(f"mixture {m} is not a point of the {p}-simplex")
        if not cfg.signals or cfg.signals[0] != "excess":
            raise ValueError("signals must start with 'excess' (its lam* weights the lam* retrain)")
        return cfg


# ---- small helpers ---------------------------------------------------------------------------

def _stage(path: Path, compute):
    """Load a finished stage from ``path`` or compute and save it (atomic): resumable pipeline."""
    if path.is_file():
        return torch.load(path, weights_only=False)
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(out, tmp)
    tmp.replace(path)
    return out


def _lm(c: LMTrain, d_model: int, T: int, seed) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(VOCAB_SIZE, T, c.n_layer, c.n_head, d_model, c.d_ff or 4 * d_model))


def matched_d_model(c: LMTrain, T: int, target: int) -> int:
    """The d_model (a multiple of 2 * n_head) whose LM parameter count is closest to ``target``."""
    best, best_gap = None, None
    with torch.device("meta"):
        for d in range(2 * c.n_head, 2049, 2 * c.n_head):
            n = count_params(TransformerLM(LMConfig(VOCAB_SIZE, T, c.n_layer, c.n_head, d, c.d_ff or 4 * d)))
            if best_gap is None or abs(n - target) < best_gap:
                best, best_gap = d, abs(n - target)
            if n > target:
                break
    return best


def _small(c: SmallNet, T: int, p: int) -> GateConfig:
    return GateConfig(VOCAB_SIZE, T, p, c.n_layer, c.n_head, c.d_model, c.d_ff)


def _lm_nll(model, windows, device) -> torch.Tensor:
    """(n,) per-token NLL (nats) of each window under a causal LM."""
    return -model_logliks(model, windows, device) / (windows.shape[1] - 1)


@torch.no_grad()
def _gate_nll(gate, windows, log_e, device, batch=256) -> torch.Tensor:
    gate.eval()
    log_g = torch.cat([gate(w.to(device)).float().cpu() for w in windows.split(batch)])
    return -log_pi(log_g, log_e) / (windows.shape[1] - 1)


def _per_domain(nll: torch.Tensor, p: int) -> np.ndarray:
    """(p * n,) per-window NLL laid out domain by domain -> (p,) per-domain means."""
    return nll.view(p, -1).mean(dim=1).numpy().astype(np.float64)


def _domain_batches(train, T, per_domain):
    """batches(generator) -> (p * per_domain, T): equal blocks from each domain, in domain order."""
    return lambda g: torch.cat([random_windows(t, T, per_domain, g) for t in train])


class ConflictProbe:
    """Wraps a batch function; every ``every`` calls, records the per-domain gradient conflict of
    ``model`` on fixed probe windows (in eval mode, so no random state is used: the training run
    is the one without a probe)."""

    def __init__(self, batches, model, losses, every, start=0):
        self.batches, self.model, self.losses, self.every = batches, model, losses, every
        self.calls, self.log = start, []

    def __call__(self, g):
        if self.calls % self.every == 0:
            self.log.append((self.calls, self._measure()))
        self.calls += 1
        return self.batches(g)

    def _measure(self):
        was = self.model.training
        self.model.eval()
        value = mean_pairwise_cosine(domain_gradients(self.model, self.losses))
        self.model.train(was)
        return value


# ---- one replicate, stage by stage ------------------------------------------------------------

class Replicate:
    """The pipeline for one (training seed, data resample); each stage is saved under ``ck`` and
    reloaded on a rerun (inside LM training, `train_lm` resumes from its own checkpoints)."""

    def __init__(self, cfg: Config, ctx, seed: int, resample: int, progress: bool = False):
        self.cfg, self.ctx, self.seed, self.resample, self.progress = cfg, ctx, seed, resample, progress
        self.p, self.T, self.dev = len(cfg.corpora), cfg.block_size, ctx.device
        self.ck = Path(ctx.out_dir) / "ckpt" / f"seed{seed}-resample{resample}"
        self.ck.mkdir(parents=True, exist_ok=True)

    def add(self, case, method, metric, value, lam=None, **extra):
        self.ctx.add(case, method, metric, value, seed=self.seed, lam=lam, resample=self.resample, **extra)

    def sub_seed(self, *parts) -> int:
        return stable_seed(self.seed, self.resample, *parts)

    def run(self) -> None:
        self.data()
        self.train_experts()
        self.cache()
        self.train_gates()
        self.retrain()
        self.sample()
        self.distil()
        self.evaluate()

    def data(self) -> None:
        """Document-level splits (sha256 of each slice into run.json); windows with data-only seeds."""
        cfg, T = self.cfg, self.T
        slices = [load_slices(name, self.resample) for name in cfg.corpora]
        prov = self.ctx.info.setdefault("corpora", {})
        for name, sl in zip(cfg.corpora, slices):
            prov.setdefault(name, {})[f"resample{self.resample}"] = {s: v.info() for s, v in sl.items()}
        self.train = [s["train"].tokens for s in slices]
        self.pool = torch.stack([random_windows(t, T, cfg.n_gate_train, torch.Generator().manual_seed(
            stable_seed("pool", name, self.resample))) for t, name in zip(self.train, cfg.corpora)])  # (p, n, T)
        self.test = torch.cat([eval_windows(s["test"].tokens, T, cfg.n_eval) for s in slices])  # (p*n_eval, T)
        self.val = torch.cat([eval_windows(s["val"].tokens, T, cfg.n_eval) for s in slices])

    def train_experts(self) -> None:
        """One causal LM per domain, trained on that domain alone."""
        cfg, T = self.cfg, self.T
        self.experts = []
        for k, name in enumerate(cfg.corpora):
            e = _lm(cfg.expert, cfg.expert.d_model, T, stable_seed(self.seed, "init", "expert", name))
            log = train_lm(e, lambda g, t=self.train[k]: random_windows(t, T, cfg.expert.batch_size, g),
                           cfg.expert.steps, cfg.expert.lr, self.dev, seed=self.sub_seed("expert", name),
                           checkpoint=self.ck / f"expert-{name}.pt", progress=self.progress,
                           warmup=cfg.expert.warmup, checkpoint_every=cfg.checkpoint_every)
            self.add("train", f"expert_{name}", "final_loss", log["final_loss"])
            self.experts.append(e.eval().requires_grad_(False))
        self.n_expert = count_params(self.experts[0])
        self.proposal = LMProposal(self.experts, T, BOS, self.dev)

    def cache(self) -> None:
        """The experts' log-likelihoods, once per split, and draws from each expert for SPD's Z."""
        cfg, p, T, dev, experts = self.cfg, self.p, self.T, self.dev, self.experts

        def compute():
            g = torch.Generator().manual_seed(self.sub_seed("proposal"))
            drawn = [self.proposal.sample_expert(k, cfg.n_proposal, g) for k in range(p)]
            return {"pool": cache_logliks(experts, self.pool.view(-1, T), dev).view(p, cfg.n_gate_train, p),
                    "test_tok": cache_token_logprobs(experts, self.test, dev),
                    "val": cache_logliks(experts, self.val, dev),
                    "drawn": drawn, "drawn_log_e": [cache_logliks(experts, d, dev) for d in drawn]}
        self.c = _stage(self.ck / "caches.pt", compute)
        self.test_log_e = self.c["test_tok"].sum(dim=1)                              # (p*n_eval, p)
        self.probe = [self.pool[k, :cfg.conflict_batch] for k in range(p)]           # conflict probes
        self.probe_e = [self.c["pool"][k, :cfg.conflict_batch] for k in range(p)]

    def train_gates(self) -> None:
        """SPD (PAPER.md section 4) per lam signal; the gate's conflict via SPD's evaluate hook."""
        cfg, p, T, dev, c = self.cfg, self.p, self.T, self.dev, self.c
        sampler = CachedProposalSampler(list(self.pool), list(c["pool"]), c["drawn"], c["drawn_log_e"],
                                        [torch.ones(len(d), dtype=torch.bool) for d in c["drawn"]])
        self.gcfg = _small(cfg.gate, T, p)

        def gate_conflict(gate):
            losses = [lambda k=k: -log_pi(gate(self.probe[k].to(dev)), self.probe_e[k].to(dev)).mean() / (T - 1)
                      for k in range(p)]
            return {"conflict": mean_pairwise_cosine(domain_gradients(gate, losses))}

        self.gates, self.lams = {}, {}
        for signal in cfg.signals:
            def fit(signal=signal):
                torch.manual_seed(stable_seed(self.seed, "init", "gate"))
                gate = SequenceGate(self.gcfg)
                conf = SPDConfig(**{**cfg.spd, "lam_signal": signal, "seed": self.sub_seed("spd", signal)})
                res = train_spd(gate, sampler, conf, dev, progress=self.progress, evaluate=gate_conflict)
                return {"state": res.gate.state_dict(), "lam": res.lam, "mu": res.mu,
                        "history": res.history.to_dict("list")}
            out = _stage(self.ck / f"gate-{signal}.pt", fit)
            gate = SequenceGate(self.gcfg).to(dev)
            gate.load_state_dict(out["state"])
            self.gates[signal], self.lams[signal] = gate.eval(), np.asarray(out["lam"], dtype=np.float64)
            hist = pd.DataFrame(out["history"])
            for k in range(p):
                self.add("lam_star", f"gate_{signal}", f"lam_{cfg.corpora[k]}", out["lam"][k])
            self.add("train", f"gate_{signal}", "mu", out["mu"])
            self.add("train", f"gate_{signal}", "Z_hat_ema", hist["Z_hat"].iloc[-1])
            steps = int(hist["step"].iloc[-1])
            for s, v in zip(hist["step"], hist["conflict"]):
                self.add("conflict", f"gate_{signal}", "mean_pairwise_cosine", v, step=int(s), progress=s / steps)

    def retrain(self) -> None:
        """Monolithic LMs with parameters matched to experts + gate: on the uniform mixture, on lam*
        (section 4.4) and, for the oracle, on selected test mixtures. Mixture weights enter as
        per-sequence loss weights on batches with equal blocks per domain."""
        cfg, p, T, dev = self.cfg, self.p, self.T, self.dev
        n_gate = count_params(self.gates["excess"])
        target = p * self.n_expert + n_gate
        d_mono = cfg.mono.d_model or matched_d_model(cfg.mono, T, target)
        m = cfg.mono.batch_size
        mixtures = {"mono_uniform": np.full(p, 1.0 / p), "mono_lamstar": self.lams["excess"]}
        mixtures.update({f"oracle_{lam_label(cfg.mixtures[i])}": np.asarray(cfg.mixtures[i], float)
                         for i in cfg.oracle})
        self.monos = {}
        for method, lam in mixtures.items():
            mono = _lm(cfg.mono, d_mono, T, stable_seed(self.seed, "init", "mono"))
            path = self.ck / f"{method}.pt"
            batches = _domain_batches(self.train, T, m)
            if method == "mono_uniform":          # gradient conflict along training
                losses = [lambda k=k: mono(self.probe[k].to(dev)[:, :-1], self.probe[k].to(dev)[:, 1:])[1]
                          for k in range(p)]
                start = int(torch.load(path, weights_only=False)["step"]) if path.is_file() else 0
                batches = ConflictProbe(batches, mono, losses, cfg.conflict_every, start)
            weights = torch.as_tensor(np.repeat(lam * p, m), dtype=torch.float32)
            log = train_lm(mono, batches, cfg.mono.steps, cfg.mono.lr, dev, seed=self.sub_seed("mono", method),
                           checkpoint=path, progress=self.progress, weights=weights,
                           warmup=cfg.mono.warmup, checkpoint_every=cfg.checkpoint_every)
            self.add("train", method, "final_loss", log["final_loss"])
            for s, v in getattr(batches, "log", []):
                self.add("conflict", method, "mean_pairwise_cosine", v, step=s, progress=s / cfg.mono.steps)
            self.monos[method] = mono.eval().requires_grad_(False)
        for method, n in [("experts_plus_gate", target), ("expert", self.n_expert), ("gate", n_gate),
                          ("mono", count_params(self.monos["mono_uniform"]))]:
            self.add("params", method, "n_params", n)
        self.add("params", "mono", "d_model", d_mono)

    def gen(self, stage: str) -> torch.Generator:
        """One generator per stage, so a resumed run draws the same numbers."""
        return torch.Generator().manual_seed(self.sub_seed("sampling", stage))

    def sample(self) -> None:
        """One pool of draws from q serves SIR (Z with a 95% interval, ESS) for both gates and
        rejection sampling from the excess gate (the router's training set)."""
        cfg, p = self.cfg, self.p
        inputs, log_e_q, _ = _stage(self.ck / "q-draws.pt",
                                    lambda: draw_from_q(self.proposal, cfg.n_draws, self.gen("q")))
        self.z = {}
        for signal, gate in self.gates.items():
            lg = log_gate(gate, inputs)
            res = sir_from_draws(lg, log_e_q, inputs, cfg.n_draws, self.gen(f"sir-{signal}"))
            self.z[signal] = res.Z_hat
            for metric, v in [("Z_hat", res.Z_hat), ("Z_lo", res.Z_ci[0]), ("Z_hi", res.Z_ci[1])]:
                self.add("Z", f"gate_{signal}", metric, v)
            self.add("sampling", f"gate_{signal}", "sir_ess_fraction", res.ess_fraction)
            if signal == "excess":
                ok = accept(lg, log_e_q, self.gen("accept"))
                self.rej = RejectionResult(inputs[ok], log_e_q[ok], len(ok), int(ok.sum()), 1.0 / p)
        rej = self.rej
        for metric, v in [("rejection_acceptance", rej.acceptance), ("rejection_acceptance_lo", rej.acceptance_ci[0]),
                          ("rejection_acceptance_hi", rej.acceptance_ci[1]), ("rejection_bound_1_over_p", rej.bound)]:
            self.add("sampling", "gate_excess", metric, v)

    def distil(self) -> None:
        """The causal router, trained on the rejection samples with cached per-token expert log-probs."""
        cfg, dev = self.cfg, self.dev

        def compute():
            torch.manual_seed(stable_seed(self.seed, "init", "router"))
            router = CausalRouter(self.gcfg)
            tok = cache_token_logprobs(self.experts, self.rej.samples, dev)
            losses = train_router(router, self.rej.samples, tok, cfg.router.steps, cfg.router.lr,
                                  cfg.router.batch_size, self.sub_seed("router"), dev, self.progress)
            return {"state": router.state_dict(), "losses": losses}
        d = _stage(self.ck / "router.pt", compute)
        self.router = CausalRouter(self.gcfg).to(dev)
        self.router.load_state_dict(d["state"])
        self.router.eval()
        self.add("train", "router", "final_loss", float(np.mean(d["losses"][-max(1, len(d["losses"]) // 10):])))

    def evaluate(self) -> None:
        """Per-domain test NLL per token of every model; mixtures are linear in it."""
        cfg, p, T, dev, test = self.cfg, self.p, self.T, self.dev, self.test
        with torch.no_grad():
            rnll = torch.cat([-student_logprob(self.router, w.to(dev), lp.to(dev)).cpu() for w, lp in
                              zip(test.split(256), self.c["test_tok"].split(256))]) / (T - 1)
        per = {f"gate_{s}": _per_domain(_gate_nll(g, test, self.test_log_e, dev), p) for s, g in self.gates.items()}
        per.update({f"gate_{s}_logZ": per[f"gate_{s}"] + math.log(self.z[s]) / (T - 1) for s in self.gates})
        per.update({name: _per_domain(_lm_nll(mo, test, dev), p) for name, mo in self.monos.items()})
        per["router"] = _per_domain(rnll, p)
        per.update({f"expert_{n}": _per_domain(-self.test_log_e[:, k] / (T - 1), p)
                    for k, n in enumerate(cfg.corpora)})
        for method, nll in per.items():
            if method.startswith("oracle_"):
                lams = [np.asarray([float(v) for v in method[len("oracle_"):].split(",")])]
            else:
                lams = [np.asarray(lam, float) for lam in cfg.mixtures]
            for lam in lams:
                self.add("test", method, "nll_per_token", float(lam @ nll), lam=lam)
                self.add("test", method, "bits_per_byte", float(lam @ nll) / LN2, lam=lam)
        val = {f"gate_{s}": _gate_nll(g, self.val, self.c["val"], dev) for s, g in self.gates.items()}
        val.update({name: _lm_nll(mo, self.val, dev) for name, mo in self.monos.items()})
        for method, nll in val.items():
            for k, v in enumerate(_per_domain(nll, p)):
                self.add("val", method, "nll_per_token", v, lam=np.eye(p)[k])


def run(ctx) -> None:
    """Every replicate: each seed on data resample 0, then each resample with seeds[0]."""
    cfg = Config.from_dict(ctx.config)
    jobs = [(s, 0) for s in cfg.seeds] + [(cfg.seeds[0], r) for r in cfg.resamples if r != 0]
    ctx.info["corpus_names"] = list(cfg.corpora)
    ctx.info["replicates"] = [{"seed": s, "resample": r} for s, r in jobs]
    threads = torch.get_num_threads()
    if ctx.device == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        for s, r in jobs:
            Replicate(cfg, ctx, s, r, progress=True).run()
    finally:
        torch.set_num_threads(threads)


# ---- report (this experiment's rows alone) ------------------------------------------------------

GATES = ["gate_excess", "gate_excess_logZ", "gate_nll", "gate_nll_logZ", "router"]
RETRAINS = ["mono_uniform", "mono_lamstar"]


def _lam(label: str) -> np.ndarray:
    return np.asarray([float(v) for v in label.split(",")])


def _ms(values) -> str:
    """'mean ± std (n)' over replicates (std with ddof=1; the ± part is dropped when n = 1)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.4f}"
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f} (n={len(v)})"


def _groups(df: pd.DataFrame) -> dict:
    """Replicate groups: 'seeds' (data resample 0) and 'resamples' (the seed used for resamples)."""
    out = {"seeds": df[df["resample"] == 0]}
    if (df["resample"] > 0).any():
        base = df.loc[df["resample"] > 0, "seed"].iloc[0]
        out["resamples"] = df[df["seed"] == base]
    return out


def _table1(nll: pd.DataFrame, methods) -> pd.DataFrame:
    """NLL/token: uniform mixture, worst vertex and mean over mixtures; mean ± std per group."""
    uniform = next(l for l in nll["lam"].unique() if np.ptp(_lam(l)) < 1e-3)
    vertex = nll["lam"].map(lambda l: _lam(l).max() == 1.0)
    rows = []
    for m in methods:
        row = {"method": m}
        for gname, g in _groups(nll).items():
            gm = g[g["method"] == m]
            key = ["seed", "resample"]
            row[f"uniform mixture ({gname})"] = _ms(gm[gm["lam"] == uniform]["value"])
            row[f"worst vertex ({gname})"] = _ms(gm[vertex.loc[gm.index]].groupby(key)["value"].max())
            row[f"mean of mixtures ({gname})"] = _ms(gm.groupby(key)["value"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(nll: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per (lam, replicate): value(a) - value(b)."""
    w = nll.pivot_table(index=["lam", "seed", "resample"], columns="method", values="value")
    return (w[a] - w[b]).rename("diff").reset_index()


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from modgen_bench.reporting import Section

    df = df.copy()
    for col in ("value", "seed", "resample", "step", "progress"):   # CSV blanks -> NaN
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["resample"] = df["resample"].astype(int)
    fig_dir = Path(fig_dir)
    exp = str(df["experiment"].iloc[0]) if "experiment" in df.columns else "real_world"
    nll = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    mix = [l for l in nll["lam"].unique() if not nll[nll["lam"] == l]["method"].str.startswith("oracle").all()]
    seeds = _groups(nll)["seeds"]
    methods = [m for m in GATES + RETRAINS if m in set(nll["method"])]
    sections = []

    # setup: parameter counts and lam*
    par = df[df["case"] == "params"].groupby(["method", "metric"])["value"].first().reset_index()
    lam = df[df["case"] == "lam_star"].groupby(["method", "metric"])["value"].agg(_ms).reset_index()
    counts = dict(zip(par["method"] + ":" + par["metric"], par["value"]))
    setup = (f"Experts + gate hold {counts.get('experts_plus_gate:n_params', 0):,.0f} parameters "
             f"(each expert {counts.get('expert:n_params', 0):,.0f}, gate {counts.get('gate:n_params', 0):,.0f}); "
             f"the monolithic retrain holds {counts.get('mono:n_params', 0):,.0f} "
             f"(d_model {counts.get('mono:d_model', 0):.0f}, chosen to match). NLL is in nats per byte-token "
             "on held-out test documents; bits per byte = NLL / ln 2. Replicates: 'seeds' vary "
             "initialisation and training order on data resample 0; 'resamples' redraw the document "
             "split (and hence every model) with one seed.")
    sections.append(Section("Setup", setup, tables=[("Parameter counts", par),
                                                    ("Least-favourable mixture lam* from SPD (mean ± std)", lam)]))

    # Table 1 and Table 2
    t1 = _table1(nll[nll["lam"].isin(mix)], methods)
    wide = seeds[seeds["lam"].isin(mix)].groupby(["lam", "method"])["value"].agg(_ms).unstack("method")
    t2 = wide[[m for m in methods if m in wide.columns]].copy()
    orc = seeds[seeds["method"].str.startswith("oracle_")]
    if len(orc):
        t2["oracle retrain"] = orc.groupby("lam")["value"].agg(_ms).reindex(t2.index).fillna("-")
    wins = {}
    for gate in ("gate_excess", "gate_excess_logZ"):
        d = _paired(seeds, gate, "mono_uniform")
        t2[f"{gate} - mono_uniform"] = d.groupby("lam")["diff"].agg(_ms).reindex(t2.index)
        wins[gate] = d.groupby("lam")["diff"].mean()
    t2 = t2.reset_index()
    dn = _paired(seeds, "gate_excess", "gate_nll").groupby("lam")["diff"].mean()
    z = df[(df["case"] == "Z") & (df["metric"] == "Z_hat")].groupby("method")["value"].mean()
    text = (f"The excess-signal gate beats the uniform-mixture retrain on {int((wins['gate_excess'] < 0).sum())} "
            f"of {len(dn)} test mixtures with pi_g unnormalised (what SPD trains), and on "
            f"{int((wins['gate_excess_logZ'] < 0).sum())} once pi_g is divided by its importance-sampling Z "
            f"(mean Z_hat: {', '.join(f'{m} {v:.3f}' for m, v in z.items())}; the *_logZ rows add "
            "log Z_hat / (T-1) per token; only they are proper likelihoods). Signal 'excess' minus 'nll', "
            f"NLL per mixture: {', '.join(f'{l}: {v:+.4f}' for l, v in dn.items())}. "
            "Cross-entropy is linear in lam, so its worst case over the simplex is the worst vertex "
            "(Table 1). For KL the worst case is also at a vertex (KL(P_lam||pi) <= sum_k lam_k "
            "KL(P_k||pi), PAPER.md section 2), but not necessarily the same one: KL_k = CE_k - H(P_k) and "
            "the domain entropies are unknown, so the worst cross-entropy vertex may just be the "
            "highest-entropy domain. The excess over the domain's best expert (KL_k - eps_k, entropy "
            "cancelled) is the KL proxy reported per domain below.")
    sections.append(Section("Table 1 and Table 2", text, tables=[
        ("Table 1: test NLL per token, mean ± std over replicates", t1),
        ("Table 2: test NLL per token on each mixture, mean ± std over seeds", t2)]))

    # per-domain bits per byte and excess over the domain's own expert
    bpb = df[(df["case"] == "test") & (df["metric"] == "bits_per_byte") & (df["resample"] == 0)]
    vert = bpb[bpb["lam"].map(lambda l: _lam(l).max() == 1.0)]
    per = vert.groupby(["method", "lam"])["value"].mean().unstack("lam")
    # domain k of lam (the config's corpora order), as the lam_star rows were written, k = 0 .. p-1
    names = [m[len("lam_"):] for m in df[df["case"] == "lam_star"]["metric"].drop_duplicates()]
    per.columns = [f"bpb on {names_by_vertex}" for names_by_vertex in per.columns]
    own = {l: vert[(vert["lam"] == l)] for l in vert["lam"].unique()}
    exc = {}
    for l, rows in own.items():
        k = int(np.argmax(_lam(l)))
        own_expert = rows[rows["method"].str.startswith("expert_")]
        # the domain's own expert is the best expert on its vertex
        base = own_expert.groupby("method")["value"].mean().min()
        exc[f"excess bpb on {names[k]}"] = rows.groupby("method")["value"].mean() - base
    exc = pd.DataFrame(exc)
    per = per.join(exc).reset_index()
    # gate - monolith at each vertex = (gate - best expert) + (best expert - monolith)
    split = pd.DataFrame({"routing cost: gate_excess - best expert": exc.loc["gate_excess"],
                          "expert deficit: best expert - mono_uniform": -exc.loc["mono_uniform"]})
    split["gate_excess - mono_uniform"] = split.sum(axis=1)
    split = split.rename(index=lambda c: c.removeprefix("excess bpb on ")).rename_axis("domain").reset_index()
    sections.append(Section("Per-domain bits per byte", f"Vertices are the domains in order {names}; "
                            "mean over seeds. 'excess' subtracts the best single expert on that domain. "
                            "At each vertex the gate's gap to the monolith splits into what routing "
                            "costs (the gate against the best expert there) and what the experts lack "
                            "(the best expert against the monolith): a gate can win only where the "
                            "experts beat the monolith on their own domains.",
                            tables=[("Per-domain test bits per byte", per),
                                    ("Gate vs monolith at each vertex, bits per byte", split)]))

    # distillation and sampling
    gap = _paired(nll, "router", "gate_excess").groupby("lam")["diff"].agg(_ms).reset_index()
    gap.columns = ["lam", "router - gate_excess (nats/token)"]
    zs = df[df["case"].isin(["Z", "sampling"])].groupby(["method", "metric"])["value"].agg(_ms).unstack("metric").reset_index()
    sections.append(Section("Structural distillation and sampling",
                            "The causal router is trained on sequences rejection-sampled from the excess "
                            "gate's model, with the experts' per-token probabilities cached. Rejection "
                            "acceptance estimates Z/p; with Z = 1 it equals the 1/p bound. SIR's ESS "
                            "fraction is (sum w)^2 / (n sum w^2).",
                            tables=[("Router NLL gap to the gate, every mixture (mean ± std over replicates)", gap),
                                    ("Z by importance sampling, SIR ESS, rejection acceptance", zs)]))

    # gradient conflict
    conf = df[df["case"] == "conflict"].copy()
    fig = fig_dir / f"{exp}_conflict.png"
    plt.figure(figsize=(6, 3.5))
    for m, g in conf.groupby("method"):
        c = g.groupby("progress")["value"].agg(["mean", "std"]).reset_index()
        plt.plot(c["progress"], c["mean"], marker="o", ms=3, label=m)
        plt.fill_between(c["progress"], c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0), alpha=0.2)
    plt.axhline(0, color="k", lw=0.5)
    plt.xlabel("training progress (fraction of steps)")
    plt.ylabel("mean pairwise cosine")
    plt.legend(fontsize=8)
    plt.tight_layout()
    plt.savefig(fig, dpi=110)
    plt.close()
    late_mean = conf[conf["progress"] >= 0.5].groupby("method")["value"].mean()
    late = conf[conf["progress"] >= 0.5].groupby("method")["value"].agg(_ms).reset_index()
    late.columns = ["method", "mean pairwise cosine, second half of training"]
    verdict = ("more" if late_mean.get("gate_excess", 0) < late_mean.get("mono_uniform", 0) else "less")
    sections.append(Section("Gradient conflict",
                            "Mean pairwise cosine between per-domain gradients (lower = more conflict), "
                            "for the monolith (its NLL per domain) and for the gate (the gated model's NLL "
                            "per domain, gradient over the gate only). Late in training the excess gate's "
                            f"domains conflict {verdict} than the monolith's "
                            f"({late_mean.get('gate_excess', float('nan')):+.3f} vs "
                            f"{late_mean.get('mono_uniform', float('nan')):+.3f}). A gate's per-domain "
                            "gradients pull g(x, .) toward different experts, so a routing problem "
                            "conflicts by construction (pure routing between p experts gives about "
                            "-1/(p-1)); the paper's claim that the gate mitigates conflict is read here as "
                            "'the experts, trained apart, see no conflict at all', which this metric "
                            "cannot show.",
                            tables=[("Gradient conflict late in training", late)],
                            figures=[("Gradient conflict along training (mean ± std over replicates)", fig)]))

    # NLL across mixtures
    fig2 = fig_dir / f"{exp}_mixtures.png"
    plt.figure(figsize=(7, 3.5))
    order = list(dict.fromkeys(mix))
    for m in methods:
        c = seeds[seeds["method"] == m].groupby("lam")["value"].mean().reindex(order)
        plt.plot(range(len(order)), c.values, marker="o", label=m)
    plt.xticks(range(len(order)), order, rotation=30, fontsize=7)
    plt.ylabel("test NLL (nats/token)")
    plt.legend(fontsize=7)
    plt.tight_layout()
    plt.savefig(fig2, dpi=110)
    plt.close()
    sections[1].figures.append(("Test NLL per token on each mixture (mean over seeds)", fig2))
    return sections
