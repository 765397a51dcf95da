from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.coadd import coadd_exposures, make_template
from pachon.core.errors import NoWorkFound
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.psf import GaussianPsf
from pachon.core.wcs import make_tan_wcs


def test_coadd_weights_clipping_psf() -> None:
    rng = np.random.default_rng(0)
    wcs = make_tan_wcs(10.0, 0.0, 0.2, crpix=(50.0, 50.0))
    sig = [1.0, 2.0, 1.0, 1.5]
    exps = [
        Exposure(
            5.0 + s * rng.standard_normal((100, 100)),
            variance=np.full((100, 100), s**2),
            wcs=wcs,
            psf=GaussianPsf(1.5 + 0.2 * k),
        )
        for k, s in enumerate(sig)
    ]
    exps[0].image[40, 40] += 500.0  # a cosmic ray in one input
    co = coadd_exposures(exps)
    w = 1 / np.array(sig) ** 2
    assert np.allclose(co.variance[co.variance > 0].mean(), 1 / w.sum(), rtol=0.05)
    assert abs(co.image[40, 40] - 5.0) < 5 * np.sqrt(co.variance[40, 40])
    assert co.mask.get("CLIPPED")[40, 40]
    z = (co.image - 5.0) / np.sqrt(co.variance)
    assert 0.9 < z.std() < 1.1
    assert abs(co.psf.kernel_image(0, 0).sum() - 1) < 1e-9
    with pytest.raises(NoWorkFound, match="no template coverage"):
        make_template(exps, make_tan_wcs(80.0, 10.0, 0.2), Box(0, 0, 20, 20))
