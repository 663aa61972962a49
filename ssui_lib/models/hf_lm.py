"""A text-only transformers causal LM behind the ChatModel interface, with fast batched sampling.

Why a hand-written decode loop instead of ``model.generate``: SRPO's exploration samples many
continuations of the *same* prefix. ``generate(num_return_sequences=n)`` copies the prompt n times
before the prefill, so the prefix is computed n times. Here each distinct prompt is prefilled once,
its key/value cache is repeated for its n samples, and all rows of all prompts decode together in
one padded batch (decoding is memory-bound on CPU: batching is where the speed is). Stop strings end
a row early; the loop ends when every row has finished.

Distinct prompts of one batch often begin with the same long text (the system prompt, the six-step
instructions and SRPO's exemplars D_c, then a different question or step prefix). When they share at
least ``SHARED_PREFIX_MIN`` tokens, that common prefix is prefilled once (batch 1), its cache is
repeated for every row, and only each row's own suffix is prefilled on top of it: the suffixes are
left-padded *after* the shared part, with those pads masked out and position ids that continue the
prefix, so every row sees exactly its own tokens at their own positions. (``model.generate`` has no
such cross-prompt prefix sharing; vLLM calls it automatic prefix caching.) On CPU that shared prefix
is not even copied into the rows: its keys and values are held once and attended once for all rows
(cascade attention, ``models/cascade.py``), so a decode step reads the long exploration prefix
(instructions and exemplars) once instead of once per row.

What else the loop does not spend (profiled on the 2-core CPU; the model's matrix products are what
is left): the KV cache is reserved for the whole generation (``kv_cache.ReservedCache``: no
``torch.cat`` of the whole cache per step); the prefill computes the LM head at the last position
only; prompts of unequal length are prefilled in groups of similar length (``prefill_groups``), not
padded to the longest; a decode step has no per-row Python: end-of-turn ids are found on the id
tensor and stop strings looked for every ``STOP_CHECK_EVERY`` steps, a row that met one a few steps
earlier being cut back to that token (same text, token count and log-probability as checking at
every step); sampling draws one uniform number per row (inverse CDF, ``sample_tokens``), not one per
vocabulary entry, and every row of the batch draws one at every step whether it still runs or not, so a
row's samples do not depend on when finished rows left the batch (``should_compact``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError
from ssui_lib.models.base import ChatModel, Generation, Prompt, SamplingParams, flatten_for_text
from ssui_lib.models import cascade
from ssui_lib.models.kv_cache import ReservedCache
from ssui_lib.models.trainable import LM_TARGETS


# tokens: below this a shared prefill saves less than the extra forward call costs. Measured on the
# 2-core CPU (benchmarks/sampling_bench.py, 64 zero-shot prompts): they share 31 tokens (system prompt
# and chat markup), and sharing them cut the prefill from 12.1 s to 6.3 s with the grouping below.
# A prompt-token saved is ~1.4 ms of prefill here, an extra forward call a few ms: 8 tokens pays.
SHARED_PREFIX_MIN = 8
# a prefill group grows while under this fraction of its positions are padding: at 0.05 the 64-prompt
# prefill above took 5.7 s in 5 groups, at 0.15 6.3 s in 2 (a group of >= 8 rows keeps its matrix
# products efficient, so more calls cost less than the padding they save)
PREFILL_MAX_WASTE = 0.05
PREFILL_GROUP_MIN = 8  # rows: smaller groups are not split off (each forward call has a fixed cost)
# cascade attention (a shared prefix held once) pays where it saves many reads of the prefix's keys and
# values: shared tokens × (rows − 1) of at least this many (an exploration batch: ~950 × 63). Below it
# the second attention call and the merge per layer cost about what they save (64 zero-shot prompts
# sharing 31 tokens: 22.0 s with it, 21.8 s without; smoke chapter 07's few rows: slower with it).
CASCADE_MIN_SAVED = 4096
STOP_CHECK_EVERY = 8  # decode steps between looks for stop strings (decoding text every step costs more)
# finished rows leave the batch when (finished rows) × (steps left) >= COMPACT_MIN × (rows in the batch):
# dropping d of r rows saves about d / r of every later step, while dropping them copies every kept
# row's keys and values once (about a third of a step's time at 64 rows, see should_compact)
COMPACT_MIN = 1.0


def should_compact(finished: int, live: int, steps_left: int, min_ratio: float = COMPACT_MIN) -> bool:
    """Whether to drop ``finished`` of ``live`` rows from the batch with ``steps_left`` decode steps
    to go (at most). The saving is about ``finished / live`` of a step for each step left; the cost
    a copy of the kept rows' cache, a fraction of one step: so drop them when
    ``finished × steps_left >= min_ratio × live``. Every row finished: nothing to drop (the loop ends)."""
    if finished <= 0 or finished >= live or steps_left <= 0:
        return False
    return finished * steps_left >= min_ratio * live


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences, leaving every sequence at least one
    token of its own (its last token's logits start its generation)."""
    if not seqs:
        return 0
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for i in range(max(n, 0)):
        t = first[i]
        if any(x[i] != t for x in seqs[1:]):
            return i
    return max(n, 0)


