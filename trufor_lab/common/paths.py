"""Input listing and output naming, in one place: which files count as images, how a set of
inputs is expanded, and how an input's name becomes an output path that cannot leave its
output folder."""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from trufor_lab.common import files

#: File suffixes taken as images when a folder is searched (a file named directly is always tried):
#: every suffix Pillow registers for the formats read here (``image_files.FORMATS``), but for
#: the rare aliases in :data:`ALIAS_EXTENSIONS_LEFT_OUT`, plus HEIC/HEIF (read where a plugin is).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".mpo",  # a stereo / multi-picture camera's JPEG (its first frame)
        ".png",
        ".apng",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".pfm",
        ".jp2",
        ".j2k",
        ".j2c",
        ".jpc",
        ".jpf",
        ".jpx",
        ".avif",
        ".avifs",
        ".heic",
        ".heif",
        ".hif",
        ".tga",
        ".qoi",
        ".pcx",
        ".sgi",
        ".psd",
        ".ico",
    }
)
#: Suffixes Pillow also registers for those formats, left out of folder searches: more often
#: something else (raw ``.rgb`` dumps) or never met in practice. A file named directly is read.
ALIAS_EXTENSIONS_LEFT_OUT: frozenset[str] = frozenset({".rgb", ".rgba", ".bw", ".icb", ".vda", ".vst"})


#: Bytes read from a file whose suffix is not an image's, to tell an image by its signature.
SIGNATURE_BYTES = 18
#: The header sizes a BMP's info block can have (Windows 2.x to 5): 'BM' alone starts text too.
_BMP_HEADERS = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


#: ISO-BMFF major brands (the ``ftyp`` box) of still pictures: AVIF, HEIC/HEIF.
_PICTURE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


def image_signature(head: bytes) -> bool:
    """Whether a file's first bytes (:data:`SIGNATURE_BYTES`) are those of an image in a format
    read here that has a signature: JPEG, PNG, GIF, WebP, TIFF (BigTIFF too), BMP, AVIF, HEIC/HEIF,
    JPEG 2000 (JP2 or a bare codestream), PPM/PGM/PBM/PAM, QOI, PSD, SGI, PCX, ICO (TGA has none).
    A download saved as ``tweet.jpg_large``, ``image.png~`` or an extensionless ``download`` is one."""
    return (
        head[:3] == b"\xff\xd8\xff"
        or head[:8] == b"\x89PNG\r\n\x1a\n"
        or signed_format(head) is not None  # GIF, JPEG 2000, QOI
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
        or (head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADERS)
        or (head[4:8] == b"ftyp" and head[8:12] in _PICTURE_BRANDS)
        or re.match(rb"P[1-6]\s+[#\d]|P7\s+[#A-Z]", head) is not None  # not a line of text: 'P1 is ...'
        or head[:6] == b"8BPS\x00\x01"
        or (head[:2] == b"\x01\xda" and head[2:4] in (b"\x00\x01", b"\x00\x02", b"\x01\x01", b"\x01\x02"))
        or _pcx_header(head)
        or _ico_header(head)
    )  # fmt: skip


def signed_format(head: bytes) -> str | None:
    """The name of the format (GIF, JPEG 2000, QOI) that a file's first bytes announce, if one of
    these: :func:`image_signature` takes the file, and a file Pillow then refuses is named by it."""
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000 file"
    if head[:4] == b"qoif":
        return "QOI file"
    return None


def _pcx_header(head: bytes) -> bool:
    """ZSoft PCX: manufacturer 10, a known version, RLE, 1/2/4/8 bits per plane and a window whose
    far corner is not before its near one (the four fixed bytes alone start other binaries)."""
    if len(head) < 12 or head[0] != 10 or head[1] not in (0, 2, 3, 4, 5) or head[2] != 1 or head[3] not in (1, 2, 4, 8):
        return False
    x0, y0, x1, y1 = (int.from_bytes(head[k : k + 2], "little") for k in (4, 6, 8, 10))
    return x1 >= x0 and y1 >= y0


