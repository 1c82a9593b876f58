"""Robustness of the linearised entropy loop: measurement delay, a varying plant gain,
measurement noise and a ramp drift.

Plant e_{t+1} = e_t + b_t − k_t·α_t (nats per step). Normalised gains K_p = k·kp, K_i = k·ki.

**Delay d.** The controller at step t acts on the measurement taken d steps earlier::

    α_t = kp·e_{t−d} + ki·Σ_{j<t} e_{j−d}

(d = 1 is what the verl and TRL plug-ins do: the α of optimizer step t is computed from the
entropy of step t − 1). In z-transform, (z − 1)E = −k·z^{−d}(kp + ki/(z − 1))E, so the
closed-loop characteristic polynomial is::

    p_d(z) = z^d (z − 1)² + K_p (z − 1) + K_i
           = z^{d+2} − 2 z^{d+1} + z^d + K_p z + (K_i − K_p)

For P control (K_i = 0) the root z = 1 belongs to the integral, which does not feed back;
the P loop is z^d (z − 1) + K_p. d = 0 gives back `pic.stability`. For d = 1 the Jury test of
z³ + a₂z² + a₁z + a₀ (a₂ = −2, a₁ = 1 + K_p, a₀ = K_i − K_p) reads::

    p(1) = K_i > 0,   −p(−1) = 4 + 2K_p − K_i > 0,   |K_i − K_p| < 1,
    1 − (K_i − K_p)² > |K_p − 2K_i − 1|

and for P: 0 < K_p < 1 (half the delay-free bound). Any d: the roots of p_d are the
eigenvalues of its companion matrix (`delayed_poles`).

**Varying gain.** With k_t ∈ [k_lo, k_hi] chosen anew each step, frozen stability is not
enough. A sufficient condition is a common quadratic Lyapunov function: P ≻ 0 with
A(k)ᵀ P A(k) ≺ P at k_lo and k_hi (A is affine in k and the condition is an LMI in A, so the
two vertices cover every k in between; `common_lyapunov`). A lower bound on the worst growth
comes from periodic switching sequences (`worst_periodic_growth`).

**Noise.** The controller sees e_t + n_t with white n of variance σ². The state x = (e, S)
obeys x_{t+1} = A x_t + g n_t with g = (−k·kp, 1); the stationary covariance solves
Σ = A Σ Aᵀ + σ² g gᵀ, and α_t = (kp, ki)·x_t + kp·n_t, so Var α = cᵀΣc + kp²σ²
(`noise_gain`). For P: Var e = σ²·K_p/(2 − K_p), Var α = 2kp²σ²/(2 − K_p).

**Ramp drift.** b_t = b₀ + r·t: PI settles at the constant error e* = r/(k·ki) (the integral
has to ramp α by r/k per step, and only a constant error makes it ramp); P's error grows
without bound. `ramp_error`.

Every function broadcasts over numpy arrays of gains; sympy derivations and numeric twins are in
`proofs/robustness.py`.
"""

from __future__ import annotations

import itertools

import numpy as np

from .validation import is_finite_number, need

__all__ = [
    "common_lyapunov",
    "delayed_char_poly",
    "delayed_jury_conditions",
    "delayed_poles",
    "is_stable_delayed",
    "noise_gain",
    "ramp_error",
    "switched_matrix",
    "worst_periodic_growth",
]


def _arrays(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in xs))


def _check_delay(delay) -> int:
    need(isinstance(delay, int | np.integer) and delay >= 0, "delay", "an integer >= 0 (steps)", delay)
    return int(delay)


def delayed_char_poly(kp, ki, k, delay: int = 0, memory: float = 0.0) -> np.ndarray:
    """Coefficients (highest power first) of the loop polynomial, shape (..., n + 1).

    PI (ki ≠ 0): z^d (z − 1)² + K_p (z − 1) + K_i, degree n = d + 2.
    P (ki = 0): z^d (z − 1) + K_p, padded with a leading 0 to the same length.

    ``memory`` β > 0: a plant with first-order memory, ΔH_t = b − k·Σ_j β^j α_{t−j} (k the
    response to one step of α; Adam's first moment gives β ≈ β₁). Then (degree n = d + 3)::

        PI: z^d (z − 1)² (z − β) + z (K_p (z − 1) + K_i),    P: z^d (z − 1)(z − β) + K_p z
    """
    d = _check_delay(delay)
    need(is_finite_number(memory) and 0 <= memory < 1, "memory", "a number in [0, 1)", memory)
    kp, ki, k = _arrays(kp, ki, k)
    kkp, kki = k * kp, k * ki
    shape = kp.shape
    if memory == 0:
        base_pi, base_p = np.array([1.0, -2.0, 1.0]), np.array([1.0, -1.0])
        lin_pi = [(d + 1, kkp), (d + 2, kki - kkp)]  # (index from the top, coefficient)
        lin_p = [(d + 1, kkp)]
    else:
        base_pi = np.polymul([1.0, -2.0, 1.0], [1.0, -memory])
        base_p = np.polymul([1.0, -1.0], [1.0, -memory])
        lin_pi = [(d + 1, kkp), (d + 2, kki - kkp)]
        lin_p = [(d + 1, kkp)]
    n = len(base_pi) - 1 + d
    pi = np.zeros((*shape, n + 1))
    pi[..., : len(base_pi)] = base_pi
    for i, c in lin_pi:
        pi[..., i] += c
    p = np.zeros_like(pi)
    p[..., 1 : 1 + len(base_p)] = base_p
    for i, c in lin_p:
        p[..., i + 1] += c
    return np.where((ki == 0)[..., None], p, pi)


