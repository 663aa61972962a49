"""The external loaders on hand-written fixtures covering every category each benchmark publishes
(tests/fixtures/external/*; no benchmark data): category mapping with the original kept, the explicit
"Unmapped" class, USB's selections, MLLMGuard's dimensions, SafeBench's two folder layouts, the real
VLSBench data.json structure, chapter 08's smoke paths and the errors that name the file, record / line
and field. The published lists these tests check against are the loader modules' tables (each module's
docstring says where the list comes from)."""
from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.taxonomy import L1_CATEGORIES, UNMAPPED, check_category
from ssui_lib.data.bundled import dataset_stats, load_dataset
from ssui_lib.data.loaders import LOADERS, vlsbench_class
from ssui_lib.data.loaders.common import UnmappedLog, read_csv, split_fragment
from ssui_lib.data.loaders.mllmguard import load_mllmguard
from ssui_lib.data.loaders.safebench import (SAFEBENCH_TAXONOMY, clean_name, find_text_folder, parent_category,
                                             read_category_file, safebench_class)
from ssui_lib.data.loaders.usb import USB_TAXONOMY, usb_class
from ssui_lib.data.loaders.vlsbench import VLSBENCH_TAXONOMY

FIX = Path(__file__).parent / "fixtures" / "external"


def load(spec: str):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = load_dataset(spec)
    return s, [str(x.message) for x in w]


def test_siuo_every_published_category():
    s, w = load(f"siuo-gen:{FIX / 'siuo' / 'siuo_gen_all.json'}")
    assert not w and len(s) == 9
    got = {x.extra["category"]: x.category.l1 for x in s}
    assert got["Religion"] == "Offensive Religious Beliefs" and got["Self-Harm"] == "Dangerous Behavior"
    assert got["Controversial Topics, Politics"] == "Political Controversies"
    assert all(c in L1_CATEGORIES for c in got.values())
    assert "original labels: category=Privacy Violation" in s[-1].provenance.notes


# VLSBench's data.json as published (AI45Lab/VLSBench data/data.json; the Hugging Face release since
# 2025-03-10 adds the last two keys): key order and types of every record.
VLSBENCH_FIELDS = [("instruction_id", int), ("instruction", str), ("image_path", str), ("category", str),
                   ("sub_category", str), ("source", str), ("image_description", str), ("safety_reason", str)]


def test_vlsbench_every_published_subcategory():
    s, w = load(f"vlsbench:{FIX / 'vlsbench' / 'data_all_categories.json'}")
    assert not w and len(s) == 21
    pairs = {(x.extra["category"], x.extra["sub_category"]): x.category.l1 for x in s}
    published = {(c, sub): cls for c, subs in VLSBENCH_TAXONOMY.items() for sub, cls in subs.items()}
    assert len(published) == 19 and len(VLSBENCH_TAXONOMY) == 6
    assert set(published) <= set(pairs)  # every published sub-category, under its category, in the fixture
    assert all(pairs[k] == cls for k, cls in published.items())
    assert all(cls in L1_CATEGORIES for cls in pairs.values())
    assert pairs[("Hate", "Religious Intolerance")] == "Offensive Religious Beliefs"
    assert pairs[("Hate", "Gender and Sexual Orientation Discrimination")] == "Discrimination and Stereotypes"
    # sub-categories seen under another category in the real file: the category decides
    assert pairs[("Hate", "Psychological and Disordered Harm")] == "Discrimination and Stereotypes"
    assert pairs[("Illegal Activity", "Identity Theft and Impersonation")] == "Illegal Crimes"
    assert vlsbench_class("Hate", None) == "Discrimination and Stereotypes"
    assert vlsbench_class("Privacy", "Religious data") == "Privacy Violations"  # only Hate / Controversial refine
    assert vlsbench_class("Controversial Topics", "Political Extremism") == "Political Controversies"  # older name
    assert vlsbench_class("Hate", "Religious hatred") == "Offensive Religious Beliefs"  # unpublished sub, by its words
    assert vlsbench_class("Gardening", "Cybercrime") is None


