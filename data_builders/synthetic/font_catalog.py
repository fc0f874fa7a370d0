"""Hundreds of font families from Debian `fonts-*` packages, PyPI font packages, matplotlib, or a folder.

Every face is read with fontTools: its family is the font's own typographic family name (name ID 16,
else 1), not its file name. A face is kept only if it draws ordinary words (see `face_problem`), and a
family only if one of its faces is kept. Families are split into train / select / test by a stable
hash of their *split group* (`split_group`), so a family, its sister families ("Noto Sans" and
"Noto Serif") and clones of one design ("Nimbus Sans", "TeX Gyre Heros", "FreeSans") never cross splits.

Scanning ~1,700 files takes about a minute, so the result is cached as JSON under
`$XDG_CACHE_HOME/text4seg/` (default `~/.cache/text4seg/`), keyed by the files' paths, sizes and
modification times: a changed or added font rescans.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from data_builders.synthetic.font_checks import check_face, read_face
from data_builders.synthetic.fonts import FontSpec, matplotlib_ttf_dir

SPLITS = ("train", "select", "test")
# Per mille of split groups in train and select (the rest is test): ~70 / 15 / 15.
_SPLIT_EDGES = (700, 850)
CHECK_VERSION = 4  # bump when a check changes, so cached catalogs are rebuilt

# Debian packages the corpus draws fonts from (scripts/bootstrap.sh installs them). Symbol-only
# packages (fonts-font-awesome, fonts-dseg), CJK/Indic ones, outline/3D faces (fonts-rampart,
# fonts-train) and a few heavy single-family packages are left out on purpose.
DEBIAN_FONT_PACKAGES = tuple(
    """
fonts-liberation fonts-liberation2 fonts-noto-core fonts-freefont-ttf fonts-urw-base35 fonts-crosextra-caladea
fonts-crosextra-carlito fonts-cantarell fonts-open-sans fonts-roboto-unhinted fonts-roboto-slab fonts-comic-neue
fonts-aenigma fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius fonts-adf-ikarius
fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania fonts-adf-romande fonts-adf-solothurn
fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis fonts-adf-verana fonts-allerta fonts-arapey
fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf fonts-b612 fonts-bebas-neue fonts-beteckna
fonts-cabin fonts-cabinsketch fonts-cherrybomb fonts-clear-sans fonts-comfortaa fonts-courier-prime fonts-croscore
fonts-dancingscript fonts-dosis fonts-dustin fonts-ebgaramond fonts-engadget fonts-eurofurence fonts-fanwood
fonts-firacode fonts-go fonts-goudybookletter fonts-hack fonts-humor-sans fonts-inconsolata fonts-inter fonts-jura
fonts-karla fonts-kaushanscript fonts-kristi fonts-lato fonts-league-spartan fonts-leckerli-one fonts-lindenhill
fonts-linuxlibertine fonts-lobster fonts-lobstertwo fonts-manrope fonts-national-park fonts-ocr-a fonts-ocr-b
fonts-okolaks fonts-oldstandard fonts-opendin fonts-oxygen fonts-paratype fonts-play fonts-prociono
fonts-quattrocento fonts-quicksand fonts-roadgeek fonts-routed-gothic fonts-rufscript fonts-sil-andika
fonts-sil-charis fonts-sora fonts-staypuft fonts-summersby fonts-texgyre fonts-tiresias fonts-tomsontalks
fonts-tuffy fonts-vollkorn fonts-yanone-kaffeesatz fonts-jetbrains-mono fonts-anonymous-pro fonts-mononoki
fonts-bajaderka fonts-apropal fonts-havana fonts-blankenburg fonts-gotico-antiqua fonts-breip fonts-femkeklaver
fonts-sjfonts fonts-dkg-handwriting fonts-junction fonts-karmilla fonts-ferrite-core fonts-radisnoir fonts-f500
fonts-century-catalogue fonts-lmodern fonts-cmu fonts-stix fonts-linex fonts-isabella fonts-essays1743
fonts-le-murmure fonts-klaudia-berenika fonts-fantasma fonts-ecolier-court fonts-gnutypewriter fonts-league-mono
""".split()
)
PYPI_FONT_PACKAGES = (
    "font_roboto", "font_source_sans_pro", "font_lato", "font_source_serif_pro", "font_amatic_sc",
    "font_caladea", "font_fredoka_one", "font_hanken_grotesk", "font_intuitive",
    "font_manrope", "font_rhd",
)  # fmt: skip
_DPKG_INFO = Path("/var/lib/dpkg/info")
_FONT_SUFFIXES = (".ttf", ".otf")

# Families that pass the automatic checks but cannot stand for ordinary words: symbol and math faces,
# Latin keys mapped to Greek letters or to keyboard caps, school handwriting with ruled guide lines
# drawn into every glyph, and a Nushu font whose Latin is a copy of Noto Sans.
EXCLUDED_FAMILIES = frozenset(
    """
