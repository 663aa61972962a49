"""ssui_lib — the library behind the SSUI Book (implicit reasoning safety of VLMs).

Rows (a module imports only from rows above its own, see DESIGN.md):
  errors, schema, taxonomy
  data, images
  models, prompts, cache
  curation, icl, judge, explore
  losses, train, metrics
  plots, widgets, book, cli
"""
__version__ = "0.1.0"