def test_vlsbench_fixture_has_the_real_file_structure(tmp_path):
    p = FIX / "vlsbench" / "data_all_categories.json"
    text = p.read_text(encoding="utf-8")
    rows = json.loads(text)
    assert text.startswith("[\n  {\n    \"instruction_id\": 0,") and text.endswith("}\n]\n")  # 2-space indent
    assert all([(k, type(v)) for k, v in r.items()] == VLSBENCH_FIELDS for r in rows)
    assert len({r["image_path"] for r in rows}) < len(rows)  # pictures shared between instructions
    assert any("\n" in r["instruction"] and not r["instruction"].isascii() for r in rows)
    assert {r["source"] for r in rows} == {"generation", "MultiTrust", "coco2017", "Unsafebench", "MLLMGuard"}
    s, _ = load(f"vlsbench:{p}")
    assert [x.id for x in s][:2] == ["vlsbench-0", "vlsbench-1"] and s[0].extra["instruction_id"] == 0
    multi = next(x for x in s if x.extra["instruction_id"] == 20)
    assert multi.query == rows[20]["instruction"] and multi.safety_warning == rows[20]["safety_reason"]
    # the GitHub copy (before the 2025-03-10 update): no image_description / safety_reason
    old = [{k: v for k, v in r.items() if k not in ("image_description", "safety_reason")} for r in rows]
    (tmp_path / "data.json").write_text(json.dumps(old, indent=2), encoding="utf-8")
    with pytest.raises(SSUIError, match=r"record \[0\] has no 'image_description'"):
        load_dataset(f"vlsbench:{tmp_path / 'data.json'}")  # no pictures and nothing to caption them with
    shutil.copytree(FIX / "vlsbench" / "imgs", tmp_path / "imgs")
    s, w = load(f"vlsbench:{tmp_path / 'data.json'}")
    assert not w and len(s) == 21 and all(x.image.source for x in s) and s[0].safety_warning == ""


def test_unknown_label_is_unmapped_with_one_counting_warning(tmp_path):
    rows = json.loads((FIX / "vlsbench" / "data_all_categories.json").read_text())
    rows[0]["category"] = rows[3]["category"] = "Gardening"
    p = tmp_path / "data.json"
    p.write_text(json.dumps(rows))
    shutil.copytree(FIX / "vlsbench" / "imgs", tmp_path / "imgs")
    s, w = load(f"vlsbench:{p}")
    assert len(s) == len(rows)
    assert [x.category.l1 for x in s].count(UNMAPPED) == 2 and s[0].extra["category"] == "Gardening"
    msgs = [m for m in w if UNMAPPED in m]
    assert len(msgs) == 1 and "2 record(s)" in msgs[0] and "'Gardening' (2)" in msgs[0]
    stats = dataset_stats(s)
    assert stats["by_category"][UNMAPPED]["irs"] == 2


def test_unmapped_is_a_level1_class_only():
    check_category(UNMAPPED)
    with pytest.raises(SSUIError):
        check_category(UNMAPPED, "anything")
    log = UnmappedLog(Path("x.json"))
    assert log.resolve("Violence", "v") == "Violence" and log.resolve(None, "odd") == UNMAPPED
    assert log.labels == {"odd": 1}


def test_mssbench_four_categories_chat_and_embodied():
    s, w = load(f"mssbench:{FIX / 'mssbench' / 'combined_all.json'}")
    assert not w and len(s) == 2 * (4 + 4)
    types = {x.extra.get("type") or x.extra.get("category") for x in s}
    assert types == {"Physical Harm", "Property Damage", "Illegal Activities", "Offensive Behavior"}
    assert {x.extra["task"] for x in s} == {"chat", "embodied"}


def test_usb_selections():
    path = FIX / "usb" / "USB_base_final.csv"
    every, _ = load(f"usb:{path}")
    sist, _ = load(f"usb:{path}#sist")
    over, _ = load(f"usb:{path}#overrefusal")
    vul, _ = load(f"usb:{path}#vulnerability")
    assert len(every) == 8 and len(vul) == 6 and len(over) == 2
    assert [x.id for x in sist] == ["usb-u1", "usb-u2", "usb-u3"]
    assert all(x.extra["modality"] == "SIST" and x.kind == "irs" and x.verdict == "unsafe" for x in sist)
    assert all(x.kind == "twin" and x.verdict == "safe" and x.pair_id is None for x in over)
    assert {x.extra["level1_category"] for x in every} == {"Public Safety", "National Safety", "Ethical Safety"}
    assert sist[0].category.l1 == "Privacy Violations" and sist[0].image.source.endswith("usb/imgs/0.png")
    assert [x.id for x in load(f"usb:{path}#rist")[0]] == ["usb-u6"]
    with pytest.raises(SSUIError, match="unknown selection #nope"):
        load_dataset(f"usb:{path}#nope")


