"""``hccrad``: the console command; ``hccrad predict`` scores a new patient with a bundle."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hccrad.bundle.manifest import BundleError
from hccrad.bundle.predict import WORK, describe, options, predict_patients
from hccrad.bundle.store import load_bundle
from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.imaging.read import ImageQCError

EPILOG = """\
example:
  hccrad predict results/sim_tace/bundle/response --patient-id P001 \\
      --phase arterial=P001/arterial --phase portal_venous=P001/pv.nii.gz \\
      --phase hepatobiliary=P001/hbp.nii.gz --mask P001/rtstruct.dcm \\
      --clinical age=63 sex=M aetiology=HBV bclc=B ... --out scored/P001

Each phase is a DICOM series folder or a NIfTI file; the mask a NIfTI label map (1 liver,
2 tumour), a DICOM SEG or an RTSTRUCT drawn on the first phase's series. Without a tumour
mask, give the liver alone (--liver-mask) and the bundle's segmentation network draws the
tumour. Output in --out/<patient>: predictions.tsv, domain_flags.tsv, gradcam.png, report.html
and report.pdf.
"""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``hccrad`` and its ``predict`` command."""
    main = argparse.ArgumentParser(prog="hccrad", description="hccrad on the command line.")
    commands = main.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="score a new patient with a trained model bundle",
        description="Score a new patient's pre-TACE scan with a bundle that the workflow wrote "
        "(results/<cohort>/bundle/<endpoint>): the same preparation, radiomics, DLTR network and "
        "models as the run, with thresholds, risk group, conformal interval, out-of-domain "
        "flags, Grad-CAM and a one-page report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("bundle", type=Path, help="the bundle folder")
    predict.add_argument("--patient-id", help="the patient's id (else the clinical sheet's)")
    predict.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="PHASE=PATH",
        help="one per training phase (the manifest's phases): DICOM series folder or NIfTI",
    )
    masks = predict.add_mutually_exclusive_group(required=True)
    masks.add_argument("--mask", help="tumour mask: NIfTI label map, DICOM SEG or RTSTRUCT")
    masks.add_argument(
        "--liver-mask", help="liver-only mask: the bundle's segmentation network draws the tumour"
    )
    predict.add_argument(
        "--clinical", nargs="*", default=[], metavar="KEY=VALUE", help="clinical covariates"
    )
    predict.add_argument(
        "--clinical-sheet",
        type=Path,
        help="one-row TSV of the patient (patient_id, clinical covariates; may hold images)",
    )
    predict.add_argument("--centre", help="the patient's centre (shown in the report)")
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument("--risk-outcome", help="survival outcome of the risk group cut-off")
    predict.add_argument("--no-report", action="store_true", help="skip report.html/pdf")
    predict.add_argument("--threads", type=int, default=1, help="worker processes (default 1)")
    return main


def patient_sheet(args: argparse.Namespace, phases: Sequence[str], out: Path) -> pd.DataFrame:
    """The patient as a one-row sheet, written and read back as the workflow reads sheets."""
    row: dict[str, object] = {}
    if args.clinical_sheet is not None:
        given = read_patients(args.clinical_sheet, index=False)
        if len(given) != 1:
            raise BundleError(f"{args.clinical_sheet}: {len(given)} rows; one patient expected")
        row |= given.iloc[0].dropna().to_dict()
    row |= options(args.clinical)
    if args.patient_id:
        row["patient_id"] = args.patient_id
    if "patient_id" not in row:
        raise BundleError("no patient id: give --patient-id or a patient_id column")
    if args.centre:
        row["centre"] = args.centre
    images = options(args.phase)
    unknown = sorted(set(images) - set(phases))
    if unknown:
        raise BundleError(f"phase(s) {unknown} unknown; the bundle's phases are {list(phases)}")
    row |= {f"image_{phase}": path for phase, path in images.items()}
    row["mask"] = args.mask or args.liver_mask
    path = out / "sheet.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    first = ["patient_id", *[k for k in row if k != "patient_id"]]
    pd.DataFrame([row])[first].to_csv(path, sep="\t", index=False)
    return read_sheet(path)


def draw_gradcam(panels: object, png: Path) -> None:
    """The workflow's Grad-CAM figure of one patient (hccrad.figures, imported on use)."""
    from hccrad.figures.deep import grad_cam_figure
    from hccrad.figures.style import save_figure

    save_figure(grad_cam_figure(panels), png)


def render_patient_report(*args: object, **kwargs: object) -> Path:
    """The one-page patient report, HTML and PDF (hccrad.figures, imported on use)."""
    from hccrad.figures.patient import render_patient_report as render

    return render(*args, **kwargs)


def draw_qc(*args: object, **kwargs: object) -> object:
    """The workflow's preparation QC image (hccrad.figures, imported on use)."""
    from hccrad.figures.imaging import write_qc_png

    return write_qc_png(*args, **kwargs)


def predict(args: argparse.Namespace) -> int:
    """Run ``hccrad predict``; print one line per model."""
    bundle = load_bundle(args.bundle)
    sheet = patient_sheet(args, bundle.manifest["phases"], args.out / WORK)
    scores = predict_patients(
        bundle,
        sheet,
        args.out,
        masks="liver_only" if args.liver_mask else "reference",
        risk_outcome_name=args.risk_outcome,
        draw_gradcam=draw_gradcam,
        draw_qc=draw_qc,
        render_report=None if args.no_report else render_patient_report,
        threads=args.threads,
    )
    for line in describe(scores):
        print(line)
    if scores.empty:
        print(f"not scored: excluded in preparation (see {args.out}/*/exclusion.tsv)")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hccrad`` console script."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return predict(args)
    # The bundle's and the images' own errors say what is wrong and how to fix it.
    except (BundleError, ImageQCError) as error:
        print(f"hccrad predict: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
