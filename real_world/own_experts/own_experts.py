"""Your own experts and data: the real-text study over experts loaded from ``save_pretrained``
folders (DESIGN.md, "Experts"; PAPER.md section 5), offline.

Two ways in (the preset decides, never the code):

- ``prepare`` present (the quick preset): train a byte-level BPE tokenizer (``tokenizers``) on
  the corpora's training splits, branch tiny GPT-2 experts from one base trained on the union
  (`pipeline.branch_experts` in the `experts.hf.HFFamily`), write each with ``save_pretrained``
  (safetensors) under ``<run>/experts/<corpus>/``, then run the whole study loading them back
  through ``experts_from = "load"``, exactly as a user's checkpoints would be loaded;
- no ``prepare`` (the full preset, and a user's copy of it): ``experts_from = "load"`` with
  ``expert_dirs`` naming the user's folders, one per corpus (file corpora welcome).

Every replicate (`pipeline.run_replicate`) is a launcher job; rows are the real-world study's
plus case "experts" (where each expert came from) and case "prepare" (the tokenizer and the
branch training). The report is the real-world report behind a section on the experts.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from modgen_bench.pipeline import PipelineConfig, StageRun, Store
from modgen_bench.pipeline import report as pipeline_report
from modgen_bench.replicate import launch_replicates, load_config

Config = PipelineConfig


def _prepare(ctx, cfg: PipelineConfig, bpe_vocab: int) -> tuple[list[str], str]:
    """Tokenizer, branched experts, save_pretrained folders; returns the experts' folders in
    corpus order and the base's folder (what the merges start from)."""
    from modgen_bench.data.corpora import split_documents
    from modgen_bench.experts.hf import HFFamily, save_hf_expert, train_bpe
    from modgen_bench.pipeline import load_splits
    from modgen_bench.pipeline.experts import branch_experts

    t0 = time.perf_counter()
    texts = [
        d.decode("utf-8", errors="replace")
        for name in cfg.corpora
        for d in split_documents(name, 0)["train"]
    ]
    tok = train_bpe(texts, bpe_vocab)
    family = HFFamily.gpt2(tok, cfg.block_size)
    splits = load_splits(
        cfg.corpora, cfg.block_size, cfg.n_gate_train, cfg.n_eval, 0, family.tokens
    )
    t1 = time.perf_counter()
    run = StageRun(
        Store(Path(ctx.out_dir) / "ckpt" / "prepare"),
        cfg.seeds[0],
        0,
        ctx.device,
        True,
        cfg.checkpoint_every,
    )
    experts = branch_experts(
        splits,
        cfg.expert,
        run,
        finetune_steps=cfg.finetune_steps or cfg.expert.steps,
        family=family,
    )
    t2 = time.perf_counter()
    dirs = []
    for name, e in zip(cfg.corpora, experts.experts, strict=True):
        folder = Path(ctx.out_dir) / "experts" / name
        save_hf_expert(e.model, tok, folder)
        dirs.append(str(folder))
    base = family.make(
        cfg.expert.n_layer,
        cfg.expert.n_head,
        cfg.expert.d_model,
        cfg.expert.d_ff,
        cfg.block_size,
        0,
    )
    base.load_state_dict(experts.base_state)
    base_dir = Path(ctx.out_dir) / "experts" / "_base"
    save_hf_expert(base, tok, base_dir)

    def add(method, metric, v):
        ctx.add("prepare", method, metric, v, seed=cfg.seeds[0], resample=0)

    add("tokenizer", "vocab_size", len(tok))
    add("tokenizer", "seconds", t1 - t0)
    add("branch", "base_final_loss", experts.sources[0]["base_final_loss"])
    add("branch", "seconds", t2 - t1)
    for name, loss in zip(cfg.corpora, experts.final_loss, strict=True):
        add(f"expert_{name}", "finetune_final_loss", loss)
    ctx.info["prepared"] = {
        "tokenizer_vocab": len(tok),
        "tokenizer_hash": experts.tokenizer_hash,
        "family": "GPT2LMHeadModel",
        "folders": dirs,
        "base": str(base_dir),
    }
    return dirs, str(base_dir)


def run(ctx) -> None:
    config = copy.deepcopy(ctx.config)
    prepare = config.pop("prepare", None)
    cfg = load_config(config)
    if prepare is not None:
        config["expert_dirs"], config["base_dir"] = _prepare(
            ctx, cfg, int(prepare.get("bpe_vocab", 512))
        )
        config["experts_from"] = "load"
    cfg = launch_replicates(ctx, config)
    if cfg.experts_from == "load":  # the replicates checked the folders on loading
        from modgen_bench.experts.hf import folder_sha256

        ctx.info["experts"] = {
            n: {"folder": d, "files": folder_sha256(d)}
            for n, d in zip(cfg.corpora, cfg.expert_dirs, strict=True)
        }


def report(df, fig_dir) -> list:
    """The experts' provenance, then the real-world report (`pipeline.report.report`)."""
    import pandas as pd

    from modgen_bench.reporting import Section

    ex = df[df["case"] == "experts"].copy()
    ex["value"] = pd.to_numeric(ex["value"], errors="coerce")
    per = (
        ex[ex["method"] != "expert"]
        .pivot_table(index="method", columns="metric", values="value", aggfunc="max")
        .reset_index()
    )
    loaded = "source_load" in per.columns and bool((per["source_load"] == 1).all())
    safetensors = "saved_safetensors" in per.columns and bool((per["saved_safetensors"] == 1).all())
    text = (
        f'Every expert was loaded through `experts_from = "load"` from a `save_pretrained` folder '
        f"({'safetensors weights' if safetensors else 'weights not in safetensors'}), by the "
        f"Hugging Face adapter (`modgen_bench.experts.hf`), offline. Folders and the sha256 of "
        f"each of their files are in run.json under `experts`."
        if loaded
        else "The experts were not all loaded from folders (see the table)."
    )
    tables = [("Where each expert came from (1 = yes)", per)]
    prep = df[df["case"] == "prepare"]
    if len(prep):
        tables.append(
            (
                "Prepared before the study: the BPE tokenizer and the branched experts "
                "(base on the union, then one fine-tune per domain)",
                prep[["method", "metric", "value"]].reset_index(drop=True),
            )
        )
    study = df[df["case"] != "prepare"]  # the prepare rows carry no matching convention
    return [Section("Experts", text, tables=tables)] + pipeline_report.report(study, fig_dir)
