"""The class catalog: which Pokemon classes exist, their indices, tags and search queries.

The shipped catalog, ``manifests/pokemon-799.csv``, is built from the 800-row "Pokemon with stats"
table by :func:`build_catalog` (``python -m pokedata.catalog build SRC OUT``): glued form names are
split (``CharizardMega Charizard X`` -> ``Mega Charizard X``) and ``Nidoran♀`` / ``Nidoran♂`` merge
into one ``Nidoran`` class, giving 799 classes. Users may pass their own catalog CSV with any number
of classes; :func:`load_catalog` validates it.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

from pokedata.errors import UserError
from pokedata.store import atomic_write_text

CATALOG_FILENAME = "pokemon-799.csv"
REQUIRED_COLUMNS = ("class_index", "name", "dex", "generation", "form", "danbooru_tag", "search_query")

# National dex ranges of generations 1-9 (upper bounds, inclusive).
_GENERATION_ENDS = (151, 251, 386, 493, 649, 721, 809, 905, 1025)

# Form words -> form kind, checked in order against the split-off form part of a glued name.
_FORM_KINDS = (
    ("Mega ", "mega"),
    ("Primal ", "primal"),
    (" Forme", "forme"),
    (" Cloak", "cloak"),
    (" Mode", "mode"),
    (" Size", "size"),
)
_GENDER_FORMS = {"Male", "Female"}
_SEX_SYMBOLS = {"♀": "", "♂": ""}


@dataclass(frozen=True)
class PokemonClass:
    """One row of the catalog."""

    class_index: int
    name: str
    dex: int
    generation: int
    form: str
    danbooru_tag: str
    search_query: str
    type1: str = ""
    type2: str = ""


@dataclass(frozen=True)
class Catalog:
    """An ordered, validated list of classes; ``classes[i].class_index == i``."""

    classes: tuple[PokemonClass, ...]
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[PokemonClass]:
        return iter(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def by_name(self, name: str) -> PokemonClass:
        """Find a class by name, case- and accent-insensitively, also accepting its Danbooru tag."""
        key = name_key(name)
        for c in self.classes:
            if name_key(c.name) == key or c.danbooru_tag == name.strip().lower():
                return c
        close = [c.name for c in self.classes if key and key in name_key(c.name)][:5]
        hint = f"did you mean: {', '.join(close)}?" if close else "see `poke classes list`"
        raise UserError(f"class {name!r} is not in the catalog {self.source}", hint=hint)

    def by_tag(self) -> dict[str, PokemonClass]:
        """Danbooru tag -> class (tags are unique in a valid catalog)."""
        return {c.danbooru_tag: c for c in self.classes}

    def filter(self, generation: int | None = None, form: str | None = None) -> list[PokemonClass]:
        return [
            c
            for c in self.classes
            if (generation is None or c.generation == generation) and (form is None or c.form == form)
        ]


def name_key(name: str) -> str:
    """Comparison key for class names: NFKD, accents and sex symbols dropped, casefolded, no spaces."""
    for sym, repl in _SEX_SYMBOLS.items():
        name = name.replace(sym, repl)
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped).strip().casefold()


def generation_of(dex: int) -> int:
    for gen, end in enumerate(_GENERATION_ENDS, start=1):
        if dex <= end:
            return gen
    return len(_GENERATION_ENDS)


def danbooru_tag_for(name: str) -> str:
    """Best-guess Danbooru tag: lowercase, spaces to underscores (``Mr. Mime`` -> ``mr._mime``)."""
    return re.sub(r"\s+", "_", name_key(name).replace("é", "e"))


# A glued row puts the form name right after the species: a lowercase letter followed by an uppercase
# letter (``CharizardMega``), or by a digit when a space follows later (``Zygarde50% Forme``; not
# ``Porygon2``).
_GLUE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[a-z])(?=\d[^ ]* )")


def split_form_name(raw: str) -> tuple[str, str, str]:
    """Split a glued table name into ``(base, display_name, form)``.

    >>> split_form_name("CharizardMega Charizard X")
    ('Charizard', 'Mega Charizard X', 'mega')
    >>> split_form_name("DeoxysAttack Forme")
    ('Deoxys', 'Deoxys Attack Forme', 'forme')
    >>> split_form_name("HoopaHoopa Unbound")
    ('Hoopa', 'Hoopa Unbound', 'form')
    >>> split_form_name("Mr. Mime")
    ('Mr. Mime', 'Mr. Mime', 'base')
    """
    raw = raw.strip()
    m = _GLUE.search(raw)
    if not m:
        return raw, raw, "base"
    base, rest = raw[: m.start()], raw[m.start() :]
    display = rest if base in rest.split() else f"{base} {rest}"
    if rest in _GENDER_FORMS:
        return base, display, "gender"
    padded = f" {rest} "
    for word, kind in _FORM_KINDS:
        if word in padded or padded.startswith(f" {word}"):
            return base, display, kind
    return base, display, "form"


def build_catalog(rows: Iterable[dict[str, str]]) -> Catalog:
    """Build the catalog from rows of the "Pokemon with stats" table (columns ``#``, ``Name``, ...).

    Rows whose names differ only by a sex symbol (``Nidoran♀`` / ``Nidoran♂``) become one class, which
    takes the lowest dex number of the group.
    """
    merged: dict[str, PokemonClass] = {}
    for row in rows:
        try:
            dex = int(str(row["#"]).strip())
            raw_name = row["Name"]
        except (KeyError, ValueError) as exc:
            raise UserError(f"stats table row {row!r} lacks a numeric '#' or a 'Name'") from exc
        for sym, repl in _SEX_SYMBOLS.items():
            raw_name = raw_name.replace(sym, repl)
        _, display, form = split_form_name(raw_name)
        key = name_key(display)
        if key in merged:
            if merged[key].dex > dex:
                merged[key] = _class_row(len(merged), display, dex, form, row)
            continue
        merged[key] = _class_row(len(merged), display, dex, form, row)
    ordered = sorted(merged.values(), key=lambda c: (c.dex, c.class_index))
    classes = tuple(PokemonClass(**{**asdict(c), "class_index": i}) for i, c in enumerate(ordered))
    catalog = Catalog(classes=classes, source="<built>")
    validate(catalog)
    return catalog


def _class_row(index: int, name: str, dex: int, form: str, row: dict[str, str]) -> PokemonClass:
    return PokemonClass(
        class_index=index,
        name=name,
        dex=dex,
        generation=generation_of(dex),
        form=form,
        danbooru_tag=danbooru_tag_for(name),
        search_query=f"{name} pokemon",
        type1=(row.get("Type 1") or "").strip(),
        type2=(row.get("Type 2") or "").strip(),
    )


def validate(catalog: Catalog) -> None:
    """Unique names and tags, contiguous indices 0..n-1, non-empty; raises UserError naming the row."""
    src = catalog.source
    if not catalog.classes:
        raise UserError(f"catalog {src} has no classes", hint="add at least one row")
    seen_names: dict[str, int] = {}
    seen_tags: dict[str, int] = {}
    for pos, c in enumerate(catalog.classes):
        if c.class_index != pos:
            raise UserError(
                f"catalog {src}: class_index {c.class_index} at row {pos + 1} (name {c.name!r}); "
                "indices must be 0..n-1 in order",
                hint="renumber the class_index column",
            )
        if not c.name.strip():
            raise UserError(f"catalog {src}: row {pos + 1} has an empty name")
        key = name_key(c.name)
        if key in seen_names:
            raise UserError(
                f"catalog {src}: duplicate class name {c.name!r} at class_index {seen_names[key]} and {pos}",
                hint="class names must be unique",
            )
        seen_names[key] = pos
        if c.danbooru_tag in seen_tags:
            raise UserError(
                f"catalog {src}: duplicate danbooru_tag {c.danbooru_tag!r} at class_index "
                f"{seen_tags[c.danbooru_tag]} and {pos}"
            )
        seen_tags[c.danbooru_tag] = pos


def _field_types() -> dict[str, type]:
    return {f.name: (int if f.type in ("int", int) else str) for f in fields(PokemonClass)}


def read_catalog_csv(path: Path) -> Catalog:
    """Read and validate a catalog CSV (the columns in REQUIRED_COLUMNS, optional type1/type2)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"catalog file {path} does not exist", hint="pass --catalog PATH to a catalog CSV")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(
                f"catalog {path} lacks required column(s) {', '.join(missing)}",
                hint=f"a catalog needs the columns {', '.join(REQUIRED_COLUMNS)}",
            )
        types = _field_types()
        classes = []
        for lineno, row in enumerate(reader, start=2):
            values = {}
            for name, typ in types.items():
                raw = (row.get(name) or "").strip()
                if typ is int:
                    try:
                        values[name] = int(raw)
                    except ValueError as exc:
                        raise UserError(
                            f"catalog {path} line {lineno}: {name}={raw!r} is not an integer"
                        ) from exc
                else:
                    values[name] = raw
            classes.append(PokemonClass(**values))
    catalog = Catalog(classes=tuple(classes), source=str(path))
    validate(catalog)
    return catalog