def test_usb_class_falls_back_to_primary():
    assert usb_class("Public Safety", "Privacy Protection", "Personal Information Leakage") == "Privacy Violations"
    assert usb_class("Ethical Safety", "Something", "Else") == "Moral Violations"
    assert usb_class("Galactic Safety", None, None) is None
    # the published triple decides before the keyword rules ("harm" would say Dangerous Behavior)
    assert usb_class("Ethical Safety", "Inappropriate values", "Harmful Rumors") == "Political Controversies"
    assert usb_class("ethical safety", "inappropriate VALUES", "harmful rumors") == "Political Controversies"
    assert usb_class("Other Safety", "Inappropriate values", "Harmful Rumors") == "Dangerous Behavior"


def test_usb_every_published_tertiary_category():
    s, w = load(f"usb:{FIX / 'usb' / 'USB_hard_final.csv'}")
    assert not w and len(s) == 61
    published = {(a, b, c): cls for a, l2 in USB_TAXONOMY.items() for b, l3 in l2.items() for c, cls in l3.items()}
    assert len(USB_TAXONOMY) == 3 and sum(len(v) for v in USB_TAXONOMY.values()) == 16 and len(published) == 61
    got = {(x.extra["level1_category"], x.extra["level2_category"], x.extra["level3_category"]): x.category.l1 for x in s}
    assert got == published  # each published tertiary category once, with its class
    assert all(cls in L1_CATEGORIES for cls in got.values())
    assert {x.extra["modality"] for x in s} == {"SIST", "RIST", "SIRT", "RIRT"}
    sist, _ = load(f"usb:{FIX / 'usb' / 'USB_hard_final.csv'}#sist")
    over, _ = load(f"usb:{FIX / 'usb' / 'USB_hard_final.csv'}#overrefusal")
    assert len(over) == 12 and all(x.kind == "twin" for x in over) and len(sist) == 13
    assert s[0].extra["text_zh"].startswith("写一则")
    base, _ = load(f"usb:{FIX / 'usb' / 'USB_base_final.csv'}")
    assert all((x.extra["level1_category"], x.extra["level2_category"], x.extra["level3_category"]) in published
               for x in base)  # the smaller fixture uses published names too


@pytest.mark.parametrize("edit, msg", [
    (lambda r: r[2].__setitem__(7, "maybe"), r"USB_base_final\.csv: line 3: field 'img_risk': expected 0 or 1, got 'maybe'"),
    (lambda r: r[1].__setitem__(10, "sometimes"), r"line 2: field 'usage': 'sometimes' is neither"),
    (lambda r: r[4].__setitem__(1, ""), r"line 5: field 'text': empty"),
    (lambda r: r[0].__setitem__(3, "picture"), r"line 1: no image column"),
])
def test_usb_errors_name_file_line_field(tmp_path, edit, msg):
    shutil.copytree(FIX / "usb", tmp_path / "usb")
    p = tmp_path / "usb" / "USB_base_final.csv"
    rows = list(csv.reader(p.open(encoding="utf-8")))
    edit(rows)
    with p.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(SSUIError, match=msg):
        load_dataset(f"usb:{p}")


def test_usb_needs_images(tmp_path):
    p = tmp_path / "USB_base_final.csv"
    shutil.copy(FIX / "usb" / "USB_base_final.csv", p)
    with pytest.raises(SSUIError, match="gives no text description of the picture"):
        load_dataset(f"usb:{p}")


def test_mllmguard_dimensions_and_language():
    s, w = load(f"mllmguard:{FIX / 'mllmguard'}")
    assert not w and len(s) == 8
    assert {x.extra["dimension"] for x in s} == {"privacy", "bias", "toxicity", "hallucination", "noise-injection",
                                                  "position-swapping", "legality"}
    assert {x.extra["group"] for x in s} == {"privacy", "bias", "toxicity", "truthfulness", "legality"}
    en, _ = load(f"mllmguard:{FIX / 'mllmguard'}#en")
    assert len(en) == 7 and all(x.extra["language"] == "en" for x in en)
    one, _ = load(f"mllmguard:{FIX / 'mllmguard' / 'privacy'}")
    assert [x.id for x in one] == ["mllmguard-privacy-0", "mllmguard-privacy-1"]
    assert one[0].image.source.endswith("mllmguard/privacy/imgs/0.png") and one[0].category.l1 == "Privacy Violations"


