"""Fit the DIA reliability classifier on simulated detections and write the packaged model.

Usage::

    .venv/bin/python benchmarks/train_reliability.py [--pairs 16] [--test-pairs 4] [--out PATH]

Simulates ``--pairs`` 512x512 pairs (seeds 0..pairs-1) with real (transients, variables,
trails) and bogus (misaligned and misconvolved stars, cosmic rays, bad columns) sources
(:func:`pachon.algorithms.dia.reliability_training.simulate_detections`), fits the logistic
regression (:func:`pachon.algorithms.dia.reliability.fit_logistic`), reports the AUC on
``--test-pairs`` held-out pairs (seeds from 1000; the unit test uses seeds from 2000), and
writes the JSON model (default: the package's ``reliability_model.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pachon.algorithms.dia.reliability import FEATURES, MODEL_RESOURCE, auc, fit_logistic
from pachon.algorithms.dia.reliability_training import simulate_detections

__all__: list[str] = []

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "pachon" / "algorithms" / "dia" / MODEL_RESOURCE


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and write the model (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--test-pairs", type=int, default=4)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    x, y = simulate_detections(range(a.pairs))
    model = fit_logistic(x, y)
    xt, yt = simulate_detections(range(1000, 1000 + a.test_pairs))
    print(f"trained on {len(y)} detections ({int(y.sum())} real) in {time.perf_counter() - t0:.0f} s")
    print(f"AUC train {auc(model.predict(x), y):.3f}, held-out {auc(model.predict(xt), yt):.3f} "
          f"({len(yt)} detections, {int(yt.sum())} real)")
    for name, wgt in zip(FEATURES, model.weights, strict=True):
        print(f"  {name:<13} {wgt:+.3f}")
    data = model.to_dict()
    data["trained_on"] = {"pairs": a.pairs, "detections": len(y), "real": int(y.sum()),
                          "heldout_auc": round(auc(model.predict(xt), yt), 4)}
    a.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
