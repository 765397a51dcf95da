"""Alert packets built + serialized per second per core, and association speed.

Usage::

    .venv/bin/python benchmarks/bench_alerts.py [--alerts 5000] [--batches 50,500,5000]
        [--history 10] [--holes 0.03] [--objects 1000000] [--sources 10000] [--skip-association]

Packets: APDB-shaped tables as the alert task gets them (every column filled, ``--holes`` of
the nullable ones null/NaN): a detector-visit batch of DiaSources, their DiaObjects,
``--history`` previous DiaSources (plus the current one, as the APDB returns it) and as many
forced sources per object.  Paths, on one core, in the same run:

- columnar: :func:`pachon.alerts.columnar.build_alerts` (tables in, wire packets out);
- per-alert: the former alert task (``build_detector_alerts``: one ``build_alert`` dict per
  alert, rows as dicts) + ``serialize_alert`` (fastavro) per packet;
- per-alert dicts + the batch encoder ``serialize_alerts``;
- fastavro ``schemaless_writer`` alone on the pre-built dicts (serialization only, a peer);
- lsst-alert-packet's ``Schema.serialize`` alone (serialization only, a peer).

"with cutouts" adds three 30x30 FITS cutouts (science, template, difference) cut from
2k x 2k Exposures with a PSF, as the alert task does; astropy's FITS writer (the former
cutout writer) is timed on its own for comparison.  Columnar packets are checked
byte-identical to the per-alert ones.  Rates are packets per CPU second of this process
(``time.process_time``: per core, robust to a shared machine), best of ``--repeat`` runs.

Association: ``--sources`` DiaSources against ``--objects`` DiaObjects spread over ~10 deg^2,
90 % of the sources on an object (0.1" noise), with :func:`associate` (matching + new ids)
and :func:`summarize_dia_objects` of the matched objects' new versions.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import pyarrow as pa

from pachon.alerts.columnar import _record_plan, build_alerts
from pachon.alerts.cutouts import CutoutWriter
from pachon.alerts.schema import latest_version, load_schema, schema_path
from pachon.alerts.serialize import serialize_alert, serialize_alerts
from pachon.algorithms.association import associate, summarize_dia_objects
from pachon.apdb.synthetic import dia_source_table
from pachon.core.exposure import Exposure
from pachon.core.psf import GaussianPsf
from pachon.core.schemas import arrow_schema
from pachon.core.wcs import make_tan_wcs
from pachon.pipelines.alert_task import build_detector_alerts

_RECORDS = {"DiaSource": "diaSource", "DiaForcedSource": "diaForcedSource",
            "DiaObject": "diaObject"}
_BASE_ID = 170_000_000_000_000_000


def _apdb_table(table: str, n: int, rng: np.random.Generator, holes: float, **columns) -> pa.Table:
    """APDB rows with every column filled; ``holes`` of the alert-nullable ones null/NaN."""
    nullable = {f for f, _, _, ok in _record_plan(latest_version(), _RECORDS[table]) if ok}
    arrays = []
    for field in arrow_schema("apdb", table):
        t = field.type
        if field.name in columns:
            arrays.append(pa.array(columns[field.name], t))
            continue
        if pa.types.is_integer(t):
            values = rng.integers(0, 1000, n)
        elif pa.types.is_floating(t):
            values = rng.normal(500.0, 100.0, n)
        elif pa.types.is_boolean(t):
            values = rng.random(n) < 0.1
        elif pa.types.is_string(t):
            values = np.array(["ugrizy"[k] for k in rng.integers(0, 6, n)], object)
        else:
            arrays.append(pa.nulls(n, t))
            continue
        mask = None
        if field.name in nullable and holes > 0:
            mask = rng.random(n) < holes
            if pa.types.is_floating(t):
                values = np.where(rng.random(n) < holes, np.nan, values)
        arrays.append(pa.array(values, t, mask=mask))
    return pa.Table.from_arrays(arrays, schema=arrow_schema("apdb", table))


def _batch(m: int, history: int, holes: float, seed: int = 0):
    """Sources, objects, history and forced history of a detector-visit of ``m`` alerts."""
    rng = np.random.default_rng(seed)
    t_now = 61000.2
    obj = _BASE_ID + 10**9 + np.arange(m)
    ids = _BASE_ID + np.arange(m)
    xy = {"x": rng.uniform(20, 2028, m), "y": rng.uniform(20, 2028, m)}
    sources = _apdb_table("DiaSource", m, rng, holes, diaSourceId=ids, diaObjectId=obj,
                          midpointMjdTai=np.full(m, t_now), **xy)
    h_obj = np.repeat(obj, history)
    h_t = t_now - np.tile(np.arange(history, 0, -1) * 20.0, m)
    prv = _apdb_table("DiaSource", h_obj.size, rng, holes,
                      diaSourceId=_BASE_ID + 10**8 + np.arange(h_obj.size), diaObjectId=h_obj,
                      midpointMjdTai=h_t)
    history_table = pa.concat_tables([prv, sources]).sort_by(
        [("diaObjectId", "ascending"), ("midpointMjdTai", "ascending")])  # as the APDB returns
    forced = _apdb_table("DiaForcedSource", h_obj.size, rng, holes,
                         diaForcedSourceId=_BASE_ID + 10**7 + np.arange(h_obj.size),
                         diaObjectId=h_obj, midpointMjdTai=h_t + 1e-3)
    objects = _apdb_table("DiaObject", m, rng, holes, diaObjectId=obj)
    return sources, objects, history_table, forced


def _images() -> dict[str, Exposure]:
    wcs = make_tan_wcs(150.0, 2.0, 0.2, crpix=(1024.0, 1024.0))
    rng = np.random.default_rng(0)
    return {k: Exposure(rng.normal(0, 1, (2048, 2048)).astype(np.float32),
                        variance=np.ones((2048, 2048), np.float32), wcs=wcs,
                        psf=GaussianPsf(1.5 + 0.2 * i))
            for i, k in enumerate(("science", "template", "difference"))}


def _best(fn, count: int, repeat: int) -> tuple[float, object]:
    """Best rate (items per CPU second) of ``repeat`` calls of ``fn`` handling ``count`` items.

    CPU time of this process (all its threads): the rate per core, robust to other load.
    """
    best, result = 0.0, None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        best = max(best, count / max(time.process_time() - start, 1e-9))
    return best, result


def _columnar(batches, images, cutout_size=30):
    out = []
    for sources, objects, history, forced in batches:
        cutouts = None
        if images:
            x = sources.column("x").to_numpy()
            y = sources.column("y").to_numpy()
            cutouts = {k: CutoutWriter(img).around(x, y, cutout_size) for k, img in images.items()}
        out += build_alerts(sources, objects, history, forced, None, cutouts, wire=True)
    return out


def _per_alert_dicts(batches, images):
    alerts = []
    for sources, objects, history, forced in batches:
        alerts += build_detector_alerts(sources, objects, history, forced, images or {})
    return alerts


def bench_packets(n: int, batch: int, history: int, holes: float, repeat: int) -> None:
    k = max(n // batch, 1)
    batches = [_batch(batch, history, holes, seed) for seed in range(k)]
    count = k * batch
    schema = load_schema(latest_version())
    import fastavro

    for label, images in (("no cutouts", None), ("with cutouts", _images())):
        rate, packets = _best(lambda images=images: _columnar(batches, images), count, repeat)
        sub = max(count // 10, min(count, 200)) if images else count  # the slow paths: a part
        sub_batches = batches[: max(sub // batch, 1)]
        sub = len(sub_batches) * batch

        def per_alert(images=images, sub_batches=sub_batches):
            return [serialize_alert(a, wire=True) for a in _per_alert_dicts(sub_batches, images)]

        ref_rate, ref = _best(per_alert, sub, 1)
        assert packets[:sub] == ref, "columnar packets differ from the per-alert packets"

        def dicts_then_batch(images=images, sub_batches=sub_batches):
            return serialize_alerts(_per_alert_dicts(sub_batches, images), wire=True)

        dict_batch_rate, _ = _best(dicts_then_batch, sub, 1)
        alerts = _per_alert_dicts(sub_batches, images)

        def fastavro_only(alerts=alerts):
            out = []
            for a in alerts:
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, schema, a)
                out.append(buf.getvalue())
            return out

        fa_rate, _ = _best(fastavro_only, sub, repeat)
        size = sum(map(len, packets)) / len(packets) / 1024
        print(f"batch={batch:5d} history={history:2d}+{history:2d} {label:12s} "
              f"columnar {rate:8.0f} packets/s/core ({size:.1f} KiB/packet) | "
              f"per-alert path {ref_rate:7.0f}/s (x{rate / ref_rate:.1f}) | "
              f"per-alert dicts + batch encoder {dict_batch_rate:7.0f}/s "
              f"(x{rate / dict_batch_rate:.1f}) | fastavro serialize only {fa_rate:7.0f}/s "
              f"(x{rate / fa_rate:.1f})", flush=True)
        if images is None:
            from lsst.alert.packet import Schema

            official = Schema.from_file(str(schema_path(latest_version())))
            peer, _ = _best(lambda alerts=alerts, official=official: [official.serialize(a) for a in alerts],
                            sub, 1)
            print(f"batch={batch:5d} lsst-alert-packet Schema.serialize only: {peer:7.0f}/s "
                  f"(columnar build+serialize x{rate / peer:.1f})", flush=True)


def bench_cutout_writers(repeat: int) -> None:
    """One cutout: the direct writer against astropy's (the former implementation)."""
    from astropy.io import fits

    from pachon.core.geom import Box
    from pachon.core.wcs import shift_wcs, wcs_to_header

    image = _images()["science"]
    writer = CutoutWriter(image)
    n = 300
    fast, _ = _best(lambda: [writer.box(500, 600, 530, 630) for _ in range(n)], n, repeat)

    def astropy_writer():
        sub = image.subimage(Box.from_corners(500, 600, 530, 630))
        header = fits.Header()
        header["CUTMINX"], header["CUTMINY"] = 500, 600
        header.update(wcs_to_header(shift_wcs(sub.wcs, 500, 600)))
        kernel = sub.psf.kernel_image(514.5, 614.5)
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(sub.image, header=header),
                      fits.ImageHDU(sub.variance, name="UNCERT"),
                      fits.ImageHDU(kernel, name="PSFIMAGE")]).writeto(buffer)
        return buffer.getvalue()

    slow, _ = _best(lambda: [astropy_writer() for _ in range(20)], 20, 1)
    print(f"one 30x30 cutout (image+variance+PSF): direct writer {fast:7.0f}/s, astropy "
          f"{slow:5.0f}/s (x{fast / slow:.0f})", flush=True)


