"""Model backends behind one interface, resolved from a name that fits in a papermill parameter:

  embedded                          SmolLM2-135M-Instruct, offline, CPU (caption mode)
  hf:PATH                           a local transformers model (a VLM if its config has a vision part)
  hf:PATH+adapter:PATH              the same with a LoRA adapter
  openai:MODEL                      the OpenAI API (key from $OPENAI_API_KEY)
  openai-compatible:URL#MODEL       any OpenAI-compatible server, e.g. vLLM: key from $SSUI_API_KEY (or the
                                    variable $SSUI_API_KEY_ENV names), none by default; never $OPENAI_API_KEY.
                                    Plain http:// only to loopback unless SSUI_ALLOW_INSECURE_HTTP=1.
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, ImageRef, Prompt, SamplingParams

__all__ = ["ChatModel", "Generation", "ImageRef", "Prompt", "SamplingParams", "resolve_model", "parse_model_name"]

FORMS = "embedded, hf:PATH, hf:PATH+adapter:PATH, openai:MODEL, openai-compatible:URL#MODEL"


def parse_model_name(name: str) -> dict:
    """Split a model name into its parts; SSUIError for a name that does not resolve."""
    if not isinstance(name, str) or not name.strip():
        raise SSUIError(f"model name must be a non-empty string (forms: {FORMS})")
    name = name.strip()
    if name == "embedded":
        return {"kind": "embedded"}
    if name.startswith("hf:"):
        rest = name[3:]
        path, _, adapter = rest.partition("+adapter:")
        if not path:
            raise SSUIError(f"model {name!r}: missing PATH after 'hf:'")
        if "+adapter:" in rest and not adapter:
            raise SSUIError(f"model {name!r}: missing PATH after '+adapter:'")
        return {"kind": "hf", "path": path, "adapter": adapter or None}
    if name.startswith("openai:"):
        model = name[len("openai:"):]
        if not model:
            raise SSUIError(f"model {name!r}: missing MODEL after 'openai:'")
        return {"kind": "openai", "model": model, "base_url": None}
    if name.startswith("openai-compatible:"):
        rest = name[len("openai-compatible:"):]
        url, sep, model = rest.rpartition("#")
        if not sep or not url or not model:
            raise SSUIError(f"model {name!r}: expected openai-compatible:URL#MODEL")
        if not url.startswith(("http://", "https://")):
            raise SSUIError(f"model {name!r}: URL must start with http:// or https://")
        from ssui_lib.models.openai_compat import check_base_url

        check_base_url(url, f"model {name!r}")
        return {"kind": "openai", "model": model, "base_url": url}
    raise SSUIError(f"unknown model name {name!r} (forms: {FORMS})")


def is_vlm_folder(path: str) -> bool:
    import json

    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise SSUIError(f"hf:{path}: no config.json in that folder")
    c = json.loads(cfg.read_text())
    return "vision_config" in c


def resolve_model(name: str, *, cache_dir=None, response_cache=None, **kw) -> ChatModel:
    """The ChatModel for a model name (see module docstring)."""
    spec = parse_model_name(name)
    if spec["kind"] == "embedded":
        from ssui_lib.models.embedded import load_embedded

        return load_embedded(cache_dir, **kw)
    if spec["kind"] == "hf":
        if not Path(spec["path"]).is_dir():
            raise SSUIError(f"model {name!r}: folder {spec['path']!r} not found")
        if is_vlm_folder(spec["path"]):
            from ssui_lib.models.hf_vlm import HFVisionChatModel

            return HFVisionChatModel(spec["path"], adapter=spec["adapter"], name=name, **kw)
        from ssui_lib.models.hf_lm import load_hf_lm

        return load_hf_lm(spec["path"], adapter=spec["adapter"], name=name, **kw)
    from ssui_lib.models.openai_compat import OpenAIChatModel

    return OpenAIChatModel(spec["model"], base_url=spec["base_url"], cache=response_cache, **kw)