def test_mllmguard_errors(tmp_path):
    with pytest.raises(SSUIError, match="no <dimension>/prompt.csv inside"):
        load_dataset(f"mllmguard:{tmp_path}")
    d = tmp_path / "privacy"
    shutil.copytree(FIX / "mllmguard" / "privacy", d)
    (d / "prompt.csv").write_text("img,prompt,type,source,lan\n0.png,,free-text,x,en\n", encoding="utf-8")
    with pytest.raises(SSUIError, match=r"privacy/prompt\.csv: line 2: field 'prompt': empty"):
        load_dataset(f"mllmguard:{tmp_path}")


def test_safebench_categories_and_subcategories():
    s, w = load(f"safebench:{FIX / 'safebench'}")
    assert not w and len(s) == 22
    cats = {x.extra["category"] for x in s}
    assert cats == {"Advisory Content", "Confidential Information", "Cybersecurity", "Ethics and Morality",
                    "Illegal Activities", "Violence", "Inappropriate Speech or Views"}
    by = {x.extra["sub_category"]: x.category.l1 for x in s}
    assert by["Pornography"] == "Pornography" and by["Extreme Religious Views"] == "Offensive Religious Beliefs"
    assert by["Trade Secrets"] == "Privacy Violations" and by["Malware Generation"] == "Illegal Crimes"
    assert all(x.image.source for x in s) and len({x.id for x in s}) == 22


def test_safebench_headerless_and_unknown(tmp_path):
    (tmp_path / "images").mkdir()
    shutil.copy(FIX / "safebench" / "images" / "0.png", tmp_path / "images" / "0.png")
    d = tmp_path / "08_Mystery"
    d.mkdir()
    (d / "01_Odd_Things.csv").write_text("Do the odd thing shown here.,../images/0.png\n", encoding="utf-8")
    s, w = load(f"safebench:{tmp_path}")
    assert s[0].category.l1 == UNMAPPED and s[0].extra["category"] == "Mystery"
    assert len([m for m in w if UNMAPPED in m]) == 1
    (d / "01_Odd_Things.csv").write_text("Do the odd thing shown here.\n", encoding="utf-8")
    with pytest.raises(SSUIError, match=r"01_Odd_Things\.csv: line 1: field 'column 1': missing|field 'image': missing"):
        load_dataset(f"safebench:{tmp_path}")
    assert clean_name("03_Hate_Speech") == "Hate Speech" and safebench_class(None, "Fraud") == "Illegal Crimes"


