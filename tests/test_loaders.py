"""The external loaders on hand-written fixtures covering every category each benchmark publishes
(tests/fixtures/external/*; no benchmark data): category mapping with the original kept, the explicit
"Unmapped" class, USB's selections, MLLMGuard's dimensions, SafeBench's folder layout and the errors
that name the file, record / line and field."""
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
from ssui_lib.data.loaders.safebench import clean_name, safebench_class
from ssui_lib.data.loaders.usb import usb_class

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


def test_vlsbench_six_categories_and_hate():
    s, w = load(f"vlsbench:{FIX / 'vlsbench' / 'data_all_categories.json'}")
    assert not w
    cats = {x.extra["category"] for x in s}
    assert {"Violent", "Illegal Activity", "Self-Harm", "Erotic", "Hate", "Privacy"} <= cats
    by = {x.extra["sub_category"]: x.category.l1 for x in s}
    assert by["Religious Intolerance"] == "Offensive Religious Beliefs"
    assert by["Racial and Ethnic Discrimination"] == "Discrimination and Stereotypes"
    assert by["Sexual Content"] == "Pornography" and by["Weapon-Related Violence"] == "Violence"
    assert vlsbench_class("Hate", None) == "Discrimination and Stereotypes"
    assert vlsbench_class("Privacy", "Religious data") == "Privacy Violations"  # only Hate / Controversial refine


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
