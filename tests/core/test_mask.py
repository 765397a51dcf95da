from __future__ import annotations

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.core.mask import DEFAULT_MASK_PLANES, Mask


def test_default_planes_in_bit_order():
    mask = Mask(shape=(3, 4))
    assert mask.array.dtype == np.uint32 and mask.shape == (3, 4)
    assert mask.planes["BAD"] == 0 and mask.planes["SAT"] == 1 and mask.planes["ITL_DIP"] == 16
    assert list(mask.planes) == list(DEFAULT_MASK_PLANES)
    assert mask.bitmask("BAD", "CR", "EDGE") == 0b11001


def test_set_get_any_clear():
    mask = Mask(shape=(2, 3))
    where = np.array([[True, False, False], [False, False, True]])
    mask.set("SAT", where)
    mask.set("CR", ~where)
    assert mask.array.tolist() == [[2, 8, 8], [8, 8, 2]]
    np.testing.assert_array_equal(mask.get("SAT"), where)
    assert mask.any("SAT", "CR").all()
    assert not mask.any("BAD").any()
    mask.clear("CR", np.array([[False, True, False], [False, False, False]]))
    assert mask.array.tolist() == [[2, 0, 8], [8, 8, 2]]
    assert mask.interpret(2 | 8 | 1) == ["BAD", "SAT", "CR"]
    mask.set("BAD")
    assert (mask.array & 1).all()


def test_unknown_plane_lists_known_ones():
    mask = Mask(shape=(2, 2))
    with pytest.raises(ConfigError, match="unknown mask plane 'NOPE'.*BAD, SAT"):
        mask.get("NOPE")
    with pytest.raises(ConfigError):
        mask.bitmask("BAD", "NOPE")


def test_add_plane_uses_free_bit_and_is_idempotent():
    mask = Mask(shape=(2, 2), planes={"BAD": 0, "CR": 2})
    assert mask.add_plane("FAKE") == 1
    assert mask.add_plane("FAKE") == 1
    assert mask.add_plane("OTHER") == 3
    with pytest.raises(ConfigError, match="upper-case"):
        mask.add_plane("lower")
    full = Mask(shape=(1, 1), planes={f"P{i}": i for i in range(32)})
    with pytest.raises(ConfigError, match="all 32 bits"):
        full.add_plane("MORE")
    full.set("P31")
    assert int(full.array[0, 0]) == 2**31


def test_invalid_construction():
    with pytest.raises(ConfigError, match="array or a shape"):
        Mask()
    with pytest.raises(ConfigError, match="same bit"):
        Mask(shape=(1, 1), planes={"A": 1, "B": 1})
    with pytest.raises(ConfigError, match="bits are integers"):
        Mask(shape=(1, 1), planes={"A": 32})
    with pytest.raises(ConfigError, match="integers"):
        Mask(np.zeros((2, 2), float))
    with pytest.raises(ConfigError, match="does not match"):
        Mask(np.zeros((2, 2), np.uint32), shape=(3, 3))
    converted = Mask(np.array([[1, 2]], dtype=np.int64))
    assert converted.array.dtype == np.uint32 and converted.array.tolist() == [[1, 2]]


def test_view_shares_memory_and_planes():
    mask = Mask(shape=(4, 5))
    sub = mask[1:3, 2:5]
    sub.set("DETECTED")
    assert mask.get("DETECTED").sum() == 6 and mask.get("DETECTED")[1:3, 2:5].all()
    bit = sub.add_plane("FAKE")
    assert mask.planes["FAKE"] == bit
    copy = mask.copy()
    copy.add_plane("ONLY_IN_COPY")
    copy.set("BAD")
    assert "ONLY_IN_COPY" not in mask.planes and not mask.get("BAD").any()
    assert copy != mask and mask.copy() == mask