def delayed_poles(kp, ki, k, delay: int = 0, memory: float = 0.0) -> np.ndarray:
    """Closed-loop poles: eigenvalues of the companion matrix of `delayed_char_poly`;
    shape (..., n) complex (P loops have one pole fewer: their last entry is NaN)."""
    coeffs = delayed_char_poly(kp, ki, k, delay, memory)
    p_loop = coeffs[..., 0] == 0
    c = np.where(p_loop[..., None], np.roll(coeffs, -1, axis=-1), coeffs)  # monic, P: degree n − 1
    n = c.shape[-1] - 1
    comp = np.zeros((*c.shape[:-1], n, n))
    comp[..., 0, :] = -c[..., 1:]
    comp[..., np.arange(1, n), np.arange(n - 1)] = 1.0
    # P loops have degree n − 1: their padded companion row ends in a spurious zero root
    poles = np.linalg.eigvals(comp).astype(complex)
    order = np.argsort(-np.abs(poles), axis=-1)
    poles = np.take_along_axis(poles, order, axis=-1)
    poles[p_loop, -1] = np.nan
    return poles


def is_stable_delayed(kp, ki, k, delay: int = 0, memory: float = 0.0) -> np.ndarray:
    """True where the loop with measurement delay ``delay`` (and plant memory ``memory``)
    converges: all poles |z| < 1. Gains >= 0 and k > 0 (k ≤ 0 or kp = 0 is reported unstable).
    """
    kp, ki, k = _arrays(kp, ki, k)
    poles = delayed_poles(kp, ki, k, delay, memory)
    rho = np.nanmax(np.abs(poles), axis=-1)
    return (rho < 1.0) & (k > 0) & (k * kp > 0)


def delayed_jury_conditions(kp, ki, k) -> dict[str, np.ndarray]:
    """The Jury conditions of the d = 1 PI loop (see the module docstring), boolean arrays."""
    kp, ki, k = _arrays(kp, ki, k)
    kkp, kki = k * kp, k * ki
    return {
        "K_i > 0": kki > 0,
        "4 + 2K_p - K_i > 0": 4 + 2 * kkp - kki > 0,
        "|K_i - K_p| < 1": np.abs(kki - kkp) < 1,
        "1 - (K_i - K_p)^2 > |K_p - 2K_i - 1|": 1 - (kki - kkp) ** 2 > np.abs(kkp - 2 * kki - 1),
    }


def switched_matrix(kp, ki, k) -> np.ndarray:
    """A(k) of the delay-free PI loop, shape (..., 2, 2) (= `pic.stability.closed_loop_matrix`)."""
    from .stability import closed_loop_matrix

    return closed_loop_matrix(kp, ki, k)


def common_lyapunov(kp: float, ki: float, k_lo: float, k_hi: float, *, starts: int = 12, seed: int = 0):
    """A P ≻ 0 with A(k)ᵀPA(k) ≺ P at k_lo and k_hi, or None if the search finds none.

    P = [[1, p], [p, q]] (scale-free); the search maximises the smallest eigenvalue of
    P − A(k)ᵀPA(k) over both vertices (normalised by ‖P‖) by Nelder–Mead from several
    starts (the discrete Lyapunov solutions of the vertices and the mid gain among them).
    Returning P is a certificate — ``lyapunov_margin(P) > 0`` is re-checked exactly — that the
    loop converges for *every* sequence k_t ∈ [k_lo, k_hi]. None proves nothing.
    """
    from scipy.linalg import solve_discrete_lyapunov
    from scipy.optimize import minimize

    mats = [switched_matrix(kp, ki, kk) for kk in (k_lo, k_hi)]

    def margin(theta) -> float:
        p, log_q = theta
        q = np.exp(log_q)
        pm = np.array([[1.0, p], [p, q]])
        if q - p * p <= 0:
            return -1.0 - (p * p - q)
        scale = np.linalg.eigvalsh(pm).max()
        return min(float(np.linalg.eigvalsh(pm - a.T @ pm @ a).min()) for a in mats) / scale

    starts_theta = []
    for kk in (k_lo, np.sqrt(k_lo * k_hi), k_hi):
        a = switched_matrix(kp, ki, kk)
        if np.abs(np.linalg.eigvals(a)).max() < 1:
            pm = solve_discrete_lyapunov(a.T, np.eye(2))
            pm = pm / pm[0, 0]
            starts_theta.append((pm[0, 1], np.log(max(pm[1, 1], 1e-12))))
    rng = np.random.default_rng(seed)
    starts_theta += [(rng.uniform(-2, 2), rng.uniform(-3, 5)) for _ in range(starts)]
    best, best_val = None, -np.inf
    for theta0 in starts_theta:
        res = minimize(
            lambda th: -margin(th),
            np.asarray(theta0, float),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 2000},
        )
        if -res.fun > best_val:
            best, best_val = res.x, -res.fun
    if best is None or best_val <= 0:
        return None
    p, log_q = best
    pm = np.array([[1.0, p], [p, np.exp(log_q)]])
    ok = np.linalg.eigvalsh(pm).min() > 0 and all(np.linalg.eigvalsh(pm - a.T @ pm @ a).min() > 0 for a in mats)
    return pm if ok else None


