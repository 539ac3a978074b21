"""Statistics of MOS ratings: MOS with CIs, pairwise tests, agreement,
metric-MOS correlation, power analysis.

Every public function takes the ratings table of :mod:`vastbench.mos.schema`,
validates it (bad rows are dropped and reported in ``result.attrs["problems"]``),
and uses only ``kind == "regular"`` rows.  Screen judges first
(:func:`vastbench.mos.screening.screen_judges` / ``apply_screening``) or pass
``exclude_judges``.  Results computed from simulated judges carry a
``simulated`` column / key set to True: label them so in every table.

Confidence intervals for a system's MOS (per criterion)
-------------------------------------------------------
Notation: ``y`` ratings of system s, ``n`` ratings, ``I`` items, ``J`` judges.

(a) **naive** (comparison only): ``ybar +- 1.96 * sd(y) / sqrt(n)`` -- treats
    every vote as independent; too narrow whenever judges or items vary.
(b) **t over items**: item means ``m_i`` (mean over the judges who rated the
    system's clip of item i), ``mean(m_i) +- t_{I-1} * sd(m_i) / sqrt(I)``.
    Accounts for item (content) sampling, but not for judge sampling when the
    same judges rate all items.
(c) **mixed model** (headline): linear mixed model per criterion::

        y = mu_s + u_judge + v_item + w_clip + x_{judge:system} + e

    with independent Gaussian random intercepts (crossed judge and item,
    clip = system x item interaction, judge x system interaction -- the last
    two are what does *not* cancel in system differences).  Fitted by REML
    with our own lme4-style profiled deviance (Bates et al. 2015): for
    relative standard deviations theta, ``L L' = Lambda' Z'Z Lambda + I``,
    ``d(theta) = log|L|^2 + log|R_X|^2 + (n-p)(1 + log(2 pi r^2/(n-p)))``,
    minimised by bounded L-BFGS-B (theta >= 0, so boundary fits are fine),
    restarted from a second point when the first run does not converge.
    ``Cov(mu) = sigma^2 (R_X'R_X)^-1``; CIs use t with Satterthwaite degrees
    of freedom ``df = 2 V^2 / (g' A g)`` (V the contrast variance, g its
    gradient in log variance components, A = 2 H^-1 the inverse Hessian of
    the REML deviance) -- the lmerTest recipe.  Random-effect terms that are
    not identifiable in the data (one level, aliased with another term or
    with the residual) are left out and listed in ``notes``.  We use our own
    REML rather than statsmodels' MixedLM because MixedLM with crossed effects
    (one all-ones group + ``vc_formula``) is slower (dense per-group
    algebra, many iterations) and gives no Satterthwaite df; ``engine=
    "statsmodels"`` runs MixedLM instead (used as the cross-check in tests and
    as the first fallback).  If both fail, the t-over-items CI is used and the
    reason is recorded in ``ci_method``.
(d) **CrowdMOS** cross-check (Ribeiro et al. 2011): per system, the two-way
    random-effects model ``u_ws = mu + a_w + b_s + e`` (worker w, sentence =
    clip s); variance components by unbiased moment equations (Henderson
    method I for unbalanced data)::

        E[SS_within_worker]   = (M - W) (s2_b + s2_e)
        E[SS_within_sentence] = (M - S) (s2_a + s2_e)
        E[SS_total] = (M - sum n_w^2/M) s2_a + (M - sum m_s^2/M) s2_b + (M - 1) s2_e

    solved with non-negativity (NNLS); then
    ``Var(mu_hat) = (s2_a sum n_w^2 + s2_b sum m_s^2 + s2_e M) / M^2`` and the
    CI is ``mu_hat +- 1.96 sqrt(Var)`` (M ratings, W workers with n_w ratings,
    S clips with m_s ratings).

The headline columns of :func:`mos_table` are ``mos`` (raw mean), ``ci_half``,
``ci_lo``, ``ci_hi`` and ``ci_method``: the mixed-model half-width ``t_df *
se`` around the raw mean (equal to the model estimate ``mixed_mos`` in
balanced designs; both are reported).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse, stats

from vastbench.errors import VastbenchError
from vastbench.mos.schema import CRITERION_NAMES, is_simulated, validate_ratings

LEVEL = 0.95

# ==========================================================================
# Data preparation
# ==========================================================================


def _prepare(df: pd.DataFrame, source: str, exclude_judges=None) -> tuple[pd.DataFrame, list[str], bool]:
    clean, problems = validate_ratings(df, source)
    sim = is_simulated(clean)
    reg = clean[clean["kind"] == "regular"]
    if exclude_judges is not None:
        ex = set(map(str, exclude_judges))
        reg = reg[~reg["judge"].isin(ex)]
        if reg.empty:
            raise VastbenchError(f"{source}: every judge is excluded; relax the screening thresholds or collect more ratings")
    return reg.reset_index(drop=True), problems, sim


def _criteria(reg: pd.DataFrame, criterion) -> list[str]:
    present = [c for c in CRITERION_NAMES if c in set(reg["criterion"])]
    if criterion is None:
        return present
    wanted = [criterion] if isinstance(criterion, str) else list(criterion)
    for c in wanted:
        if c not in CRITERION_NAMES:
            raise VastbenchError(f"unknown criterion {c!r}; use one of {', '.join(CRITERION_NAMES)}")
        if c not in present:
            raise VastbenchError(f"no regular ratings for criterion {c!r} (have {', '.join(present)}); pick another criterion")
    return wanted


def _tq(df_: float, level: float = LEVEL) -> float:
    """Two-sided t quantile; normal for infinite df, NaN for missing/invalid df."""
    if df_ is None or np.isnan(df_) or df_ <= 0:
        return float("nan")
    if np.isinf(df_):
        return float(stats.norm.ppf(0.5 + level / 2))
    return float(stats.t.ppf(0.5 + level / 2, df_))


# ==========================================================================
# REML for crossed random intercepts
# ==========================================================================


def _codes(s: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniq = pd.factorize(s, sort=True)
    return codes.astype(np.int64), len(uniq)


def _aliased(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two factors induce the same partition of the rows."""
    na, nb = len(np.unique(a)), len(np.unique(b))
    nab = len(np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b))
    return na == nb == nab


