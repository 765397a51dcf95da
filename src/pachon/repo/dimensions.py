"""The dimension universe: which dimensions exist, their keys, fields and implied values.

Every dimension element is one table.  Its primary key is the values of the dimensions it
*requires* (``instrument`` for a detector) plus its own key column (``id`` or ``name``).
*Implied* dimensions are stored as plain columns of the element (an exposure implies its
``physical_filter``, ``band`` and ``day_obs``), so a data ID can be expanded from one record.
Times are int64 nanoseconds TAI; regions are JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pachon.core.errors import DataIdError
from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL

__all__ = [
    "SKYPIX_DIMENSION",
    "DimensionElement",
    "UNIVERSE",
    "DIMENSION_NAMES",
    "normalize_dimensions",
    "implied_dimensions",
    "element",
]


@dataclass(frozen=True)
class DimensionElement:
    """One dimension element (a table of records).

    Attributes
    ----------
    name
        The element name, also the data-ID key of its value.
    requires
        Dimensions whose values are part of this element's primary key.
    key
        The column holding this element's own value (``"id"`` or ``"name"``).
    key_type
        ``int`` or ``str``.
    implies
        Dimensions whose values are fixed by a record of this element.
    fields
        Further columns: name → ``"int"``, ``"float"``, ``"str"``, ``"time"`` (int64 ns TAI),
        ``"region"`` (JSON text) or ``"json"``.
    is_dimension
        False for pure record elements (``visit_detector_region``) that are not data-ID keys.
    """

    name: str
    requires: tuple[str, ...] = ()
    key: str = "id"
    key_type: type = int
    implies: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    is_dimension: bool = True

    @property
    def has_region(self) -> bool:
        """Whether records of this element carry a sky region."""
        return "region" in self.fields

    def column_for(self, dimension: str) -> str:
        """Name of the column holding ``dimension``'s value in this element's table."""
        return self.key if dimension == self.name else dimension


#: The sky-pixel dimension (HEALPix nested at the registry's level): reference catalogs and
#: other sky-sharded datasets are keyed by it; its records carry the pixel's region.
SKYPIX_DIMENSION = f"healpix{DEFAULT_SKYPIX_LEVEL}"

_OBS_FIELDS = {
    "exposure_time": "float",
    "datetime_begin": "time",
    "datetime_end": "time",
    "target_name": "str",
    "tracking_ra": "float",
    "tracking_dec": "float",
    "sky_angle": "float",
    "airmass": "float",
}

UNIVERSE: dict[str, DimensionElement] = {
    e.name: e
    for e in [
        DimensionElement(
            "instrument",
            key="name",
            key_type=str,
            fields={"class_name": "str", "detector_max": "int", "visit_max": "int"},
        ),
        DimensionElement("band", key="name", key_type=str),
        DimensionElement("physical_filter", ("instrument",), key="name", key_type=str, implies=("band",)),
        DimensionElement(
            "detector",
            ("instrument",),
            fields={"full_name": "str", "raft": "str", "purpose": "str", "physical_type": "str"},
        ),
        DimensionElement(
            "day_obs", ("instrument",), fields={"datetime_begin": "time", "datetime_end": "time"}
        ),
        DimensionElement(
            "exposure",
            ("instrument",),
            implies=("physical_filter", "band", "day_obs"),
            fields={
                "obs_id": "str",
                "seq_num": "int",
                "observation_type": "str",
                "dark_time": "float",
                "group": "str",
                **_OBS_FIELDS,
                "region": "region",
            },
        ),
        DimensionElement(
            "visit",
            ("instrument",),
            implies=("physical_filter", "band", "day_obs"),
            fields={"name": "str", **_OBS_FIELDS, "region": "region"},
        ),
        DimensionElement(
            "visit_detector_region",
            ("instrument", "visit"),
            key="detector",
            fields={"region": "region"},
            is_dimension=False,
        ),
        DimensionElement(
            "skymap",
            key="name",
            key_type=str,
            fields={"hash": "str", "tract_max": "int", "patch_nx_max": "int", "patch_ny_max": "int"},
        ),
        DimensionElement("tract", ("skymap",), fields={"region": "region"}),
        DimensionElement(
            "patch", ("skymap", "tract"), fields={"cell_x": "int", "cell_y": "int", "region": "region"}
        ),
        DimensionElement(SKYPIX_DIMENSION, fields={"region": "region"}),
    ]
}

#: The data-ID keys, in a canonical order (dependencies first).
DIMENSION_NAMES: tuple[str, ...] = (
    "instrument",
    "skymap",
    "band",
    "physical_filter",
    "day_obs",
    "detector",
    "exposure",
    "visit",
    "tract",
    "patch",
    SKYPIX_DIMENSION,
)


def element(name: str) -> DimensionElement:
    """Return the dimension element ``name``, raising `DataIdError` listing the known ones."""
    try:
        return UNIVERSE[name]
    except KeyError:
        raise DataIdError(
            f"unknown dimension {name!r}; known dimensions: {', '.join(DIMENSION_NAMES)}"
        ) from None


def normalize_dimensions(dimensions: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Add required dimensions and return the *required* set in canonical order.

    Implied dimensions that the caller listed explicitly stay (``band`` of a coadd), but an
    implied dimension that is also implied by another listed one is dropped, since its value
    follows from the record.
    """
    names: set[str] = set()
    for name in dimensions:
        elem = element(name)
        if not elem.is_dimension:
            raise DataIdError(f"{name!r} is a record element, not a dimension; use one of {DIMENSION_NAMES}")
        names.add(name)
        names.update(elem.requires)
    implied = {i for n in names for i in UNIVERSE[n].implies}
    return tuple(n for n in DIMENSION_NAMES if n in names and n not in implied)


def implied_dimensions(dimensions: tuple[str, ...]) -> tuple[str, ...]:
    """Dimensions implied by the (normalized) ``dimensions``, in canonical order."""
    implied = {i for n in dimensions for i in UNIVERSE[n].implies} - set(dimensions)
    # physical_filter implies band too
    if "physical_filter" in dimensions:
        implied.add("band")
    implied -= set(dimensions)
    return tuple(n for n in DIMENSION_NAMES if n in implied)
