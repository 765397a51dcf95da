"""Exposures passed from one AP step to the next in memory read exactly as from their files."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from images_helpers import EMBARGO_RUN, PUBLIC_RUN, build_image_repo, make_exposure

from pachon.core.exposure_fits import read_exposure_fits, write_exposure_fits
from pachon.core.geom import Box
from pachon.core.mask import Mask
from pachon.repo.refs import DatasetRef
from pachon.services.prompt.preload import PreloadedRepository, PreloadStore, preload_scope


def _did(visit: int) -> dict:
    return {"instrument": "ImgCam", "visit": visit, "detector": 0}


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.variance, b.variance)
    np.testing.assert_array_equal(a.mask.array, b.mask.array)
    assert a.mask.planes == b.mask.planes and a.xy0 == b.xy0
    assert a.wcs.to_header_string() == b.wcs.to_header_string()
    assert dict(a.metadata) == dict(b.metadata)


def test_written_exposure_is_handed_to_the_next_reader_once(tmp_path: Path) -> None:
    build_image_repo(tmp_path / "repo")[0].close()
    store = PreloadStore()
    repo = PreloadedRepository(tmp_path / "repo", store)
    try:
        exp = make_exposure(2)
        exp.mask.array[3:5, 7:9] = np.uint32(2**31 + 5)  # high bits survive the pass and the file
        ref = DatasetRef(uuid.uuid4(), "difference_image", _did(2), PUBLIC_RUN)
        with preload_scope("k"):
            repo.put_many([(ref, exp)], run=PUBLIC_RUN, provenance={"task": "diffim"})
            passed = repo.get(ref)
            assert passed.image is exp.image  # the pixels were not decoded again ...
            assert store.pop_passed("k") == 1 and store.pop_hits("k") == 0
            again = repo.get(ref)  # ... and only once: the second reader gets the file
            assert again.image is not exp.image
        _assert_same(passed, again)  # everything but the pixels came from the file: identical objects
        assert passed.mask.array[4, 8] == 2**31 + 5
        # outside a scope nothing is kept
        ref2 = DatasetRef(uuid.uuid4(), "difference_image", _did(1), EMBARGO_RUN)
        repo.put_many([(ref2, make_exposure(1))], run=EMBARGO_RUN, provenance={"task": "diffim"})
        assert store.drop("k") == 0 and not store._objects
    finally:
        repo.close()


def test_two_outputs_sharing_pixels_get_separate_buffers(tmp_path: Path) -> None:
    build_image_repo(tmp_path / "repo")[0].close()
    store = PreloadStore()
    repo = PreloadedRepository(tmp_path / "repo", store)
    try:
        exp = make_exposure(2)
        before = exp.image.copy()
        refs = [DatasetRef(uuid.uuid4(), t, _did(2), EMBARGO_RUN) for t in ("calexp", "difference_image")]
        with preload_scope("k"):
            repo.put_many([(refs[0], exp), (refs[1], exp)], run=EMBARGO_RUN, provenance={"task": "t"})
            a, b = repo.get(refs[0]), repo.get(refs[1])
        assert store.pop_passed("k") == 2
        assert not np.shares_memory(a.image, b.image) and not np.shares_memory(a.mask.array, b.mask.array)
        a.image += 1.0  # a reader changing its input in place does not change the other's
        np.testing.assert_array_equal(b.image, before)
        assert store.drop("k") == 0
    finally:
        repo.close()


def test_mask_sign_bit_decoding_round_trips(tmp_path: Path) -> None:
    from pachon.core.exposure import Exposure

    rng = np.random.default_rng(4)
    mask = rng.integers(0, 2**32, size=(30, 20), dtype=np.uint64).astype(np.uint32)
    exp = Exposure(rng.normal(size=(30, 20)), Mask(mask, planes={"BAD": 0}), rng.random((30, 20)), xy0=(5, 7))
    write_exposure_fits(exp, tmp_path / "e.fits")
    whole = read_exposure_fits(tmp_path / "e.fits")
    np.testing.assert_array_equal(whole.mask.array, mask)
    assert whole.mask.array.dtype == np.uint32 and whole.mask.array.flags.writeable
    part = read_exposure_fits(tmp_path / "e.fits", bbox=Box(8, 10, 6, 9))
    np.testing.assert_array_equal(part.mask.array, mask[3:12, 3:9])