def prefill_groups(lengths: Sequence[int], max_waste: float | None = None,
                   min_rows: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """How to prefill rows of these lengths with little padding: ``(order, groups)``, ``order`` the
    rows sorted by length and ``groups`` ranges ``(a, b)`` of it, each of at least ``min_rows`` rows,
    a new one begun where the next row would make more than ``max_waste`` of a group's positions
    padding. One group (and the rows in their own order) when splitting does not pay."""
    max_waste = PREFILL_MAX_WASTE if max_waste is None else max_waste
    min_rows = PREFILL_GROUP_MIN if min_rows is None else min_rows
    n = len(lengths)
    order = sorted(range(n), key=lambda i: lengths[i])
    L = [lengths[i] for i in order]
    groups, a, total = [], 0, 0
    for i in range(n):
        size = i - a + 1
        if size > min_rows and n - i >= min_rows and L[i] * size - (total + L[i]) > max_waste * L[i] * size:
            groups.append((a, i))
            a, total = i, 0
        total += L[i]
    groups.append((a, n))
    if len(groups) == 1:
        return list(range(n)), [(0, n)]
    return order, groups


def sample_tokens(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None = None,
                  u: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), nucleus-filtered when ``top_p`` < 1.

    Inverse-CDF sampling (one uniform number per row, a cumulative sum in float64, a binary search)
    instead of ``torch.multinomial``, which draws an exponential random number for every vocabulary
    entry: on the 2-core CPU that took 45 ms a step for 64 rows × 49,152 tokens, a tenth of an
    exploration decode step. Same distribution; a token of probability 0 is never drawn.
    ``u``: the rows' uniform numbers in [0, 1) (float64, one per row), drawn by the caller; else drawn
    here from ``gen``."""
    w = torch.softmax(logits.double() / temperature, -1)
    if top_p < 1.0:
        sp, si = w.sort(-1, descending=True)
        sp = sp * (sp.cumsum(-1) - sp < top_p)
        w = torch.zeros_like(w).scatter(-1, si, sp)
    cdf = w.cpu().cumsum(-1)
    if u is None:
        u = torch.rand(cdf.shape[0], generator=gen, dtype=torch.float64)
    u = u.reshape(-1, 1).to(torch.float64) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return idx.clamp(max=cdf.shape[-1] - 1).to(logits.device)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


@dataclass
class Encoded:
    """One (prompt, continuation) pair as token ids; ``labels`` is -100 outside the continuation."""

    input_ids: list[int]
    labels: list[int]


class _Decoded:
    """Per row of a decode: the token drawn at each step, its log-probability, and where the row ended
    (``n_tokens`` kept, ``n_lp`` steps whose log-probabilities count; None while it runs)."""

    def __init__(self, rows: int, steps: int, device):
        self.steps = steps
        self.ids = torch.zeros((rows, max(steps, 1)), dtype=torch.long)
        self.lp = torch.zeros((rows, max(steps, 1)), dtype=torch.float64)
        self.n_tokens: list[int | None] = [None] * rows
        self.n_lp: list[int | None] = [None] * rows

    def record(self, step: int, rows: torch.Tensor, ids: torch.Tensor, lp: torch.Tensor) -> None:
        self.ids[rows.cpu(), step] = ids.cpu()
        self.lp[rows.cpu(), step] = lp.double().cpu()

    def end_at(self, rows: torch.Tensor, step: int, keep_token: bool) -> None:
        for r in rows.tolist():
            self.n_tokens[r] = step + 1 if keep_token else step
            self.n_lp[r] = step + 1

    def find_stop_strings(self, tok, stops: Sequence[str], max_stop: int, first: int, last: int) -> list[int]:
        """End every row at the first of its tokens ``first..last`` after which its last
        ``max_stop + 4`` tokens decode to text containing a stop string (exactly what checking at
        every step would do); returns the rows that were still running."""
        w = max_stop + 4
        lo = max(0, first + 1 - w)
        hit = []
        for r, end in enumerate(self.n_tokens):
            hi = last if end is None else end - 1
            if hi < first:
                continue
            ids = self.ids[r, : hi + 1].tolist()
            if not any(s in tok.decode(ids[lo:], skip_special_tokens=False) for s in stops):
                continue
            for j in range(first, hi + 1):
                if any(s in tok.decode(ids[max(0, j + 1 - w): j + 1], skip_special_tokens=False) for s in stops):
                    self.n_tokens[r] = self.n_lp[r] = j + 1
                    if end is None:
                        hit.append(r)
                    break
        return hit

    def results(self) -> tuple[list[list[int]], list[str], list[float]]:
        """Each row's kept token ids, finish reason and summed log-probability."""
        ids, finish, lps = [], [], []
        for r, (n, k) in enumerate(zip(self.n_tokens, self.n_lp)):
            ids.append(self.ids[r, : self.steps if n is None else n].tolist())
            finish.append("length" if n is None else "stop")
            lps.append(float(self.lp[r, : self.steps if k is None else k].sum()))
        return ids, finish, lps


def _n_layers(model) -> int:
    return model.config.get_text_config().num_hidden_layers


class HFCausalChatModel(ChatModel):
    supports_images = False
    supports_prefix = True
    trainable = True
    supports_logprobs = True

    def __init__(self, model, tokenizer, *, name: str = "hf", info: dict[str, Any] | None = None,
                 max_batch_rows: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.info = dict(info or {})
        self.max_batch_rows = max_batch_rows
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                          if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id}

    # ------------------------------------------------------------------ text <-> ids
    def render(self, prompt: Prompt, prefix: str = "") -> str:
        """The prompt as the model sees it: chat template + generation prompt + assistant prefix."""
        text = self.tokenizer.apply_chat_template(flatten_for_text(prompt), tokenize=False, add_generation_prompt=True)
        return text + (prefix or "")

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, prompt: Prompt, continuation: str, prefix: str = "", add_eos: bool = False) -> Encoded:
        """Token ids of prompt ⊕ prefix ⊕ continuation; only the continuation is labelled (scored)."""
        ctx = self._ids(self.render(prompt, prefix))
        cont = self._ids(continuation)
        if add_eos:
            cont = cont + [self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        if not cont:
            raise SSUIError("empty continuation: nothing to score")
        return Encoded(ctx + cont, [-100] * len(ctx) + cont)

    def collate_rows(self, rows: Sequence[Any]) -> list[dict[str, torch.Tensor]]:
        """Training rows (``models.trainable.Row``) as one padded forward batch (TrainableBackend)."""
        return [self.collate([self.encode(r.prompt, r.continuation, prefix=r.prefix, add_eos=r.add_eos) for r in rows])]

    def lora_target_modules(self) -> list[str]:
        """The attention + MLP projections a LoRA adapter wraps (TrainableBackend)."""
        return list(LM_TARGETS)

    def collate(self, items: Sequence[Encoded], device=None) -> dict[str, torch.Tensor]:
        """Right-padded batch with attention mask and -100 labels on padding."""
        L = max(len(e.input_ids) for e in items)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(items), L), pad, dtype=torch.long)
        labels = torch.full((len(items), L), -100, dtype=torch.long)
        mask = torch.zeros((len(items), L), dtype=torch.long)
        for r, e in enumerate(items):
            n = len(e.input_ids)
            ids[r, :n] = torch.tensor(e.input_ids)
            labels[r, :n] = torch.tensor(e.labels)
            mask[r, :n] = 1
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        return {k: v.to(device) for k, v in out.items()} if device else out

    # ------------------------------------------------------------------ scoring
    @ledger.timed("scoring")
    @torch.no_grad()
    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str],
                 prefixes: Sequence[str] | None = None, batch_size: int = 8) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise SSUIError("logprobs: prompts and continuations differ in length")
        prefixes = prefixes or [""] * len(prompts)
        enc = [self.encode(p, c, x) for p, c, x in zip(prompts, continuations, prefixes)]
        out: list[list[float]] = []
        self.model.eval()
        for i in range(0, len(enc), batch_size):
            batch = self.collate(enc[i:i + batch_size], device=self.model.device)
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            ledger.count("tokens_prefilled", int(batch["attention_mask"].sum()))
            lp = torch.log_softmax(logits[:, :-1].float(), -1)
            tgt = batch["labels"][:, 1:]
            tok = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            for r in range(tok.shape[0]):
                m = tgt[r] != -100
                out.append(tok[r][m].tolist())
        return out

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams(),
                 prefixes: Sequence[str] | None = None, progress: bool = False) -> list[list[Generation]]:
        if prefixes is not None and len(prefixes) != len(prompts):
            raise SSUIError("generate: prompts and prefixes differ in length")
        texts = [self.render(p, prefixes[i] if prefixes else "") for i, p in enumerate(prompts)]
        return self.generate_texts(texts, params, progress=progress)

    @ledger.timed("generation")
    def generate_texts(self, texts: Sequence[str], params: SamplingParams,
                       progress: bool = False) -> list[list[Generation]]:
        """Generate from already-rendered prompt strings (chunks of ≤ max_batch_rows rows)."""
        per_chunk = max(1, self.max_batch_rows // params.n)
        results: list[list[Generation]] = []
        bar = _progress(len(texts), f"generate ({self.name})", progress)
        gen = torch.Generator().manual_seed(params.seed)
        for i in range(0, len(texts), per_chunk):
            chunk = list(texts[i:i + per_chunk])
            results.extend(self._generate_chunk(chunk, params, gen))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return results

    @torch.no_grad()
    def _generate_chunk(self, texts: list[str], p: SamplingParams, gen: torch.Generator) -> list[list[Generation]]:
        tok, model = self.tokenizer, self.model
        model.eval()
        dev = model.device
        seqs = tok(list(texts), add_special_tokens=False)["input_ids"]
        shared = shared_prefix_len(seqs) if len(seqs) > 1 else 0
        if shared < SHARED_PREFIX_MIN:
            shared = 0
        rest = [x[shared:] for x in seqs]
        width = max(len(x) for x in rest)
        T = p.max_new_tokens
        W = shared + width
        n_layers = _n_layers(model)
        # every layer's keys/values go into one buffer sized for the whole generation (no per-step copy)
        # with a shared prefix on CPU, its keys/values are held once, not copied into every row, and
        # attended once for all rows (cascade attention, models/cascade.py); row buffers then hold
        # positions shared.. only (``off`` = where a row's own tokens start in its buffer coordinates)
        casc = bool(shared) and shared * (len(seqs) * p.n - 1) >= CASCADE_MIN_SAVED and cascade.usable(model)
        off = shared if casc else 0
        cache = ReservedCache(n_layers, W - off + T)
        # 1) prefill each distinct prompt once; a prefix common to all of them, once for all.
        #    Only the last position's logits are needed (logits_to_keep=1): the LM head over every
        #    prompt position would cost about a fifth of the prefill for nothing. Many prompts of
        #    unequal length are prefilled in groups of similar length (sorted; see prefill_groups),
        #    each group's cache then copied into the common one, right-aligned, so padding is not
        #    computed; the rows stay in that order until the results are put back in prompt order.
        order, groups = prefill_groups([len(x) for x in rest])
        rest = [rest[i] for i in order]
        base = None
        if shared:
            base = ReservedCache(n_layers, shared)
            model(input_ids=torch.tensor([seqs[0][:shared]], device=dev), past_key_values=base,
                  use_cache=True, logits_to_keep=1)
        if casc:
            cache.share(base)
        lens = torch.tensor([len(x) for x in rest], device=dev)
        mask = torch.zeros(len(rest), W + T, dtype=torch.long, device=dev)
        mask[:, :shared] = 1
        mask[:, shared:W] = (torch.arange(width, device=dev)[None, :] >= width - lens[:, None]).long()
        parts = []
        for a, b in groups:
            w = max(len(x) for x in rest[a:b])
            ids = torch.tensor([[tok.pad_token_id] * (w - len(x)) + x for x in rest[a:b]], device=dev)
            own = mask[a:b, W - w: W]
            gc = cache if len(groups) == 1 else ReservedCache(n_layers, shared - off + w)
            if casc and gc is not cache:
                gc.share(base)
            elif not casc and base is not None:
                gc.place(base, slice(0, b - a), b - a, 0, 0, shared)
            with self._cascade(casc, gc):
                out = model(input_ids=ids, attention_mask=torch.cat([mask[a:b, :shared], own], 1),
                            position_ids=shared + (own.cumsum(-1) - 1).clamp(min=0), past_key_values=gc,
                            use_cache=True, logits_to_keep=1)
            parts.append(out.logits[:, -1, :].float())
            if gc is not cache:
                if shared and not casc:
                    cache.place(gc, slice(a, b), len(rest), 0, 0, shared)
                cache.place(gc, slice(a, b), len(rest), shared - off, W - off - w, w)
        logits = torch.cat(parts)
        next_pos = shared + lens
        # 2) share it among the prompt's n samples
        if p.n > 1:
            cache.batch_repeat_interleave(p.n)
            logits = logits.repeat_interleave(p.n, 0)
            mask = mask.repeat_interleave(p.n, 0)
            next_pos = next_pos.repeat_interleave(p.n, 0)
        rows = logits.shape[0]
        dec = _Decoded(rows, T, dev)
        done = torch.zeros(rows, dtype=torch.bool, device=dev)
        live = torch.arange(rows, device=dev)  # batch position -> row, for the rows still decoding
        stop_ids = torch.tensor(sorted(self._stop_ids), dtype=torch.long, device=dev)
        max_stop = max((len(s) for s in p.stop), default=0)
        checked = 0  # steps whose tokens were checked for stop strings
        # 3) decode all rows together, with no per-row Python per step: end-of-turn ids are found
        #    on the id tensor; stop strings are looked for every STOP_CHECK_EVERY steps on the new
        #    tokens (a row that ended a few steps earlier is cut back to where it ended, so the
        #    result is the same as checking every step). Finished rows leave the batch (their cache
        #    rows dropped) as soon as the steps they would still cost outweigh the copy (should_compact),
        #    so one long row does not make the finished ones pay for it.
        for step in range(T):
            if p.temperature == 0:  # greedy: the row maximum is both the token and the log-sum-exp's shift
                top, nxt = logits.max(-1)
                step_lp = -(logits - top[:, None]).exp_().sum(-1).log_()
            else:  # one uniform per row of the whole batch every step, live rows take theirs: which
                # numbers a row gets does not depend on when finished rows left the batch
                u = torch.rand(rows, generator=gen, dtype=torch.float64)
                nxt = sample_tokens(logits, p.temperature, p.top_p, u=u[live.cpu()])
                step_lp = logits.gather(-1, nxt[:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
            act = ~done
            dec.record(step, live[act], nxt[act], step_lp[act])
            eos = torch.isin(nxt, stop_ids) & act
            if bool(eos.any()):
                dec.end_at(live[eos], step, keep_token=False)
                done |= eos
            all_done = bool(done.all())
            if max_stop and (step + 1 - checked >= STOP_CHECK_EVERY or all_done or step == T - 1):
                hit = dec.find_stop_strings(tok, p.stop, max_stop, checked, step)
                if hit:
                    done |= torch.isin(live, torch.tensor(hit, dtype=torch.long, device=dev))
                    all_done = bool(done.all())
                checked = step + 1
            if all_done or step == T - 1:
                break
            if should_compact(int(done.sum()), len(live), T - step - 1):
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                live, nxt, mask, next_pos, done = live[keep], nxt[keep], mask[keep], next_pos[keep], done[keep]
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
            mask[:, W + step] = (~done).long()
            with self._cascade(casc, cache):
                out = model(input_ids=nxt[:, None], attention_mask=mask[:, : W + step + 1],
                            position_ids=next_pos[:, None], past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        gen_ids, finish, lp_sum = dec.results()
        ledger.count("tokens_prefilled", shared + sum(len(x) for x in rest))
        ledger.count("tokens_generated", sum(len(g) for g in gen_ids))
        ledger.count("sequences_generated", rows)
        res: list[list[Generation]] = [[] for _ in texts]
        for i, prompt_i in enumerate(order):
            row_gens = res[prompt_i]
            for j in range(p.n):
                r = i * p.n + j
                text = tok.decode(gen_ids[r], skip_special_tokens=True)
                cut = min((text.find(s) for s in p.stop if s in text), default=-1)
                if cut >= 0:
                    text = text[:cut]
                row_gens.append(Generation(text=text, n_tokens=len(gen_ids[r]), finish_reason=finish[r],
                                           logprob=lp_sum[r]))
        return res

    def _cascade(self, on: bool, cache):
        return cascade.active(self.model, cache) if on else contextlib.nullcontext()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "hf-lm", **self.info}


def load_hf_lm(path: str, *, adapter: str | None = None, name: str | None = None,
               dtype: str = "float32") -> HFCausalChatModel:
    """A text-only causal LM (and optional LoRA adapter) from local folders."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).is_dir():
        raise SSUIError(f"hf:{path}: folder not found")
    try:
        with ledger.phase("model_loading", load=f"hf:{path}"):
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise SSUIError(f"hf:{path}: not a loadable causal LM ({str(e).splitlines()[0]})") from None
    if adapter:
        model = _attach_adapter(model, adapter)
    return HFCausalChatModel(model, tok, name=name or f"hf:{path}", info={"path": path, "adapter": adapter})


@ledger.timed("model_loading")
def _attach_adapter(model, adapter: str):
    from pathlib import Path

    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise SSUIError(f"adapter:{adapter}: no adapter_config.json in that folder")
    return PeftModel.from_pretrained(model, adapter)
