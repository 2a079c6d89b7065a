"""`modgen-bench bench train`: training throughput of the project's loops next to a plain reference
loop of the same model, for the expert, monolith and gate configurations of a real-world preset.

Project: `sequence.train.train_lm` (experts, monolith) and `algorithms.spd.train_spd` (gate),
exactly as the pipeline calls them (checkpointing off). Reference: the loop a user would write
directly on torch around the same module: fused AdamW, `scaled_dot_product_attention` (inside the
model), bf16 autocast on CUDA only (CPUs without AMX run bf16 slower), the same batches; for the
gate, the gated model's NLL ``-log pi_g`` on cached expert log-likelihoods. ``--compile`` adds a
``torch.compile``d reference.

Each (configuration, loop) is run once to warm up, then ``repeats`` times, the loops interleaved
(on a shared machine a load change then hits project and reference alike); the table gives the
median tokens/s (sequence tokens, BOS excluded for LMs), achieved model TFLOP/s (6 N per token for
the parameter matmuls plus 6 L T C for attention, forward + backward; Kaplan et al. 2020) and
the model FLOP utilisation against ``peak`` when known, and project / reference.
"""

from __future__ import annotations

import statistics
import time
import tomllib
from pathlib import Path

import pandas as pd
import torch

from ..algorithms.spd import SPDConfig, log_pi, train_spd
from ..experts.builtin import ByteTokens
from ..models import SequenceGate, TransformerLM, count_params, lm_config
from ..pipeline.config import PipelineConfig
from ..pipeline.gate import gate_config
from ..pipeline.retrain import matched_d_model
from ..sequence.sampler import CachedProposalSampler
from ..sequence.train import autocast, make_adamw, train_lm

__all__ = [
    "PEAK_TFLOPS",
    "PRESET_FILES",
    "bench_train",
    "preset_models",
    "flops_per_token",
    "train_command",
]

#: dense bf16 peak TFLOP/s of known accelerators (vendor data sheets), for MFU
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def _peak(device) -> float | None:
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def flops_per_token(n_params: int, n_layer: int, T: int, d_model: int) -> float:
    """Training FLOPs per token: 6 N (forward + backward of the weight matmuls) + 6 L T C
    (attention)."""
    return 6.0 * n_params + 6.0 * n_layer * T * d_model


def preset_models(preset: dict, preset_name: str) -> list[dict]:
    """The expert, monolith and gate configurations of a real-world preset (real_world/*.toml)."""
    cfg = PipelineConfig.from_dict(preset)
    T, p = cfg.block_size, len(cfg.corpora)
    e, m, V = cfg.expert, cfg.mono, ByteTokens.vocab_size  # the presets train byte LMs
    gate_cfg = gate_config(cfg.gate, T, p, V)
    e_cfg = lm_config(e, V, T)
    with torch.device("meta"):
        n_gate = count_params(SequenceGate(gate_cfg))
        n_exp = count_params(TransformerLM(e_cfg))
    d_mono = m.d_model or matched_d_model(m, T, p * n_exp + n_gate, V)
    return [
        {"preset": preset_name, "model": "expert", "lm": e_cfg, "batch": e.batch_size},
        {
            "preset": preset_name,
            "model": "monolith",
            "lm": lm_config(m, V, T, d_mono),
            "batch": m.batch_size * p,
        },
        {
            "preset": preset_name,
            "model": "gate",
            "gate": gate_cfg,
            "batch": cfg.spd.get("per_domain", 64) * p,
        },
    ]


