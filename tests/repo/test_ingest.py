"""Ingest of raw FITS: real data read back pixel-exact, idempotency, bad input in a batch."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits
from repo_ingest_helpers import tiny_instrument, write_tiny_raw

from pachon.repo import Repository


def _real_raws(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "isr/caha-cafos-ngc2420").glob("*.fits"))
    files.append(shared_data / "isr/saao-overscan/a8280271.fits")
    files += sorted((shared_data / "astrometry/hatp32-microobservatory").glob("HATP-32*.FITS"))
    files += sorted((shared_data / "diffim/decam-sfft/input_data").glob("*.mini.fits"))
    return files


def _pixels(path) -> np.ndarray:
    with fits.open(path) as hdul:
        return next(h.data for h in hdul if h.data is not None and h.data.ndim == 2).copy()


def test_real_data_pixel_exact(repo, shared_data):
    files = _real_raws(shared_data)
    assert len(files) == 46
    report = repo.ingest_raws(files)
    assert report.failed == [] and len(report.ingested) == 46
    instruments = {r.data_id["instrument"] for _, r in report.ingested}
    assert instruments == {"CAHA-CAFOS", "SAAO-1m", "MicroObservatory", "DECam-mini"}
    for path, ref in report.ingested:
        got = repo.get(ref)
        data = next(h.data for h in got if h.data is not None and h.data.ndim == 2)
        expected = _pixels(path)
        assert data.dtype == expected.dtype and np.array_equal(data, expected), path
        source_sum = "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert repo.file_record(ref).checksum == source_sum
    # idempotent: the same files again change nothing
    again = repo.ingest_raws(files)
    assert again.ingested == [] and len(again.skipped) == 46 and again.failed == []
    refs = repo.query_datasets("raw", [c for c, _ in repo.registry.list_collections()])
    assert len(refs) == 46
    # headers went into exposure records: the 11 NGC 2420 science frames
    sci = repo.query_dimension_records(
        "exposure", where="instrument = 'CAHA-CAFOS' AND exposure.observation_type = 'science'"
    )
    assert len(sci) == 11 and {r["band"] for r in sci} == {"B", "V"}
    assert repo.check().ok


def test_transfer_modes(tmp_path):
    inst = tiny_instrument(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    files = [write_tiny_raw(src / f"r{i}.fits", i) for i in range(5)]
    repo = Repository.create(tmp_path / "repo")
    for mode, f in zip(["copy", "hardlink", "symlink", "direct"], files, strict=False):
        rep = repo.ingest_raws([f], instrument=inst, transfer=mode)
        assert len(rep.ingested) == 1, rep.failed
        stored = Path(repo.datastore.full_path(repo.file_record(rep.ingested[0][1]).path))
        assert np.array_equal(repo.get(rep.ingested[0][1])[0].data, _pixels(f))
        assert stored.is_symlink() == (mode == "symlink")
        assert (stored == f.resolve()) == (mode == "direct")
    rep = repo.ingest_raws([files[4]], instrument=inst, transfer="move")
    assert len(rep.ingested) == 1 and not files[4].exists()
    assert repo.check().ok


def test_bad_input_batch(tmp_path, shared_data):
    inst = tiny_instrument(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    good = [write_tiny_raw(src / f"good{i}.fits", i) for i in range(3)]
    repo = Repository.create(tmp_path / "repo")
    first = repo.ingest_raws(good[:1], instrument=inst)
    old_ref = first.ingested[0][1]
    old_checksum = repo.file_record(old_ref).checksum
    text = src / "notes.fits"
    text.write_text("this is not a FITS file\n" * 10)
    truncated = src / "truncated.fits"
    truncated.write_bytes(write_tiny_raw(src / "full.fits", 10).read_bytes()[:3000])
    (src / "full.fits").unlink()
    no_date = write_tiny_raw(src / "nodate.fits", 11, drop="DATE-OBS")
    same_id = write_tiny_raw(src / "clash.fits", 0, value_offset=7)  # same time as good0: same data ID
    wrong_size = src / "small.fits"
    hdr = fits.getheader(good[1])
    fits.PrimaryHDU(np.zeros((5, 5), np.uint16), hdr).writeto(wrong_size)
    batch = [text, good[1], truncated, no_date, same_id, good[2], wrong_size, good[0]]
    report = repo.ingest_raws(batch, instrument=inst)
    assert sorted(Path(p).name for p, _ in report.ingested) == ["good1.fits", "good2.fits"]
    assert [Path(p).name for p, _ in report.skipped] == ["good0.fits"]
    reasons = dict(report.failed)
    assert set(reasons) == {str(p) for p in (text, truncated, no_date, same_id, wrong_size)}
    assert "notes.fits" in reasons[str(text)] and "FITS" in reasons[str(text)]
    assert "truncated" in reasons[str(truncated)]
    assert "DATE-OBS" in reasons[str(no_date)] and "nodate.fits" in reasons[str(no_date)]
    assert "ConflictError" in reasons[str(same_id)] and "good0.fits" in reasons[str(same_id)]
    assert "16x12" in reasons[str(wrong_size)] and "5x5" in reasons[str(wrong_size)]
    # nothing already in the repository was touched
    assert repo.file_record(old_ref).checksum == old_checksum
    assert np.array_equal(repo.get(old_ref)[0].data, _pixels(good[0]))
    assert len(repo.query_datasets("raw", "TinyCam/raw/all")) == 3
    assert repo.check().ok


def test_cli_friendly_report_summary(tmp_path):
    inst = tiny_instrument(tmp_path)
    f = write_tiny_raw(tmp_path / "a.fits", 1)
    repo = Repository.create(tmp_path / "repo")
    assert repo.ingest_raws([f], instrument=inst).summary() == "1 ingested, 0 already present, 0 failed"
    shutil.copy(f, tmp_path / "b.fits")
    assert (
        repo.ingest_raws([tmp_path / "b.fits"], instrument=inst).summary()
        == "0 ingested, 1 already present, 0 failed"
    )
