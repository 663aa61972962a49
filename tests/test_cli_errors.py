"""Every bad input the reliability review listed: exit 2, one line naming the file/line/key, no
traceback, no partial output. Fixtures are written here."""
import json

import pytest

from ssui_lib.cli import _one_line, main
from ssui_lib.core.errors import SSUIError

def _record() -> dict:
    """A valid record: the first bundled one, re-identified (its fields are the schema's)."""
    from ssui_lib.data.bundled import bundled_files

    line = bundled_files()[0].read_text(encoding="utf-8").splitlines()[0]
    return {**json.loads(line), "id": "t-001", "pair_id": None, "kind": "irs"}


RECORD = _record()


def run(capsys, *argv):
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.err


@pytest.fixture
def files(tmp_path):
    good = json.dumps(RECORD)
    (tmp_path / "good.jsonl").write_text(good + "\n")
    (tmp_path / "nonutf.jsonl").write_bytes(good.encode() + b'\n{"id": "caf\xe9"}\n')
    (tmp_path / "catlist.jsonl").write_text(json.dumps({**RECORD, "category": ["Violence", "x"]}) + "\n")
    (tmp_path / "catdict.jsonl").write_text(json.dumps({**RECORD, "category": {"l1": {"a": 1}}}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    (tmp_path / "fake.png").write_text("this is a text file, not a PNG")
    img = {**RECORD, "image": {**RECORD["image"], "source": "file:fake.png"}}
    (tmp_path / "fakeimg.jsonl").write_text(json.dumps(img) + "\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize("argv, msg", [
    (["data", "validate", "{d}/nonutf.jsonl"], "nonutf.jsonl:2: not UTF-8 text (byte 0xe9 at column 12)"),
    (["data", "validate", "{d}/adir"], "adir: is a directory, expected a JSONL file"),
    (["data", "stats", "--dataset", "jsonl:{d}/adir"], "adir: is a directory, expected a JSONL file"),
    (["data", "validate", "{d}/catlist.jsonl"], "catlist.jsonl:1: field 'category': expected an object {l1, l2, l3}"),
    (["data", "validate", "{d}/catdict.jsonl"], "catdict.jsonl:1: field 'category.l1': expected a string, got dict"),
    (["data", "validate", "{d}/empty.jsonl"], "empty.jsonl: no records (the file is empty)"),
    (["data", "validate", "{d}/blank.jsonl"], "blank.jsonl: no records (the file is empty)"),
    (["data", "validate", "--check-images", "{d}/fakeimg.jsonl"],
     "fakeimg.jsonl:1: field 'image.source': 'file:fake.png' is not a decodable image (UnidentifiedImageError"),
    (["data", "export", "--to", "hf", "--dataset", "jsonl:{d}/empty.jsonl", "{d}/out"], "empty.jsonl: no records"),
    (["data", "validate", "{d}/missing.jsonl"], "missing.jsonl: file not found"),
])
def test_bad_data_input_is_one_line(files, capsys, argv, msg):
    rc, err = run(capsys, *[a.format(d=files) for a in argv])
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert msg in err and "Traceback" not in err
    assert not (files / "out").exists()


def test_good_file_still_validates_with_images_decoded(files, capsys):
    rc = main(["data", "validate", "--check-images", str(files / "good.jsonl")])
    assert rc == 0 and "1 valid records" in capsys.readouterr().out


def test_export_of_an_empty_set_writes_nothing(tmp_path):
    from ssui_lib.data.export import export

    with pytest.raises(SSUIError, match="no records to export"):
        export([], "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_ascii_api_key_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-caf\u00e9")
    rc, err = run(capsys, "generate", "--model", "openai:gpt-4o", "--dataset", "bundled:test", "--limit", "1",
                  "--out", str(files / "r.jsonl"))
    assert rc == 2 and err.count("\n") == 1
    assert "the API key in OPENAI_API_KEY has a non-printable or non-ASCII character at position 6" in err
    assert "caf" not in err and not (files / "r.jsonl").exists()


def test_one_line_of_os_and_decoding_errors():
    assert _one_line(IsADirectoryError(21, "Is a directory", "/x/y")) == "/x/y: Is a directory"
    assert _one_line(b"\xffab".decode("utf-8", errors="strict") if False else UnicodeDecodeError(
        "utf-8", b"ab\xff", 2, 3, "invalid start byte")) == "input is not UTF-8 text (byte 0xff at offset 2)"
    assert _one_line(SSUIError("a\nb")) == "a b"
    assert _one_line(ValueError("bad value")) == "ValueError: bad value"


def test_debug_env_shows_the_traceback(files, monkeypatch):
    monkeypatch.setenv("SSUI_DEBUG", "1")
    with pytest.raises(SSUIError):
        main(["data", "validate", str(files / "empty.jsonl")])


def test_a_second_command_on_the_same_output_refuses_naming_the_pid(files, capsys):
    import subprocess
    import sys

    out = files / "responses.jsonl"
    hold = ("import sys, time\nfrom ssui_lib.core.lock import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        for argv in (["generate", "--model", "embedded", "--dataset", "bundled:test", "--limit", "1", "--out", str(out)],
                     ["data", "export", "--to", "hf", "--dataset", "bundled:test", str(out)]):
            rc, err = run(capsys, *argv)
            assert rc == 2 and err.count("\n") == 1
            assert f"another run is writing this output (pid {p.pid} on " in err
        assert not out.exists()
    finally:
        p.kill()
        p.wait()
    # the holder was killed: its lock is taken over and released again
    rc, _ = run(capsys, "data", "export", "--to", "hf", "--dataset", "bundled:test", str(out))
    assert rc == 0 and out.is_dir() and not (files / "responses.jsonl.lock").exists()
