"""Rebuild the bundled sample (``cxr_keras/sample_data``) from the shared data packs.

The sample is a small, real, attributed subset that lets a fresh clone run ``make demo``,
the notebooks and the tests that need no large data. Selection is deterministic (patients
ordered by a hash of their id, every image of a chosen patient kept, so patient-wise
splits have something to do). Files are copied byte for byte; their sha256 is recorded.

Usage:
    python tools/build_sample_data.py --shared ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "cxr_keras" / "sample_data"
KERMANY_PER_CLASS = {"kermany_pneumonia_224": 100, "kermany_pneumonia": 30}
NIH_MIN_POSITIVES = 10
NIH_NO_FINDING = 20


def _order(key: str) -> str:
    return hashlib.sha1(f"sample:{key}".encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_kermany(shared: Path) -> pd.DataFrame:
    rows = []
    for pack, per_class in KERMANY_PER_CLASS.items():
        manifest = pd.read_csv(shared / pack / "manifest.csv")
        for label, group in manifest.groupby("label"):
            patients = sorted(group.patient_id.unique(), key=_order)
            taken = 0
            for patient in patients:
                if taken >= per_class:
                    break
                images = group[group.patient_id == patient]
                if taken + len(images) > per_class + 2:
                    continue
                for _, row in images.iterrows():
                    src = shared / pack / row.path
                    dst = OUT / "kermany" / label / Path(row.path).name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
                    rows.append(
                        {
                            "path": f"{label}/{dst.name}",
                            "label": label,
                            "patient_id": patient,
                            "subtype": row.subtype,
                            "pack": pack,
                            "sha256": _sha256(dst),
                        }
                    )
                taken += len(images)
    out = pd.DataFrame(rows).sort_values("path")
    out.to_csv(OUT / "kermany" / "manifest.csv", index=False)
    return out


def build_nih(shared: Path) -> pd.DataFrame:
    pack = shared / "nih_cxr14_sample"
    labels = pd.read_csv(pack / "labels.csv")
    boxes = pd.read_csv(pack / "bbox.csv")
    findings = [c for c in labels.columns[9:] if c != "No Finding"]
    labels = labels.assign(_order=labels.image_index.map(_order)).sort_values("_order")
    chosen = set(boxes.path)
    for finding in findings:
        have = labels[labels.path.isin(chosen)][finding].sum()
        for path in labels[labels[finding] == 1].path:
            if have >= NIH_MIN_POSITIVES:
                break
            if path not in chosen:
                chosen.add(path)
                have += 1
    chosen.update(labels[labels["No Finding"] == 1].path.head(NIH_NO_FINDING))
    subset = labels[labels.path.isin(chosen)].drop(columns="_order").sort_values("path")
    for path in subset.path:
        dst = OUT / "nih" / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pack / path, dst)
    subset.to_csv(OUT / "nih" / "labels.csv", index=False)
    boxes.to_csv(OUT / "nih" / "bbox.csv", index=False)
    return subset


def build_dicom(shared: Path) -> None:
    dst = OUT / "dicom" / "pydicom_data_RG1_J2KI.dcm"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "dicom" / "pydicom_data_RG1_J2KI.dcm", dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    for name in ("kermany", "nih", "dicom"):
        shutil.rmtree(OUT / name, ignore_errors=True)
    kermany = build_kermany(args.shared)
    nih = build_nih(args.shared)
    build_dicom(args.shared)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(
        f"kermany: {len(kermany)} images, {kermany.patient_id.nunique()} patients, "
        f"{kermany.label.value_counts().to_dict()}"
    )
    print(f"nih: {len(nih)} images; positives: {nih.iloc[:, 9:].sum().astype(int).to_dict()}")
    print(f"total sample size: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
