"""Alert packets built + serialized per second per core, and association speed.

Usage::

    .venv/bin/python benchmarks/bench_alerts.py [--packets 20000] [--history 0,10]
        [--objects 1000000] [--sources 10000]

Packets: one DiaSource, its DiaObject and ``--history`` previous DiaSources and forced
sources (APDB rows as dicts), built with :func:`pachon.alerts.packet.build_alert` and
serialized to the Confluent wire format in the latest schema, on one core.  "with cutouts"
adds three 30x30 cutouts; "cutouts pre-encoded" passes them as FITS bytes (as a pipeline that
writes each cutout once would), "cutouts from Exposure" encodes the FITS per packet.
For comparison the same packets are serialized with lsst-alert-packet's ``Schema.serialize``.

Association: ``--sources`` DiaSources against ``--objects`` DiaObjects spread over ~10 deg^2,
90 % of the sources on an object (0.1" noise), with :func:`associate` (matching + new ids)
and :func:`summarize_dia_objects` of the matched objects' new versions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from pachon.alerts.packet import build_alert, cutout_to_fits_bytes
from pachon.alerts.schema import latest_version, schema_path
from pachon.alerts.serialize import alerts_to_arrow, serialize_alert, serialize_alerts
from pachon.algorithms.association import associate, summarize_dia_objects
from pachon.apdb.synthetic import dia_forced_source_table, dia_source_table
from pachon.core.exposure import Exposure
from pachon.core.psf import GaussianPsf
from pachon.core.wcs import make_tan_wcs


def _rows(history: int):
    times = 60000.0 - np.arange(history + 1)[::-1]
    sources = dia_source_table(np.arange(history + 1) + 1, 150.0, 2.0, times, visit=1,
                               detector=3, dia_object_id=1, psf_flux=np.linspace(100, 200,
                                                                                 history + 1))
    forced = dia_forced_source_table(np.arange(history) + 1, 1, 150.0, 2.0, times[:-1],
                                     visit=1, detector=3)
    obj = summarize_dia_objects(sources).to_pylist()[0]
    rows = sources.to_pylist()
    return rows[-1], obj, rows[:-1], forced.to_pylist()


def _cutouts() -> dict[str, Exposure]:
    wcs = make_tan_wcs(150.0, 2.0, 0.2, crpix=(100.0, 100.0))
    rng = np.random.default_rng(0)
    return {k: Exposure(rng.normal(0, 1, (30, 30)).astype(np.float32),
                        variance=np.ones((30, 30), np.float32), wcs=wcs,
                        psf=GaussianPsf(1.5), xy0=(85, 85))
            for k in ("science", "template", "difference")}


def bench_packets(n: int, history: int) -> None:
    source, obj, prv, forced = _rows(history)
    cut = _cutouts()
    cut_bytes = {k: cutout_to_fits_bytes(v) for k, v in cut.items()}
    cases = [("no cutouts", None, n), ("cutouts pre-encoded", cut_bytes, n),
             ("cutouts from Exposure", cut, max(n // 50, 50))]
    for label, cutouts, count in cases:
        start = time.perf_counter()
        size = 0
        for i in range(count):
            alert = build_alert(dict(source, diaSourceId=i + 10), obj, prv, forced, None, cutouts)
            size += len(serialize_alert(alert, wire=True))
        rate = count / (time.perf_counter() - start)
        print(f"history={history:3d}  {label:22s} {rate:9.0f} packets/s/core  "
              f"({size / count / 1024:.1f} KiB/packet)")
    from lsst.alert.packet import Schema

    schema = Schema.from_file(str(schema_path(latest_version())))
    alert = build_alert(source, obj, prv, forced, None, None)
    start = time.perf_counter()
    for _ in range(n):
        schema.serialize(alert)
    print(f"history={history:3d}  {'lsst-alert-packet serialize only':22s} "
          f"{n / (time.perf_counter() - start):9.0f} packets/s/core (peer, no build)")
    start = time.perf_counter()
    for _ in range(n):
        serialize_alert(alert)
    ref_rate = n / (time.perf_counter() - start)
    print(f"history={history:3d}  {'pachon serialize only':22s} {ref_rate:9.0f} packets/s/core "
          "(fastavro, one call per packet: the reference)")
    for label, cutouts in (("no cutouts", None), ("cutouts pre-encoded", cut_bytes)):
        alerts = [build_alert(dict(source, diaSourceId=i + 10), obj, prv, forced, None, cutouts)
                  for i in range(n)]
        start = time.perf_counter()
        table = alerts_to_arrow(alerts)
        t_arrow = time.perf_counter() - start
        start = time.perf_counter()
        packets = serialize_alerts(table, wire=True)
        t_enc = time.perf_counter() - start
        step = max(n // 50, 1)  # byte-identical to the reference path (a sample of 50)
        assert packets[::step] == [serialize_alert(a, wire=True) for a in alerts[::step]]
        print(f"history={history:3d}  batch {label:16s} {n / (t_arrow + t_enc):9.0f} packets/s/core "
              f"from dicts (x{n / (t_arrow + t_enc) / ref_rate:.1f} vs fastavro), "
              f"{n / t_enc:9.0f}/s from a columnar batch (x{n / t_enc / ref_rate:.1f})")


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
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--history", default="0,10")
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=10_000)
    args = parser.parse_args()
    for history in (int(h) for h in args.history.split(",")):
        bench_packets(args.packets, history)
    bench_association(args.objects, args.sources)


if __name__ == "__main__":
    main()