def _ico_header(head: bytes) -> bool:
    """Windows icon: reserved 0, type 1, at least one image, and a first directory entry that
    reads as one (reserved byte 0, 0 or 1 plane, a bit depth icons have, a non-empty image)."""
    return (
        len(head) >= 18
        and head[:4] == b"\x00\x00\x01\x00"
        and head[4:6] != b"\x00\x00"
        and head[9] == 0
        and head[10:12] in (b"\x00\x00", b"\x01\x00")
        and int.from_bytes(head[12:14], "little") in (0, 1, 2, 4, 8, 16, 24, 32)
        and int.from_bytes(head[14:18], "little") > 0
    )


def _first_bytes(path: Path) -> bytes:
    """A file's first :data:`SIGNATURE_BYTES` (never blocks: a file swapped for a pipe reads as empty)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        return os.read(fd, SIGNATURE_BYTES)
    except BlockingIOError:
        return b""
    finally:
        os.close(fd)


class OutputPathError(ValueError):
    """An input name that cannot name an output in the output folder (it would leave it, or
    is longer than a file name may be)."""


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with an image suffix (see :data:`IMAGE_EXTENSIONS`)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files in ``folder`` (sorted; recursive by default); see :func:`find_images`, whose
    lines on unreadable folders this plain listing leaves out."""
    return find_images(folder, recursive)[0]


def _why_unreadable(e: OSError) -> str:
    """Why a folder could not be listed, in a few words."""
    return "permission denied" if e.errno in (errno.EACCES, errno.EPERM) else (e.strerror or str(e))


def find_images(
    folder: str | os.PathLike,
    recursive: bool = True,
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    skip_hidden: bool = False,
    skip: str | os.PathLike | None = None,
    sniff: bool = False,
    others: list[Path] | None = None,
) -> tuple[list[Path], list[str]]:
    """Image files in ``folder`` (sorted; recursive by default), and one line per thing that
    hides images: a folder that could not be read (no permission), a broken link, pipe or device with
    an image name. Each would otherwise leave images out unsaid.

    ``sniff``: a file whose suffix is not an image's is taken too when its first bytes are an
    image's (:func:`image_signature`: downloads named ``tweet.jpg_large`` or ``download``), a
    file that cannot be read to tell is a problem line, and the other files are added to
    ``others`` (when given) so that a caller can count them; names starting with a dot keep
    the suffix rule, and are not counted.

    Links to folders are followed (a photo library on another disk, linked in); a folder reached
    twice (a link loop, two links to one place) is searched once. macOS's AppleDouble companions
    (``._photo.jpg``: metadata, not pixels, left on shared drives and in zips) are not images.
    ``extensions``: the suffixes taken (lower case); ``skip_hidden``: names starting with a dot
    left out, folders included; ``skip``: a folder left out wherever the search reaches it
    (compared by real path, so a link to it is left out too).
    """
    problems: list[str] = []
    exts = {e.lower() for e in extensions}
    skipped = None if skip is None else os.path.realpath(skip)

    def unreadable(e: OSError) -> None:
        problems.append(f"{e.filename or folder}: cannot read folder ({_why_unreadable(e)}); its images are left out")

    found: list[Path] = []
    visited: set[str] = set()
    for top, dirs, names in os.walk(folder, onerror=unreadable, followlinks=True):
        here = os.path.realpath(top)
        if here in visited:  # a link back up (a loop) or a second link to a folder already searched
            dirs[:] = []
            continue
        visited.add(here)
        # a real folder before a link to it, then by name: the first way to a folder names its
        # images, the same each run
        dirs[:] = sorted(
            (
                d
                for d in dirs
                if not (skip_hidden and d.startswith(".")) and os.path.realpath(os.path.join(top, d)) != skipped
            ),
            key=lambda d: (os.path.islink(os.path.join(top, d)), d),
        )
        for n in names:
            if n.startswith("._") or (skip_hidden and n.startswith(".")):
                continue
            f = Path(top, n)
            if Path(n).suffix.lower() not in exts:
                if sniff and not n.startswith(".") and f.is_file():
                    _sniffed(f, found, problems, others)
                continue
            if f.is_file():
                found.append(f)
            else:  # a broken link or a link loop; a pipe, socket or device with an image's name
                problems.append(f"{f}: {why_not_found(f)}; left out")
        if not recursive:
            break
    return sorted(found), problems


