"""Finding, verifying and downloading TruFor checkpoints.

Search order for the full TruFor checkpoint: an explicit path, then ``$TRUFOR_WEIGHTS``, then
``trufor.pth.tar`` in the per-user cache (``$TRUFOR_LAB_WEIGHTS_DIR``, else
``~/.cache/trufor_lab/weights`` or the platform's user cache folder; downloads go there), then
in the shipped weights folder (the wheel's ``trufor_lab/weights_data``, or ``weights/`` of a
checkout). Noiseprint++ alone: explicit path, then ``$TRUFOR_NOISEPRINT_WEIGHTS``, then
``noiseprint++.th`` in the same folders (shipped with the package, sha256-checked). The demo
model likewise.

Weights are untrusted input and are read with ``weights_only=True`` (see model/checkpoint.py).

Downloads use a small streamed fetcher (urllib: progress bar, MD5/sha256 check, atomic move,
a record of the verified digest) rather than pooch, which the issue suggested: pooch's
downloaders take http(s)/ftp/sftp/doi but not ``file://`` URLs, which the offline tests use to
exercise the real download path, and with pooch installed scikit-image tries to download its
non-bundled sample pictures at run time. The cache location does come from ``platformdirs``.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs
from tqdm.auto import tqdm

from trufor_lab.common.paths import why_not_found
from trufor_lab.inference import signing
from trufor_lab.model.checkpoint import is_torch_file
from trufor_lab.model.identity import OWN_CONFIG_NOTE, is_own_training  # noqa: F401 - re-exported: the weights record words

#: The package the wheel ships ``weights/`` as (``[tool.setuptools] package-dir`` in pyproject).
SHIPPED_PACKAGE = "trufor_lab.weights_data"
NOISEPRINT_FILE = "noiseprint++.th"
NOISEPRINT_SHA256 = "51c153596efecdfc9bdff1b961d63855b943e6a8fd37083cc7499e60b36dd8bf"
NOISEPRINT_URL = (
    "https://raw.githubusercontent.com/grip-unina/TruFor/main/TruFor_train_test/"
    "pretrained_models/noiseprint%2B%2B/noiseprint%2B%2B.th"
)
TRUFOR_FILE = "trufor.pth.tar"
TRUFOR_ZIP_URL = "https://www.grip.unina.it/download/prog/TruFor/TruFor_weights.zip"
TRUFOR_ZIP_MD5 = "7bee48f3476c75616c3c5721ab256ff8"
DEMO_FILE = "trufor_demo.pt"
#: sha256 of the demo model shipped in weights/ (see weights/DEMO_MODEL_CARD.md).
DEMO_SHA256 = "77ea2c0cc7b118e518636ec579a92486573f989c8739503eee81b367ed68d2bd"
#: The note of weights loaded as the demo model that are not the shipped file (another checksum).
DEMO_CLAIM_NOTE = "weights calling themselves the demo model (unknown checksum)"
LICENSE_FILE = "LICENSE-GRIP-UNINA.txt"
#: Prefix of the temporary folders downloads and installs work in: a killed one leaves its folder
#: behind, and the next download or install removes those older than STALE_AFTER_S (a running one is younger).
TMP_PREFIX = ".trufor-download-"
STALE_AFTER_S = 24 * 3600
LICENSE_NOTE = "GRIP-UNINA research licence: nonprofit research use only, notices kept, cite Guillaro et al., CVPR 2023"

HOW_TO_GET = (
    "run `trufor-lab weights download` (or download TruFor_weights.zip from the official "
    "TruFor page, MD5 " + TRUFOR_ZIP_MD5 + ", and run `trufor-lab weights install TruFor_weights.zip`; "
    "$TRUFOR_WEIGHTS may name its trufor.pth.tar instead, but a file not installed so is not verified)"
)
#: What verifies a TruFor checkpoint that has no download record of this installation.
HOW_TO_VERIFY = (
    "if this checkpoint is the official trufor.pth.tar, install TruFor_weights.zip with "
    "`trufor-lab weights install TruFor_weights.zip`: this file is then verified as the same bytes"
)
#: What to do where the download itself failed (never "run the download" again).
OFFLINE_HINT = (
    "on a machine without network: download TruFor_weights.zip from the official TruFor page "
    "elsewhere (MD5 " + TRUFOR_ZIP_MD5 + "), copy it here and run `trufor-lab weights install TruFor_weights.zip`"
)


class WeightsError(RuntimeError):
    """Weights that cannot be found, verified or downloaded; one-line message."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from, and whether their checksum is the known one."""

    kind: str  # 'official', 'noiseprint', 'demo', 'untrained' or 'custom' (origin not verified)
    path: str
    sha256: str
    verified: bool  # checksum matches a published one (or a verified download record)
    license: str = LICENSE_NOTE
    note: str = ""
    noiseprint_dtype: str = "float32"  # as the file stores Noiseprint++ (it is precision-sensitive)
    untrained: str = ""  # heads its file says were never trained ('confidence, detection'): random

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]

    def to_dict(self) -> dict:
        return asdict(self)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def md5_of(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def repo_weights_dir() -> Path:
    """The shipped weights folder: ``trufor_lab/weights_data`` of an installed wheel (the
    repository's ``weights/`` mapped into the package), else ``weights/`` of a source checkout.
    Holds Noiseprint++ and its licence, and the demo model."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if (Path(loc) / NOISEPRINT_FILE).is_file():
                return Path(loc)
    return Path(__file__).resolve().parents[2] / "weights"


def cache_dir() -> Path:
    """Per-user folder for downloaded checkpoints: ``$TRUFOR_LAB_WEIGHTS_DIR``, else the user
    cache (``~/.cache/trufor_lab/weights`` on Linux, via platformdirs), as torch and timm do."""
    env = os.environ.get("TRUFOR_LAB_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("trufor_lab")) / "weights"


def weights_dir() -> Path:
    """The folder written by downloads (the per-user :func:`cache_dir`)."""
    return cache_dir()


def search_dirs() -> list[Path]:
    """Folders searched for checkpoints, in order: the per-user cache, then the shipped folder."""
    dirs: list[Path] = []
    for d in (cache_dir(), repo_weights_dir()):
        if d not in dirs:
            dirs.append(d)
    return dirs


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def unsigned_reason() -> str | None:
    """Why an install cannot be marked verified now (its signing key cannot be made in the
    per-user cache: a read-only home), or ``None``. Made here, before anything is downloaded."""
    return signing.unsigned_reason(cache_dir())


def _record_verifies(rec: Path, digest: str) -> bool:
    """Whether ``rec`` records ``digest`` as extracted from the official archive by this installation."""
    return signing.record_verifies(rec, digest, TRUFOR_ZIP_MD5, cache_dir())


def _not_a_file(p: Path) -> str:
    """Why ``p`` cannot be read as a weights file, in a few words."""
    return "is a folder, not a file" if p.is_dir() else why_not_found(p)


def _not_empty(path: str | os.PathLike, what: str) -> str | os.PathLike:
    """``path``, refused when empty (an unset shell variable: ``Path("")`` is the current folder)."""
    if not os.fspath(path):
        raise WeightsError(f"the {what} path is empty (an unset variable?): name a checkpoint file")
    return path


def find_checkpoint(path: str | os.PathLike | None = None) -> Path | None:
    """Path of a full TruFor checkpoint, or ``None`` when none is installed."""
    if path is not None:
        p = Path(_not_empty(path, "weights"))
        if not p.is_file():
            raise WeightsError(f"{p}: {_not_a_file(p)}")
        return p
    env = os.environ.get("TRUFOR_WEIGHTS")
    if env:
        p = Path(env)
        if not p.is_file():
            raise WeightsError(f"{p}: $TRUFOR_WEIGHTS names no checkpoint file ({_not_a_file(p)})")
        return p
    for d in search_dirs():
        p = d / TRUFOR_FILE
        if p.is_file():
            return p
    return None


def named_by(weights: str | os.PathLike | None = None) -> str:
    """``'$TRUFOR_WEIGHTS'`` when that variable names the checkpoint these arguments pick (none
    named explicitly), else ``''``: a file a user set there and forgot is said with where it came from."""
    return "$TRUFOR_WEIGHTS" if weights is None and os.environ.get("TRUFOR_WEIGHTS") else ""


def find_demo() -> Path | None:
    """The embedded demo checkpoint, if this installation has one."""
    for d in search_dirs():
        p = d / DEMO_FILE
        if p.is_file():
            return p
    return None


def find_noiseprint(path: str | os.PathLike | None = None) -> Path:
    """Path of Noiseprint++ weights (explicit, ``$TRUFOR_NOISEPRINT_WEIGHTS``, then shipped)."""
    cand = _not_empty(path, "Noiseprint++ weights") if path is not None else os.environ.get("TRUFOR_NOISEPRINT_WEIGHTS")
    if cand:
        p = Path(cand)
        if not p.is_file():
            raise WeightsError(f"{p}: no Noiseprint++ weights file ({_not_a_file(p)})")
        return p
    # the shipped copy first: it is the official file (checked by describe); a cached copy only
    # stands in when an installation lacks it, so an unverified cached file never shadows it
    found = [d / NOISEPRINT_FILE for d in reversed(search_dirs()) if (d / NOISEPRINT_FILE).is_file()]
    verified = shipped_noiseprint_verified()  # a damaged shipped copy gives way to a verified download
    if verified is not None:
        return verified
    if found:
        return found[0]
    raise WeightsError(
        f"{NOISEPRINT_FILE} not found in {', '.join(map(str, search_dirs()))}: run `trufor-lab weights download`"
    )


def describe(path: str | os.PathLike, kind: str) -> WeightsInfo:
    """Checksum ``path`` and say whether it is a known, verified file."""
    p = Path(path)
    digest = _remembered_sha256(Path(p))
    real = p.resolve()  # a symlink's download record lies beside the file it names
    if kind == "noiseprint":
        verified = digest == NOISEPRINT_SHA256
        note = "official Noiseprint++" if verified else "Noiseprint++ weights with an unknown checksum"
        if p.name == NOISEPRINT_FILE and p.parent.resolve() == repo_weights_dir().resolve() and not verified:
            raise WeightsError(
                f"{p}: checksum {digest[:12]} is not the official {NOISEPRINT_SHA256[:12]} "
                "(file corrupted?); run `trufor-lab weights download` (a verified download is used instead of it)"
            )
        return WeightsInfo("noiseprint", str(p), digest, verified, note=note)
    if kind == "official":
        # its own record, or an installed copy's: the same sha256 is the same bytes (a copy named
        # by $TRUFOR_WEIGHTS or --weights is verified by `weights install` of the archive)
        records = [_record_path(real), *(_record_path(d / TRUFOR_FILE) for d in search_dirs())]
        verified = any(_record_verifies(rec, digest) for rec in records)
        note = (
            "official TruFor, verified download (zip MD5 " + TRUFOR_ZIP_MD5 + ")"
            if verified
            else "TruFor checkpoint not verified as the official weights (no download record of this "
            "installation): " + HOW_TO_VERIFY
        )
        return WeightsInfo("official" if verified else "custom", str(p), digest, verified, note=note)
    if kind == "demo" and digest == DEMO_SHA256:
        return WeightsInfo(
            "demo",
            str(p),
            digest,
            True,
            note="trufor_lab demo model (small; simulated cameras + real photos, calibrated score; weights/DEMO_MODEL_CARD.md)",
        )
    if kind == "demo":  # says it is the demo model, but is not the shipped file: someone else's weights
        return WeightsInfo("custom", str(p), digest, False, note=DEMO_CLAIM_NOTE)
    return WeightsInfo(kind, str(p), digest, False, note=f"{kind} weights")


def select(weights: str | os.PathLike | None = None, *, fallback: bool = True, demo: bool = True) -> tuple[Path, str]:
    """``(file, kind)`` that :func:`trufor_lab.load` reads for these arguments: ``weights`` (or
    the installed TruFor checkpoint, kind ``'official'``), else the demo model, else Noiseprint++."""
    ckpt = find_checkpoint(weights)
    if ckpt is not None:
        return ckpt, "official"
    if not fallback:
        raise WeightsError("no TruFor checkpoint installed: " + HOW_TO_GET)
    demo_path = find_demo() if demo else None
    if demo_path is not None:
        return demo_path, "demo"
    return find_noiseprint(), "noiseprint"


_DIGESTS: dict[tuple, str] = {}


def weights_sha256(weights: str | os.PathLike | None = None, *, demo: bool = True) -> str:
    """sha256 of the file :func:`select` picks, without loading it (remembered per file, size
    and modification time): tells whether an existing output was made with these weights."""
    path, _ = select(weights, demo=demo)
    return _remembered_sha256(path)


def noiseprint_sha256(path: str | os.PathLike | None = None) -> str:
    """sha256 of the Noiseprint++ file :func:`find_noiseprint` picks (``$TRUFOR_NOISEPRINT_WEIGHTS``,
    else the shipped one), without loading it: what made an output of Noiseprint++ alone (the
    classic ``noiseprint`` detector loads this file, whatever TruFor checkpoint is installed)."""
    return _remembered_sha256(find_noiseprint(path))


def _remembered_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered per file (device, inode), size, modification and change
    time (a checkpoint is hundreds of MB: hashed once per process). The inode and change time
    tell a replaced file from the old one even where a copy kept its size and mtime."""
    st = path.stat()
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(path)
    return _DIGESTS[key]


# -- download ---------------------------------------------------------------------------------
def noiseprint_offline_hint(folder: Path) -> str:
    """What to do where the download of Noiseprint++ failed: the file itself, fetched elsewhere
    and copied in by hand (its sha256 verifies it wherever it lies), not the TruFor archive."""
    return (
        f"on a machine without network: download {NOISEPRINT_FILE} elsewhere ({NOISEPRINT_URL}, sha256 "
        f"{NOISEPRINT_SHA256}), copy it to {folder / NOISEPRINT_FILE} (or set $TRUFOR_NOISEPRINT_WEIGHTS "
        "to its path); its sha256 is checked when it is loaded"
    )


def _fetch(
    url: str,
    dest: Path,
    progress: bool = True,
    timeout: float = 30.0,
    folder: Path | None = None,
    hint: str = OFFLINE_HINT,
) -> None:
    """Stream ``url`` into ``dest`` (a temporary file in ``folder``) with a progress bar. A failure
    to write ``dest`` (disk full) is told apart from a failure of the download, which ends with
    ``hint`` (what to do by hand: the file it was fetching, installed without network)."""
    folder = folder or dest.parent
    try:
        f = open(dest, "wb")
    except OSError as e:
        raise WeightsError(f"cannot write {folder}: {e.strerror or e}") from None
    got = 0
    try:
        with f, urllib.request.urlopen(url, timeout=timeout) as r:
            try:
                total = int(r.headers.get("Content-Length") or 0) or None
            except ValueError:
                total = None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=not progress)
            for block in iter(lambda: r.read(1 << 20), b""):
                try:
                    f.write(block)
                except OSError as e:
                    raise WeightsError(f"cannot write {folder}: {e.strerror or e}") from None
                got += len(block)
                bar.update(len(block))
            bar.close()
            try:
                f.flush()
            except OSError as e:
                raise WeightsError(f"cannot write {folder}: {e.strerror or e}") from None
            if total is not None and got != total:
                raise WeightsError(f"cannot download {url}: incomplete download (got {got} of {total} bytes)")
    except WeightsError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        # http.client's errors (a garbled status line, a broken body) say little by their text alone
        reason = f"{type(e).__name__}: {e!s}".rstrip(": ") if isinstance(e, http.client.HTTPException) else e
        reason = " ".join(str(getattr(e, "reason", reason)).split())[:200]
        raise WeightsError(f"cannot download {url}: {reason}; {hint}") from None


