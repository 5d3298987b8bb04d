"""The drift report on streams whose answer is known: films like the reference, and not.

Copies the model (``--model``) to ``--out``/model and profiles it on half of its
validation split's patients (the reference); the other half is never in the reference.
Then logs three streams through the Predictor with an audit log, over ``--days`` days,
and runs the monitor on each:

- ``held_out``: the other half of the validation patients' films, as they are: the same
  distribution, other films. Expected: stable.
- ``nih``: adult NIH ChestX-ray14 films (``nih_cxr14_sample``): another population,
  another hospital. Expected: drift.
- ``contrast``: the held-out films under the stress shift "contrast compression 60 %"
  (:mod:`cxr_keras.evaluation.stress`): the same patients, another acquisition.
  Expected: drift.

Prints each stream's verdicts and where its report is, and a last line ``verdicts:``.

Usage:
    python benchmarks/monitor_streams.py [--model kermany_pneumonia]
        [--out runs/monitor_streams] [--days 5]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "cxr_keras" / "pretrained" / "kermany_pneumonia"
sys.path.insert(0, str(REPO))


def main() -> None:
    import numpy as np

    from cxr_keras.artifact.audit_log import AuditLog
    from cxr_keras.artifact.predictor import Predictor, manifest_sizes
    from cxr_keras.artifact.reference_profile import profile_answers, save_profile
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.data.io import load_image
    from cxr_keras.data.sources import image_files
    from cxr_keras.evaluation.frames import artifact_manifest, select_split
    from cxr_keras.evaluation.stress import apply_shift
    from cxr_keras.serving.monitor import monitor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "monitor_streams")
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()

    model = copy_artifact(args.model, args.out / "model")
    artifact = load_artifact(model)
    val = select_split(artifact_manifest(artifact), "val", "val")
    patients = np.array(sorted(val["patient_id"].unique()))
    rng = np.random.default_rng(0)
    chosen = set(rng.choice(patients, size=len(patients) // 2, replace=False))
    in_reference = val["patient_id"].isin(chosen).to_numpy()
    reference, held_out = val[in_reference], val[~in_reference]

    predictor = Predictor(artifact)
    answers, decoded = predictor.predict_manifest(reference.reset_index(drop=True))
    kept = reference.reset_index(drop=True)[decoded]
    profile = profile_answers(
        predictor,
        answers,
        sizes=manifest_sizes(kept),
        source=f"half of the val split's patients ({len(kept)} films)",
    )
    artifact.meta["reference_profile"] = save_profile(profile, model)
    write_meta(artifact.meta, model)
    print(f"reference: {len(kept)} films of {len(chosen)} validation patients")

    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    nih, _ = image_files(args.data / "nih_cxr14_sample" / "images")
    # films arrive in no particular order: a stream sorted by class would change its
    # prevalence from one day to the next, a label shift of the benchmark's own making
    films = list(rng.permutation(held_out["path"].to_numpy()))
    nih = list(rng.permutation([str(p) for p in nih]))
    streams = {"held_out": films, "nih": nih, "contrast": films}
    for name, paths in streams.items():
        db = args.out / f"{name}.db"
        db.unlink(missing_ok=True)
        moment = {"at": start}
        log = AuditLog(db, clock=lambda m=moment: m["at"])
        logged = Predictor(artifact, audit_log=log)
        for day, part in enumerate(np.array_split(np.array(paths, dtype=object), args.days)):
            moment["at"] = start + timedelta(days=day, hours=1)
            if name == "contrast":  # the films as another device would have taken them
                images = np.stack([load_image(p, artifact.image_spec) for p in part])
                logged.predict(apply_shift(images, shift="contrast compression", severity=1))
            else:
                logged.predict_files(list(part))
        log.close()
        result = monitor(model, log=db, out=args.out / f"report_{name}")
        rows = {**result["labels"], **result["rates"], **result["image"]}
        shown = ", ".join(
            f"{k} {v['verdict']}" + (f" (PSI {v['psi']:.2f})" if v.get("psi") is not None else "")
            for k, v in rows.items()
        )
        print(f"{name}: {result['answers']} answers: {result['verdict'].upper()}; {shown}")
        print(f"  report: {args.out / f'report_{name}' / 'drift_report.md'}")
        streams[name] = result["verdict"]
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in streams.items()))


if __name__ == "__main__":
    main()