def _sniffed(f: Path, found: list[Path], problems: list[str], others: list[Path] | None) -> None:
    """``f`` (a file with no image suffix) into ``found`` if its first bytes are an image's,
    else into ``others``; a problem line if it cannot be read to tell."""
    try:
        head = _first_bytes(f)
    except OSError as e:
        problems.append(f"{f}: cannot read ({_why_unreadable(e)}); left out (an image without an image suffix?)")
        return
    if image_signature(head):
        found.append(f)
    elif others is not None:
        others.append(f)


def _could_hold(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether a folder at relative ``parts`` could hold matches of the folder ``pattern`` parts
    (``**`` any number of folders; like :mod:`glob`, a wildcard does not match a leading dot)."""
    if not parts:
        return True
    if not pattern:
        return False
    head = pattern[0]
    if head == "**":
        return _could_hold(pattern[1:], parts) or (not parts[0].startswith(".") and _could_hold(pattern, parts[1:]))
    if parts[0].startswith(".") and not head.startswith(".") and glob.has_magic(head):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _could_hold(pattern[1:], parts[1:])


def _glob_unreadable(pattern: str) -> list[str]:
    """Folders a glob ``pattern`` would have searched but could not read (:func:`glob.glob`
    skips them without a word), one problem line each."""
    parts = Path(pattern).parts
    lead = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base, folder_pattern = Path(*parts[:lead]) if lead else Path("."), parts[lead:-1]
    problems: list[str] = []
    visited: set[str] = set()

    def _is_folder(entry: os.DirEntry) -> bool:
        try:
            return entry.is_dir()
        except OSError:  # a symlink loop: no folder to search (a file pattern names it when it matches)
            return False

    def search(folder: Path, rel: tuple[str, ...]) -> None:
        real = os.path.realpath(folder)
        if real in visited:
            return
        visited.add(real)
        try:
            with os.scandir(folder) as entries:
                subs = [e.name for e in entries if _is_folder(e)]
        except OSError as e:
            problems.append(
                f"{folder}: cannot read folder ({_why_unreadable(e)}); its images are left out of {pattern}"
            )
            return
        for name in sorted(subs):
            if _could_hold(folder_pattern, (*rel, name)):
                search(folder / name, (*rel, name))

    if base.is_dir():
        search(base, ())
    return problems


def safe_part(name: str, default: str = "dataset") -> str:
    """``name`` usable as one path component (separators and drive colons replaced)."""
    cleaned = "".join(c if c not in "/\\:" else "_" for c in name).strip(". ")
    return cleaned or default


def display_name(name: str | os.PathLike | None) -> str:
    """The base name only (full paths can reveal a user's folders in a shared report), safe to
    show: bytes that are not UTF-8 become U+FFFD, control and format characters (a terminal
    escape, a newline, a name that reads backwards) become '?'. A backslash ends a folder only in
    a Windows path (``C:\\``, ``\\\\server``): a POSIX name may hold one (``b$\\alpha$.png``)."""
    if not name:
        return "image"
    name = os.fspath(name)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    windows = re.match(r"[A-Za-z]:[\\/]|\\\\", name) is not None
    base = os.path.basename(name.replace("\\", "/") if windows else name) or name
    return shown_text(base)


def shown_text(text: str) -> str:
    """``text`` with its folders, safe to show as :func:`display_name` makes a name."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (the end keeps an extension)."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    return text[: limit - 1 - tail] + "…" + text[len(text) - tail :]


def short_name(name: str | os.PathLike | None, limit: int = 60) -> str:
    """:func:`display_name`, :func:`shorten`-ed: for figure titles (a 244-character name
    stretched a figure to twice its width and ran titles into each other)."""
    return shorten(display_name(name), limit)


#: Whether names are made for Windows, where a colon in any part is a drive or a data stream.
WINDOWS = os.name == "nt"


def _output_parts(name: str) -> tuple[str, ...]:
    """The path parts ``name`` becomes under the output folder (``\\`` is a separator too, for
    lists written on Windows); :class:`OutputPathError` if it would leave the folder.

    Refused: an empty name, an absolute one, one that climbs out with ``..``, a Windows drive
    path (``C:\\x.png`` reads as absolute on any system), and on Windows any colon (a drive,
    which resets a joined path, or an alternate data stream). Elsewhere a colon is an ordinary
    character: ISO timestamps and camera tools put them in file names.
    """
    parts = PurePosixPath(name.replace("\\", "/"))
    first = parts.parts[0] if parts.parts else ""
    drive = len(first) == 2 and first[1] == ":" and first[0].isascii() and first[0].isalpha()
    if (
        not name
        or not parts.parts
        or parts.is_absolute()
        or Path(name).is_absolute()
        or ".." in parts.parts
        or drive
        or (WINDOWS and any(":" in part for part in parts.parts))
    ):
        raise OutputPathError(f"{name!r}: not a relative name inside the output folder")
    return parts.parts


def output_path(out_dir: str | os.PathLike, name: str, suffix: str = ".npz") -> Path:
    """``out_dir / (name + suffix)``, refusing a name that would leave ``out_dir`` (see
    :func:`_output_parts`).

    Every place that turns an input's name (a relative path, a sample id) into an output file
    goes through here.
    """
    parts = _output_parts(name)
    parts = [*parts[:-1], parts[-1] + suffix]
    long = next((p for p in parts if len(os.fsencode(p)) > NAME_MAX), None)
    if long is not None:  # said before the analysis, not at the write after it
        raise OutputPathError(
            f"output name {long[:24]}…{long[-12:]} is {len(os.fsencode(long))} bytes, more than a file name may have "
            f"({NAME_MAX}): rename the input"
        )
    return Path(out_dir).joinpath(*parts)


#: Longest file name (bytes) the usual disks take (ext4, APFS, NTFS: 255).
NAME_MAX = 255


def output_key(name: str) -> str:
    """The output ``name`` writes to, as one string (``a\\b.jpg`` and ``a/b.jpg`` give the
    same): what two inputs must not share. :class:`OutputPathError` as :func:`output_path`."""
    return "/".join(_output_parts(name))


#: Whether output names are written on disks that take ``Photo.JPG`` and ``photo.jpg`` (or a
#: composed and a decomposed ``é``) for one file: macOS's and Windows's by default.
CASE_INSENSITIVE_DISKS = sys.platform in ("darwin", "win32")


def folds_case(folder: str | os.PathLike) -> bool:
    """Whether ``folder``'s disk takes names differing only in letter case for one file: ``True``
    where :data:`CASE_INSENSITIVE_DISKS` says so already, with nothing made there; elsewhere the
    disk is asked (:func:`trufor_lab.common.files.folds_case`, a probe file made and removed)."""
    return CASE_INSENSITIVE_DISKS or files.folds_case(folder)


def clash_key(key: str, disk_folds_case: bool = False) -> str:
    """What two output keys (:func:`output_key`) must not share: the key itself, and where disks
    are case-insensitive (:data:`CASE_INSENSITIVE_DISKS`) its letter case folded and its Unicode
    composed (NFC), since there ``Photo.JPG`` and ``photo.jpg`` name one file; its letter case
    folded where the output disk was seen to fold it (``disk_folds_case``: :func:`folds_case`)."""
    if not CASE_INSENSITIVE_DISKS:
        return key.casefold() if disk_folds_case else key
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", key).casefold())


def clash_reason(key: str, other: str, others: str) -> str:
    """Why a file whose output key is ``key`` cannot be written beside ``others`` (their names),
    one of whose output keys is ``other`` (the same :func:`clash_key`)."""
    if key == other:
        return f"would write the same output ({key}) as {others}"
    if not CASE_INSENSITIVE_DISKS:  # folded because this disk was seen to fold letter case
        return (
            f"its output and that of {others} would be the same file on this disk "
            f"({key} and {other}: names differ only in letter case)"
        )
    return (
        f"differs only by letter case or Unicode form from {others} ({key} and {other}): they would "
        "share one output on case-insensitive disks (macOS, Windows)"
    )


def _base_of(item: str) -> Path:
    """The folder an input item's output names are relative to."""
    p = Path(item)
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    parts = p.parts
    lead = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:lead]) if lead else Path(".")


