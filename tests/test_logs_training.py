"""Training logs without a terminal: no bar redraws, one labelled line per training."""

import logging

import pytest
import torch

from modgen_bench.data.synthetic import SuccessorTask
from modgen_bench.logs import label
from modgen_bench.models import LMConfig, TransformerLM
from modgen_bench.sequence import train_lm

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TASK = SuccessorTask(vocab=7, length=5)


def _model():
    torch.manual_seed(0)
    return TransformerLM(LMConfig(vocab_size=8, block_size=6, d_model=8, d_ff=16))


@pytest.fixture
def no_console_handlers():
    """Handlers an earlier `main()` installed would echo the log line to stderr."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_modgen_bench_handler", False)]
    for h in ours:
        root.removeHandler(h)
    yield
    for h in ours:
        root.addHandler(h)


def test_train_lm_without_a_tty_draws_no_bar_and_logs_one_labelled_line(
    capfd, caplog, no_console_handlers
):
    name = label("train_lm", model="expert-code", seed=2, rep=1)
    with caplog.at_level(logging.INFO, logger="modgen_bench"):
        r = train_lm(
            _model(), lambda g: TASK.sample(0, 8, g), steps=30, lr=1e-2, progress=True, label=name
        )
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # stderr is not a terminal: no bar at all
    lines = [
        rec.getMessage() for rec in caplog.records if rec.name == "modgen_bench.sequence.train"
    ]
    assert len(lines) == 1
    assert lines[0].startswith("train_lm model=expert-code seed=2 rep=1: steps 0-30, final loss ")
    assert f"{r['final_loss']:.4f}" in lines[0]


def test_train_lm_without_progress_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="modgen_bench"):
        train_lm(_model(), lambda g: TASK.sample(0, 8, g), steps=5, lr=1e-2)
    assert not [r for r in caplog.records if r.name == "modgen_bench.sequence.train"]
