from __future__ import annotations

import csv
import io

import pytest

from pokedata.catalog import (
    build_catalog,
    danbooru_tag_for,
    load_catalog,
    main,
    read_catalog_csv,
    split_form_name,
    write_catalog_csv,
)
from pokedata.errors import UserError

TABLE = """#,Name,Type 1,Type 2,Total,HP,Attack,Defense,Sp. Atk,Sp. Def,Speed
 006,Charizard,Fire,Flying,534,78,84,78,109,85,100
 006,CharizardMega Charizard X,Fire,Dragon,634,78,130,111,130,85,100
 029,Nidoran♀,Poison,,275,55,47,52,40,40,41
 032,Nidoran♂,Poison,,273,46,57,40,40,40,50
 122,Mr. Mime,Psychic,Fairy,460,40,45,65,100,120,90
 233,Porygon2,Normal,,515,85,80,90,105,95,60
 386,DeoxysAttack Forme,Psychic,,600,50,180,20,180,20,150
 718,Zygarde50% Forme,Dragon,Ground,600,108,100,121,81,95,95
 720,HoopaHoopa Unbound,Psychic,Dark,680,80,160,60,170,130,80
"""


def test_build_from_rows_written_here():
    cat = build_catalog(csv.DictReader(io.StringIO(TABLE)))
    assert cat.names == [
        "Charizard",
        "Mega Charizard X",
        "Nidoran",
        "Mr. Mime",
        "Porygon2",
        "Deoxys Attack Forme",
        "Zygarde 50% Forme",
        "Hoopa Unbound",
    ]
    assert [c.class_index for c in cat] == list(range(8))
    mega = cat.by_name("mega charizard x")
    assert (mega.dex, mega.form, mega.danbooru_tag, mega.search_query) == (
        6,
        "mega",
        "mega_charizard_x",
        "Mega Charizard X pokemon",
    )
    assert cat.by_name("Nidoran").dex == 29
    assert cat.by_name("Deoxys Attack Forme").form == "forme"
    assert cat.by_name("Mr. Mime").danbooru_tag == "mr._mime"
    assert cat.by_name("Porygon2").form == "base"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CharizardMega Charizard Y", ("Charizard", "Mega Charizard Y", "mega")),
        ("KyogrePrimal Kyogre", ("Kyogre", "Primal Kyogre", "primal")),
        ("RotomHeat Rotom", ("Rotom", "Heat Rotom", "form")),
        ("MeowsticFemale", ("Meowstic", "Meowstic Female", "gender")),
        ("WormadamSandy Cloak", ("Wormadam", "Wormadam Sandy Cloak", "cloak")),
        ("Porygon-Z", ("Porygon-Z", "Porygon-Z", "base")),
        ("Mime Jr.", ("Mime Jr.", "Mime Jr.", "base")),
    ],
)
def test_split_form_name(raw, expected):
    assert split_form_name(raw) == expected


def test_danbooru_tag_guess():
    assert danbooru_tag_for("Farfetch'd") == "farfetch'd"
    assert danbooru_tag_for("Pikachu") == "pikachu"


def test_shipped_catalog_facts():
    cat = load_catalog()
    assert len(cat) == 799
    assert [c.class_index for c in cat] == list(range(799))
    assert len(set(cat.names)) == 799
    assert cat.by_name("Pikachu").dex == 25
    for name in ("Mega Charizard X", "Mega Charizard Y", "Mega Mewtwo X", "Mega Mewtwo Y"):
        assert cat.by_name(name).form == "mega"
    assert sum(1 for c in cat if c.name.startswith("Nidoran")) == 1
    assert {c.generation for c in cat} == {1, 2, 3, 4, 5, 6}


def test_shipped_catalog_matches_a_rebuild(shared_data, tmp_path):
    out = tmp_path / "rebuilt.csv"
    assert main(["build", str(shared_data / "pokemon-with-stats.csv"), str(out)]) == 0
    assert read_catalog_csv(out).classes == load_catalog().classes


def test_roundtrip_and_validation_errors(tmp_path):
    cat = build_catalog(csv.DictReader(io.StringIO(TABLE)))
    path = tmp_path / "cat.csv"
    write_catalog_csv(cat, path)
    assert read_catalog_csv(path).classes == cat.classes

    lines = path.read_text(encoding="utf-8").splitlines()
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([lines[0], lines[1], lines[1].replace("0,", "1,", 1)]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="duplicate class name 'Charizard'"):
        read_catalog_csv(dup)

    gap = tmp_path / "gap.csv"
    gap.write_text("\n".join([lines[0], lines[2].replace("1,", "5,", 1)]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="class_index 5 at row 1"):
        read_catalog_csv(gap)

    missing = tmp_path / "missing.csv"
    missing.write_text("class_index,name\n0,Pikachu\n", encoding="utf-8")
    with pytest.raises(UserError, match="lacks required column"):
        read_catalog_csv(missing)

    with pytest.raises(UserError, match="does not exist"):
        read_catalog_csv(tmp_path / "nope.csv")


def test_unknown_class_suggests_names():
    with pytest.raises(UserError, match="did you mean: .*Mega Charizard X"):
        load_catalog().by_name("Charizard X")
