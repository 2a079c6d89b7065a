"""train_lm: it learns, same seed -> same numbers, and a killed-then-resumed run ends
identically."""

import pytest
import torch

from modgen_bench.data.synthetic import SuccessorTask
from modgen_bench.models import LMConfig, TransformerLM
from modgen_bench.sequence import train_lm

TASK = SuccessorTask(vocab=7, length=5)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed=0):
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(vocab_size=8, block_size=6, d_model=8, d_ff=16))


def _batches(g):
    return TASK.sample(0, 16, g)


def test_training_lowers_the_loss_towards_the_entropy():
    r = train_lm(_model(), _batches, steps=150, lr=2e-2, seed=0)
    # the first token is uniform (log 7 nats), the next four are deterministic: optimum log(7)/5
    assert r["losses"][0] > 1.8
    assert r["final_loss"] < 0.6
    assert len(r["losses"]) == 150 and r["resumed_from"] == 0


def test_same_seed_same_numbers_and_other_seed_differs():
    a = train_lm(_model(), _batches, steps=20, lr=1e-2, seed=3)["losses"]
    b = train_lm(_model(), _batches, steps=20, lr=1e-2, seed=3)["losses"]
    c = train_lm(_model(), _batches, steps=20, lr=1e-2, seed=4)["losses"]
    assert a == b and a != c


class _Killed(Exception):
    pass


def test_killed_then_resumed_run_gives_identical_numbers(tmp_path):
    steps = 30
    ref_model = _model()
    ref = train_lm(ref_model, _batches, steps, 1e-2, seed=5, warmup=5)

    calls = {"n": 0}

    def dying(g):
        calls["n"] += 1
        if calls["n"] > 17:  # dies mid-way, after the checkpoint at step 10
            raise _Killed
        return _batches(g)

    ck = tmp_path / "run.pt"
    with pytest.raises(_Killed):
        train_lm(_model(), dying, steps, 1e-2, seed=5, warmup=5, checkpoint=ck, checkpoint_every=10)
    resumed_model = _model(seed=99)  # a different init: everything must come from the checkpoint
    res = train_lm(
        resumed_model, _batches, steps, 1e-2, seed=5, warmup=5, checkpoint=ck, checkpoint_every=10
    )
    assert res["resumed_from"] == 10
    assert res["losses"] == ref["losses"]
    for (k, a), b in zip(
        ref_model.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    # a finished checkpoint resumes to the end at once
    again = train_lm(_model(seed=7), _batches, steps, 1e-2, seed=5, warmup=5, checkpoint=ck)
    assert again["resumed_from"] == steps and again["losses"] == ref["losses"]


def test_weights_reweight_the_sequences():
    """With weights on a two-domain batch, a weight of 0 on a domain removes it from the loss."""

    def two(g):
        return torch.cat([TASK.sample(0, 8, g), TASK.sample(1, 8, g)])

    w = torch.cat([torch.ones(8), torch.zeros(8)])
    m = _model()
    train_lm(m, two, steps=150, lr=2e-2, seed=0, weights=w)
    g = torch.Generator().manual_seed(1)
    a, b = TASK.sample(0, 64, g), TASK.sample(1, 64, g)
    with torch.no_grad():
        assert m.sequence_logprob(a).mean() > m.sequence_logprob(b).mean() + 5.0


def test_bad_steps_is_an_error():
    with pytest.raises(ValueError, match="steps"):
        train_lm(_model(), _batches, steps=0, lr=1e-2)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_object"])
def test_damaged_checkpoint_is_recomputed_not_loaded(tmp_path, caplog, damage):
    """A truncated or corrupt checkpoint is detected and training recomputes from step 0,
    ending with the numbers of an uninterrupted run."""
    steps = 12
    ref = train_lm(_model(), _batches, steps, 1e-2, seed=7)
    ck = tmp_path / "run.pt"
    train_lm(_model(), _batches, steps, 1e-2, seed=7, checkpoint=ck, checkpoint_every=5)
    raw = ck.read_bytes()
    if damage == "truncate":
        ck.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        ck.write_bytes(bytes(range(256)) * 8)
    elif damage == "empty":
        ck.write_bytes(b"")
    else:
        torch.save({"model": {}}, ck)
    with caplog.at_level("WARNING", logger="modgen_bench.sequence.checkpoint"):
        res = train_lm(_model(), _batches, steps, 1e-2, seed=7, checkpoint=ck, checkpoint_every=5)
    assert "is damaged" in caplog.text and str(ck) in caplog.text
    assert res["resumed_from"] == 0
    assert res["losses"] == ref["losses"]
    assert torch.load(ck, weights_only=True)["step"] == steps  # rewritten whole


def test_checkpoint_stores_config_step_and_rng_state_and_restores_them(tmp_path):
    """The file holds the model's config, the step, the seed, the loss log and the RNG states;
    `Checkpoint.restore` puts weights, step, losses and the batch generator back."""
    import dataclasses

    from modgen_bench.sequence.checkpoint import Checkpoint, TrainState
    from modgen_bench.sequence.train import make_adamw

    ck = tmp_path / "run.pt"
    train_lm(_model(), _batches, 6, 1e-2, seed=3, checkpoint=ck, checkpoint_every=4)
    saved = torch.load(ck, weights_only=True)
    assert saved["step"] == 6 and saved["seed"] == 3 and len(saved["losses"]) == 6
    assert saved["config"] == dataclasses.asdict(_model().config)
    model, gen = _model(seed=99), torch.Generator().manual_seed(0)
    opt = make_adamw(model.parameters(), 1e-2, 0.0)
    state = TrainState(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), gen)
    Checkpoint(ck).restore(state)
    assert state.step == 6 and state.losses == saved["losses"]
    assert torch.equal(gen.get_state(), saved["batch_rng"])
    assert all(torch.equal(v, saved["model"][k]) for k, v in model.state_dict().items())
    fresh = TrainState(_model(), opt, state.sched, torch.Generator())
    Checkpoint(tmp_path / "absent.pt").restore(fresh)  # no file: step 0, nothing written
    assert fresh.step == 0 and fresh.losses == [] and not (tmp_path / "absent.pt").exists()