def test_helpers(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2,3\n", encoding="utf-8")
    with pytest.raises(SSUIError, match=r"x\.csv: line 2: 3 fields but the header has 2"):
        read_csv(p)
    with pytest.raises(SSUIError, match="folder was given"):
        read_csv(tmp_path)
    assert split_fragment("a/b.csv#SIST", ("sist",), "usb") == (Path("a/b.csv"), "sist")
    assert split_fragment("a/b.csv", ("sist",), "usb") == (Path("a/b.csv"), None)
    assert set(LOADERS) >= {"usb", "mllmguard", "safebench"}


def test_mllmguard_hugging_face_layout(tmp_path):
    shutil.copytree(FIX / "mllmguard", tmp_path / "desensitize")  # the dataset repository keeps them there
    s = load_mllmguard(tmp_path)
    assert len(s) == 8 and {x.extra["dimension"] for x in s} == {x.extra["dimension"] for x in load_mllmguard(FIX / "mllmguard")}


SAFEBENCH_OFFICIAL = FIX / "safebench_official"


def test_safebench_every_published_subcategory_in_both_layouts():
    published = {(c, sub) for c, subs in SAFEBENCH_TAXONOMY.items() for sub in subs}
    assert len(SAFEBENCH_TAXONOMY) == 7 and len(published) == 22  # the eighth is not published where we looked
    named, _ = load(f"safebench:{FIX / 'safebench'}")
    official, w = load(f"safebench:{SAFEBENCH_OFFICIAL}")
    for samples in (named, official):
        pairs = {(x.extra["category"], x.extra["sub_category"]): x.category.l1 for x in samples}
        assert published <= set(pairs)
        assert all(pairs[p] in L1_CATEGORIES and pairs[p] == safebench_class(*p) for p in published)
    # the fixture's 23rd scenario stands for the unpublished one: any label loads, Unmapped, one warning
    odd = [x for x in official if x.category.l1 == UNMAPPED]
    assert [x.extra["sub_category"] for x in odd] == ["Unpublished Scenario"]
    assert len(w) == 1 and "23.csv: 1 record(s)" in w[0] and "'Unpublished Category > Unpublished Scenario'" in w[0]


def test_safebench_official_layout():
    s, _ = load(f"safebench:{SAFEBENCH_OFFICIAL}")
    assert len(s) == 24 and s[0].id == "safebench-01-1" and s[-1].id == "safebench-23-1"
    # a blank row keeps its number, as in the official scripts (img/<n>/<row>.png)
    two = [x for x in s if x.extra["scenario"] == 1]
    assert [x.id for x in two] == ["safebench-01-1", "safebench-01-3"]
    assert two[1].image.source.endswith("minibench_final/img/1/3.png") and two[1].extra["row"] == 3
    assert s[0].extra["category"] == "Advisory Content" and s[0].category.l1 == "Dangerous Behavior"
    text = SAFEBENCH_OFFICIAL / "minibench_final" / "text"
    assert find_text_folder(SAFEBENCH_OFFICIAL) == text and find_text_folder(FIX / "safebench") is None
    same, _ = load(f"safebench:{text}")  # the text/ folder itself, or one file of it
    assert [x.id for x in same] == [x.id for x in s]
    one, _ = load(f"safebench:{text / '18.csv'}")
    assert [x.extra["sub_category"] for x in one] == ["Hate Speech"]
    with pytest.warns(UserWarning, match="Unpublished Scenario"):
        given = LOADERS["safebench"](text, image_dir=SAFEBENCH_OFFICIAL / "minibench_final" / "img")
    assert [x.image.source for x in given] == [x.image.source for x in s]


def test_safebench_official_without_names_or_images(tmp_path):
    shutil.copytree(SAFEBENCH_OFFICIAL / "minibench_final", tmp_path / "minibench_final")
    s, w = load(f"safebench:{tmp_path}")  # no category.csv: numbers only, every scenario Unmapped
    assert all(x.category.l1 == UNMAPPED for x in s) and s[0].extra["sub_category"] == "risk scenario 1"
    assert len([m for m in w if UNMAPPED in m]) == 23  # one per file
    shutil.rmtree(tmp_path / "minibench_final" / "img")
    with pytest.raises(SSUIError, match=r"text/1\.csv: image folder .*img holds none.*gives no text description"):
        load_dataset(f"safebench:{tmp_path}")
    (tmp_path / "other" / "text").mkdir(parents=True)
    (tmp_path / "other" / "text" / "1.csv").write_text("q\n", encoding="utf-8")
    with pytest.raises(SSUIError, match="several SafeBench question folders"):
        load_dataset(f"safebench:{tmp_path}")


def test_read_category_file(tmp_path):
    names = read_category_file(SAFEBENCH_OFFICIAL / "category.csv")
    assert len(names) == 23 and names[7] == ("Cybersecurity", "Vulnerability Exploitation")
    p = tmp_path / "category.csv"
    p.write_text("1,Medical Advice\n2,Something New\n", encoding="utf-8")  # scenario names only
    assert read_category_file(p) == {1: ("Advisory Content", "Medical Advice"), 2: (None, "Something New")}
    assert parent_category("hate speech") == "Inappropriate Speech or Views" and parent_category("x") is None
    for body, msg in [("1,A\n1,B\n", r"line 2: scenario 1 is named twice"), ("id,name\n3,\n", r"line 2: scenario 3 has no name"),
                      ("id,name\n", "no '<number>,<name>' rows")]:
        p.write_text(body, encoding="utf-8")
        with pytest.raises(SSUIError, match=msg):
            read_category_file(p)


def test_read_csv_keeps_blank_rows_when_asked(tmp_path):
    p = tmp_path / "1.csv"
    p.write_text("a\n\nb\n", encoding="utf-8")
    assert read_csv(p, header=False)[1] == [["a"], ["b"]]
    assert read_csv(p, header=False, keep_blank=True)[1] == [["a"], [], ["b"]]


def test_chapter08_smoke_fixtures_load():
    """The paths book.toml gives chapter 08 in the smoke profile load (the book itself is not run here)."""
    import tomllib

    from ssui_lib.eval.bench_run import load_parts

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "book.toml").read_text(encoding="utf-8"))["profiles"]["smoke"]["chapters"]["08"]
    benches = ("usb", "mllmguard", "mssbench", "safebench", "vlsbench")
    assert all(conf.get(f"{b}_path") for b in benches)
    for b in benches:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = load_parts(b, root / conf[f"{b}_path"], conf.get(f"{b}_image_dir") or None, conf.get("bench_limit"))
        assert parts and all(len(v) >= 1 for v in parts.values()), b
