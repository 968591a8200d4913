"""Fetch the real in-camera photos used to fine-tune the demo model, into a folder OUTSIDE the repo.

    python -m trufor_lab.training.fetch --dest /work/data/real

Sources (nothing else is kept; licence texts are copied beside the photos):

- Debian package ``forensics-samples-files`` (``apt-get download`` + ``dpkg -x``, no root
  needed): the camera photos of ``original-files/pic1`` and ``pic2`` -- four 4000x3000 Xiaomi
  Mi A3 JPEGs with EXIF, one Canon PowerShot SX530 HS photo (1280x960, re-saved by GIMP) and
  one WhatsApp re-encode (1024x768, no EXIF). Photos CC-BY-SA-4.0 (c) 2019-2020 Joao Eriberto
  Mota Filho; the package's ``copyright`` file is copied as ``forensics-samples/COPYRIGHT``.
- Pillow's source distribution (``pip download --no-deps --no-binary :all: pillow==X``):
  ``Tests/images/fujifilm.mpo``, two 3648x2736 frames of a Fujifilm stereo camera. The sdist
  states no separate licence for its test images, so the file falls under Pillow's own
  MIT-CMU licence (copied as ``pillow/LICENSE``); its origin is not documented further, so
  the project uses it for training/validation only and ships none of its pixels.

The scikit-image photographs need no fetching (they come with scikit-image).
Users can point the same recipe (:mod:`trufor_lab.training.photos`) at their own folder of
camera photos instead: one sub-folder per camera (``finetune_real --camera-folders``), or
photos whose EXIF names the camera model.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import PIL

from trufor_lab.common.files import atomic_write_bytes, atomic_write_path

DEB_PACKAGE = "forensics-samples-files"
DEB_PHOTO_DIR = "usr/share/forensics-samples/original-files"
DEB_PHOTOS = (
    "pic1/IMG_1054.JPG",
    "pic1/IMG-20191006-WA0002.jpg",
    "pic1/IMG_20200827_231612.jpg",
    "pic2/IMG_20191224_234846.jpg",
    "pic2/IMG_20200124_231153.jpg",
    "pic2/IMG_20200608_111614.jpg",
)
DEB_COPYRIGHT = "usr/share/doc/forensics-samples-files/copyright"
PILLOW_MEMBERS = {"Tests/images/fujifilm.mpo": "fujifilm.mpo", "LICENSE": "LICENSE"}


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as e:  # apt-get (or pip) not installed
        raise RuntimeError(f"{' '.join(cmd)}: cannot run ({e.strerror or e})") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        said = f": {tail[-1]}" if tail else ""
        raise RuntimeError(f"{' '.join(cmd)}: failed with exit status {r.returncode}{said}")


def _copy(src: Path, dst: Path) -> Path:
    """``src`` to ``dst`` atomically (an interrupted fetch leaves no cut photo to train on)."""
    return atomic_write_path(dst, lambda tmp: shutil.copy2(src, tmp))


def fetch_forensics_samples(dest: Path, work: Path) -> list[Path]:
    """``apt-get download`` the Debian package, unpack it, copy its camera photos + copyright."""
    _run(["apt-get", "download", DEB_PACKAGE], work)
    debs = sorted(work.glob(f"{DEB_PACKAGE}_*.deb"))
    if not debs:
        raise RuntimeError(f"{work}: apt-get download produced no {DEB_PACKAGE} .deb")
    root = work / "deb"
    _run(["dpkg", "-x", str(debs[-1]), str(root)], work)
    out = dest / "forensics-samples"
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for rel in DEB_PHOTOS:
        src = root / DEB_PHOTO_DIR / rel
        if not src.is_file():
            raise RuntimeError(f"{debs[-1]}: {rel} missing from the package")
        copied.append(_copy(src, out / src.name))
    _copy(root / DEB_COPYRIGHT, out / "COPYRIGHT")
    return copied


def fetch_pillow_mpo(dest: Path, work: Path, version: str = PIL.__version__) -> list[Path]:
    """``pip download`` Pillow's sdist and extract only ``fujifilm.mpo`` and the licence."""
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"pillow=={version}",
            "-d",
            str(work),
        ],
        work,
    )
    sdists = sorted(work.glob("pillow-*.tar.gz"))
    if not sdists:
        raise RuntimeError(f"{work}: pip download produced no pillow sdist")
    out = dest / "pillow"
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    with tarfile.open(sdists[-1]) as tar:
        top = tar.getnames()[0].split("/")[0]
        for member, name in PILLOW_MEMBERS.items():
            f = tar.extractfile(f"{top}/{member}")
            if f is None:
                raise RuntimeError(f"{sdists[-1]}: {member} missing")
            copied.append(atomic_write_bytes(out / name, f.read()))  # an interrupted fetch leaves no cut photo
    return copied


def fetch(dest: str | Path) -> list[Path]:
    """Fetch every source into ``dest``; returns the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = fetch_forensics_samples(dest, work)
        files += fetch_pillow_mpo(dest, work)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trufor_lab.training.fetch", description=__doc__.split("\n")[0])
    ap.add_argument("--dest", required=True, help="folder outside the repository")
    args = ap.parse_args(argv)
    try:
        files = fetch(args.dest)
    except (RuntimeError, OSError, tarfile.TarError) as e:  # offline, no apt-get: one line, no traceback
        print(f"error: {str(e).splitlines()[0] if str(e).strip() else type(e).__name__}", file=sys.stderr)
        return 2
    for p in files:
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