class _Reml:
    """Profiled REML for ``y = X beta + sum_k Z_k b_k + e``, ``b_k ~ N(0, s2_k I)``."""

    def __init__(self, y: np.ndarray, X: np.ndarray, factors: list[np.ndarray], nlevels: list[int]):
        self.y = np.asarray(y, float)
        self.X = np.asarray(X, float)
        self.n, self.p = self.X.shape
        self.K = len(factors)
        blocks = [
            sparse.csr_matrix((np.ones(self.n), (np.arange(self.n), f)), shape=(self.n, q)) for f, q in zip(factors, nlevels)
        ]
        Z = sparse.hstack(blocks).tocsr() if blocks else sparse.csr_matrix((self.n, 0))
        self.q = Z.shape[1]
        self.ZtZ = (Z.T @ Z).toarray()
        self.ZtX = np.asarray(Z.T @ self.X)
        self.Zty = np.asarray(Z.T @ self.y).ravel()
        self.XtX = self.X.T @ self.X
        self.Xty = self.X.T @ self.y
        self.yty = float(self.y @ self.y)
        self.level_k = np.repeat(np.arange(self.K), nlevels) if self.K else np.zeros(0, int)
        self.nevals = 0

    def solve(self, theta: np.ndarray) -> dict:
        self.nevals += 1
        lam = np.asarray(theta, float)[self.level_k] if self.K else np.zeros(0)
        if self.q:
            A = lam[:, None] * self.ZtZ * lam[None, :]
            A[np.diag_indices_from(A)] += 1.0
            L = linalg.cholesky(A, lower=True, check_finite=False)
            cu = linalg.solve_triangular(L, lam * self.Zty, lower=True, check_finite=False)
            CX = linalg.solve_triangular(L, lam[:, None] * self.ZtX, lower=True, check_finite=False)
            logdetL = 2.0 * np.log(np.diag(L)).sum()
        else:
            cu = np.zeros(0)
            CX = np.zeros((0, self.p))
            logdetL = 0.0
        RtR = self.XtX - CX.T @ CX
        RX = linalg.cholesky(RtR, lower=False, check_finite=False)
        rhs = self.Xty - CX.T @ cu
        cb = linalg.solve_triangular(RX, rhs, trans="T", check_finite=False)
        beta = linalg.solve_triangular(RX, cb, check_finite=False)
        r2 = max(self.yty - cu @ cu - cb @ cb, 1e-12 * max(self.yty, 1.0))
        return dict(beta=beta, RX=RX, r2=r2, logdetL=logdetL, logdetRX=2.0 * np.log(np.abs(np.diag(RX))).sum())

    def deviance(self, theta) -> float:
        try:
            s = self.solve(theta)
        except (linalg.LinAlgError, ValueError):
            return 1e300
        nr = self.n - self.p
        return float(s["logdetL"] + s["logdetRX"] + nr * (1.0 + math.log(2 * math.pi * s["r2"] / nr)))

    def deviance_full(self, theta, s2: float) -> float:
        s = self.solve(theta)
        nr = self.n - self.p
        return float(s["logdetL"] + s["logdetRX"] + nr * math.log(2 * math.pi * s2) + s["r2"] / s2)

    def fit(self, theta0=None) -> tuple[np.ndarray, bool, str]:
        if self.K == 0:
            return np.zeros(0), True, ""
        bounds = [(0.0, None)] * self.K
        starts = [np.full(self.K, 0.5) if theta0 is None else np.asarray(theta0, float), np.full(self.K, 1.5)]
        best, msgs, conv = None, [], False
        for k, x0 in enumerate(starts):
            r = optimize.minimize(self.deviance, x0, method="L-BFGS-B", bounds=bounds, options=dict(maxiter=500))
            if best is None or r.fun < best.fun - 1e-9:
                best = r
            msgs.append(str(r.message))
            if r.success:
                conv = True
                if k == 0:
                    break
        if not conv:
            # derivative-free polish from the best point
            r = optimize.minimize(lambda t: self.deviance(np.abs(t)), best.x, method="Nelder-Mead",
                                  options=dict(maxiter=2000, xatol=1e-6, fatol=1e-8))
            if r.fun <= best.fun + 1e-9:
                best = r
                best.x = np.abs(best.x)
            conv = bool(r.success)
            msgs.append("nelder-mead: " + str(r.message))
        return np.asarray(best.x, float), conv, "; ".join(msgs)