d050000l|standard symbols ps|noto sans symbols|noto sans math|stix math|dejavu math tex gyre|berenis adf pro math
|alfa-beta|ellhnikh|linux biolinum keyboard o|noto traditional nushu|tex gyre bonum math|tex gyre pagella math
|tex gyre schola math|tex gyre termes math|tex gyre dejavu math|latin modern math|abecedario_guiada|abecedario_pautada
|abecedario_punt-guiada|abecedario_punt-pautada|abecedario_punteada|abecedario|cmex10|cmmi10|cmsy10
""".replace("\n", "").split("|")
)
# Decorative families named like symbols, bars or outlines (all from fonts-aenigma, "... BRK").
_EXCLUDED_WORDS = re.compile(
    r"\b(binary|stars|hearts|dings|circulate|bendable|outline|ol\d?|hollow|layer|3d|inverted|empty|"
    r"shadow|xmas|code of life|bit blocks|candy stripe|mishmash|qbicle|dash dot|edit undo (dot|line))\b",
    re.IGNORECASE,
)
# Clones and derivatives of one design share a split group, so a design never crosses splits.
_GROUP_ALIASES = {
    **dict.fromkeys(("nimbus", "urw", "p052", "c059", "z003", "tex", "freesans", "freeserif", "freemono"), "urw-base35"),
    **dict.fromkeys(("liberation", "arimo", "tinos", "cousine"), "liberation"),
    **dict.fromkeys(("lato", "carlito"), "lato"),
    **dict.fromkeys(("dejavu", "hack"), "dejavu"),
    **dict.fromkeys(("noto", "open"), "noto-open-sans"),
    **dict.fromkeys(("cmu", "lm", "latin", "cmr10", "cmb10", "cmtt10", "cmss10", "cmti10"), "computer-modern"),
    "ocra": "ocr",
}  # fmt: skip
# Style words glued to a family's first word ("BetecknaGSCondensed", "OCRABold") are cut off it.
_GLUED_STYLES = (
    "condensed",
    "bold",
    "italic",
    "light",
    "medium",
    "narrow",
    "mono",
    "sans",
    "serif",
    "gs",
    "cn",
)
# The legacy "train" fonts stay in train and the legacy held-out ("eval") fonts in test, so a model
# trained on either corpus is never scored on fonts it saw.
PINNED_SPLITS = {"dejavu": "train", "roboto": "train", "source": "train", "lato": "train"}
PINNED_SPLITS |= {"stix": "test", "stixgeneral": "test", "computer-modern": "test"}


@dataclass(frozen=True, kw_only=True)
class FontFamily:
    """One font family of the corpus and its usable faces."""

    name: str
    """The font's own family name (name table ID 16, else 1), e.g. "Noto Sans"."""
    split: str
    """"train", "select" or "test" (see `family_split`)."""
    source: str
    """Where it came from: "debian:<package>", "pypi:<module>", "matplotlib" or "assets"."""
    decorative: bool
    """True for display faces made as ornaments (fonts-aenigma's "... BRK" families): drawn less often."""
    faces: tuple[FontSpec, ...]
    """Usable faces, sorted by path."""


def split_group(family: str) -> str:
    """The key a family is split by: its first word (lowercase letters and digits, glued style words
    cut off), through the aliases that join clones of one design."""
    words = re.findall(r"[a-z0-9]+", family.lower().replace("'", ""))
    first = words[0] if words else family.lower()
    if first in _GROUP_ALIASES:
        return _GROUP_ALIASES[first]
    cut = True
    while cut:
        cut = False
        for style in _GLUED_STYLES:
            if first.endswith(style) and len(first) > len(style) + 2:
                first, cut = first[: -len(style)], True
    return _GROUP_ALIASES.get(first, first)


def family_split(family: str) -> str:
    """ "train", "select" or "test" for a family name: pinned, else a stable SHA-256 of its split group."""
    group = split_group(family)
    if group in PINNED_SPLITS:
        return PINNED_SPLITS[group]
    bucket = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 1000
    return "train" if bucket < _SPLIT_EDGES[0] else "select" if bucket < _SPLIT_EDGES[1] else "test"


def is_decorative(family: str) -> bool:
    return family.endswith(" BRK")


def excluded_family(family: str) -> bool:
    lowered = family.lower().strip()
    return lowered in EXCLUDED_FAMILIES or (is_decorative(family) and bool(_EXCLUDED_WORDS.search(family)))


