"""DIA source measurement: PSF/aperture/forced photometry, dipoles, trails, reliability."""

from __future__ import annotations

__all__: list[str] = []