def _data(T: int, p: int, n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bos = ByteTokens.bos
    seqs = [
        torch.cat([torch.full((n, 1), bos), torch.randint(0, bos, (n, T - 1), generator=g)], 1)
        for _ in range(p)
    ]
    log_e = [torch.randn(n, p, generator=g) * 3 - 4 * T for _ in range(p)]
    return seqs, log_e


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _loops(project, reference, compile_ref: bool) -> dict:
    """The timed loops by name: the project's, the plain reference and (``compile_ref``) the
    reference under ``torch.compile``."""
    loops = {"project": project, "reference": reference}
    if compile_ref:
        loops["reference+compile"] = lambda: reference(True)
    return loops


def _lm_loops(c: dict, device, steps: int, compile_ref: bool):
    seqs, _ = _data(c["lm"].block_size, 1)
    B, pool = c["batch"], seqs[0]
    batches = lambda g: pool[torch.randint(0, len(pool), (B,), generator=g)]  # noqa: E731

    def make():
        torch.manual_seed(0)
        return TransformerLM(c["lm"])

    def project():
        train_lm(make(), batches, steps, 1e-3, device)

    def reference(compiled=False):
        model = make().to(device).train()
        fwd = torch.compile(model) if compiled else model
        opt = make_adamw(model.parameters(), 1e-3, 0.0)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            idx = batches(g).to(device)
            with autocast(device):
                _, loss = fwd(idx[:, :-1], idx[:, 1:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        float(loss.detach())

    return _loops(project, reference, compile_ref), B * (c["lm"].block_size - 1)


def _gate_loops(c: dict, device, steps: int, compile_ref: bool):
    gc = c["gate"]
    seqs, log_e = _data(gc.block_size, gc.p)
    per_domain = c["batch"] // gc.p
    sampler = CachedProposalSampler(
        seqs, log_e, seqs, log_e, [torch.ones(len(s), dtype=torch.bool) for s in seqs]
    )

    def make():
        torch.manual_seed(0)
        return SequenceGate(gc)

    def project():
        train_spd(
            make(),
            sampler,
            SPDConfig(steps=steps, per_domain=per_domain, lam_signal="excess", log_every=steps),
            device,
        )

    def reference(compiled=False):
        gate = make().to(device).train()
        fwd = torch.compile(gate) if compiled else gate
        opt = make_adamw(gate.parameters(), 1e-3, 0.0)
        g = torch.Generator().manual_seed(0)
        for _ in range(
            steps
        ):  # the SPD Lagrangian: lam-weighted NLL + mu (Zhat - 1), Zhat on expert draws
            b, eb = sampler.sample(g, per_domain), sampler.sample_experts(g, per_domain)
            x, le = b.inputs.to(device), b.log_experts.to(device)
            with autocast(device):
                log_g = fwd(torch.cat([x, eb.inputs.to(device)])).float()
            nll = -log_pi(log_g[: len(x)], le)
            z = (
                gc.p
                * torch.exp(
                    torch.logsumexp(
                        log_g[len(x) :] + torch.log_softmax(eb.log_experts.to(device), -1), -1
                    )
                ).mean()
            )
            loss = nll.mean() + (z - 1.0)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        float(loss.detach())

    return _loops(project, reference, compile_ref), c["batch"] * gc.block_size


def bench_train(
    configs: list[dict],
    device="cpu",
    steps: int = 20,
    repeats: int = 3,
    compile_ref: bool = False,
    peak_tflops: float | None = None,
) -> pd.DataFrame:
    """One row per (preset, model, loop): median tokens/s over ``repeats`` timed runs after a
    warm-up, achieved TFLOP/s, MFU (when the peak is known) and the ratio to the reference."""
    if repeats < 1 or steps < 1:
        raise ValueError("steps and repeats must be >= 1")
    peak = peak_tflops or _peak(device)
    rows = []
    for c in configs:
        if "lm" in c:
            loops, tokens_per_step = _lm_loops(c, device, steps, compile_ref)
            lm = c["lm"]
            with torch.device("meta"):
                n = count_params(TransformerLM(lm))
            fpt = flops_per_token(n, lm.n_layer, lm.block_size, lm.d_model)
        else:
            loops, tokens_per_step = _gate_loops(c, device, steps, compile_ref)
            gc = c["gate"]
            with torch.device("meta"):
                n = count_params(SequenceGate(gc))
            fpt = flops_per_token(n, gc.n_layer, gc.block_size, gc.d_model)
        rates, times = {}, {name: [] for name in loops}
        for fn in loops.values():
            fn()  # warm-up: allocations, compilation
        for _ in range(repeats):  # interleaved: load drift hits every loop alike
            for name, fn in loops.items():
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
        for name in loops:
            rate = steps * tokens_per_step / statistics.median(times[name])
            rates[name] = rate
            rows.append(
                {
                    "preset": c["preset"],
                    "model": c["model"],
                    "loop": name,
                    "device": str(device),
                    "threads": torch.get_num_threads(),
                    "params": n,
                    "batch": c["batch"],
                    "steps": steps,
                    "repeats": repeats,
                    "tokens_per_s": rate,
                    "tflops": rate * fpt / 1e12,
                    "mfu": rate * fpt / 1e12 / peak if peak else float("nan"),
                }
            )
        for r in rows[-len(loops) :]:
            r["project_over_reference"] = rates["project"] / rates["reference"]
    return pd.DataFrame(rows)


def load_preset(suite_toml: Path, preset: str) -> dict:
    data = tomllib.loads(Path(suite_toml).read_text())
    presets = data.get("preset", {})
    if preset not in presets:
        raise ValueError(
            f"{suite_toml} has no preset '{preset}'; it has {', '.join(sorted(presets))}"
        )
    return presets[preset]


#: --preset -> (suite TOML relative to the repository, preset name in it)
PRESET_FILES = {
    "quick": [("real_world/text3.toml", "quick"), ("real_world/languages.toml", "quick")],
    "medium": [("real_world/cpu_medium/text3.toml", "full")],
    "full": [("real_world/text3.toml", "full"), ("real_world/languages.toml", "full")],
}


def train_command(args) -> int:
    """`bench train`: print the throughput table and the project / reference ratio per model."""
    from ..runner import resolve_device
    from ..suites import suite_root

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(args.threads)
    configs = []
    for rel, name in PRESET_FILES[args.preset]:
        suite, toml = rel.rsplit("/", 1)
        path = suite_root(suite) / toml
        configs += preset_models(load_preset(path, name), f"{path.stem}/{name}")
    df = bench_train(
        configs,
        device=device,
        steps=args.steps_per_run,
        repeats=args.repeats,
        compile_ref=args.compile,
    )
    print(
        f"bench train on {device} ({torch.get_num_threads()} torch threads): tokens/s = median of "
        f"{args.repeats} runs of {args.steps_per_run} steps after a warm-up; MFU needs a known "
        "peak "
        "(CUDA only)"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        ratio = df[df["loop"] == "project"][["preset", "model", "project_over_reference"]]
        print("\nproject / reference tokens per second (1 = as fast as the plain loop):")
        print(ratio.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        from ..atomic import write_frame

        write_frame(args.csv, df)
    return 0
