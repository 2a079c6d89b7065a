"""A Hugging Face causal LM on disk as an `ExpertLM` (DESIGN.md, "Experts"): offline only.

`load_hf_expert(folder)` reads ``AutoModelForCausalLM`` and ``AutoTokenizer`` from a local folder
with ``local_files_only=True`` and the hub's offline switches set, so nothing is ever downloaded;
a hub id with no local folder, a missing folder or a damaged checkpoint is one `UserError`
naming the folder. The model runs in eval mode without gradients, in bf16 on CUDA when asked
(log-softmax in float32), scoring ``batch_size`` windows at a time.

Windows follow the suite's convention (column 0 is BOS, the T-1 tokens after it are scored); BOS
is the tokenizer's ``bos_token_id`` (its ``eos_token_id`` when it has none, as GPT-2's single
``<|endoftext|>`` serves both). Unlike the byte LM, a Hugging Face model may emit BOS/EOS:
its distribution over T-1 tokens is over the whole vocabulary, and so is the gated model's.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models import count_params
from .protocol import Draw, batched, drawn_in_chunks

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads them: never the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import transformers  # noqa: E402  (after the offline switches)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

__all__ = [
    "HFCausalLM",
    "HFExpert",
    "HFTokens",
    "HFFamily",
    "tokenizer_hash",
    "tokenizer_bos",
    "load_hf_expert",
    "save_hf_expert",
    "folder_sha256",
    "train_bpe",
]


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM with `TransformerLM`'s calling convention, so `train_lm`, the
    evaluation and the conflict probe treat both families alike: forward(idx, targets) ->
    (logits (B, T, V), mean cross-entropy or None)."""

    def __init__(self, hf_model):
        super().__init__()
        self.hf = hf_model
        self.block_size = int(getattr(hf_model.config, "max_position_embeddings", 0) or 1 << 30)

    def forward(self, idx, targets=None):
        logits = self.hf(input_ids=idx, use_cache=False).logits  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, loss

    def token_logprobs(self, idx):
        """(B, T-1): log p(idx[:, t] | idx[:, :t]) for t = 1 .. T-1."""
        logits, _ = self(idx[:, :-1])
        return F.log_softmax(logits.float(), dim=-1).gather(-1, idx[:, 1:, None]).squeeze(-1)

    def sequence_logprob(self, idx):
        return self.token_logprobs(idx).sum(dim=-1)

    def next_logits(self, idx):
        return self(idx[:, -self.block_size :])[0][:, -1]


def tokenizer_bos(tok) -> int:
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if bos is None:
        raise UserError(
            f"tokenizer {getattr(tok, 'name_or_path', '')!r} has neither a BOS nor an "
            "EOS token: windows need one to start from"
        )
    return int(bos)


