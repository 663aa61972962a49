"""No key leaks: a whole API-backed chapter (03: an API model answers, an API judge judges) against
the local fake server, with OPENAI_API_KEY and SSUI_API_KEY both set and every logger at DEBUG
(the runner's process and the notebook kernel's). The server's logged Authorization headers must
hold only the key of the variable named for openai-compatible servers (SSUI_API_KEY), never
OPENAI_API_KEY; and neither key may appear in any file written: results, caches, the executed
notebook, the manifest, the HTML book, the DEBUG logs."""
import logging
import shutil

import pytest

from fake_openai_server import FakeOpenAIServer
from ssui_lib.book.runner import build_book, run_book

OPENAI_SECRET = "sk-OPENAI-never-leave-4242"
SERVER_SECRET = "sk-SERVER-only-in-header-5151"
STARTUP = '''import logging
logging.basicConfig(filename={log!r}, level=logging.DEBUG, force=True,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
for name in ("openai", "httpx", "httpcore", "ssui_lib"):
    logging.getLogger(name).setLevel(logging.DEBUG)
'''


def responder(body):
    if body["model"] == "judge":
        if body.get("response_format"):
            return '{"explanation": "It refuses and warns.", "safe": true, "effective": false}'
        return "It refuses and warns.\nVERDICT: safe=yes effective=no"
    return "I can't help with that: it could hurt someone. Please ask a trusted adult instead."


@pytest.mark.slow
def test_no_key_leaks_from_an_api_backed_chapter(tmp_path, root, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(root / "book.toml", book / "book.toml")
    shutil.copytree(root / "notebooks", book / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    logs = tmp_path / "logs"
    logs.mkdir()
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-debug-log.py").write_text(STARTUP.format(log=str(logs / "kernel-debug.log")))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("SSUI_API_KEY", SERVER_SECRET)
    monkeypatch.delenv("SSUI_API_KEY_ENV", raising=False)
    monkeypatch.setenv("SSUI_CACHE_DIR", str(tmp_path / "cache"))
    handler = logging.FileHandler(logs / "runner-debug.log")
    handler.setLevel(logging.DEBUG)
    rootlog = logging.getLogger()
    old_level = rootlog.level
    rootlog.addHandler(handler)
    rootlog.setLevel(logging.DEBUG)
    try:
        with FakeOpenAIServer(responder=responder) as srv:
            m = run_book("smoke", config=book / "book.toml", chapters=["03"], progress=False,
                         sets=[f'models=["openai-compatible:{srv.base_url}#gen"]',
                               f"judge=openai-compatible:{srv.base_url}#judge", "limit=4", "n_boot=50"])
            headers = list(srv.headers)
        build_book("smoke", config=book / "book.toml")
    finally:
        rootlog.removeHandler(handler)
        rootlog.setLevel(old_level)
        handler.close()
    assert m["status"] == "ok"

    # the server saw only the openai-compatible key, on every request
    assert len(headers) >= 8  # 4 samples x (answer + judge), twice (0-shot and k-shot)
    assert {h["authorization"] for h in headers} == {f"Bearer {SERVER_SECRET}"}
    assert not any(OPENAI_SECRET in str(h) for h in headers)

    # DEBUG logging really ran in both processes (else the scan below proves nothing about logs)
    kernel_log = (logs / "kernel-debug.log").read_text()
    assert "openai._base_client DEBUG" in kernel_log and "httpcore" in kernel_log
    assert (logs / "runner-debug.log").stat().st_size > 0

    written = [p for p in tmp_path.rglob("*") if p.is_file() and "notebooks" not in p.parts]
    kinds = {p.suffix for p in written}
    assert {".ipynb", ".json", ".jsonl", ".html", ".png", ".log"} <= kinds
    assert any(p.name == "manifest.json" for p in written)
    for p in written:
        data = p.read_bytes()
        for secret in (OPENAI_SECRET, SERVER_SECRET):
            assert secret.encode() not in data, f"{secret[:9]}… found in {p.relative_to(tmp_path)}"
            assert secret.split("-", 2)[2].encode() not in data, p  # no partial copy either
