"""Difference imaging: PSF matching (Alard–Lupton, ZOGY), decorrelation, DCR, detection.

Import from the submodules: :mod:`.subtract` (the entry point :func:`subtract_images`),
:mod:`.al`, :mod:`.decorrelation`, :mod:`.zogy`, :mod:`.detect`, :mod:`.dcr`, :mod:`.simulate`.
"""

from __future__ import annotations

__all__: list[str] = []
