"""SSUI's five-stage curation pipeline (SSUI §2.2; SRPO "The SSUI Dataset", Fig. 2) on any ChatModel.

A *seed* is a safe picture (a source URI and its caption). For each seed the pipeline makes
``candidates_per_image`` candidates and passes each through the stages, in order:

  1. ``query``        query agent: hypothesise an unsafe scenario for the picture and write a
                      benign-looking query; output ``Question / Unsafe Category / Safe Reply /
                      Unsafe Reply``, parsed strictly (a missing, empty or ambiguous field rejects).
  2. ``reasoning``    reasoning agent: SSUI's six-step explainable chain (ssui_lib.core.chain format).
  3. ``reflection``   reflection agent: the agent model revises the query (redundant information
                      out, missing information in), then rule checks judge it: information
                      redundancy (the query must not restate the picture: content-word overlap
                      with the caption; no copy of a worked example and no duplicate of an earlier
                      candidate) and information completeness (a real request that points at the
                      picture; distinct safe and unsafe replies). A revision that fails the checks
                      is dropped and the original judged instead.
  4. ``text_safety``  check agent: answer the query WITHOUT the picture, then judge query + answer
                      as text; unsafe or unjudgeable text is discarded (SSUI step 4).
  5. ``summary``      summary agent: assemble a validated schema.Sample (the safety warning is the
                      chain's consequences step).
  6. ``revision``     manual revision: accept / edit / reject with reviewer and timestamp, in an
                      append-only log (:func:`record_decision`, the RevisionForm widget, or the
                      headless :func:`auto_review` / :func:`apply_decisions_file`).

Every stage's decision is an *event* ``{id, stage, status: passed|rejected, reason, data}``; a
candidate stops at its first rejection, so its events say which stage accepted or rejected it and
why. Accepted samples carry the same record in ``provenance.stages``.

Run folder (``out_dir``)::

    config.json       the run's settings (a restart with other settings is refused)
    model_calls.jsonl every agent call, content-addressed (ssui_lib.core.store.JsonlCache)
    candidates.jsonl  append-only stage events (JsonlCache lines, key "<candidate id>|<stage>")
    samples.jsonl     the candidates that passed the summary agent (rewritten atomically)
    revisions.jsonl   append-only manual-revision log (JsonlCache lines, one per decision)
    final.jsonl       accepted (and edited) samples after revision (rewritten atomically)

Resumable: a killed run restarted on the same folder skips every stage already logged and takes
every model call already made from ``model_calls.jsonl``, so it repeats no call and loses no
candidate (at most the batch in flight when it was killed is generated again).

Guided decoding. Small local models often break a four-line format (skip a field, repeat one,
chatter). For backends that can continue a partial assistant reply (local transformers models) the
runner writes the first label itself, keeps what the model writes while it follows the format, and
where it breaks cuts the text and writes the next missing label for it (:func:`fill_format`); API
backends (api.openai.com cannot continue a reply) get one ordinary call. Both go through the same
strict parser.
"""
# The package's public names, from the modules that hold them (``from ssui_lib import curation as C;
# C.run_curation(...)`` keeps working): settings, agents (stages 1, 2, 4, 5), reflection (stage 3),
# run (candidates, event log, the run loop), report (reading a run), revision (stage 6).
from ssui_lib.curation.settings import (  # noqa: F401
    STAGES, STAGE_TITLES, DECISIONS, EDITABLE, REVIEW_POLICIES, CALL_FORMAT, STEP_LABELS, DEICTIC, Seed,
    shipped_seeds, CurationConfig, category_hint, exemplar_pool, event,
)
from ssui_lib.curation.agents import (  # noqa: F401
    use_guided, cached_generate, keep_format_lines, fill_format, map_category, parse_query_output, query_stage,
    reasoning_stage, TextVerdict, TextJudge, parse_text_verdict, agent_text_judge, text_safety_stage,
    SUMMARY_OK, first_sentence, assemble_sample, summary_stage,
)
from ssui_lib.curation.reflection import (  # noqa: F401
    content_words, caption_overlap, normalise, copy_ratio, check_redundancy, check_completeness,
    reflection_stage, parse_reflection_output, revise_queries,
)
from ssui_lib.curation.run import (  # noqa: F401
    Candidate, CandidateLog, CurationRun, prompts_fingerprint, run_fingerprint, run_curation,
)
from ssui_lib.curation.report import (  # noqa: F401
    load_candidates, candidate_table, reflection_table, funnel, read_revisions, latest_decisions,
)
from ssui_lib.curation.revision import (  # noqa: F401
    reviewable, apply_edits, record_decision, auto_review, apply_decisions_file, final_samples, export_final,
)
from ssui_lib.core.chain import parse_reasoning_output  # noqa: F401  (stage 2's parser lives with the chain format)
