"""Algorithms at scale (PAPER.md section 4): Algorithm 1, Stochastic Primal-Dual and peer lam rules.

Shared interfaces (other packages code against these names):

- `batch.GateBatch`, `batch.Sampler`: what a training step consumes.
- `spd.SPDConfig`, `spd.SPDResult`, `spd.train_spd`: the SPD training loop for any gate module.
- `lam_rules.LAM_RULES`: the lam-update plug-ins ("eg", "doremi", "groupdro", "afl").
- `gates.GATES`: discrete gates ("table", "linear"); `harness.ALGORITHMS`: methods graded exactly.
"""

from .batch import GateBatch, Sampler
from .lam_rules import LAM_RULES
from .spd import SPDConfig, SPDResult, train_spd

__all__ = ["GateBatch", "Sampler", "LAM_RULES", "SPDConfig", "SPDResult", "train_spd"]