def debian_font_files(
    packages: tuple[str, ...] = DEBIAN_FONT_PACKAGES,
) -> tuple[dict[str, list[Path]], list[str]]:
    """({package: font files}, missing packages), read from dpkg's file lists (no subprocess)."""
    found: dict[str, list[Path]] = {}
    missing: list[str] = []
    for package in packages:
        listing = _DPKG_INFO / f"{package}.list"
        if not listing.exists():
            missing.append(package)
            continue
        lines = listing.read_text().splitlines()
        files = [Path(p) for p in lines if p.lower().endswith(_FONT_SUFFIXES) and Path(p).is_file()]
        found[package] = sorted(files)
    return found, missing


def _module_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def candidate_files(assets_dir: str = "") -> list[tuple[str, Path]]:
    """(source, path) of every font file to consider, in priority order (earlier sources win a family).

    With `assets_dir`, its `fonts/` folder replaces the Debian and PyPI packages; matplotlib's fonts
    (present wherever the project runs) are used either way.
    """
    out: list[tuple[str, Path]] = []
    if assets_dir:
        folder = Path(assets_dir) / "fonts"
        if not folder.is_dir():
            raise ValueError(f"assets_dir {assets_dir!r} has no fonts/ folder")
        out += [("assets", p) for p in sorted(folder.rglob("*")) if p.suffix.lower() in _FONT_SUFFIXES]
    out += [("matplotlib", p) for p in sorted(matplotlib_ttf_dir().glob("*.ttf"))]
    if not assets_dir:
        for module in PYPI_FONT_PACKAGES:
            folder = _module_dir(module)
            if folder is not None:
                files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _FONT_SUFFIXES)
                out += [(f"pypi:{module}", p) for p in files]
        found, _ = debian_font_files()
        out += [(f"debian:{package}", p) for package, files in found.items() for p in files]
    return out


def _cache_path(candidates: list[tuple[str, Path]]) -> Path:
    digest = hashlib.sha256(f"v{CHECK_VERSION}".encode())
    for source, path in candidates:
        stat = path.stat()
        digest.update(f"{source}|{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "text4seg"
    return root / f"font_catalog_{digest.hexdigest()[:16]}.json"


def _scan(candidates: list[tuple[str, Path]]) -> list[dict]:
    """One record per usable face: source, path, family, style, kind, decorative (problem faces dropped)."""
    records = []
    for source, path in candidates:
        face = read_face(path)
        if face is None or excluded_family(face.family):
            continue
        verdict = check_face(path, face)
        if verdict.problem is None:
            records.append({"source": source, "path": str(path), "family": face.family, "style": face.style,
                            "kind": face.kind, "stroke": verdict.stroke})  # fmt: skip
    return records


def _families(records: list[dict]) -> tuple[FontFamily, ...]:
    """Group face records into families; the first source that has a family supplies all its faces."""
    owner: dict[str, str] = {}
    faces: dict[str, list[FontSpec]] = {}
    seen: set[tuple[str, str]] = set()
    for rec in records:
        family = rec["family"]
        owner.setdefault(family, rec["source"])
        if owner[family] != rec["source"] or (family, rec["style"]) in seen:
            continue  # another source's copy of the family, or a second file of one face (.otf + .ttf)
        seen.add((family, rec["style"]))
        spec = FontSpec(
            path=rec["path"], family=family, style=rec["style"], kind=rec["kind"], stroke=rec["stroke"]
        )
        faces.setdefault(family, []).append(spec)
    return tuple(
        FontFamily(
            name=name,
            split=family_split(name),
            source=owner[name],
            decorative=is_decorative(name),
            faces=tuple(sorted(specs, key=lambda f: f.path)),
        )  # fmt: skip
        for name, specs in sorted(faces.items())
    )


@lru_cache(maxsize=4)
def font_catalog(assets_dir: str = "") -> tuple[FontFamily, ...]:
    """Every usable family, sorted by name (cached on disk; see the module docstring)."""
    candidates = candidate_files(assets_dir)
    cache = _cache_path(candidates)
    if cache.exists():
        records = json.loads(cache.read_text())
    else:
        records = _scan(candidates)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(records))
        tmp.replace(cache)  # atomic, so parallel workers never read half a file
    return _families(records)


@lru_cache(maxsize=12)
def corpus_families(split: str, assets_dir: str = "") -> tuple[FontFamily, ...]:
    """The families of one split; raises when the split is empty (no fonts installed or packed)."""
    if split not in SPLITS:
        raise ValueError(f"font split {split!r} not in {SPLITS}")
    families = tuple(f for f in font_catalog(assets_dir) if f.split == split)
    if not families:
        raise ValueError(
            f"no font families in split {split!r} (assets_dir={assets_dir!r}): install the fonts"
        )
    return families


def missing_packages_warning() -> str | None:
    """A line naming the Debian font packages that are not installed, or None when all are."""
    _, missing = debian_font_files()
    if not missing:
        return None
    return (
        f"{len(missing)} of {len(DEBIAN_FONT_PACKAGES)} Debian font packages are missing, the corpus uses "
        f"the rest ({', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}; run scripts/bootstrap.sh as root)"
    )
