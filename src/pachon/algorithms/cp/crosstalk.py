"""Crosstalk coefficients from exposures with bright sources.

For each victim amplifier, over the pixels where the victim itself is dark (below
``victim_max``), a linear least-squares fit ``victim = b + sum_s C[v, s] * source_s`` over all
other amplifiers at the same readout pixel, pooling every exposure.  All amplifiers are fitted
together, so sources that are bright at the same pixel do not bias each other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["measure_crosstalk"]

log = logging.getLogger(__name__)


def measure_crosstalk(
    exposures: Sequence[Sequence[np.ndarray]], *, victim_max: float = 200.0, min_source: float = 5000.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the crosstalk matrix ``C[victim, source]`` and its 1-sigma errors.

    Parameters
    ----------
    exposures
        Per exposure, the overscan-subtracted data segments of every amplifier in readout
        orientation (ADU, one shape).
    victim_max
        Use only pixels where the victim's value is below this (ADU): no light of its own.
    min_source
        A source amplifier needs pixels above this (ADU) to constrain its coefficient.
    """
    if not exposures:
        raise ConfigError("measure_crosstalk needs at least one exposure")
    n = len(exposures[0])
    stacks = np.concatenate([np.stack([np.asarray(s, float) for s in e]).reshape(n, -1) for e in exposures],
                            axis=1)
    coeff = np.zeros((n, n))
    err = np.full((n, n), np.inf)
    for v in range(n):  # loop over amplifiers only
        sel = stacks[v] < victim_max
        others = [s for s in range(n) if s != v]
        src = stacks[others][:, sel]
        bright = (src > min_source).any(axis=0)
        near = sel.copy()
        near[sel] = bright | (np.arange(sel.sum()) % 50 == 0)  # bright pixels plus a background sample
        y = stacks[v, near]
        x = np.vstack([np.ones(y.size), stacks[others][:, near]]).T
        if y.size <= x.shape[1]:
            continue
        sol, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ sol
        s2 = float(np.sum(resid**2) / (y.size - x.shape[1]))
        cov = s2 * np.linalg.pinv(x.T @ x)
        coeff[v, others] = sol[1:]
        err[v, others] = np.sqrt(np.diag(cov)[1:])
    return coeff, err