def why_not_found(p: Path) -> str:
    """Why ``p`` is neither a file nor a folder, in a few words (a missing path, a symbolic-link
    loop or a broken link, no permission, a device or pipe)."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic links form a loop"
        if p.is_symlink():
            return "broken symbolic link (its target does not exist)"
        if e.errno == errno.EACCES:
            return "permission denied"
        if e.errno == errno.ENOTDIR:
            return "a part of the path is not a folder"
        return "no such file or folder"
    return "not a regular file or folder (a device, pipe or socket)"


def expand_inputs(
    inputs: Sequence[str | os.PathLike], *, others: list[Path] | None = None, output: str | None = None
) -> tuple[list[tuple[Path, str]], list[str]]:
    """``(file, name)`` pairs and input problems (one line each) for files, folders and globs.

    A folder is searched recursively for images, by suffix or, for a file without an image
    suffix, by its first bytes (:func:`find_images` ``sniff``); the files it holds that are not
    images are added to ``others`` when given (to be counted: nothing is left out unsaid); a
    glob is expanded; a plain file is taken as given, whatever its suffix. Names are paths relative to the common root of all inputs, so
    ``a/x.png`` and ``b/x.png`` keep distinct names; a file listed twice is taken once; two
    files that would still write the same output (the same name, or ``a\\b.png`` beside
    ``a/b.png``: see :func:`output_key`), or outputs that are one file on a case-insensitive
    disk (``Photo.JPG`` beside ``photo.jpg``: :func:`clash_key`; the disk of ``output``, the
    output folder, when given, is asked: :func:`folds_case`), are all refused, with one
    line per file naming the others (so that a count of problem lines counts files). A folder
    that cannot be read is a problem line too. A name that would leave the output folder is
    kept: :func:`output_path` refuses it, for that file alone.
    """
    items = [os.fspath(i) for i in inputs]
    found: list[Path] = []
    problems: list[str] = []
    bases: list[Path] = []
    for item in items:
        p = Path(item)
        if not item.strip():  # Path("") is the current folder: an unset variable would analyse all of it
            problems.append(f"{item!r}: empty input (an unset variable?); left out")
            continue
        if p.is_dir():
            files, unreadable = find_images(p, sniff=True, others=others)
            problems += unreadable
            if not files and not unreadable:
                problems.append(f"{item}: folder holds no images")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(item):
            matches = sorted(Path(f) for f in glob.glob(item, recursive=True))
            files = [f for f in matches if f.is_file()]
            for folder in (f for f in matches if f.is_dir()):  # searched as a folder given by name is
                inside, unreadable = find_images(folder, sniff=True, others=others)
                files += inside  # a file also matched by name (``**``) is taken once below
                problems += unreadable
            links = [f for f in matches if f.is_symlink() and not f.exists()]  # named, as in a folder
            hidden = _glob_unreadable(item) + [f"{f}: {why_not_found(f)}; left out" for f in links]
            problems += hidden
            if not files and not hidden:
                problems.append(f"{item}: pattern matches no image" if matches else f"{item}: pattern matches no file")
        else:
            problems.append(f"{item}: {why_not_found(p)}")
            continue
        if files:
            bases.append(_base_of(item))
        found += files
    try:
        root = Path(os.path.commonpath([str(b.resolve()) for b in bases])) if bases else Path(".").resolve()
        as_given = Path(os.path.commonpath([os.path.abspath(b) for b in bases])) if bases else None
    except ValueError:  # different drives: no common root
        root = as_given = None
    seen: set[Path] = set()
    folding = len(found) > 1 and output is not None and folds_case(output)
    named: dict[str, tuple[str, Path, str]] = {}  # clash key -> (name, file, output key)
    clashes: dict[str, list[tuple[Path, str]]] = {}
    for f in found:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        name = f.name
        for path, top in ((Path(os.path.abspath(f)), as_given), (key, root)):  # as found (a link too), else resolved
            if top is not None and path.is_relative_to(top):
                name = path.relative_to(top).as_posix()
                break
        try:
            out = output_key(name)
        except OutputPathError:
            out = name  # refused later by output_path, for this file alone
        folded = clash_key(out, folding)
        if folded in named:
            clashes.setdefault(folded, [named[folded][1:]]).append((f, out))
        else:
            named[folded] = (name, f, out)
    for folded, group in clashes.items():  # one line per file, each naming the others: counts stay per file
        del named[folded]
        for f, out in group:
            others = [(g, o) for g, o in group if g != f]
            other_out = next((o for _, o in others if o == out), others[0][1])
            problems.append(
                f"{f}: {clash_reason(out, other_out, ', '.join(str(g) for g, _ in others))}; give them separately"
            )
    return [(f, n) for n, f, _ in named.values()], problems
