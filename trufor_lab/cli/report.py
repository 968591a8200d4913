"""``trufor-lab report IMAGE -o report.html``: one self-contained HTML report for an image."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from trufor_lab.casebook.compare import compare
from trufor_lab.casebook.report import build_report, same_file, save_pdf, write_report, written_here
from trufor_lab.common.files import blocking_file, unwritable_reason
from trufor_lab.common.paths import IMAGE_EXTENSIONS, display_name
from trufor_lab.forensics.provenance import read_provenance
from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.load import load
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.inference import weights as W
from trufor_lab.inference.weights import WeightsError
from trufor_lab.model import CheckpointError
from trufor_lab.model.trufor import MIN_TRUFOR_SIDE
from trufor_lab.cli.messages import PRECISION_HELP, WEIGHTS_HELP, device_help, error, first_line, model_note, printable


def register(subparsers: Any) -> argparse.ArgumentParser:
    """``trufor-lab report IMAGE -o report.html [--weights] [--compare] [--device] [--pdf]``."""
    r = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report for an image",
        description="Analyze one image and write a self-contained HTML report (no scripts, no external assets): "
        "the map, where it is flagged and how confident, in words gated by the confidence map and the weights; "
        "-o report.pdf (or --pdf) writes a PDF too.",
    )
    r.add_argument("image", metavar="IMAGE", help="the image to analyze")
    r.add_argument(
        "-o",
        "--output",
        required=True,
        help="the HTML file to write, or a .pdf (then the PDF, with the HTML beside it); an existing file is "
        "replaced only if it is .html, .htm, .pdf or a report written here",
    )
    r.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    r.add_argument(
        "--compare",
        default=None,
        metavar="OTHER",
        help="another version of the same picture (e.g. the earlier post) to compare with",
    )
    r.add_argument("--device", default=None, help=device_help())
    r.add_argument("--precision", default="float32", choices=["float32", "float64"], help=PRECISION_HELP)
    r.add_argument(
        "--no-demo",
        action="store_true",
        help="without a TruFor checkpoint, report Noiseprint++ only instead of the demo model",
    )
    r.add_argument("--pdf", action="store_true", help="also write a PDF (same name, .pdf) with matplotlib")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and notes")
    r.set_defaults(func=run)
    return r


#: What ``-o`` may replace when it exists: an earlier report. Anything else (an image: see
#: :data:`~trufor_lab.common.paths.IMAGE_EXTENSIONS`) is someone's file, maybe evidence.
REPORT_SUFFIXES = (".html", ".htm", ".pdf")


def _outputs(output: str, pdf: bool) -> list[tuple[Path, str]]:
    """The files to write: the HTML report, and with ``--pdf`` the PDF beside it. ``-o case.pdf
    --pdf`` (any letter case: ``Case.PDF`` and ``Case.pdf`` are one file on macOS and Windows)
    puts the PDF there and the HTML beside it, never the HTML under the PDF's name; so does
    ``-o case.pdf`` alone (it wrote HTML into a file named .pdf, which PDF viewers refuse)."""
    out = Path(output)
    if not pdf and out.suffix.lower() != ".pdf":
        return [(out, "report")]
    if out.suffix.lower() == ".pdf":
        return [(out.with_suffix(".html"), "report"), (out, "PDF")]
    return [(out, "report"), (out.with_suffix(".pdf"), "PDF")]


def _output_problem(out: Path, what: str, inputs: list[str], named: bool = True) -> str | None:
    """Why ``out`` must not be written, in one line (names escaped by :func:`error`), or None.
    ``named``: the user named this file with ``-o`` (the HTML beside ``-o case.pdf`` is not: an
    existing ``case.html`` is replaced only when it is a report of ours)."""
    clash = next((p for p in inputs if same_file(out, p)), None)
    if clash is not None:  # -o photo.jpg would replace the evidence with HTML
        return f"{out}: refusing to write the {what} over the input image {clash}; choose another -o"
    blocker = blocking_file(out)
    if blocker is not None:
        return f"{out}: cannot write the {what}: {blocker} is a file, not a folder"
    why = unwritable_reason(out.parent)
    if why is not None:  # said before the model loads and the image is analysed, not after
        return f"{out}: cannot write the {what} ({why})"
    if out.is_dir() and what == "report":  # (a PDF that cannot be written is said after the HTML is)
        return f"{out}: is a folder; -o names the report file to write (e.g. {out / 'report.html'})"
    suffix = out.suffix.lower()
    named_so = named and suffix in REPORT_SUFFIXES and suffix not in IMAGE_EXTENSIONS
    if os.path.lexists(out) and not named and not written_here(out):
        return (
            f"{out}: exists and is not a report written here (the HTML that goes beside the PDF); "
            "not overwritten: choose another -o"
        )
    if os.path.lexists(out) and not (named_so or written_here(out)):
        return (
            f"{out}: exists and is not a report (not .html, .htm or .pdf); not overwritten "
            "(a typo for --compare? choose another -o)"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand: 0 written, 1 bad input or unwritable output, 2 bad weights."""

    if args.no_demo and args.weights is not None:  # it was accepted and ignored
        error("--no-demo chooses what answers when no TruFor checkpoint is found; --weights names one (drop one)")
        return 2
    if args.compare is not None and not args.compare.strip():  # the report came without it, unsaid
        error("--compare is empty (an unset variable?)")
        return 1
    inputs = [args.image] + ([args.compare] if args.compare else [])
    try:
        loaded = [load_image(p) for p in inputs]  # the images checked before the (slow) model load
        provenance = read_provenance(args.image)
    except (ImageError, ValueError) as e:
        error(str(e))  # whole and escaped: a newline in the name must not cut off the reason
        return 1
    except OSError as e:  # read by the provenance reader: removed or made unreadable meanwhile
        error(f"{e.filename or args.image}: cannot read ({e.strerror or type(e).__name__})")
        return 1
    try:
        full_model = W.select(args.weights, demo=not args.no_demo)[1] != "noiseprint"
    except WeightsError:
        full_model = False  # said by the load below
    for p, img in zip(inputs, loaded):  # what the network cannot take, before loading it
        h, w = img.rgb.shape[:2]
        if full_model and min(h, w) < MIN_TRUFOR_SIDE:
            error(f"{p}: image is {w}x{h}; TruFor needs at least {MIN_TRUFOR_SIDE} pixels on each side")
            return 1
    if args.output.endswith(("/", os.sep)) or (os.altsep and args.output.endswith(os.altsep)):
        args.output = os.path.join(args.output, "report.html")  # `-o newdir/`: a folder, not a file named so
    outputs = _outputs(args.output, args.pdf)
    html_path, pdf_path = outputs[0][0], outputs[-1][0]
    for out, what in outputs:  # said before the (slow) model load and analysis
        # the HTML beside `-o case.pdf` replaces only a report of ours (a saved web page of that
        # name is someone's); the PDF beside `-o case.html --pdf` replaces a .pdf as before
        why = _output_problem(out, what, inputs, named=out == Path(args.output) or what == "PDF")
        if why is not None:
            error(why)
            return 1
    provenance.name = display_name(provenance.name)
    try:
        model = load(args.weights, device=args.device, precision=args.precision, demo=not args.no_demo)
    except (CheckpointError, WeightsError, ValueError, RuntimeError) as e:
        error(e)
        return 2
    model_note(model, args.weights)
    try:
        # the pictures read above, not decoded again (a 12 MP photo takes a while to decode)
        result = analyze(model, loaded[0], name=display_name(args.image), exif_transpose=True)
        comparison = None
        if args.compare:
            other = analyze(model, loaded[1], name=display_name(args.compare), exif_transpose=True)
            try:
                comparison = compare(result, other)
            except MemoryError:  # both analyses stand: the report goes out without the comparison
                print(
                    f"note: {printable(args.compare)}: not enough memory to compare the two versions; "
                    "the report has no comparison (crop or downscale both to compare them)",
                    file=sys.stderr,
                )
    except ImageError as e:
        error(str(e))
        return 1
    except (RuntimeError, MemoryError) as e:
        error(f"{args.image}: analysis failed ({first_line(e)[:200]})")
        return 1
    try:
        out = write_report(html_path, build_report(result, provenance, comparison))
    except OSError as e:
        error(f"{html_path}: cannot write report ({e.strerror or first_line(e)})")
        return 1
    try:
        pdf = save_pdf(pdf_path, result, provenance, comparison) if len(outputs) == 2 else None
    except OSError as e:
        error(f"{pdf_path}: cannot write the PDF ({e.strerror or first_line(e)}); the HTML report is written: {out}")
        return 1
    if not args.quiet:
        print(printable(result.summary()))
        if comparison is not None and comparison.result_b is not None:
            print(printable(comparison.result_b.summary()))
        print(printable(f"report written: {out}" + (f" (and {pdf})" if pdf else "")))
    return 0
