"""Expert source ``branch`` (BTM-style): one base trained on the union of the domains, then a
copy fine-tuned on each domain, so every expert starts from the same base weights."""

import random

import pytest
import torch

from modgen_bench.data.corpora import CORPORA
from modgen_bench.data.files import register
from modgen_bench.pipeline import LMTrain, StageRun, Store, load_splits
from modgen_bench.pipeline.experts import branch_experts
from modgen_bench.sequence.checkpoint import load_checkpoint


@pytest.fixture
def two_domains(tmp_path):
    before = dict(CORPORA)
    rng = random.Random(0)
    for dom, alpha in [("aa", "abcde "), ("bb", "vwxyz ")]:
        (tmp_path / dom).mkdir()
        for i in range(30):
            (tmp_path / dom / f"{i}.txt").write_text("".join(rng.choice(alpha) for _ in range(120)))
        register({"name": f"files-{dom}", "glob": str(tmp_path / dom / "*.txt")})
    yield ["files-aa", "files-bb"]
    CORPORA.clear()
    CORPORA.update(before)


def test_each_expert_is_the_base_plus_its_own_fine_tune(tmp_path, two_domains):
    splits = load_splits(two_domains, 9, 8, 2, 0)
    lr = 3e-3
    spec = LMTrain(1, 2, 8, 16, steps=5, batch_size=4, lr=lr)
    experts = branch_experts(splits, spec, StageRun(Store(tmp_path / "store")), finetune_steps=1)
    base = load_checkpoint(next((tmp_path / "store").glob("expert-base-*.pt")), "cpu")["model"]
    gaps = []
    for e in experts.experts:
        state = e.model.state_dict()
        # one AdamW step from the base moves every weight by at most lr (Adam's first step:
        # lr * sign)
        gap = max(float((state[k] - base[k]).abs().max()) for k in base)
        assert 0 < gap <= lr * 1.001
        gaps.append(state)
    assert any(not torch.equal(gaps[0][k], gaps[1][k]) for k in base)  # domains pull apart
    assert [s["source"] for s in experts.sources] == ["branch", "branch"]
    again = branch_experts(
        splits, spec, StageRun(Store(tmp_path / "store")), finetune_steps=1
    )  # reloads, same weights
    assert all(
        torch.equal(a.model.state_dict()[k], b.model.state_dict()[k])
        for a, b in zip(experts.experts, again.experts, strict=True)
        for k in base
    )
