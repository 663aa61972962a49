"""Model backends behind one interface, resolved from a name that fits in a papermill parameter:

  embedded                          SmolLM2-135M-Instruct, offline, CPU (caption mode)
  hf:PATH                           a local transformers model (a VLM if its config has a vision part)
  hf:PATH+adapter:PATH              the same with a LoRA adapter
  openai:MODEL                      the OpenAI API (key from $OPENAI_API_KEY)
  openai-compatible:URL#MODEL       any OpenAI-compatible server, e.g. vLLM: key from $SSUI_API_KEY (or the
                                    variable $SSUI_API_KEY_ENV names), none by default; never $OPENAI_API_KEY.
                                    Plain http:// only to loopback unless SSUI_ALLOW_INSECURE_HTTP=1.
  openai-compatible:URL1,URL2#MODEL several servers of one model (vLLM data parallel): requests spread over them
  openai-compatible:URL#MODEL+logprobs  a vLLM server that also gives token log-probabilities (scoring, forced
                                    verdicts, sampled-token logprobs); see models/openai_compat.py
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, ImageRef, Prompt, SamplingParams
from ssui_lib.models.openai_compat import check_base_url, split_base_urls  # noqa: F401  (check_base_url: re-export)

__all__ = ["ChatModel", "Generation", "ImageRef", "Prompt", "SamplingParams", "resolve_model", "parse_model_name", "ModelSpec", "LazyModel"]

FORMS = "embedded, hf:PATH, hf:PATH+adapter:PATH, openai:MODEL, openai-compatible:URL#MODEL"


@dataclass(frozen=True)
class ModelSpec:
    """A model name resolved once, at the edge, into its parts (see the module docstring).

    ``kind`` is ``embedded``, ``hf`` (``path``, optional ``adapter``) or ``openai`` (``model``,
    ``base_url`` None for the OpenAI API itself); ``name`` is the name it was parsed from."""
    kind: str
    name: str
    path: str | None = None
    adapter: str | None = None
    model: str | None = None
    base_url: str | None = None  # several servers: their URLs joined by commas
    logprobs: bool = False  # openai-compatible ...+logprobs: the server scores continuations (vLLM)

    @property
    def local(self) -> bool:
        """A model whose weights are on this machine (embedded or hf:PATH)."""
        return self.kind in ("embedded", "hf")

    def to_dict(self) -> dict[str, Any]:
        """The parts that matter for the kind (``name`` aside)."""
        if self.kind == "embedded":
            return {"kind": "embedded"}
        if self.kind == "hf":
            return {"kind": "hf", "path": self.path, "adapter": self.adapter}
        d = {"kind": self.kind, "model": self.model, "base_url": self.base_url}
        return {**d, "logprobs": True} if self.logprobs else d


def parse_model_name(name: str | ModelSpec) -> ModelSpec:
    """The :class:`ModelSpec` of a model name; SSUIError for a name that does not resolve."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise SSUIError(f"model name must be a non-empty string (forms: {FORMS})")
    name = name.strip()
    if name == "embedded":
        return ModelSpec("embedded", name)
    if name.startswith("hf:"):
        rest = name[3:]
        path, _, adapter = rest.partition("+adapter:")
        if not path:
            raise SSUIError(f"model {name!r}: missing PATH after 'hf:'")
        if "+adapter:" in rest and not adapter:
            raise SSUIError(f"model {name!r}: missing PATH after '+adapter:'")
        return ModelSpec("hf", name, path=path, adapter=adapter or None)
    if name.startswith("openai:"):
        model = name[len("openai:"):]
        if not model:
            raise SSUIError(f"model {name!r}: missing MODEL after 'openai:'")
        return ModelSpec("openai", name, model=model)
    if name.startswith("openai-compatible:"):
        rest = name[len("openai-compatible:"):]
        url, sep, model = rest.rpartition("#")
        if not sep or not url or not model:
            raise SSUIError(f"model {name!r}: expected openai-compatible:URL#MODEL")
        model, plus, flag = model.rpartition("+logprobs") if model.endswith("+logprobs") else (model, "", "")
        if not model:
            raise SSUIError(f"model {name!r}: missing MODEL before '+logprobs'")
        urls = split_base_urls(url, f"model {name!r}")
        if any(not u.startswith(("http://", "https://")) for u in urls):
            raise SSUIError(f"model {name!r}: URL must start with http:// or https://")
        return ModelSpec("openai", name, model=model, base_url=",".join(urls), logprobs=bool(plus))
    raise SSUIError(f"unknown model name {name!r} (forms: {FORMS})")


def is_vlm_folder(path: str) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise SSUIError(f"hf:{path}: no config.json in that folder")
    c = json.loads(cfg.read_text())
    return "vision_config" in c


def resolve_model(name: str | ModelSpec, *, cache_dir=None, response_cache=None, **kw) -> ChatModel:
    """The ChatModel for a model name or :class:`ModelSpec` (see module docstring). The backends
    are imported here, on demand: each pulls in torch/transformers or an HTTP client, and
    ``import ssui_lib.models`` must stay light (the ``ssui data``/``ssui book`` start-up)."""
    spec = parse_model_name(name)
    if spec.kind == "embedded":
        from ssui_lib.models.embedded import load_embedded

        return load_embedded(cache_dir, **kw)
    if spec.kind == "hf":
        if not Path(spec.path).is_dir():
            raise SSUIError(f"model {spec.name!r}: folder {spec.path!r} not found")
        if is_vlm_folder(spec.path):
            from ssui_lib.models.hf_vlm import HFVisionChatModel

            return HFVisionChatModel(spec.path, adapter=spec.adapter, name=spec.name, **kw)
        from ssui_lib.models.hf_lm import load_hf_lm

        return load_hf_lm(spec.path, adapter=spec.adapter, name=spec.name, **kw)
    from ssui_lib.models.openai_compat import OpenAIChatModel

    if spec.logprobs:
        kw.setdefault("logprobs", True)
    return OpenAIChatModel(spec.model, base_url=spec.base_url, cache=response_cache, **kw)


class LazyModel:
    """A model that is loaded on first use: a name resolved at the edge (:class:`ModelSpec`), or a
    ChatModel already loaded. Library functions that may finish without a model (a resumed run
    whose outputs are all on disk) take one of these and call :meth:`load` only when they must."""

    def __init__(self, name: str | ModelSpec, **resolve_kw: Any):
        self.spec: ModelSpec | None = name if isinstance(name, ModelSpec) else None
        self.name: str = name.name if isinstance(name, ModelSpec) else name
        if not isinstance(self.name, str) or not self.name.strip():
            raise SSUIError(f"model name must be a non-empty string (forms: {FORMS})")
        self._kw = resolve_kw
        self._model: ChatModel | None = None

    @classmethod
    def of(cls, model: "ChatModel | LazyModel") -> "LazyModel":
        """``model`` itself if it is a LazyModel, else a LazyModel already holding the ChatModel."""
        if isinstance(model, LazyModel):
            return model
        if isinstance(model, str) or not hasattr(model, "generate"):
            raise SSUIError(f"expected a ChatModel or models.LazyModel(name), got {type(model).__name__} {model!r}")
        lazy = cls(model.name)
        lazy._model = model
        return lazy

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> ChatModel:
        """The ChatModel (resolved from the name on the first call)."""
        if self._model is None:
            self._model = resolve_model(self.spec or self.name, **self._kw)
        return self._model

    def __repr__(self) -> str:
        return f"LazyModel({self.name!r}, loaded={self.loaded})"
