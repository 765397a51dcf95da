"""Latency of prompt processing: raw ingest → alert packets for one LSSTCam 4k × 4k CCD on one core.

Simulates one LSSTCam detector (R22_S11 by default) on two nights: the first night makes the
template (cp bias/dark/flat, single-frame processing, template coadd), the second is the
science visit.  The science raw is ingested, the prompt service (one worker, in-process) runs
the AP chain on it, and the latency-table row is printed: per-step wall times and the total
from the raw's registration to the alert packets written.  Goal (issue 8): total ≤ 10 s.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_ap.py [--detector 94] [--out DIR]``
(the thread variables are set to 1 here before numpy loads, for the one-core figure).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

__all__ = ["main"]


def main() -> None:
    """Run the benchmark and print the per-step latency."""
    from pachon.core.skymap import SkyMap
    from pachon.pipelines.demo import AP_OVERRIDES, ap_sim_dict, prepare_ap_repo
    from pachon.repo import Repository
    from pachon.repo.butler import now_ns
    from pachon.repo.refcat import ingest_refcat
    from pachon.services.prompt import STEPS, PromptConfig, PromptService
    from pachon.sim import SimConfig
    from pachon.sim.api import simulate_survey

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", type=int, default=94)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--transients", type=int, default=20)
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_ap_"))
    d = ap_sim_dict(2, 2, (args.detector,), args.transients)
    d["instrument"] = "LSSTCam"
    d["sky"]["star_density"] = 20000.0
    cfg = SimConfig.from_dict(d)
    t0 = time.perf_counter()
    sim = simulate_survey(cfg, root / "sim", seed=11)
    print(f"simulate: {time.perf_counter() - t0:.1f} s ({len(sim.all_raw_files)} raws)")
    first_day = min(v.day_obs for v in sim.visits)
    first = {f"_{v.day_obs}_{v.seq_num:06d}_" for v in sim.visits if v.day_obs == first_day}
    science = [p for p in sim.raw_files if not any(k in p.name for k in first)]
    repo = Repository.create(root / "repo")
    repo.ingest_raws([p for p in sim.all_raw_files if p not in science])
    ingest_refcat(repo, cfg.refcat_name, sim.refcat_files)
    sky = SkyMap()
    repo.register_skymap(sky, tracts=sorted({int(sky.find_tract(v.ra, v.dec)) for v in sim.visits}))
    t0 = time.perf_counter()
    prepare_ap_repo(repo, sim.instrument, [f"refcats/{cfg.refcat_name}"], first_day)
    print(f"calibrations and template: {time.perf_counter() - t0:.1f} s")
    since = now_ns()
    t0 = time.perf_counter()
    repo.ingest_raws(science)
    print(f"ingest of the science raw: {time.perf_counter() - t0:.2f} s")
    service = PromptService(PromptConfig(repo.root, workers=1, poll_s=0.05, overrides=AP_OVERRIDES,
                                         since_ns=since))
    rows = service.run(once=True)
    service.close()
    repo.close()
    for r in rows:
        print(f"\nexposure {r['exposure']} detector {r['detector']}: {r['status']}, {r['n_alerts']} alerts"
              + (f" ({r['failed_step']}: {r['error']})" if r["status"] != "succeeded" else ""))
        for s in STEPS:
            print(f"  {s:<13} {r[f'{s}_s']:6.2f} s")
        print(f"  {'queue':<13} {r['queue_s']:6.2f} s  (ingest registered → first step)")
        print(f"  {'total':<13} {r['total_s']:6.2f} s  (ingest → alerts written; goal ≤ 10 s: "
              f"{'met' if r['total_s'] <= 10 else 'NOT met'})")
    print(f"\noutputs under {root}")


if __name__ == "__main__":
    main()
