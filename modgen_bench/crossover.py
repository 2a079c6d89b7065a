"""Crossover of gate-vs-monolith in the capacity ratio r.

Model, fitted by ordinary least squares over replicate-level cells (numpy.linalg.lstsq):

    delta = a + b log r + c log B  (+ e log r log B  with ``interaction``),

delta = gate minus monolith NLL per token (negative = gate better), r = the monolith's
non-embedding parameters over the experts' combined (`modgen_bench.matching`), B = the training
budget (steps or FLOPs; any positive unit, it enters through its log). The crossover at budget B
is the r where the fitted delta is 0:

    log r* = -(a + c log B) / (b + e log B).

`checked_crossover` is what a report states. The fit is only a summary of the cells, so it is
checked against them before any r* is printed:

- the cells' own intervals must change sign (some r with gate - monolith decidedly < 0 below
  some r with it decidedly > 0); the bracket [a, b] between the last decided-negative and the
  first decided-positive cell is where the crossing lies, whatever the fit says;
- the fit must agree with the cells: no decided cell on the other side of 0 from its prediction,
  and a lack-of-fit test sum_i ((mean_i - pred_i) / se_i)^2 ~ chi2(n_cells) not rejected at 5%;
  a misspecified fit is flagged and its r* withheld;
- r* must lie inside the cells' bracket; its interval is Fieller's for the ratio
  log r* = N / D, N = -(a + c log B), D = b + e log B, with the covariance of (N, D) estimated
  from the seeds' own fits (seed-clustered: a seed's gate and experts are shared by its cells).
  Fieller's set is unbounded when D is not decidedly > 0; then the interval is NaN.
"No crossover" is said only when every cell is decided and all on the same side of 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = [
    "CrossoverFit",
    "fit_delta",
    "crossover_r",
    "sign_bracket",
    "fieller_log_r_star",
    "CheckedCrossover",
    "checked_crossover",
]


@dataclass
class CrossoverFit:
    """Least-squares coefficients (a, b, c[, e]) and the residual standard deviation."""

    coef: np.ndarray
    interaction: bool
    resid_sd: float
    n: int

    def predict(self, r, budget) -> np.ndarray:
        return (
            _design(np.asarray(r, float), np.asarray(budget, float), self.interaction) @ self.coef
        )

    def log_r_star(self, budget: float) -> float:
        """log r* at ``budget``; NaN when the slope in log r is <= 0 (no upward crossing)."""
        a, b, c = self.coef[:3]
        e = self.coef[3] if self.interaction else 0.0
        lb = np.log(budget)
        slope = b + e * lb
        return float(-(a + c * lb) / slope) if slope > 0 else float("nan")


def _design(r, budget, interaction: bool) -> np.ndarray:
    lr, lb = np.log(r), np.log(budget)
    cols = [np.ones_like(lr), lr, lb] + ([lr * lb] if interaction else [])
    return np.stack(cols, axis=-1)


def fit_delta(delta, r, budget, interaction: bool = False) -> CrossoverFit:
    """OLS fit of delta = a + b log r + c log B (+ e log r log B)."""
    delta, r, budget = (np.asarray(v, dtype=np.float64) for v in (delta, r, budget))
    if not (delta.shape == r.shape == budget.shape) or delta.ndim != 1:
        raise ValueError("delta, r and budget must be 1-d arrays of the same length")
    if np.any(r <= 0) or np.any(budget <= 0):
        raise ValueError("r and budget must be > 0 (they enter through their logs)")
    if not np.all(np.isfinite(delta)):
        raise ValueError(
            f"crossover fit: {int((~np.isfinite(delta)).sum())} delta values are "
            f"not finite (a failed cell); fix or drop them first"
        )
    X = _design(r, budget, interaction)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(
            f"crossover fit: the design (distinct r and budgets) has rank "
            f"{np.linalg.matrix_rank(X)} < {X.shape[1]} coefficients"
        )
    coef, *_ = np.linalg.lstsq(X, delta, rcond=None)
    resid = delta - X @ coef
    dof = max(1, len(delta) - X.shape[1])
    return CrossoverFit(coef, interaction, float(np.sqrt(resid @ resid / dof)), len(delta))


def crossover_r(fit: CrossoverFit, budget: float) -> float:
    """r* (NaN when the fit has no upward crossing at this budget)."""
    return float(np.exp(fit.log_r_star(budget)))


def sign_bracket(r, lo, hi) -> tuple[str, float, float]:
    """Where the cells' own intervals change sign, as (status, a, b).

    A cell is decided negative when hi < 0 (gate better), positive when lo > 0. Status:
    ``"crossing"`` with [a, b] = [last decided-negative r, first decided-positive r above it];
    ``"reverse crossing"`` (positive below negative, the fit's direction reversed);
    ``"gate better at every r"`` / ``"monolith better at every r"`` (every cell decided, one
    side); ``"undecided"`` otherwise (a, b NaN).
    """
    r, lo, hi = (np.asarray(v, dtype=np.float64) for v in (r, lo, hi))
    order = np.argsort(r)
    r, lo, hi = r[order], lo[order], hi[order]
    neg, pos = hi < 0, lo > 0
    if neg.all():
        return "gate better at every r", float("nan"), float("nan")
    if pos.all():
        return "monolith better at every r", float("nan"), float("nan")
    if pos.any() and neg.any():
        first_pos = r[pos].min()
        below = r[neg & (r < first_pos)]
        if below.size:
            return "crossing", float(below.max()), float(first_pos)
        return "reverse crossing", float("nan"), float("nan")
    return "undecided", float("nan"), float("nan")


def fieller_log_r_star(coefs, at_budget: float, level: float = 0.95) -> tuple[float, float, float]:
    """(log r*, lo, hi) from per-seed coefficient vectors (n_seeds, 3 or 4) by Fieller's method.

    log r* = N / D with N = -(a + c log B), D = b + e log B; N_s, D_s per seed, their means and
    covariance / n_seeds; the set {t : (N - t D)^2 <= q^2 (v_NN - 2 t v_ND + t^2 v_DD)}, q the
    Student t quantile on n_seeds - 1 d.o.f. NaN bounds when the set is not a bounded interval
    (D not decidedly positive) or there are fewer than 2 seeds.
    """
    coefs = np.asarray(coefs, dtype=np.float64)
    lb = np.log(at_budget)
    e = coefs[:, 3] if coefs.shape[1] > 3 else 0.0
    N, D = -(coefs[:, 0] + coefs[:, 2] * lb), coefs[:, 1] + e * lb
    n = N.size
    point = float(N.mean() / D.mean()) if D.mean() > 0 else float("nan")
    if n < 2 or not np.isfinite(point):
        return point, float("nan"), float("nan")
    cov = np.cov(np.stack([N, D]), ddof=1) / n
    q2 = float(_st.t.ppf(0.5 + level / 2, n - 1)) ** 2
    nm, dm = N.mean(), D.mean()
    qa = dm * dm - q2 * cov[1, 1]
    qb = -2 * (nm * dm - q2 * cov[0, 1])
    qc = nm * nm - q2 * cov[0, 0]
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return point, float("nan"), float("nan")
    root = np.sqrt(disc)
    return point, float((-qb - root) / (2 * qa)), float((-qb + root) / (2 * qa))


@dataclass
class CheckedCrossover:
    """A crossover stated only as far as the cells support it (see the module docstring).

    Attributes:
        status: `sign_bracket`'s status; ``"crossing"`` becomes ``"crossing (fit rejected)"``
            when the fit disagrees with the cells or puts r* outside their bracket.
        bracket_lo, bracket_hi: the cells' bracket [a, b] (NaN without a crossing).
        r_star, lo, hi: the fit's r* and its seed-clustered Fieller interval; NaN unless the
            status is ``"crossing"`` (fit accepted).
        fit_r_star: the fit's own r* at this budget, whatever the check said (for the record).
        lack_of_fit_p: p-value of the chi-square lack-of-fit test against the cells.
        contradicted_cells: decided cells on the other side of 0 from the fit's prediction.
        text: one line for a report.
    """

    status: str
    bracket_lo: float
    bracket_hi: float
    r_star: float
    lo: float
    hi: float
    fit_r_star: float
    lack_of_fit_p: float
    contradicted_cells: int
    text: str


def _cell_check(fit, at_budget, cell_r, cell_mean, cell_se, cell_lo, cell_hi):
    """(lack-of-fit p, number of decided cells the fit puts on the wrong side of 0)."""
    pred = fit.predict(cell_r, np.full_like(cell_r, at_budget))
    se = np.where(cell_se > 0, cell_se, np.nan)
    z = (cell_mean - pred) / se
    z = z[np.isfinite(z)]
    p = float(_st.chi2.sf(float(z @ z), z.size)) if z.size else float("nan")
    wrong = int(((cell_hi < 0) & (pred > 0)).sum() + ((cell_lo > 0) & (pred < 0)).sum())
    return p, wrong


def checked_crossover(
    delta,
    r,
    budget,
    seeds,
    at_budget: float,
    cell_r,
    cell_mean,
    cell_se,
    cell_lo,
    cell_hi,
    interaction: bool = False,
    level: float = 0.95,
    alpha: float = 0.05,
) -> CheckedCrossover:
    """The crossover at ``at_budget``, checked against that budget's cells.

    ``delta, r, budget, seeds``: one row per (seed, r, budget) for the fit; ``cell_*``: one entry
    per r at ``at_budget``, the cell's mean over seeds, standard error and interval (both error
    sources, `modgen_bench.stats.two_level_interval`).
    """
    cell = [np.asarray(v, dtype=np.float64) for v in (cell_r, cell_mean, cell_se, cell_lo, cell_hi)]
    status, a, b = sign_bracket(cell[0], cell[3], cell[4])
    fit = fit_delta(delta, r, budget, interaction)
    fit_r = crossover_r(fit, at_budget)
    p_fit, wrong = _cell_check(fit, at_budget, *cell)
    nan = float("nan")
    r_star = lo = hi = nan
    if status == "crossing":
        coefs = _seed_coefs(delta, r, budget, seeds, interaction)
        _, l_lo, l_hi = fieller_log_r_star(coefs, at_budget, level)
        problems = [f"{wrong} decided cell(s) on the other side of its prediction"] if wrong else []
        if not p_fit >= alpha:
            problems.append(f"lack of fit p = {p_fit:.2g}")
        if not a <= fit_r <= b:
            problems.append(f"its r* {fit_r:.3g} lies outside the cells' bracket")
        if problems:
            status = "crossing (fit rejected)"
            text = (
                f"the cells change sign between r = {a:g} and {b:g}; the fit is not reported "
                f"({'; '.join(problems)})"
            )
        else:
            r_star, lo, hi = fit_r, float(np.exp(l_lo)), float(np.exp(l_hi))
            text = (
                f"vanishes at r* = {r_star:.2f} [{lo:.2f}, {hi:.2f}] (cells change sign "
                f"between r = {a:g} and {b:g})"
            )
    elif status == "gate better at every r":
        text = "no crossover: the gate is decidedly better at every r swept"
    elif status == "monolith better at every r":
        text = "no crossover: the monolith is decidedly better at every r swept"
    elif status == "reverse crossing":
        text = "the cells change sign the other way (monolith better at small r)"
    else:
        text = "undecided: the cells' intervals do not show a sign change (no r* stated)"
    return CheckedCrossover(status, a, b, r_star, lo, hi, fit_r, p_fit, wrong, text)


def _seed_coefs(delta, r, budget, seeds, interaction) -> np.ndarray:
    """(n_seeds, k) coefficients of each seed's own fit (seeds whose design is rank-deficient
    are left out)."""
    delta, r, budget, seeds = (np.asarray(v) for v in (delta, r, budget, seeds))
    out = []
    for s in np.unique(seeds):
        m = seeds == s
        try:
            out.append(fit_delta(delta[m], r[m], budget[m], interaction).coef)
        except ValueError:
            continue
    return np.asarray(out).reshape(len(out), 4 if interaction else 3)
