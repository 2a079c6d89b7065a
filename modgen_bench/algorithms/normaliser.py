"""The normaliser Z of a gated model: a control-variate estimate and a restoration to Z = 1.

G1 (PAPER.md section 1) asks for Z_g = sum_{x in S} pi_g(x) = 1, an equality; SPD (section 4)
enforces it only through its multiplier, so its last iterate ends near, not on, Z = 1.

Estimate (`z_control_variate`). For x ~ q = (1/p) sum_k E[k] the importance weight is

    w(x) = pi_g(x) / q(x) = sum_k g(x, k) c_k(x),   c_k(x) = p E[k](x) / sum_j E[j](x),

and E_q[c_k] = sum_x E[k](x) = 1 for every k, whatever the gate: the experts' scaled posteriors
are control variates of known mean. The regression estimator (Owen, *Monte Carlo theory, methods
and examples*, 2013, section 8.9) is the intercept of the least-squares fit of w on
(c_1 - 1, ..., c_{p-1} - 1) (c_p is redundant: sum_k c_k = p). It is consistent, its variance is
the residual variance over n, and it is exact for a constant gate (w = sum_k g_k c_k, residual 0).
It is a fixed linear combination Z_cv = a @ w of the weights, a depending on the draws only, so
it is differentiable in the gate's parameters. Out-of-support draws (x not in S) have w = 0 and
keep their c: the control variates' mean is over all of q.

Restoration (`restore_z`). Gauss-Newton steps of minimum norm on the one equation
Z_cv(theta) = 1 over a fixed batch of expert draws,

    theta <- theta - (Z_cv - 1) grad Z_cv / |grad Z_cv|^2,

the projection onto the constraint's linearisation that the restoration phase of SQP and filter
methods takes (Nocedal & Wright, *Numerical Optimization*, 2nd ed., section 15.4), halved while
it does not reduce |Z_cv - 1|. The draws must be independent of any draws that later grade Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["control_weights", "z_control_variate", "restore_z", "Restoration", "SE_FLOOR"]

SE_FLOOR = 1e-12  # relative: Z is not resolved below float64 rounding of the regression


def _controls(log_experts: torch.Tensor) -> np.ndarray:
    """(n, p) c_k(x) = p softmax_k(log E[k](x)), in float64."""
    p = log_experts.shape[-1]
    return p * torch.softmax(log_experts.double(), dim=-1).cpu().numpy()


def _regression(log_experts: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """X = [1, c_1 - 1, ..., c_{p-1} - 1] (n, p), its pseudo-inverse (p, n) and its rank, with one
    cut-off for both (numpy's matrix_rank default), so the estimate, its weights and its degrees
    of freedom always agree (nearly equal experts make X nearly collinear)."""
    c = _controls(log_experts)
    X = np.column_stack([np.ones(len(c)), c[:, :-1] - 1.0])
    rcond = max(X.shape) * np.finfo(float).eps
    s = np.linalg.svd(X, compute_uv=False)
    return X, np.linalg.pinv(X, rcond=rcond), int((s > rcond * s[0]).sum())


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """sum_i u_i v_i, correctly rounded (`math.fsum`): the same bits whatever the BLAS thread
    count (a threaded dot product sums its parts in an order that depends on it), so rows are
    identical under every launcher."""
    return math.fsum((u * v).tolist())


def control_weights(log_experts: torch.Tensor) -> np.ndarray:
    """(n,) weights a with Z_cv = a @ w: the intercept row of the least-squares pseudo-inverse of
    X = [1, c_1 - 1, ..., c_{p-1} - 1] (min-norm when the c_k are collinear, e.g. equal experts;
    then a = 1/n, the plain mean)."""
    return _regression(log_experts)[1][0]


def z_control_variate(
    log_w: torch.Tensor, log_experts: torch.Tensor, level: float = 0.95
) -> tuple[float, tuple[float, float], float]:
    """(Z_cv, its interval at ``level``, its standard error) from draws x ~ q: ``log_w`` (n,)
    log pi_g(x)/q(x) (-inf off the support S), ``log_experts`` (n, p).

    The interval is Student t with n - rank(X) degrees of freedom. With fewer than 2 residual
    degrees of freedom among the distinct draws the fit interpolates them and says nothing about
    its error: se = inf and the interval is the whole line (never a false "exact"). The
    regression estimator is asymptotic (bias O(1/n)): use n >> p draws; the pipeline uses
    thousands per expert."""
    from scipy.stats import t as student_t

    w = torch.exp(log_w.double()).cpu().numpy()
    X, Xp, rank = _regression(log_experts)
    beta = np.array([_dot(row, w) for row in Xp])
    z = float(beta[0])
    dof = len(w) - rank
    # the fit interpolates when the distinct draws barely exceed the rank (repeated draws of one
    # outcome of a finite space add rows but no residual information)
    if len(np.unique(np.column_stack([X, w]), axis=0)) - rank < 2:
        return z, (-math.inf, math.inf), math.inf
    resid = w - sum(X[:, j] * beta[j] for j in range(X.shape[1]))
    a = Xp[0]
    # a floor for float64 rounding in the least-squares solve: a constant gate has residual 0
    # and Z_cv = 1 + O(1e-15), which must not read as an interval that excludes 1
    se = max(math.sqrt(_dot(resid, resid) / dof * _dot(a, a)), SE_FLOOR * max(1.0, abs(z)))
    half = float(student_t.ppf(0.5 + level / 2, dof)) * se
    return z, (z - half, z + half), se


@dataclass
class Restoration:
    """What `restore_z` did: Z_cv on the batch before and after, steps taken, draws used,
    whether |Z_cv - 1| <= tol was reached (``converged``), and ``se``, the standard error of Z_cv
    on the batch at the end: the precision with which the true Z is put on 1 (a later check on
    n' independent draws sees Z - 1 ~ N(0, se^2 + se'^2), not N(0, se'^2))."""

    z_before: float
    z_after: float
    steps: int
    n: int
    converged: bool
    se: float = float("nan")


def _z_and_grad(gate: torch.nn.Module, inputs, log_accept, a, batch_size: int, grad: bool):
    """Z_cv = sum_i a_i w_i with w_i = p exp(log_accept_i(theta)) and the weights w (n,) on CPU;
    with ``grad``, the gradient of Z_cv is accumulated in the parameters' ``.grad``."""
    if grad:
        for t in gate.parameters():
            t.grad = None
    total, ws = 0.0, []
    for s in range(0, len(inputs), batch_size):
        sl = slice(s, s + batch_size)
        with torch.set_grad_enabled(grad):
            w = torch.exp(torch.logsumexp(gate(inputs[sl]).double() + log_accept[sl], dim=-1))
            part = (a[sl] * w).sum()
        if grad:
            part.backward()
        total += float(part.detach())
        ws.append(w.detach().cpu())
    return total, torch.cat(ws)


def restore_z(
    gate: torch.nn.Module,
    inputs: torch.Tensor,
    log_experts: torch.Tensor,
    in_support: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_steps: int = 20,
    batch_size: int = 1024,
) -> Restoration:
    """Move the gate's parameters (in place) until Z_cv = 1 within ``tol`` on the draws ``inputs``
    from q with their ``log_experts`` (n, p) (module docstring). The gate runs in eval mode (no
    dropout); its training flag is restored afterwards."""
    if len(inputs) == 0 or len(inputs) != len(log_experts) or torch.isnan(log_experts).any():
        raise ValueError(
            f"restore_z: need n >= 1 draws with n rows of log_experts and no NaN "
            f"(got {len(inputs)} draws, log_experts {tuple(log_experts.shape)})"
        )
    p = log_experts.shape[-1]
    device = next(gate.parameters()).device
    a = torch.as_tensor(control_weights(log_experts), dtype=torch.float64, device=device)
    # log(p * softmax_k log E): log w = logsumexp_k(log g + this); w = 0 off the support, by
    # zeroing the weight a (a -inf log-weight would give NaN gradients through logsumexp)
    log_accept = (math.log(p) + torch.log_softmax(log_experts.double(), dim=-1)).to(device)
    if in_support is not None:
        a = torch.where(in_support.to(device), a, torch.zeros_like(a))
    inputs = inputs.to(device)
    params = [t for t in gate.parameters() if t.requires_grad]
    was_training = gate.training
    gate.eval()
    try:
        z, w = _z_and_grad(gate, inputs, log_accept, a, batch_size, grad=True)
        z0, steps = z, 0
        while abs(z - 1.0) > tol and steps < max_steps:
            # dense copies: a sparse gradient (a table gate) holds uncoalesced duplicate rows;
            # a parameter the forward pass never uses has no gradient: it does not move
            grads = [
                torch.zeros_like(t)
                if t.grad is None
                else t.grad.detach().to_dense()
                if t.grad.is_sparse
                else t.grad.detach().clone()
                for t in params
            ]
            norm2 = sum(float((g.double() ** 2).sum()) for g in grads)
            if norm2 == 0.0:
                break
            old = [t.detach().clone() for t in params]
            step, improved = 1.0, False
            while step > 1e-4:
                with torch.no_grad():
                    for t, t0, g in zip(params, old, grads, strict=True):
                        t.copy_(t0 - step * (z - 1.0) / norm2 * g)
                z_try, w_try = _z_and_grad(gate, inputs, log_accept, a, batch_size, grad=False)
                if abs(z_try - 1.0) < abs(z - 1.0):
                    improved = True
                    break
                step *= 0.5
            if not improved:
                with torch.no_grad():
                    for t, t0 in zip(params, old, strict=True):
                        t.copy_(t0)
                break
            steps, z, w = steps + 1, z_try, w_try
            if abs(z - 1.0) > tol and steps < max_steps:  # the next step's gradient
                _z_and_grad(gate, inputs, log_accept, a, batch_size, grad=True)
        for t in params:
            t.grad = None
    finally:
        gate.train(was_training)
    # the end point's standard error on the batch, from the weights of its last evaluation
    if in_support is not None:
        w = torch.where(in_support.cpu(), w, torch.zeros_like(w))
    with torch.no_grad():
        se = z_control_variate(torch.log(w), log_experts)[2]
    return Restoration(
        z_before=z0, z_after=z, steps=steps, n=len(inputs), converged=abs(z - 1.0) <= tol, se=se
    )
