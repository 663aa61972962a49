"""ssui_lib — the library behind the SSUI Book (implicit reasoning safety of VLMs).

The rooms (subpackages); a module imports only from its own room or from rooms above it:

  core/      errors, schema, taxonomy, chain, store (durable JSONL, atomic writes, settings guards)
  data/      bundled set, external loaders, exports, images, embeddings
  models/    one model interface: embedded, transformers LM + VLM, OpenAI-compatible; prompts
  curation/  the five curation agents, the run loop, reports, the revision form
  eval/      icl, judge, evaluate (generate → judge → metrics), heldout, metrics (pure)
  srpo/      explore, losses (pure), train, runs, branch scores
  book/      runner, config, HTML, plots, widgets, environment
  cli/       the command groups of ``python -m ssui_lib`` / ``ssui``

core → data → models → curation / eval / srpo → book / cli.
"""
__version__ = "0.1.0"
