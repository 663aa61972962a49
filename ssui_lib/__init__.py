"""ssui_lib — the library behind the SSUI Book (implicit reasoning safety of VLMs).

The rooms (subpackages); a module imports only from its own room or from rooms above it:

  core/      errors, schema, taxonomy, chain (every step/verdict pattern), store (the one hash;
             durable JSONL appends and torn-line reads, atomic writes, the same-settings guard), lock
  data/      bundled set, external loaders, exports, images (ImageRef), embeddings
  models/    one model interface (ModelSpec, LazyModel, resolve_model): embedded, transformers LM +
             VLM, OpenAI-compatible; prompts; trainable (the protocol a trained backend implements)
  curation/  settings, agents (stages 1, 2, 4, 5), reflection (stage 3), run (the loop),
             report (reading a run), revision (stage 6)
  eval/      icl (exemplar pools and choices), judge, evaluate (generate → judge → metrics),
             heldout, metrics (pure)
  srpo/      explore, losses (pure: SRPO, DPO, ORPO), config, examples, checkpoints, train (the
             loop), runs (reused runs, adapters, held-out variants), branch scores
  book/      runner, config (Chapter), params, HTML, plots (one module per chapter family),
             widgets, environment, exercises, compare (two runs' tables and numbers)
  cli/       the command groups of ``python -m ssui_lib`` / ``ssui`` (train, evaluate: torch only
             when asked for)

core → data → models → curation / eval / srpo → book / cli.

Names are resolved once, at the edge: the command line and a notebook's first cells turn a model
name into a model (``resolve_model``, or ``LazyModel`` to load on first use) and a judge name into
a Judge (``resolve_judge``, which also places its cache); library functions take those objects and
refuse a name with one SSUIError.
"""
__version__ = "0.1.0"