def tokenizer_hash(tok) -> str:
    """sha256 of the tokenizer's vocabulary, merges and added tokens (and the BOS id used)."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        core = {
            "model": spec.get("model"),
            "added": sorted((t["id"], t["content"]) for t in spec.get("added_tokens") or []),
        }
    else:
        core = {"vocab": sorted(tok.get_vocab().items())}
    core["bos"] = tokenizer_bos(tok)
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


class HFExpert:
    """An `ExpertLM` over an `HFCausalLM` and its tokenizer; frozen on ``device``."""

    def __init__(
        self,
        module: HFCausalLM,
        tokenizer,
        name: str = "expert",
        device="cpu",
        batch_size: int = 64,
    ):
        self.model = module.to(device).eval().requires_grad_(False)
        self.tokenizer, self.name = tokenizer, name
        self.device, self.batch_size = device, batch_size
        self.vocab_size = int(module.hf.config.vocab_size)
        self.bos = tokenizer_bos(tokenizer)
        self.tokenizer_hash = tokenizer_hash(tokenizer)
        self.n_params = count_params(module)

    @torch.no_grad()
    def token_logprobs(self, windows: torch.Tensor) -> torch.Tensor:
        return batched(self.model.token_logprobs, windows, self.batch_size, self.device)

    def window_loglik(self, windows: torch.Tensor) -> torch.Tensor:
        return self.token_logprobs(windows).sum(dim=-1)

    @torch.no_grad()
    def draw(self, n: int, T: int, generator: torch.Generator) -> Draw:
        if T > self.model.block_size:
            raise UserError(
                f"expert '{self.name}': windows of {T} tokens exceed its "
                f"{self.model.block_size} positions"
            )
        return drawn_in_chunks(self._ancestral, n, T, generator, self.batch_size)

    def sample(self, n: int, T: int, generator: torch.Generator) -> torch.Tensor:
        return self.draw(n, T, generator).windows

    def _ancestral(self, n: int, T: int, generator):
        """Ancestral sampling with the model's key-value cache; softmax and draw on the CPU."""
        idx = torch.full((n, 1), self.bos, dtype=torch.long)
        cur, past, logps = idx.to(self.device), None, []
        key = _cache_argument(self.model.hf)
        for _ in range(T - 1):
            out = self.model.hf(input_ids=cur, use_cache=True, **{key: past})
            past = getattr(out, key)
            logp = F.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()  # (n, V)
            nxt = torch.multinomial(logp.exp(), 1, generator=generator)  # (n, 1)
            logps.append(logp.gather(-1, nxt))
            idx = torch.cat([idx, nxt], dim=1)
            cur = nxt.to(self.device)
        return idx, torch.cat(logps, dim=1)


def _cache_argument(hf_model) -> str:
    """The forward argument carrying the key-value cache: ``cache`` in transformers 5,
    ``past_key_values`` in families that still use the older name."""
    params = inspect.signature(hf_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _check_folder(folder: Path, name: str) -> None:
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise UserError(
                f"expert '{name}': {folder} holds no config.json "
                "(a folder written by save_pretrained is expected)"
            )
        return
    if folder.exists():
        raise UserError(f"expert '{name}': {folder} is a file, not a model folder")
    looks_like_hub_id = not str(folder).startswith((".", "/", "~")) and str(folder).count("/") == 1
    hint = (
        (
            " (it looks like a hub id: nothing is downloaded, so save the model to a folder "
            "first and name that folder)"
        )
        if looks_like_hub_id
        else ""
    )
    raise UserError(f"expert '{name}': model folder {folder} does not exist{hint}")


def load_hf_expert(
    folder, name: str = "expert", device="cpu", batch_size: int = 64, bf16: bool = True
) -> HFExpert:
    """The model and tokenizer saved in ``folder`` (by ``save_pretrained``), never downloaded."""
    folder = Path(folder).expanduser()
    _check_folder(folder, name)
    dtype = torch.bfloat16 if bf16 and torch.device(device).type == "cuda" else torch.float32
    try:
        tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=dtype
        )
    except (
        Exception
    ) as exc:  # transformers/safetensors raise OSError, ValueError, SafetensorError...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"expert '{name}': cannot load the model in {folder} "
            f"({type(exc).__name__}: {first[:200]})"
        ) from None
    return HFExpert(HFCausalLM(hf), tok, name, device, batch_size)


def save_hf_expert(module: HFCausalLM, tokenizer, folder) -> None:
    """``save_pretrained`` (safetensors) of the model and its tokenizer into ``folder``, written
    beside it and renamed, so a killed save never leaves a half-written model folder."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    module.hf.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def folder_sha256(folder) -> dict:
    """{file name: sha256} of every file in a model folder (provenance in run.json)."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[p.name] = h.hexdigest()
    return out