def write_catalog_csv(catalog: Catalog, path: Path) -> None:
    """Write a catalog CSV atomically."""

    names = [f.name for f in fields(PokemonClass)]
    lines = [names] + [[str(getattr(c, n)) for n in names] for c in catalog.classes]

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    atomic_write_text(Path(path), buf.getvalue())


def default_catalog_path() -> Path:
    """The shipped 799-class catalog: package data when installed, ``manifests/`` in a checkout."""
    packaged = resources.files("pokedata").joinpath("_data", CATALOG_FILENAME)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "manifests" / CATALOG_FILENAME


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load the catalog at ``path`` or the shipped 799-class one."""
    return read_catalog_csv(Path(path) if path else default_catalog_path())


def main(argv: list[str] | None = None) -> int:
    """``python -m pokedata.catalog build SRC OUT``: rebuild the catalog from the stats table."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] != "build":
        print("usage: python -m pokedata.catalog build SRC.csv OUT.csv", file=sys.stderr)
        return 2
    src, out = Path(argv[1]), Path(argv[2])
    if not src.is_file():
        print(f"error: stats table {src} does not exist", file=sys.stderr)
        return 2
    with src.open(newline="", encoding="utf-8") as fh:
        catalog = build_catalog(csv.DictReader(fh))
    write_catalog_csv(catalog, out)
    print(f"wrote {len(catalog)} classes to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