def bench_association(n_obj: int, n_src: int) -> None:
    rng = np.random.default_rng(1)
    ra = rng.uniform(148.4, 151.6, n_obj)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(0.4)), np.sin(np.radians(3.6)),
                                           n_obj)))
    objects = pa.table({"diaObjectId": np.arange(n_obj, dtype=np.int64), "ra": ra, "dec": dec})
    k = rng.choice(n_obj, int(0.9 * n_src), replace=False)
    sra = np.concatenate([ra[k] + rng.normal(0, 0.1 / 3600, k.size),
                          rng.uniform(148.4, 151.6, n_src - k.size)])
    sdec = np.concatenate([dec[k] + rng.normal(0, 0.1 / 3600, k.size),
                           rng.uniform(0.4, 3.6, n_src - k.size)])
    sources = dia_source_table(np.arange(n_src) + 10**9, sra, sdec, 60000.0, visit=1,
                               detector=1)
    start = time.perf_counter()
    result = associate(sources, objects, radius_arcsec=1.0)
    t_assoc = time.perf_counter() - start
    start = time.perf_counter()
    summary = summarize_dia_objects(result.dia_sources)
    t_sum = time.perf_counter() - start
    correct = np.mean(result.dia_sources.column("diaObjectId").to_numpy()[:k.size] == k)
    print(f"association {n_src} sources vs {n_obj} objects: {t_assoc:.3f} s "
          f"({result.matched.sum()} matched, {correct:.4f} to the right object); "
          f"summaries of {summary.num_rows} objects: {t_sum:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=5000, help="alerts per measurement")
    parser.add_argument("--batches", default="50,500,5000", help="alerts per detector-visit")
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--holes", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--skip-association", action="store_true")
    args = parser.parse_args()
    bench_cutout_writers(args.repeat)
    for batch in (int(b) for b in args.batches.split(",")):
        bench_packets(args.alerts, batch, args.history, args.holes, args.repeat)
    if not args.skip_association:
        bench_association(args.objects, args.sources)


if __name__ == "__main__":
    main()