class HFTokens:
    """A Hugging Face tokenizer for a study's data: each document encoded alone (no special
    tokens), documents joined by the EOS id (BOS when there is none), as GPT-2 was trained."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.bos = tokenizer_bos(tokenizer)
        self.sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.bos
        self.hash = tokenizer_hash(tokenizer)
        self.vocab_size = len(tokenizer)

    def encode(self, docs: list[bytes]) -> torch.Tensor:
        """(n_tokens,) int64 ids. Bytes that are not UTF-8 become U+FFFD: the user's files are
        checked when read (`data.files`), but a registered corpus may hold a few (the Python
        standard library has Latin-1 test files), and the split stays the byte-level one."""
        texts = [d.decode("utf-8", errors="replace") for d in docs]
        ids = []
        for i, enc in enumerate(self.tokenizer(texts, add_special_tokens=False)["input_ids"]):
            ids.extend(([self.sep] if i else []) + list(enc))
        return torch.tensor(ids, dtype=torch.long)


class HFFamily:
    """Causal LMs of one ``transformers`` config (the experts'), resized: what `branch` trains
    in this family and the monolith it is compared with (depth, heads, width and MLP width
    replaced through the config's generic names ``num_hidden_layers``, ``num_attention_heads``,
    ``hidden_size`` and ``n_inner`` or ``intermediate_size``)."""

    name = "hf"

    def __init__(self, config, tokenizer):
        self.config, self.tokenizer = config, tokenizer
        self._counts = {}
        self.tokens = HFTokens(tokenizer)
        self.vocab_size = int(config.vocab_size)

    @classmethod
    def gpt2(cls, tokenizer, T: int) -> "HFFamily":
        """GPT-2 configs over ``tokenizer``, ``T`` positions, no dropout (CPU runs repeat)."""
        bos = tokenizer_bos(tokenizer)
        cfg = transformers.GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=T,
            bos_token_id=bos,
            eos_token_id=bos if tokenizer.eos_token_id is None else tokenizer.eos_token_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        return cls(cfg, tokenizer)

    def _config(self, n_layer: int, n_head: int, d_model: int, d_ff: int, T: int):
        cfg = self.config.__class__.from_dict(self.config.to_dict())
        cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size = n_layer, n_head, d_model
        for attr in ("n_inner", "intermediate_size"):
            if hasattr(cfg, attr):
                setattr(cfg, attr, d_ff or 4 * d_model)
        if getattr(cfg, "max_position_embeddings", T) < T:
            cfg.max_position_embeddings = T
        return cfg

    def make(
        self, n_layer: int, n_head: int, d_model: int, d_ff: int, T: int, seed: int
    ) -> HFCausalLM:
        torch.manual_seed(seed)
        cfg = self._config(n_layer, n_head, d_model, d_ff, T)
        return HFCausalLM(transformers.AutoModelForCausalLM.from_config(cfg))

    def param_counts(self, cfg) -> tuple[int, int]:
        """(total, non-embedding) parameters of this family's model at the sizes of ``cfg`` (an
        `LMConfig`), counted on the model itself (built on the meta device: no memory): a tied
        head counts once, and the embeddings are every `nn.Embedding` plus an untied head."""
        key = (cfg.n_layer, cfg.n_head, cfg.d_model, cfg.d_ff, cfg.block_size)
        if key not in self._counts:
            with torch.device("meta"):
                m = transformers.AutoModelForCausalLM.from_config(self._config(*key))
            total = sum(p.numel() for p in m.parameters())
            emb = {
                id(p): p.numel()
                for mod in m.modules()
                if isinstance(mod, torch.nn.Embedding)
                for p in mod.parameters()
            }
            head = m.get_output_embeddings()
            if head is not None:
                emb.update({id(p): p.numel() for p in head.parameters()})
            self._counts[key] = (total, total - sum(emb.values()))
        return self._counts[key]

    def expert(self, module: HFCausalLM, name: str, device="cpu") -> HFExpert:
        return HFExpert(module, self.tokenizer, name, device)


def train_bpe(texts, vocab_size: int, eos: str = "<|endoftext|>"):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts`` with the ``tokenizers``
    library, as a ``PreTrainedTokenizerFast`` whose one special token serves as BOS and EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[eos],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos)