@dataclass
class MixedFit:
    """A fitted MOS mixed model for one criterion.

    ``beta`` are the system MOS estimates (order ``systems``), ``cov`` their
    covariance, ``components`` the variance components (``judge``, ``item``,
    ``clip``, ``judge_system``, ``residual``; terms left out are 0),
    ``method`` "reml" or "statsmodels", ``notes`` what was dropped or fell
    back.  :meth:`contrast` gives estimate, SE and Satterthwaite df.
    """

    criterion: str
    systems: list[str]
    beta: np.ndarray
    cov: np.ndarray
    components: dict[str, float]
    method: str
    converged: bool
    n: int
    notes: list[str] = field(default_factory=list)
    _reml: _Reml | None = None
    _theta: np.ndarray | None = None
    _active: list[int] | None = None
    _A: np.ndarray | None = None
    _df_fixed: float | None = None
    seconds: float = 0.0

    def index(self, system: str) -> int:
        return self.systems.index(system)

    def _cov_at(self, phi: np.ndarray) -> np.ndarray:
        """Cov(beta) at log variance parameters phi = (log s2_k active..., log s2_e)."""
        s2 = math.exp(phi[-1])
        theta = np.zeros(self._reml.K)
        for j, k in enumerate(self._active):
            theta[k] = math.sqrt(math.exp(phi[j]) / s2)
        s = self._reml.solve(theta)
        Rinv = linalg.solve_triangular(s["RX"], np.eye(self._reml.p), check_finite=False)
        return s2 * Rinv @ Rinv.T

    def _phi(self) -> np.ndarray:
        s2 = self.components["residual"]
        ks = [self._comp_names[k] for k in self._active]
        return np.log(np.array([self.components[k] for k in ks] + [s2]))

    def _setup_satterthwaite(self):
        if self._A is not None or self._reml is None:
            return
        phi0 = self._phi()
        m = len(phi0)
        h = 1e-3

        def D(phi):
            s2 = math.exp(phi[-1])
            theta = np.zeros(self._reml.K)
            for j, k in enumerate(self._active):
                theta[k] = math.sqrt(math.exp(phi[j]) / s2)
            return self._reml.deviance_full(theta, s2)

        H = np.zeros((m, m))
        f0 = D(phi0)
        for i in range(m):
            ei = np.zeros(m); ei[i] = h
            H[i, i] = (D(phi0 + ei) - 2 * f0 + D(phi0 - ei)) / h**2
            for j in range(i + 1, m):
                ej = np.zeros(m); ej[j] = h
                H[i, j] = H[j, i] = (D(phi0 + ei + ej) - D(phi0 + ei - ej) - D(phi0 - ei + ej) + D(phi0 - ei - ej)) / (4 * h * h)
        w, V = np.linalg.eigh(H)
        if np.any(w <= 1e-10 * max(1.0, np.abs(w).max())):
            self.notes.append("REML Hessian not positive definite; Satterthwaite df uses its positive part")
        winv = np.where(w > 1e-10 * max(1.0, np.abs(w).max()), 1.0 / np.where(w == 0, 1, w), 0.0)
        self._A = 2.0 * (V * winv) @ V.T
        # gradient of Cov(beta) w.r.t. phi (central differences), kept for all contrasts
        self._dcov = []
        for i in range(m):
            ei = np.zeros(m); ei[i] = h
            self._dcov.append((self._cov_at(phi0 + ei) - self._cov_at(phi0 - ei)) / (2 * h))

    def contrast(self, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Estimates, SEs and Satterthwaite dfs of the rows of ``L`` (k x p)."""
        L = np.atleast_2d(np.asarray(L, float))
        est = L @ self.beta
        var = np.einsum("ij,jk,ik->i", L, self.cov, L)
        se = np.sqrt(np.maximum(var, 0))
        if self._df_fixed is not None:
            return est, se, np.full(len(est), float(self._df_fixed))
        self._setup_satterthwaite()
        dfs = np.empty(len(est))
        for r in range(len(est)):
            g = np.array([L[r] @ dc @ L[r] for dc in self._dcov])
            denom = float(g @ self._A @ g)
            dfs[r] = 2 * var[r] ** 2 / denom if denom > 0 else np.inf
        dfs = np.clip(dfs, 1.0, max(self.n - len(self.beta), 1))
        return est, se, dfs

    def mean_ci(self, level: float = LEVEL) -> pd.DataFrame:
        est, se, dfs = self.contrast(np.eye(len(self.beta)))
        t = np.array([_tq(d, level) for d in dfs])
        return pd.DataFrame({"system": self.systems, "mixed_mos": est, "mixed_se": se, "mixed_df": dfs,
                             "mixed_lo": est - t * se, "mixed_hi": est + t * se})

    _comp_names: tuple[str, ...] = ("judge", "item", "clip", "judge_system")


_TERMS = ("judge", "item", "clip", "judge_system")


def _design(sub: pd.DataFrame):
    systems = sorted(set(sub["system"]))
    sys_codes = pd.Categorical(sub["system"], categories=systems).codes
    X = np.zeros((len(sub), len(systems)))
    X[np.arange(len(sub)), sys_codes] = 1.0
    cols = {
        "judge": sub["judge"],
        "item": sub["item"],
        "clip": sub["clip"],
        "judge_system": sub["judge"] + "\x1f" + sub["system"],
    }
    factors, nlev, names, notes = [], [], [], []
    n = len(sub)
    for name in _TERMS:
        codes, q = _codes(cols[name])
        if q < 2:
            notes.append(f"random term '{name}' left out: one level")
            continue
        if q >= n:
            notes.append(f"random term '{name}' left out: one rating per level (aliased with the residual)")
            continue
        alias = next((names[k] for k in range(len(names)) if _aliased(codes, factors[k])), None)
        if alias is not None:
            notes.append(f"random term '{name}' left out: same grouping as '{alias}'")
            continue
        if _aliased(codes, sys_codes.astype(np.int64)):
            notes.append(f"random term '{name}' left out: same grouping as the system")
            continue
        factors.append(codes); nlev.append(q); names.append(name)
    return systems, X, factors, nlev, names, notes


def _fit_reml(sub: pd.DataFrame, criterion: str) -> MixedFit:
    t0 = time.perf_counter()
    systems, X, factors, nlev, names, notes = _design(sub)
    y = sub["score"].to_numpy(float)
    if len(y) <= len(systems):
        raise VastbenchError(f"criterion '{criterion}': {len(y)} ratings for {len(systems)} systems; too few for a model")
    model = _Reml(y, X, factors, nlev)
    theta, conv, msg = model.fit()
    s = model.solve(theta)
    s2 = s["r2"] / (model.n - model.p)
    Rinv = linalg.solve_triangular(s["RX"], np.eye(model.p), check_finite=False)
    cov = s2 * Rinv @ Rinv.T
    comps = {k: 0.0 for k in _TERMS}
    for k, name in enumerate(names):
        comps[name] = float(theta[k] ** 2 * s2)
    comps["residual"] = float(s2)
    if not conv:
        notes.append(f"REML optimizer did not report convergence ({msg}); estimates are from the best point found")
    if not np.all(np.isfinite(s["beta"])) or not np.all(np.isfinite(cov)):
        raise FloatingPointError("non-finite REML solution")
    active = [k for k in range(len(names)) if theta[k] ** 2 * s2 > 1e-8 * max(s2, 1e-12)]
    fit = MixedFit(criterion=criterion, systems=systems, beta=s["beta"], cov=cov, components=comps, method="reml",
                   converged=conv, n=len(y), notes=notes, _reml=model, _theta=theta, _active=active)
    fit._comp_names = tuple(names)
    fit.seconds = time.perf_counter() - t0
    return fit


def _fit_statsmodels(sub: pd.DataFrame, criterion: str) -> MixedFit:
    import statsmodels.api as sm

    t0 = time.perf_counter()
    systems, X, factors, nlev, names, notes = _design(sub)
    d = pd.DataFrame({"score": sub["score"].astype(float).to_numpy(), "system": pd.Categorical(sub["system"], categories=systems)})
    vc = {}
    for name, codes in zip(names, factors):
        d[name] = codes
        vc[name] = f"0 + C({name})"
    d["_g"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = sm.MixedLM.from_formula("score ~ 0 + system", groups="_g", vc_formula=vc, re_formula="0", data=d)
        res = None
        for method in ("lbfgs", "powell", "nm"):
            try:
                r = md.fit(reml=True, method=method)
            except Exception as exc:  # noqa: BLE001 - record and try the next optimizer
                notes.append(f"statsmodels {method} failed: {type(exc).__name__}")
                continue
            res = r
            if r.converged:
                break
    if res is None:
        raise RuntimeError("statsmodels MixedLM failed with every optimizer")
    p = len(systems)
    beta = np.asarray(res.fe_params)[:p]
    cov = np.asarray(res.cov_params())[:p, :p]
    comps = {k: 0.0 for k in _TERMS}
    for name, v in zip(res.model.exog_vc.names, np.asarray(res.vcomp)):
        comps[name] = float(v)
    comps["residual"] = float(res.scale)
    # MixedLM has no Satterthwaite df: use the containment df (levels - 1 of
    # the smallest active random term), a conservative approximation.
    lv = [q - 1 for q, name in zip(nlev, names) if comps[name] > 1e-8 * comps["residual"]]
    df_fixed = float(min(lv)) if lv else float(len(sub) - p)
    notes.append(f"statsmodels MixedLM; t quantiles use containment df={df_fixed:g}")
    fit = MixedFit(criterion=criterion, systems=systems, beta=beta, cov=cov, components=comps, method="statsmodels",
                   converged=bool(res.converged), n=len(sub), notes=notes, _df_fixed=df_fixed)
    fit.seconds = time.perf_counter() - t0
    return fit


def fit_mixed(df: pd.DataFrame, criterion: str, *, engine: str = "reml", exclude_judges=None,
              source: str = "ratings", _prepared: pd.DataFrame | None = None) -> MixedFit:
    """Fit the MOS mixed model (module docstring, (c)) for one criterion.

    ``engine``: ``"reml"`` (default; own profiled REML, falls back to
    statsmodels on failure) or ``"statsmodels"`` (MixedLM with one all-ones
    group and ``vc_formula`` for the crossed terms).  Raises VastbenchError
    only when the data cannot support any model.
    """
    if _prepared is None:
        reg, _, _ = _prepare(df, source, exclude_judges)
    else:
        reg = _prepared
    sub = reg[reg["criterion"] == criterion]
    if sub.empty:
        raise VastbenchError(f"no regular ratings for criterion '{criterion}'; pick one of {sorted(set(reg['criterion']))}")
    if engine not in ("reml", "statsmodels"):
        raise VastbenchError(f"engine={engine!r}; use 'reml' or 'statsmodels'")
    if engine == "statsmodels":
        return _fit_statsmodels(sub, criterion)
    try:
        return _fit_reml(sub, criterion)
    except VastbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - fall back, record why
        reason = f"REML failed ({type(exc).__name__}: {exc})"
        fit = _fit_statsmodels(sub, criterion)
        fit.notes.insert(0, reason + "; used statsmodels MixedLM")
        return fit


def variance_components(df: pd.DataFrame, criterion: str | None = None, **kw) -> pd.DataFrame:
    """Variance components per criterion (rows) from :func:`fit_mixed`."""
    reg, _, sim = _prepare(df, kw.pop("source", "ratings"), kw.pop("exclude_judges", None))
    rows = []
    for c in _criteria(reg, criterion):
        f = fit_mixed(None, c, _prepared=reg, **kw)
        rows.append({"criterion": c, **f.components, "method": f.method, "simulated": sim})
    return pd.DataFrame(rows)


# ==========================================================================
# Per-system CIs
# ==========================================================================


def crowdmos_ci(sub: pd.DataFrame, level: float = LEVEL) -> dict:
    """CrowdMOS variance decomposition for one system's ratings (module
    docstring, (d)).  ``sub`` has columns judge, clip, score."""
    y = sub["score"].to_numpy(float)
    M = len(y)
    mu = float(y.mean()) if M else float("nan")
    out = dict(crowdmos_mos=mu, crowdmos_se=float("nan"), crowdmos_lo=float("nan"), crowdmos_hi=float("nan"),
               crowdmos_s2_judge=float("nan"), crowdmos_s2_clip=float("nan"), crowdmos_s2_resid=float("nan"))
    if M < 3:
        return out
    wj = sub.groupby("judge")["score"]
    sc = sub.groupby("clip")["score"]
    n_w = wj.size().to_numpy(float)
    m_s = sc.size().to_numpy(float)
    W, S = len(n_w), len(m_s)
    ss_w = float(((sub["score"] - wj.transform("mean")) ** 2).sum())
    ss_s = float(((sub["score"] - sc.transform("mean")) ** 2).sum())
    ss_t = float(((y - mu) ** 2).sum())
    A = np.array([
        [0.0, M - W, M - W],
        [M - S, 0.0, M - S],
        [M - (n_w**2).sum() / M, M - (m_s**2).sum() / M, M - 1.0],
    ])
    b = np.array([ss_w, ss_s, ss_t])
    comp, _ = optimize.nnls(A, b)
    s2a, s2b, s2e = comp
    var = (s2a * (n_w**2).sum() + s2b * (m_s**2).sum() + s2e * M) / M**2
    z = float(stats.norm.ppf(0.5 + level / 2))
    se = math.sqrt(max(var, 0.0))
    out.update(crowdmos_se=se, crowdmos_lo=mu - z * se, crowdmos_hi=mu + z * se,
               crowdmos_s2_judge=float(s2a), crowdmos_s2_clip=float(s2b), crowdmos_s2_resid=float(s2e))
    return out


def _t_items(sub: pd.DataFrame, level: float = LEVEL) -> dict:
    im = sub.groupby("item")["score"].mean().to_numpy(float)
    I = len(im)
    m = float(im.mean())
    if I < 2:
        return dict(t_mean=m, t_se=float("nan"), t_df=float("nan"), t_lo=float("nan"), t_hi=float("nan"))
    se = float(im.std(ddof=1) / math.sqrt(I))
    t = _tq(I - 1, level)
    return dict(t_mean=m, t_se=se, t_df=float(I - 1), t_lo=m - t * se, t_hi=m + t * se)


def mos_table(df: pd.DataFrame, criterion=None, *, level: float = LEVEL, engine: str = "reml",
              exclude_judges: Iterable[str] | None = None, source: str = "ratings") -> pd.DataFrame:
    """MOS per system x criterion with four CIs (module docstring (a)-(d)).

    Columns: criterion, system, n_ratings, n_judges, n_items, n_clips, mos,
    sd, ci_half, ci_lo, ci_hi, ci_method (headline), naive_lo/hi,
    t_mean/t_se/t_df/t_lo/t_hi, mixed_mos/mixed_se/mixed_df/mixed_lo/mixed_hi,
    crowdmos_se/lo/hi and its components, simulated.
    ``attrs``: ``problems`` (validation lines), ``variance_components``
    {criterion: {...}}, ``notes`` {criterion: [...]}.
    """
    reg, problems, sim = _prepare(df, source, exclude_judges)
    crits = _criteria(reg, criterion)
    z = float(stats.norm.ppf(0.5 + level / 2))
    rows, vcs, notes = [], {}, {}
    for c in crits:
        sub_c = reg[reg["criterion"] == c]
        fit, fail = None, None
        try:
            fit = fit_mixed(None, c, engine=engine, _prepared=reg)
            mixed = fit.mean_ci(level).set_index("system")
            vcs[c] = dict(fit.components, method=fit.method)
            notes[c] = list(fit.notes)
        except Exception as exc:  # noqa: BLE001 - fall back to t, record why
            fail = f"t over items (mixed model failed: {type(exc).__name__}: {str(exc)[:120]})"
            notes[c] = [fail]
            mixed = None
        for s, sub in sub_c.groupby("system", sort=True):
            y = sub["score"].to_numpy(float)
            n = len(y)
            mean = float(y.mean())
            sd = float(y.std(ddof=1)) if n > 1 else float("nan")
            row = dict(criterion=c, system=s, n_ratings=n, n_judges=sub["judge"].nunique(), n_items=sub["item"].nunique(),
                       n_clips=sub["clip"].nunique(), mos=mean, sd=sd,
                       naive_lo=mean - z * sd / math.sqrt(n) if n > 1 else float("nan"),
                       naive_hi=mean + z * sd / math.sqrt(n) if n > 1 else float("nan"))
            row.update(_t_items(sub, level))
            if mixed is not None and s in mixed.index:
                mr = mixed.loc[s]
                row.update(mixed_mos=float(mr["mixed_mos"]), mixed_se=float(mr["mixed_se"]), mixed_df=float(mr["mixed_df"]),
                           mixed_lo=float(mr["mixed_lo"]), mixed_hi=float(mr["mixed_hi"]))
                half = _tq(row["mixed_df"], level) * row["mixed_se"]
                method = "mixed model (" + fit.method + ", Satterthwaite df)" if fit._df_fixed is None else "mixed model (statsmodels, containment df)"
            else:
                row.update(mixed_mos=float("nan"), mixed_se=float("nan"), mixed_df=float("nan"), mixed_lo=float("nan"), mixed_hi=float("nan"))
                half = _tq(row["t_df"], level) * row["t_se"] if np.isfinite(row["t_se"]) else float("nan")
                method = fail or "t over items"
            row.update(crowdmos_ci(sub, level))
            row.update(ci_half=half, ci_lo=mean - half, ci_hi=mean + half, ci_method=method, simulated=sim)
            rows.append(row)
    cols = ["criterion", "system", "n_ratings", "n_judges", "n_items", "n_clips", "mos", "sd", "ci_half", "ci_lo", "ci_hi",
            "ci_method", "naive_lo", "naive_hi", "t_mean", "t_se", "t_df", "t_lo", "t_hi", "mixed_mos", "mixed_se", "mixed_df",
            "mixed_lo", "mixed_hi", "crowdmos_mos", "crowdmos_se", "crowdmos_lo", "crowdmos_hi", "crowdmos_s2_judge",
            "crowdmos_s2_clip", "crowdmos_s2_resid", "simulated"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["problems"] = problems
    out.attrs["variance_components"] = vcs
    out.attrs["notes"] = notes
    return out


# ==========================================================================
# Pairwise comparisons
# ==========================================================================


def holm(pvals: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests(method="holm")``);
    NaNs are passed through and do not count toward the family size."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvals, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014):
    ``(R+ - R-) / (R+ + R-)`` over the ranks of ``|d|`` (zeros dropped)."""
    d = np.asarray(d, float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    r = stats.rankdata(np.abs(d))
    rp, rm = r[d > 0].sum(), r[d < 0].sum()
    return float((rp - rm) / (rp + rm))


def pairwise_vs_reference(df: pd.DataFrame, reference: str, criterion=None, *, level: float = LEVEL,
                          alpha: float = 0.05, family: str = "criterion", engine: str = "reml",
                          exclude_judges: Iterable[str] | None = None, source: str = "ratings") -> pd.DataFrame:
    """Each system vs ``reference``, per criterion.

    * Item-paired: item means per (system, item) over judges, paired on items
      rated for both systems; difference ``d_i = system - reference``.
      Wilcoxon signed-rank (scipy, ``zero_method="wilcox"``: zero differences
      dropped; all-zero -> p = 1), matched-pairs rank-biserial r, Cohen's
      ``d_z = mean(d)/sd(d)``, mean difference with paired-t CI.
    * Mixed model (headline): contrast ``mu_s - mu_ref`` of :func:`fit_mixed`
      with Satterthwaite t test and CI (accounts for judges and items).
    * Holm correction over the comparisons of a ``family``: ``"criterion"``
      (default; each criterion is its own question) or ``"all"``; applied
      separately to the Wilcoxon and the mixed-model p-values.
    ``significant`` = Holm-adjusted mixed-model p < ``alpha``.
    """
    reg, problems, sim = _prepare(df, source, exclude_judges)
    if reference not in set(reg["system"]):
        raise VastbenchError(f"reference system {reference!r} has no regular ratings; use one of {', '.join(sorted(set(reg['system'])))}")
    if family not in ("criterion", "all"):
        raise VastbenchError(f"family={family!r}; use 'criterion' or 'all'")
    rows = []
    for c in _criteria(reg, criterion):
        sub = reg[reg["criterion"] == c]
        if reference not in set(sub["system"]):
            problems.append(f"{source}: reference {reference!r} has no '{c}' ratings; criterion skipped")
            continue
        im = sub.groupby(["system", "item"])["score"].mean().unstack("system")
        try:
            fit = fit_mixed(None, c, engine=engine, _prepared=reg)
        except Exception as exc:  # noqa: BLE001
            fit = None
            problems.append(f"{source}: mixed model for '{c}' failed ({type(exc).__name__}); only Wilcoxon reported")
        for s in sorted(set(sub["system"]) - {reference}):
            pair = im[[s, reference]].dropna()
            d = (pair[s] - pair[reference]).to_numpy(float)
            n = len(d)
            row = dict(criterion=c, system=s, reference=reference, n_items=n,
                       mean_diff=float(d.mean()) if n else float("nan"))
            if n >= 2:
                sd = float(d.std(ddof=1))
                se = sd / math.sqrt(n)
                t = _tq(n - 1, level)
                row.update(diff_lo=row["mean_diff"] - t * se, diff_hi=row["mean_diff"] + t * se,
                           d_z=row["mean_diff"] / sd if sd > 0 else (0.0 if row["mean_diff"] == 0 else float(np.sign(row["mean_diff"]) * np.inf)))
            else:
                row.update(diff_lo=float("nan"), diff_hi=float("nan"), d_z=float("nan"))
            if n >= 1 and np.any(d != 0):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Deterministic p-values: exact when it is defined (no ties, no zeros, n <= 50), else
                    # the normal approximation. SciPy's "auto" would fall back to a random permutation
                    # test with ties, so a table's daggers could change between runs.
                    nz = d[d != 0]
                    exact = len(nz) <= 50 and len(np.unique(np.abs(nz))) == len(nz) and len(nz) == len(d)
                    w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided",
                                       method="exact" if exact else "asymptotic")
                row.update(wilcoxon_W=float(w.statistic), p_wilcoxon=float(w.pvalue))
            else:
                row.update(wilcoxon_W=float("nan"), p_wilcoxon=1.0 if n else float("nan"))
            row["rank_biserial"] = rank_biserial(d) if n else float("nan")
            if fit is not None and s in fit.systems:
                L = np.zeros(len(fit.systems))
                L[fit.index(s)], L[fit.index(reference)] = 1.0, -1.0
                est, se_m, dfm = (v[0] for v in fit.contrast(L))
                tq = _tq(dfm, level)
                tstat = est / se_m if se_m > 0 else float("nan")
                row.update(mixed_diff=float(est), mixed_se=float(se_m), mixed_df=float(dfm), mixed_lo=float(est - tq * se_m),
                           mixed_hi=float(est + tq * se_m),
                           p_mixed=float(2 * stats.t.sf(abs(tstat), dfm)) if np.isfinite(tstat) else float("nan"))
            else:
                row.update(mixed_diff=float("nan"), mixed_se=float("nan"), mixed_df=float("nan"), mixed_lo=float("nan"),
                           mixed_hi=float("nan"), p_mixed=float("nan"))
            rows.append(row)
    cols = ["criterion", "system", "reference", "n_items", "mean_diff", "diff_lo", "diff_hi", "d_z", "wilcoxon_W", "p_wilcoxon",
            "p_wilcoxon_holm", "rank_biserial", "mixed_diff", "mixed_se", "mixed_df", "mixed_lo", "mixed_hi", "p_mixed",
            "p_mixed_holm", "significant", "simulated"]
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=cols)
    else:
        groups = [out.index] if family == "all" else [g.index for _, g in out.groupby("criterion")]
        out["p_wilcoxon_holm"] = np.nan
        out["p_mixed_holm"] = np.nan
        for idx in groups:
            out.loc[idx, "p_wilcoxon_holm"] = holm(out.loc[idx, "p_wilcoxon"].to_numpy(), alpha)
            out.loc[idx, "p_mixed_holm"] = holm(out.loc[idx, "p_mixed"].to_numpy(), alpha)
        out["significant"] = out["p_mixed_holm"] < alpha
        out["simulated"] = sim
        out = out[cols]
    out.attrs["problems"] = problems
    return out


