"""The bundled set holds to the IRS definition: one registry caption per photo, a passed text-only
screen on every IRS record, no placeholder replies, no scenario shared across splits."""
import json
import re
from collections import defaultdict

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.data import bundled as bundled_mod
from ssui_lib.data.bundled import load_bundled
from ssui_lib.data.images import photo_registry, registry_caption_problem


@pytest.fixture(scope="module")
def bundled():
    return load_bundled("all")


# ----------------------------------------------------------------------------- photo registry


def test_every_photo_record_uses_the_registry_caption(bundled):
    reg = photo_registry()
    captions = defaultdict(set)
    for s in bundled:
        if s.image.source and not s.image.source.startswith("file:"):
            assert s.image.source in reg, s.id
            captions[s.image.source].add(s.image.caption)
    assert captions and all(caps == {reg[src].caption} for src, caps in captions.items())


def test_registry_caption_problem():
    cap = photo_registry()["skimage:coffee.png"].caption
    assert registry_caption_problem("skimage:coffee.png", cap) is None
    assert registry_caption_problem(None, "anything") is None
    assert registry_caption_problem("file:x.png", "anything") is None
    assert "differs" in registry_caption_problem("skimage:coffee.png", "A latte with leaf art.")
    assert "not in the photo registry" in registry_caption_problem("skimage:horse.png", "a horse")


def test_loader_names_file_line_and_field_for_a_wrong_caption(tmp_path, monkeypatch, bundled):
    rec = json.loads(bundled_mod.bundled_files()[0].read_text(encoding="utf-8").splitlines()[0])
    rec["image"] = {"source": "skimage:coffee.png", "caption": "A latte with leaf art."}
    (tmp_path / "a.jsonl").write_text(json.dumps(rec) + "\n", encoding="utf-8")
    monkeypatch.setattr(bundled_mod, "BUNDLED_DIR", tmp_path)
    bundled_mod._bundled.cache_clear()
    try:
        with pytest.raises(SSUIError, match=r"a\.jsonl:1: field 'image\.caption'.*differs"):
            bundled_mod.load_bundled("all")
    finally:
        monkeypatch.undo()
        bundled_mod._bundled.cache_clear()


# ----------------------------------------------------------------------------- text-only screen, replies


def test_every_irs_record_passed_a_text_only_screen(bundled):
    for s in bundled:
        if s.kind != "irs":
            continue
        hand = [x for x in s.provenance.screens if x["check"] == "text-only"]
        assert hand and hand[-1]["verdict"] == "pass", s.id
        assert all(x.get("by") and x.get("note") for x in hand), s.id


BRACKETED = re.compile(r"\[([^\[\]]*)\]")


def is_placeholder_reply(text: str | None) -> bool:
    """A reply that stands in for content instead of giving it: a bracketed description of three or
    more words ('[joke implying …]'); one-word fill-in slots ('[name]') are fine in templates."""
    return any(len(span.split()) >= 3 for span in BRACKETED.findall(text or ""))


@pytest.mark.parametrize("text, expected", [
    ("Ha! Here's one: '[joke implying she was a quota hire]'.", True),
    ("[describes how to mask the flavour and smell]", True),
    ("Sign it '[your name]'.", False),
    ("Dear [Name], thanks.", False),
    ("No brackets at all.", False),
    (None, False),
])
def test_is_placeholder_reply(text, expected):
    assert is_placeholder_reply(text) is expected


def test_no_reply_is_a_bracketed_placeholder(bundled):
    bad = [s.id for s in bundled if is_placeholder_reply(s.unsafe_reply) or is_placeholder_reply(s.safe_reply)]
    assert not bad, bad
