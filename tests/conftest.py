import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # test helpers (fake_openai_server, tiny_vlms)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CI_TRUE = ("1", "true", "yes")


def ci() -> bool:
    """True under CI=true (also 1/yes): there a test that skips fails instead (no silent skips)."""
    return os.environ.get("CI", "").strip().lower() in CI_TRUE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test (missing browser, missing module, missing data) is a failure
    naming the skip reason, so a CI machine without Chromium cannot go green without its tests.
    Expected failures (xfail) are left alone."""
    outcome = yield
    rep = outcome.get_result()
    if not (ci() and rep.skipped) or hasattr(rep, "wasxfail"):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    reason = reason.removeprefix("Skipped: ")
    rep.outcome = "failed"
    rep.longrepr = f"skipped under CI=true, which does not allow skips: {reason}"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def embedded():
    """The embedded default model, loaded once per test session."""
    from ssui_lib.models import resolve_model

    return resolve_model("embedded")
