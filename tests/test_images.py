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
