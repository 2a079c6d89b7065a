"""The expert interface (`modgen_bench.experts`): both adapters score and draw consistently.

Per-token log-probs equal a hand-computed log_softmax gather on the same model; whole-window
log-likelihoods are their sums; drawn windows carry the tokenizer's ids and re-score to the
log-probs recorded when they were drawn; the built-in adapter draws exactly what the pipeline
drew before it had an interface (`sampling.LMProposal`).
"""

import socket

import _hf
import pytest
import torch
import torch.nn.functional as F

from modgen_bench.data.corpora import BOS
from modgen_bench.errors import UserError
from modgen_bench.experts import BuiltinExpert, ExpertProposal, loglik_table, same_tokenizer
from modgen_bench.experts.builtin import BuiltinFamily
from modgen_bench.sampling import LMProposal
from modgen_bench.sequence.cache import cache_logliks

T = 12


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _builtin(seed=0):
    return BuiltinExpert(BuiltinFamily().make(1, 2, 16, 0, T, seed), "b")


def _hf_expert(tmp_path, batch_size=64, seed=0):
    from modgen_bench.experts.hf import load_hf_expert

    tok = _hf.tokenizer()
    path = _hf.folder(tmp_path / f"e{seed}", tok, T=T, seed=seed)
    return load_hf_expert(path, "h", batch_size=batch_size)


def _windows(e, n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(
        0, e.vocab_size - (1 if isinstance(e, BuiltinExpert) else 0), (n, T - 1), generator=g
    )
    return torch.cat([torch.full((n, 1), e.bos), body], dim=1)


def _hand_logprobs(logits, w):
    return F.log_softmax(logits.float(), dim=-1).gather(-1, w[:, 1:, None]).squeeze(-1)


def test_builtin_logprobs_are_a_log_softmax_gather_and_sums():
    e = _builtin()
    w = _windows(e)
    logits, _ = e.model(w[:, :-1])
    hand = _hand_logprobs(logits, w)
    assert torch.allclose(e.token_logprobs(w), hand, atol=1e-6)
    assert torch.allclose(e.window_loglik(w), hand.sum(-1), atol=1e-5)
    assert e.vocab_size == 257 and e.bos == BOS


def test_hf_logprobs_are_a_log_softmax_gather_and_sums(tmp_path):
    e = _hf_expert(tmp_path, batch_size=3)  # several scoring batches
    w = _windows(e)
    with torch.no_grad():
        hand = _hand_logprobs(e.model.hf(input_ids=w[:, :-1]).logits, w)
    tok = e.token_logprobs(w)
    assert tok.shape == (7, T - 1) and tok.dtype == torch.float32
    assert torch.allclose(tok, hand, atol=1e-5)
    assert torch.allclose(e.window_loglik(w), hand.sum(-1), atol=1e-4)
    assert e.bos == e.tokenizer.bos_token_id


@pytest.mark.parametrize("kind", ["builtin", "hf"])
def test_draws_rescore_to_the_logprobs_recorded_when_drawn(kind, tmp_path):
    e = _builtin() if kind == "builtin" else _hf_expert(tmp_path, batch_size=5)
    d = e.draw(11, T, torch.Generator().manual_seed(3))
    assert d.windows.shape == (11, T) and d.windows.dtype == torch.long
    assert (d.windows[:, 0] == e.bos).all()
    assert int(d.windows.min()) >= 0 and int(d.windows.max()) < e.vocab_size
    assert torch.allclose(e.token_logprobs(d.windows), d.token_logprobs, atol=1e-5)
    again = e.sample(11, T, torch.Generator().manual_seed(3))
    assert torch.equal(again, d.windows)  # same seed, same windows


def test_builtin_draws_are_the_pipelines_draws_bit_for_bit():
    models = [BuiltinFamily().make(1, 2, 16, 0, T, s) for s in (0, 1)]
    old = LMProposal([m.eval() for m in models], T, BOS, batch_size=4)
    new = ExpertProposal([BuiltinExpert(m, batch_size=4) for m in models], T)
    for k in range(2):
        a = old.sample_expert(k, 9, torch.Generator().manual_seed(k))
        b = new.sample_expert(k, 9, torch.Generator().manual_seed(k))
        assert torch.equal(a, b)
        assert torch.equal(old.log_experts(a), new.log_experts(a))
        assert torch.equal(loglik_table(new.experts, a), cache_logliks(models, a, batch_size=4))


def test_hf_scoring_does_not_depend_on_the_batch_size(tmp_path):
    from modgen_bench.experts.hf import load_hf_expert

    e = _hf_expert(tmp_path, batch_size=2)
    w = _windows(e, n=9)
    big = load_hf_expert(tmp_path / "e0", "h", batch_size=64)
    assert torch.allclose(e.token_logprobs(w), big.token_logprobs(w), atol=1e-5)


def test_one_tokenizer_per_study(tmp_path):
    from modgen_bench.experts.hf import load_hf_expert

    a = _hf_expert(tmp_path)
    same = load_hf_expert(_hf.folder(tmp_path / "same", _hf.tokenizer(), T=T, seed=5), "same")
    assert same_tokenizer([a, same]) == a.tokenizer_hash
    other_tok = _hf.tokenizer(["zzz yyy xxx " * 9, "qqq www"], vocab_size=280)
    b = load_hf_expert(_hf.folder(tmp_path / "other", other_tok, T=T), "other")
    with pytest.raises(UserError, match="'h' and 'other' use different tokenizers"):
        same_tokenizer([a, b])
    with pytest.raises(UserError, match="'b' and 'h' use different tokenizers"):
        same_tokenizer([_builtin(), a])


def test_missing_folder_hub_id_and_damaged_weights_are_user_errors(tmp_path):
    from modgen_bench.experts.hf import load_hf_expert

    with pytest.raises(UserError, match="does not exist"):
        load_hf_expert(tmp_path / "nowhere", "x")
    with pytest.raises(UserError, match="looks like a hub id"):
        load_hf_expert("openai-community/gpt2", "x")
    path = _hf.folder(tmp_path / "broken", _hf.tokenizer(), T=T)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserError, match=r"expert 'x': cannot load the model in .*broken"):
        load_hf_expert(path, "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_hf_expert(tmp_path / "empty", "x")
