import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.data.images import SHIPPED_PHOTOS, load_image, resolve_path


def test_shipped_photos_resolve():
    for src in SHIPPED_PHOTOS:
        assert resolve_path(src).is_file()
    im = load_image("skimage:coffee.png")
    assert im.mode == "RGB" and im.size == (600, 400)


@pytest.mark.parametrize("src, msg", [
    ("skimage:nope.png", "file not found"),
    ("ftp:x.png", "unknown scheme 'ftp'"),
    ("coffee.png", "expected SCHEME:NAME"),
])
def test_bad_sources(src, msg):
    with pytest.raises(SSUIError, match=msg):
        resolve_path(src)


def test_file_scheme_relative(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(tmp_path / "a.png")
    assert resolve_path("file:a.png", tmp_path) == tmp_path / "a.png"
    with pytest.raises(SSUIError, match="file not found"):
        resolve_path("file:b.png", tmp_path)


def test_photo_registry_one_caption_per_picture():
    from ssui_lib.data.images import PHOTO_KINDS, canonical_caption, photo_registry

    reg = photo_registry()
    assert len(reg) >= 20
    for src, p in reg.items():
        assert resolve_path(src).is_file()
        assert p.kind in PHOTO_KINDS and p.caption and p.carries
        assert canonical_caption(src) == p.caption == SHIPPED_PHOTOS[src]
    assert len({p.caption for p in reg.values()}) == len(reg)
    assert "no latte art" in reg["skimage:coffee.png"].caption
    assert canonical_caption("file:not-registered.png") is None


@pytest.mark.parametrize("text, msg", [
    ('{"skimage:a.png": {"caption": "x"}}', "field 'carries'"),
    ('{"skimage:a.png": {"caption": "x", "carries": "y", "kind": "drawing"}}', "field 'kind'"),
    ('{"skimage:a.png": {"caption": "x", "carries": "y", "colour": 1}}', "unknown field"),
    ('{"a.png": {"caption": "x", "carries": "y"}}', "SCHEME:NAME"),
    ('{"skimage:a.png": {"caption": "x",', "invalid JSON"),
    ('[1]', "expected an object"),
])
def test_photo_registry_errors(tmp_path, text, msg):
    from ssui_lib.data.images import read_photo_registry

    p = tmp_path / "photos.json"
    p.write_text(text)
    with pytest.raises(SSUIError, match=msg):
        read_photo_registry(p)