def _work_folder(d: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder in ``d`` (removed on leaving); a failure names ``d``, not the folder it
    could not make (a read-only ``d`` was reported as ``d/.trufor-download-x1y2``)."""
    try:
        return tempfile.TemporaryDirectory(dir=d, prefix=TMP_PREFIX)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(d)) from None


def _atomic_place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


def download_noiseprint(
    dest_dir: str | os.PathLike | None = None,
    url: str = NOISEPRINT_URL,
    sha256: str = NOISEPRINT_SHA256,
    progress: bool = True,
) -> Path:
    """Fetch the official Noiseprint++ weights, verify the checksum, place them atomically."""
    d = Path(dest_dir) if dest_dir else weights_dir()
    d.mkdir(parents=True, exist_ok=True)
    _remove_stale(d)
    with _work_folder(d) as tmp:
        part = Path(tmp) / (NOISEPRINT_FILE + ".part")
        _fetch(url, part, progress, folder=d, hint=noiseprint_offline_hint(d))
        got = sha256_of(part)
        if got != sha256:
            raise WeightsError(f"{url}: checksum {got[:12]} is not the expected {sha256[:12]}; nothing installed")
        _atomic_place(part, d / NOISEPRINT_FILE)
    return d / NOISEPRINT_FILE


def download_trufor(
    dest_dir: str | os.PathLike | None = None,
    url: str = TRUFOR_ZIP_URL,
    md5: str = TRUFOR_ZIP_MD5,
    progress: bool = True,
) -> Path:
    """Fetch ``TruFor_weights.zip`` and install it (:func:`install_trufor_zip`)."""
    d = Path(dest_dir) if dest_dir else weights_dir()
    d.mkdir(parents=True, exist_ok=True)
    _remove_stale(d)
    with _work_folder(d) as tmp:
        zpath = Path(tmp) / "TruFor_weights.zip"
        _fetch(url, zpath, progress, folder=d)
        return install_trufor_zip(zpath, d, md5=md5, source=url)


def install_trufor_zip(
    zip_path: str | os.PathLike,
    dest_dir: str | os.PathLike | None = None,
    md5: str | None = None,
    source: str | None = None,
) -> Path:
    """Check the MD5 of a ``TruFor_weights.zip`` (downloaded, or copied from another machine),
    extract ``trufor.pth.tar`` atomically into ``dest_dir`` (default: the per-user cache).

    A signed record beside the checkpoint remembers the verified checksum, so later loads can
    say "official, verified" without the zip.
    """
    zpath = Path(zip_path)
    where = source or str(zpath)
    md5 = md5 or TRUFOR_ZIP_MD5
    if not zpath.is_file():
        raise WeightsError(f"{zpath}: {_not_a_file(zpath)}")
    d = Path(dest_dir) if dest_dir else weights_dir()
    if (d / TRUFOR_FILE).is_dir():  # os.replace would fail at the end, naming the vanished temporary file
        raise WeightsError(
            f"{d / TRUFOR_FILE}: is a folder, where the checkpoint goes: move it away; nothing installed"
        )
    d.mkdir(parents=True, exist_ok=True)
    _remove_stale(d)  # what a killed install or download left (the next download alone removed them)
    got = md5_of(zpath)
    if got != md5:
        hint = " (it is a checkpoint itself, not the zip: use it with --weights FILE or $TRUFOR_WEIGHTS)"
        why = f"MD5 {got} is not the official TruFor_weights.zip's {md5}; nothing installed"
        raise WeightsError(f"{where}: {why}{hint if is_torch_file(zpath) else ''}")
    with _work_folder(d) as tmp:
        try:
            with zipfile.ZipFile(zpath) as z:
                members = [
                    i
                    for i in z.infolist()
                    if not i.is_dir()
                    and (i.external_attr >> 16) & 0o170000 in (0, 0o100000)  # a regular file, no link
                    and i.filename.replace("\\", "/").rsplit("/", 1)[-1] == TRUFOR_FILE
                    and not i.filename.replace("\\", "/").startswith("__MACOSX/")
                ]
                if len(members) != 1:
                    why = "no" if not members else f"{len(members)} copies of"
                    raise WeightsError(f"{where}: the archive holds {why} {TRUFOR_FILE}")
                member = members[0]
                out = Path(tmp) / (TRUFOR_FILE + ".part")
                with z.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as e:
            raise WeightsError(f"{where}: not a valid zip ({e})") from None
        rec = Path(tmp) / "record.json"
        digest = sha256_of(out)
        unsigned = unsigned_reason()
        if unsigned:  # installed all the same: usable, shown as unverified
            warnings.warn(f"{d / TRUFOR_FILE}: cannot be marked verified: {unsigned}", stacklevel=2)
        key = None if unsigned else signing.record_key(cache_dir(), create=False)
        mac = signing.record_mac(key, md5, digest) if key else ""
        rec.write_text(json.dumps({"source": where, "zip_md5": md5, "sha256": digest, "mac": mac}, indent=1))
        _atomic_place(out, d / TRUFOR_FILE)
        _atomic_place(rec, _record_path(d / TRUFOR_FILE))
    return d / TRUFOR_FILE


def shipped_noiseprint_verified() -> Path | None:
    """The shipped (else cached) Noiseprint++ when it is the official file, whatever
    ``$TRUFOR_NOISEPRINT_WEIGHTS`` names; ``None``: there is none to use (download one)."""
    for p in (d / NOISEPRINT_FILE for d in reversed(search_dirs())):
        try:
            if p.is_file() and _remembered_sha256(p) == NOISEPRINT_SHA256:
                return p
        except OSError:
            continue
    return None


def noiseprint_env_override() -> str | None:
    """Why ``$TRUFOR_NOISEPRINT_WEIGHTS`` keeps the official Noiseprint++ from being used (it wins
    over every copy, and names no official file), or ``None``: a download would change nothing."""
    env = os.environ.get("TRUFOR_NOISEPRINT_WEIGHTS")
    try:
        if not env or describe(find_noiseprint(env), "noiseprint").verified:
            return None
        why = "its checksum is not the official one"
    except (WeightsError, OSError) as e:
        why = f"cannot be used ({e})"
    return (
        f"$TRUFOR_NOISEPRINT_WEIGHTS={env} overrides the official copy and {why}; unset it to use the official weights"
    )


def leftovers(folder: str | os.PathLike | None = None) -> list[tuple[Path, int, float]]:
    """``(folder, bytes, age in seconds)`` of the temporary folders that downloads left in
    ``folder`` (default: the per-user cache); the age is that of the newest file in it."""
    d, out = Path(folder) if folder else cache_dir(), []
    for t in sorted(d.glob(TMP_PREFIX + "*")) if d.is_dir() else []:
        try:
            sts = [t.stat()] + [f.stat() for f in t.rglob("*")]
        except OSError:  # removed meanwhile
            continue
        out.append((t, sum(s.st_size for s in sts[1:]), time.time() - max(s.st_mtime for s in sts)))
    return out


def _remove_stale(d: Path) -> None:
    """Remove what killed downloads left in ``d``: only folders a day old (not a running download's)."""
    for t, _, age in leftovers(d):
        if age > STALE_AFTER_S:
            shutil.rmtree(t, ignore_errors=True)


def installed() -> list[tuple[str, str, str]]:
    """(what, where, status) rows for ``trufor-lab weights info``."""
    rows = []
    try:
        np_path = find_noiseprint()
        info = describe(np_path, "noiseprint")
        rows.append(
            (
                "Noiseprint++",
                str(np_path),
                ("verified " if info.verified else "unverified ") + f"sha256 {info.short_sha}",
            )
        )
    except WeightsError as e:
        rows.append(("Noiseprint++", "-", f"missing: {e}"))
    try:
        ck = find_checkpoint()
    except WeightsError as e:
        ck, rows = None, rows + [("TruFor", "-", str(e))]
    if ck is not None:
        info = describe(ck, "official")
        rows.append(
            (
                "TruFor",
                str(ck),
                ("official, verified " if info.verified else "present, unverified ") + f"sha256 {info.short_sha}",
            )
        )
    elif not any(r[0] == "TruFor" for r in rows):
        rows.append(("TruFor", "-", "not installed: " + HOW_TO_GET))
    demo = find_demo()
    if demo is not None:
        info = describe(demo, "demo")
        rows.append(
            ("Demo model", str(demo), ("verified " if info.verified else "unverified ") + f"sha256 {info.short_sha}")
        )
    else:
        rows.append(("Demo model", "-", "not shipped"))
    return rows


def searched() -> list[tuple[str, list[str]]]:
    """``(folder, files found there)`` for every folder searched, in order (``weights info``)."""
    names = (TRUFOR_FILE, NOISEPRINT_FILE, DEMO_FILE)
    return [(str(d), [n for n in names if (d / n).is_file()]) for d in search_dirs()]
