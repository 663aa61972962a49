"""Names resolved once, at the edge: ModelSpec, LazyModel, and the adapter helpers of srpo.runs."""
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.models import LazyModel, ModelSpec, parse_model_name
from ssui_lib.models.base import ChatModel, Generation
from ssui_lib.srpo.runs import adapter_base, adapter_model_name, find_adapter


class Echo(ChatModel):
    name = "echo"

    def generate(self, prompts, params, prefixes=None):
        return [[Generation(text="x", n_tokens=1)] for _ in prompts]


def test_model_spec_is_frozen_and_typed():
    s = parse_model_name(" hf:/w/q+adapter:/a ")
    assert s == ModelSpec("hf", "hf:/w/q+adapter:/a", path="/w/q", adapter="/a") and s.local
    assert parse_model_name(s) is s  # already resolved: returned as is
    assert not parse_model_name("openai:gpt-4o").local and parse_model_name("embedded").local
    with pytest.raises(AttributeError):
        s.path = "/other"  # type: ignore[misc]


def test_lazy_model_loads_on_first_use_only():
    lazy = LazyModel("hf:/no/such/folder")
    assert lazy.name == "hf:/no/such/folder" and not lazy.loaded
    with pytest.raises(SSUIError, match="not found"):
        lazy.load()
    m = Echo()
    held = LazyModel.of(m)
    assert held.loaded and held.load() is m and held.name == "echo" and LazyModel.of(held) is held
    with pytest.raises(SSUIError, match="expected a ChatModel"):
        LazyModel.of("embedded")  # type: ignore[arg-type]
    with pytest.raises(SSUIError, match="non-empty"):
        LazyModel("")


def test_adapters(tmp_path):
    assert adapter_base("hf:/base") == "/base" and adapter_base("openai:gpt-4o") is None
    assert adapter_base("hf:/base+adapter:/a") is None
    assert adapter_model_name("hf:/base", tmp_path) == f"hf:/base+adapter:{tmp_path}"
    with pytest.raises(SSUIError, match="local base model"):
        adapter_model_name("openai:gpt-4o", tmp_path)
    assert find_adapter(tmp_path) is None
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert find_adapter(tmp_path) == tmp_path / "adapter" and find_adapter(tmp_path / "adapter") == tmp_path / "adapter"