# ==========================================================================
# Agreement
# ==========================================================================


def _alpha_ordinal(sub: pd.DataFrame) -> float:
    import krippendorff

    units = sub["clip"] + "\x1f" + sub["criterion"]
    mat = sub.assign(_u=units).pivot_table(index="judge", columns="_u", values="score", aggfunc="mean")
    data = mat.to_numpy(float)
    pairable = (np.isfinite(data).sum(axis=0) >= 2)
    if pairable.sum() < 1:
        return float("nan")
    data = data[:, pairable]
    vals = np.unique(data[np.isfinite(data)])
    if len(vals) < 2:
        return float("nan")  # no variation: alpha undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(krippendorff.alpha(reliability_data=data, value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"))
        except (ValueError, ZeroDivisionError):
            return float("nan")


def agreement(df: pd.DataFrame, *, exclude_judges: Iterable[str] | None = None, source: str = "ratings") -> dict:
    """Inter-judge agreement on regular ratings.

    Returns ``{"alpha": overall Krippendorff's alpha (ordinal; units = clip x
    criterion, coders = judges), "alpha_per_criterion": {criterion: alpha},
    "judges": DataFrame, "n_units": int, "simulated": bool, "problems": [...]}``.
    ``judges`` has, per judge and criterion (``"all"`` = pooled): ``n_units``
    and the Pearson and Spearman correlation of the judge's scores with the
    mean of the *other* judges on the same units (units rated by >= 2 judges).
    Alpha is NaN when undefined (no pairable units or no variation).
    """
    reg, problems, sim = _prepare(df, source, exclude_judges)
    out = {"alpha": _alpha_ordinal(reg), "alpha_per_criterion": {}, "simulated": sim, "problems": problems}
    for c in [c for c in CRITERION_NAMES if c in set(reg["criterion"])]:
        out["alpha_per_criterion"][c] = _alpha_ordinal(reg[reg["criterion"] == c])
    r = reg.copy()
    g = r.groupby(["clip", "criterion"])["score"]
    tot, cnt = g.transform("sum"), g.transform("count")
    r["others"] = (tot - r["score"]) / (cnt - 1).where(cnt > 1)
    r = r[cnt > 1]
    out["n_units"] = int(r.groupby(["clip", "criterion"]).ngroups) if len(r) else 0
    rows = []
    for (j, c), sub in pd.concat([r.assign(_c="all"), r.assign(_c=r["criterion"])]).groupby(["judge", "_c"], sort=True):
        x, y = sub["score"].to_numpy(float), sub["others"].to_numpy(float)
        ok = len(x) >= 3 and np.std(x) > 0 and np.std(y) > 0
        rows.append(dict(judge=j, criterion=c, n_units=len(x),
                         pearson=float(stats.pearsonr(x, y)[0]) if ok else float("nan"),
                         spearman=float(stats.spearmanr(x, y)[0]) if ok else float("nan")))
    out["judges"] = pd.DataFrame(rows, columns=["judge", "criterion", "n_units", "pearson", "spearman"])
    return out


