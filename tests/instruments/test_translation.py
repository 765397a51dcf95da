"""Header translation of every real raw frame in ../shared/data through the shipped definitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pachon.core.errors import MetadataTranslationError
from pachon.instruments import find_instrument, get_instrument


def _header(path: Path):
    from astropy.io import fits

    return fits.getheader(path)


def _translate(path: Path):
    header = _header(path)
    instrument = find_instrument(header, filename=path)
    return header, instrument, instrument.translate_header(header, filename=str(path))


def _utc(time) -> str:
    return time.utc.isot


def test_caha_cafos_all_frames(shared_data):
    files = sorted((shared_data / "isr/caha-cafos-ngc2420").glob("*.fits"))
    assert len(files) == 15
    ids = set()
    for path in files:
        header, inst, info = _translate(path)
        assert inst.name == "CAHA-CAFOS"
        assert info.exposure_time == header["EXPTIME"]
        assert info.physical_filter == header["INSFLNAM"].strip()
        assert info.band == header["INSFLNAM"].strip()[-1]  # JohnsonB -> B
        expected_type = path.name.split("_")[1] if path.name.startswith("calib") else "science"
        assert info.observation_type == expected_type
        assert (info.visit_id is not None) == (expected_type == "science")
        assert _utc(info.datetime_begin)[:19] == header["DATE-OBS"]
        assert info.tracking_ra == header["RA"] and info.airmass == header["AIRMASS"]
        seq = int(header["FILENAME"].split("_")[1].split(".")[0])
        assert info.seq_num == seq and info.exposure_id == info.day_obs * 100000 + seq
        ids.add(info.exposure_id)
    assert len(ids) == len(files)
    _, _, bias = _translate(shared_data / "isr/caha-cafos-ngc2420/calib_bias_uamA_0001.fits")
    _, _, sci = _translate(shared_data / "isr/caha-cafos-ngc2420/science_NGC2420_B_uamA_0023.fits")
    assert (bias.day_obs, sci.day_obs) == (20210318, 20210328)
    assert sci.datetime_end.utc.isot[:19] == "2021-03-28T23:06:36"  # + 2 s


def test_saao_overscan_frame(shared_data):
    header, inst, info = _translate(shared_data / "isr/saao-overscan/a8280271.fits")
    assert inst.name == "SAAO-1m"
    assert info.exposure_time == pytest.approx(150.04)
    assert _utc(info.datetime_begin) == "2013-07-13T00:57:33.000"
    assert info.day_obs == 20130712  # 00:57 UT belongs to the night that began on the 12th
    assert info.seq_num == 12 * 3600 + 57 * 60 + 33 + 35  # seconds after 12:00 TAI (TAI-UTC = 35 s in 2013)
    assert info.observation_type == "science" and info.physical_filter == "48" and info.band is None
    # sexagesimal RA/DEC agree with the decimal RA_OBS/DEC_OBS of the same header
    assert info.tracking_ra == pytest.approx(header["RA_OBS"], abs=2e-4)
    assert info.tracking_dec == pytest.approx(header["DEC_OBS"], abs=2e-4)
    amp = inst.detector(0).amplifiers[0]
    assert amp.raw_data_bbox.to_fits_section() == "[17:528,1:520]"
    assert amp.raw_serial_overscan_bbox.to_fits_section() == "[4:13,1:520]"
    assert inst.detector(0).bbox.shape == (520, 512)


def test_microobservatory_frames(shared_data):
    files = sorted((shared_data / "astrometry/hatp32-microobservatory").glob("HATP-32*.FITS"))
    assert len(files) == 20
    ids = []
    for path in files:
        header, inst, info = _translate(path)
        assert inst.name == "MicroObservatory"
        assert info.exposure_time == 60.0 and info.physical_filter == "Clear" and info.band == "white"
        assert info.day_obs == 20171219 and info.observation_type == "science"
        # UT-OBS is UTC; DATE-OBS is the same instant in local time (-0700)
        assert _utc(info.datetime_begin)[:19] == header["UT-OBS"][:19]
        stamp = path.stem[-6:]  # HHMMSS (UTC) in the file name
        assert _utc(info.datetime_begin)[11:19].replace(":", "") == stamp
        ids.append(info.exposure_id)
    assert ids == sorted(ids) and len(set(ids)) == 20


def test_decam_minis_get_distinct_ids_and_kernels_are_rejected(shared_data):
    folder = shared_data / "diffim/decam-sfft/input_data"
    infos = {p.name: _translate(p)[2] for p in sorted(folder.glob("DEC-OBS*.mini.fits"))}
    assert len(infos) == 10
    assert len({i.exposure_id for i in infos.values()}) == 10
    assert infos["DEC-OBS04a.mini.fits"].exposure_id == 20180803 * 100000 + 401
    assert infos["DEC-OBS18e.mini.fits"].exposure_id == 20180803 * 100000 + 1805
    for info in infos.values():
        assert info.instrument == "DECam-mini" and info.detector == 37 and info.detector_name == "N6"
        assert info.band == "i" and info.exposure_time == 330.0 and info.observation_type == "science"
    with pytest.raises(MetadataTranslationError, match="DEC-OBS04b.MatchKernel.fits: no known instrument"):
        kernel = folder / "DEC-OBS04b.MatchKernel.fits"
        find_instrument(_header(kernel), filename=kernel)
    with pytest.raises(MetadataTranslationError, match="pass filename="):
        get_instrument("DECam-mini").translate_header(_header(folder / "DEC-OBS04a.mini.fits"))


def test_latiss_raw(shared_data):
    header, inst, info = _translate(shared_data / "isr/lsst-raw-layout/3018092000065-det000.fits")
    assert inst.name == "LATISS"
    assert info.exposure_id == 3018092000065  # obs_lsst's id of this file (controller C)
    assert (info.day_obs, info.seq_num, info.detector, info.detector_name) == (20180920, 65, 0, "RXX_S00")
    assert info.exposure_time == 27.0 and info.dark_time == 27.0
    assert info.obs_id == "AT_C_20180920_000065"
    assert info.datetime_begin.tai.mjd == pytest.approx(header["MJD-OBS"], abs=1e-9)
    assert info.physical_filter == "unknown" and info.observation_type == "unknown"


def test_lsstcam_spot_and_guider(shared_data):
    folder = shared_data / "isr/lsst-raw-layout"
    _, inst, info = _translate(folder / "itl_spot.fits.gz")
    assert inst.name == "LSSTCam" and info.detector_name == "R02_S02" and info.detector == 11
    assert info.exposure_id == 10**12 + 20191101 * 100000 + 2212
    assert info.observation_type == "spot" and info.dark_time == pytest.approx(12.783)
    guider = folder / "MC_C_20240918_000013_R00_SG0_guider.fits"
    with pytest.raises(MetadataTranslationError) as err:
        find_instrument(_header(guider), filename=guider)
    message = str(err.value)
    assert guider.name in message and "'EXPTIME'" in message and "guider" in message


def test_missing_key_errors_name_file_and_key():
    lsstcam = get_instrument("LSSTCam")
    header = {"INSTRUME": "lsstCam", "EXPTIME": "abc", "SEQNUM": 3, "DAYOBS": "20240101",
              "MJD-OBS": 60310.1, "RAFTBAY": "R22", "CCDSLOT": "S11"}
    with pytest.raises(MetadataTranslationError, match=r"x\.fits: header key 'EXPTIME' has value 'abc'"):
        lsstcam.translate_header(header, filename="x.fits")
    header.update(EXPTIME=15.0, IMGTYPE="OBJECT", FILTER="r_57", CONTRLLR="O", RASTART=10.0, DECSTART=-30.0,
                  ROTPA=12.5, AMSTART=1.2)
    info = lsstcam.translate_header(header, filename="x.fits")
    assert (info.exposure_id, info.visit_id) == (2024010100003, 2024010100003)
    assert (info.band, info.detector) == ("r", 94)
    assert (info.tracking_ra, info.sky_angle, info.airmass) == (10.0, 12.5, 1.2)
    assert info.exposure_record()["datetime_end"] == info.datetime_end.tai.isot
    header["CCDSLOT"] = "S33"
    with pytest.raises(MetadataTranslationError, match="'R22_S33'"):
        lsstcam.translate_header(header, filename="x.fits")
    with pytest.raises(MetadataTranslationError, match="no known instrument matches"):
        find_instrument({"INSTRUME": "Nonesuch"}, filename="y.fits")