def worst_periodic_growth(kp, ki, k_lo, k_hi, *, max_period: int = 6) -> tuple[float, tuple[float, ...]]:
    """max over switching cycles (k_lo/k_hi, period ≤ ``max_period``) of ρ(A_T ⋯ A_1)^{1/T}.

    A lower bound on the joint spectral radius: a value > 1 is a counterexample (a gain
    sequence along which the loop diverges although every frozen gain may be stable).
    Returns (growth per step, the gain cycle that attains it).
    """
    mats = {kk: switched_matrix(kp, ki, kk) for kk in (k_lo, k_hi)}
    best, best_seq = 0.0, (k_lo,)
    for period in range(1, max_period + 1):
        for seq in itertools.product((k_lo, k_hi), repeat=period):
            prod = np.eye(2)
            for kk in seq:
                prod = mats[kk] @ prod
            growth = float(np.abs(np.linalg.eigvals(prod)).max() ** (1.0 / period))
            if growth > best + 1e-12:
                best, best_seq = growth, seq
    return best, tuple(float(x) for x in best_seq)


def noise_gain(kp, ki, k) -> tuple[np.ndarray, np.ndarray]:
    """(Var e/σ², Var α/σ²) in steady state for white measurement noise of variance σ².

    The stationary covariance Σ of x = (e, S) solves Σ = AΣAᵀ + g gᵀ (three linear equations
    in s₁₁, s₁₂, s₂₂, solved here; the closed form is derived in `proofs/robustness.py`);
    Var α/σ² = kp² s₁₁ + 2 kp ki s₁₂ + ki² s₂₂ + kp². P (ki = 0): K_p/(2 − K_p) and
    2kp²/(2 − K_p). NaN outside the stability region. Units: σ² in nats², Var α in α².
    """
    from .stability import is_stable

    kp, ki, k = _arrays(kp, ki, k)
    kkp, kki = k * kp, k * ki
    a11, a12 = 1 - kkp, -kki
    g1 = -kkp
    # Σ = [[s11, s12], [s12, s22]] solves Σ = AΣAᵀ + g gᵀ with A = [[a11, a12], [1, 1]], g = (g1, 1)
    m = np.zeros((*kp.shape, 3, 3))
    rhs = np.zeros((*kp.shape, 3))
    # s11 = a11² s11 + 2 a11 a12 s12 + a12² s22 + g1²
    m[..., 0, :] = np.stack([1 - a11**2, -2 * a11 * a12, -(a12**2)], axis=-1)
    rhs[..., 0] = g1**2
    # s12 = a11 s11 + (a11 + a12) s12 + a12 s22 + g1
    m[..., 1, :] = np.stack([-a11, 1 - a11 - a12, -a12], axis=-1)
    rhs[..., 1] = g1
    # s22 = s11 + 2 s12 + s22 + 1
    m[..., 2, :] = np.stack([-np.ones_like(a11), -2 * np.ones_like(a11), np.zeros_like(a11)], axis=-1)
    rhs[..., 2] = 1.0
    stable = is_stable(kp, ki, k) & (ki > 0)
    m = np.where(stable[..., None, None], m, np.eye(3))
    s11, s12, s22 = np.moveaxis(np.linalg.solve(m, rhs[..., None])[..., 0], -1, 0)
    var_alpha = kp**2 * s11 + 2 * kp * ki * s12 + ki**2 * s22 + kp**2
    p_var_e = kkp / (2 - kkp)
    p_var_alpha = 2 * kp**2 / (2 - kkp)
    p_stable = (kkp > 0) & (kkp < 2)
    var_e = np.where(ki == 0, np.where(p_stable, p_var_e, np.nan), np.where(stable, s11, np.nan))
    var_a = np.where(ki == 0, np.where(p_stable, p_var_alpha, np.nan), np.where(stable, var_alpha, np.nan))
    return var_e, var_a


def ramp_error(kp, ki, k, r) -> np.ndarray:
    """Steady error under a drift b_t = b₀ + r·t: r/(k·ki) for a stable PI loop, ±inf for P
    (the error grows linearly), NaN where the loop is unstable."""
    from .stability import is_stable

    kp, ki, k, r = _arrays(kp, ki, k, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi_err = r / (k * ki)
        p_err = np.where(r == 0, 0.0, np.sign(r) * np.inf)
    return np.where(is_stable(kp, ki, k), np.where(ki == 0, p_err, pi_err), np.nan)