# ==========================================================================
# Objective metrics vs MOS
# ==========================================================================

#: (metric, criterion) pairs checked by default; metrics absent are skipped.
DEFAULT_METRIC_PAIRS: tuple[tuple[str, str], ...] = (
    ("lse_c", "sync"), ("lse_d", "sync"), ("style_sim", "expressiveness"), ("ssim", "naturalness"),
    ("psnr", "naturalness"), ("lpips", "naturalness"),
)


def _fisher_ci(r: float, n: int, level: float) -> tuple[float, float]:
    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
    h = float(stats.norm.ppf(0.5 + level / 2)) / math.sqrt(n - 3)
    return math.tanh(z - h), math.tanh(z + h)


def _corr(x, y):
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0])


def _spearman_fast(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Row-wise Spearman correlation of (B, n) arrays."""
    rx = stats.rankdata(X, axis=1)
    ry = stats.rankdata(Y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / den


def metric_mos_correlation(per_clip_metrics: pd.DataFrame, df: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None,
                           *, level: float = LEVEL, n_boot: int = 2000, seed: int = 0,
                           exclude_judges: Iterable[str] | None = None, source: str = "ratings") -> pd.DataFrame:
    """Agreement between objective metrics and MOS, with CIs.

    ``per_clip_metrics``: long table ``system, item, metric, value`` (values
    of one (system, item, metric) are averaged).  For each (metric, criterion)
    pair present, at two levels:

    * ``clip``: units = (system, item); MOS = mean regular score over judges.
      Pearson r with a Fisher-z CI ``tanh(atanh(r) +- z/sqrt(n-3))``; Spearman
      rho with a percentile bootstrap CI resampling clips.
    * ``system``: units = systems (metric mean vs MOS over the system's
      clips).  Pearson with Fisher-z CI (needs > 3 systems); Spearman with a
      bootstrap CI that resamples *items* (all systems' clips of an item
      together) and recomputes both system means, i.e. the uncertainty from
      the content sample (with few systems, rho takes few values: read the
      CI accordingly).
    """
    need = {"system", "item", "metric", "value"} - set(per_clip_metrics.columns)
    if need:
        raise VastbenchError(f"per_clip_metrics is missing columns {sorted(need)}; give a long table system, item, metric, value")
    reg, problems, sim = _prepare(df, source, exclude_judges)
    m = per_clip_metrics.copy()
    for c in ("system", "item", "metric"):
        m[c] = m[c].astype(str)
    m["value"] = pd.to_numeric(m["value"], errors="coerce")
    m = m.dropna(subset=["value"]).groupby(["system", "item", "metric"], as_index=False)["value"].mean()
    pairs = list(pairs or DEFAULT_METRIC_PAIRS)
    metrics_have = set(m["metric"])
    crits_have = set(reg["criterion"])
    use = [(a, b) for a, b in pairs if a in metrics_have and b in crits_have]
    if not use:
        raise VastbenchError(
            f"no (metric, criterion) pair has data: metrics {sorted(metrics_have)[:8]}, criteria {sorted(crits_have)}; "
            "pass pairs=[(metric, criterion), ...]"
        )
    mos = reg.groupby(["system", "item", "criterion"], as_index=False)["score"].mean()
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 50 * (1 - level), 100 - 50 * (1 - level)
    rows = []
    for metric, crit in use:
        j = m[m["metric"] == metric].merge(mos[mos["criterion"] == crit], on=["system", "item"])
        x, y = j["value"].to_numpy(float), j["score"].to_numpy(float)
        n = len(x)
        r, rho = _corr(x, y)
        lo, hi = _fisher_ci(r, n, level)
        blo = bhi = float("nan")
        if n >= 4 and np.isfinite(rho):
            idx = rng.integers(0, n, size=(n_boot, n))
            bs = _spearman_fast(x[idx], y[idx])
            bs = bs[np.isfinite(bs)]
            if bs.size:
                blo, bhi = np.percentile(bs, [lo_q, hi_q])
        rows.append(dict(metric=metric, criterion=crit, level="clip", n=n, pearson=r, pearson_lo=lo, pearson_hi=hi,
                         spearman=rho, spearman_lo=float(blo), spearman_hi=float(bhi)))
        # system level
        sysm = j.groupby("system")[["value", "score"]].mean()
        ns = len(sysm)
        r, rho = _corr(sysm["value"].to_numpy(float), sysm["score"].to_numpy(float))
        lo, hi = _fisher_ci(r, ns, level)
        blo = bhi = float("nan")
        if ns >= 3 and np.isfinite(rho):
            items = np.array(sorted(set(j["item"])))
            vt = j.pivot_table(index="item", columns="system", values="value", aggfunc="mean").reindex(items)
            st = j.pivot_table(index="item", columns="system", values="score", aggfunc="mean").reindex(items)
            V, S = vt.to_numpy(float), st.to_numpy(float)
            idx = rng.integers(0, len(items), size=(n_boot, len(items)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bv = np.nanmean(V[idx], axis=1)  # (B, systems)
                bsc = np.nanmean(S[idx], axis=1)
            ok = np.isfinite(bv).all(1) & np.isfinite(bsc).all(1)
            if ok.any():
                bs = _spearman_fast(bv[ok], bsc[ok])
                bs = bs[np.isfinite(bs)]
                if bs.size:
                    blo, bhi = np.percentile(bs, [lo_q, hi_q])
        rows.append(dict(metric=metric, criterion=crit, level="system", n=ns, pearson=r, pearson_lo=lo, pearson_hi=hi,
                         spearman=rho, spearman_lo=float(blo), spearman_hi=float(bhi)))
    out = pd.DataFrame(rows)
    out["simulated"] = sim
    skipped = [p for p in pairs if p not in use]
    if skipped and pairs is not DEFAULT_METRIC_PAIRS:
        problems.append(f"{source}: pairs without data skipped: {skipped}")
    out.attrs["problems"] = problems
    return out


# ==========================================================================
# Power analysis
# ==========================================================================


def power_analysis(data, delta: float, judges_grid: Sequence[int] = (5, 10, 15, 20, 30),
                   items_grid: Sequence[int] = (10, 20, 40, 80), *, alpha: float = 0.05, n_sim: int = 1000,
                   criterion: str | None = None, target: float = 0.8, seed: int = 0) -> pd.DataFrame:
    """Power to detect a MOS difference ``delta`` between two systems, by
    simulation, for each judges x items design.

    ``data``: a ratings DataFrame (variance components are fitted with
    :func:`fit_mixed` for ``criterion``; default the first criterion present)
    or a mapping with keys among ``clip`` (system x item), ``judge_system``,
    ``residual`` (``judge`` and ``item`` are accepted and ignored: they cancel
    in a difference when designs are fully crossed).

    Design simulated: every judge rates both systems' clips of every item
    (fully crossed, one rating per judge and clip).  The per-(judge, item)
    difference is ``D = delta + r_j + c_i + e`` with ``Var(r) = 2 s2_js``,
    ``Var(c) = 2 s2_clip``, ``Var(e) = 2 s2_resid``; simulated on the score
    scale (Gaussian, no rounding).  Each data set is analysed with the
    mixed-model test the study would use: in this balanced design REML equals
    ANOVA with truncation at zero, ``Var(Dbar) = (max(MS_J-MS_E,0) +
    max(MS_I-MS_E,0) + MS_E)/(J I)`` with Satterthwaite df, two-sided t test
    at ``alpha``.  Columns: judges, items, n_ratings (per criterion, both
    systems), power, power_se (Monte Carlo), expected_ci_half (true SE x
    1.96), smallest (the design with the fewest ratings -- then fewest judges
    -- reaching ``target``); ``attrs["smallest_design"]`` holds it (or None).
    """
    if isinstance(data, pd.DataFrame):
        reg, _, _ = _prepare(data, "ratings")
        crit = criterion or _criteria(reg, None)[0]
        fit = fit_mixed(None, crit, _prepared=reg)
        comps = dict(fit.components)
    elif isinstance(data, Mapping):
        comps = {k: float(v) for k, v in data.items()}
        if "residual" not in comps:
            raise VastbenchError("variance components need at least 'residual' (and 'clip', 'judge_system'); or pass the ratings")
    else:
        raise VastbenchError("power_analysis needs a ratings DataFrame or a mapping of variance components")
    s_js, s_cl, s_e = (max(float(comps.get(k, 0.0)), 0.0) for k in ("judge_system", "clip", "residual"))
    rng = np.random.default_rng(seed)
    rows = []
    for J in judges_grid:
        for I in items_grid:
            J, I = int(J), int(I)
            if J < 2 or I < 2:
                raise VastbenchError(f"design {J} judges x {I} items: need at least 2 of each")
            # chunked to bound memory
            rej = 0
            done = 0
            chunk = max(1, min(n_sim, int(4e6 // (J * I))))
            while done < n_sim:
                B = min(chunk, n_sim - done)
                D = (delta + rng.normal(0, math.sqrt(2 * s_js), (B, J, 1)) + rng.normal(0, math.sqrt(2 * s_cl), (B, 1, I))
                     + rng.normal(0, math.sqrt(2 * s_e), (B, J, I)))
                g = D.mean(axis=(1, 2))
                rj = D.mean(axis=2)
                ci = D.mean(axis=1)
                ms_j = I * ((rj - g[:, None]) ** 2).sum(1) / (J - 1)
                ms_i = J * ((ci - g[:, None]) ** 2).sum(1) / (I - 1)
                resid = D - rj[:, :, None] - ci[:, None, :] + g[:, None, None]
                df_e = (J - 1) * (I - 1)
                ms_e = (resid**2).sum((1, 2)) / df_e
                aj = (ms_j > ms_e).astype(float)
                ai = (ms_i > ms_e).astype(float)
                ae = 1.0 - aj - ai  # coefficient of MS_E: -1, 0 or 1
                num = aj * ms_j + ai * ms_i + ae * ms_e
                var = num / (J * I)
                dens = (aj * ms_j) ** 2 / (J - 1) + (ai * ms_i) ** 2 / (I - 1) + (ae * ms_e) ** 2 / df_e
                with np.errstate(divide="ignore", invalid="ignore"):
                    dfs = np.clip(num**2 / dens, 1, df_e + J + I)
                    tstat = np.abs(g) / np.sqrt(var)
                crit_t = stats.t.ppf(1 - alpha / 2, dfs)
                rej += int(np.sum(tstat > crit_t))
                done += B
            pw = rej / n_sim
            true_se = math.sqrt(2 * s_js / J + 2 * s_cl / I + 2 * s_e / (J * I))
            rows.append(dict(judges=J, items=I, n_ratings=2 * J * I, power=pw, power_se=math.sqrt(pw * (1 - pw) / n_sim),
                             expected_ci_half=1.96 * true_se))
    out = pd.DataFrame(rows)
    ok = out[out["power"] >= target].sort_values(["n_ratings", "judges"])
    out["smallest"] = False
    if len(ok):
        out.loc[ok.index[0], "smallest"] = True
        out.attrs["smallest_design"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.loc[ok.index[0]].to_dict().items()}
    else:
        out.attrs["smallest_design"] = None
    out.attrs["variance_components"] = {k: float(v) for k, v in comps.items() if isinstance(v, (int, float, np.floating))}
    out.attrs["delta"] = float(delta)
    return out


# ==========================================================================
# Coverage study
# ==========================================================================


def coverage_study(n_rep: int = 200, seed: int = 0, *, systems: Mapping[str, float] | None = None, n_judges: int = 12,
                   n_items: int = 24, judge_bias_sd: float = 0.4, judge_scale_sd: float = 0.15, item_sd: float = 0.35,
                   clip_sd: float = 0.2, noise_sd: float = 0.6, level: float = LEVEL) -> dict:
    """Monte Carlo coverage of the 95% CIs of system MOS and of differences
    to the first system, against the exact target ``E[score]``
    (:func:`vastbench.mos.simulate.expected_mos`).  Full factorial design,
    one criterion (naturalness).  Returns coverages and mean widths for the
    mixed-model, naive, t-over-items and CrowdMOS CIs of means, and the
    mixed-model, naive (independent two-sample z) and paired-t-over-items CIs
    of differences, plus timing.  All numbers come from simulated judges.
    """
    from vastbench.mos.simulate import expected_mos, simulate_ratings

    systems = dict(systems or {"reference": 3.9, "sys_a": 3.6, "sys_b": 3.0})
    names = list(systems)
    params = dict(judge_bias_sd=judge_bias_sd, judge_scale_sd=judge_scale_sd, item_sd=item_sd, clip_sd=clip_sd, noise_sd=noise_sd)
    truth = expected_mos(systems, criteria=["naturalness"], **params)
    tm = {s: truth[(s, "naturalness")] for s in names}
    hits = {k: [] for k in ("mixed", "naive", "t_items", "crowdmos", "d_mixed", "d_naive", "d_paired_t")}
    widths = {k: [] for k in hits}
    t0 = time.perf_counter()
    fit_time = 0.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    for rep in range(n_rep):
        df = simulate_ratings(None, systems, n_items=n_items, n_judges=n_judges, criteria=["naturalness"], seed=seed * 100003 + rep, **params)
        reg = df[df["kind"] == "regular"]
        t1 = time.perf_counter()
        fit = _fit_reml(reg, "naturalness")
        mixed = fit.mean_ci(level).set_index("system")
        fit_time += time.perf_counter() - t1
        for s in names:
            sub = reg[reg["system"] == s]
            y = sub["score"].to_numpy(float)
            m, sd = y.mean(), y.std(ddof=1)
            ivs = {
                "mixed": (mixed.loc[s, "mixed_lo"], mixed.loc[s, "mixed_hi"]),
                "naive": (m - z * sd / math.sqrt(len(y)), m + z * sd / math.sqrt(len(y))),
            }
            ti = _t_items(sub, level)
            ivs["t_items"] = (ti["t_lo"], ti["t_hi"])
            cm = crowdmos_ci(sub, level)
            ivs["crowdmos"] = (cm["crowdmos_lo"], cm["crowdmos_hi"])
            for k, (lo, hi) in ivs.items():
                hits[k].append(lo <= tm[s] <= hi)
                widths[k].append(hi - lo)
        ref = names[0]
        for s in names[1:]:
            td = tm[s] - tm[ref]
            L = np.zeros(len(fit.systems)); L[fit.index(s)] = 1; L[fit.index(ref)] = -1
            est, se, dfm = (v[0] for v in fit.contrast(L))
            h = _tq(dfm, level) * se
            ivs = {"d_mixed": (est - h, est + h)}
            ya = reg.loc[reg["system"] == s, "score"].to_numpy(float)
            yb = reg.loc[reg["system"] == ref, "score"].to_numpy(float)
            dn = ya.mean() - yb.mean()
            hn = z * math.sqrt(ya.var(ddof=1) / len(ya) + yb.var(ddof=1) / len(yb))
            ivs["d_naive"] = (dn - hn, dn + hn)
            im = reg[reg["system"].isin([s, ref])].groupby(["item", "system"])["score"].mean().unstack()
            dd = (im[s] - im[ref]).to_numpy(float)
            hp = _tq(len(dd) - 1, level) * dd.std(ddof=1) / math.sqrt(len(dd))
            ivs["d_paired_t"] = (dd.mean() - hp, dd.mean() + hp)
            for k, (lo, hi) in ivs.items():
                hits[k].append(lo <= td <= hi)
                widths[k].append(hi - lo)
    total = time.perf_counter() - t0
    out = {
        "n_rep": n_rep, "seed": seed, "level": level, "simulated": True,
        "design": dict(systems=systems, n_judges=n_judges, n_items=n_items, **params),
        "true_mos": tm,
    }
    label = {"mixed": "mixed_mean", "naive": "naive_mean", "t_items": "t_items_mean", "crowdmos": "crowdmos_mean",
             "d_mixed": "mixed_diff", "d_naive": "naive_diff", "d_paired_t": "paired_t_diff"}
    for k, v in hits.items():
        out[f"{label[k]}_coverage"] = float(np.mean(v))
        out[f"{label[k]}_width"] = float(np.mean(widths[k]))
    out["n_intervals_mean"] = len(hits["mixed"])
    out["n_intervals_diff"] = len(hits["d_mixed"])
    out["seconds_total"] = total
    out["seconds_per_fit"] = fit_time / max(n_rep, 1)
    return out


__all__ = [
    "MixedFit", "fit_mixed", "variance_components", "mos_table", "crowdmos_ci", "holm", "rank_biserial",
    "pairwise_vs_reference", "agreement", "metric_mos_correlation", "DEFAULT_METRIC_PAIRS", "power_analysis",
    "coverage_study",
]
