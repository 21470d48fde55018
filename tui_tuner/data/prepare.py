"""From `data:` config + tokenizer to train/validation datasets of input_ids, labels, length.

    prepare_dataset(data_cfg, tokenizer, seed=42, progress=None) -> PreparedData

Pipeline: read (sources.py) -> detect format (formats.py) -> one batched `datasets.map` pass that
converts each row, applies the per-row cleaning rules, renders it with the chat template and labels
the assistant tokens (masking.py) -> drop duplicates -> split train/validation with the run's seed.
Every row removed is counted under the rule that removed it (`report.dropped`).
For the `text` format rows are tokenized with EOS and packed into blocks of max_length, all
tokens trained (continued pretraining).
"""

from __future__ import annotations

import hashlib
import inspect as _inspect
import json
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tui_tuner.config import CleaningConfig, DataConfig
from tui_tuner.data.formats import (BadRow, FormatSpec, check_unused_columns, detect_format, to_messages,
                                    to_segments, to_text)
from tui_tuner.data.masking import IGNORE, ChatMasker, TemplateRenderError, UnmaskableRow
from tui_tuner.data.report import DataReport
from tui_tuner.data.sources import load_raw
from tui_tuner.data.templates import ChatFormat, check_chat_capable, resolve_chat_template
from tui_tuner.errors import UserError

# Row status codes written by the map pass; the index is the code. "ok" rows are kept.
STATUS = ("ok", "bad_rows", "empty", "no_assistant", "disclaimers", "unmaskable", "too_long", "no_trained_tokens",
          "template_error")
_CODE = {name: i for i, name in enumerate(STATUS)}
FLAG_TRUNCATED, FLAG_PROMPT_DIFFERS = 1, 2  # bits of the _flags column
_METHOD_FLAG = {"prefix": 0, "prompt_differs": FLAG_PROMPT_DIFFERS}
# Rows per process below which a second process costs more than it saves (bench/data_inspect.py).
MIN_ROWS_FOR_PROCS = 20_000
PIPELINE_VERSION = "2"

Progress = Callable[..., None]


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset with input_ids, labels, length
    val: Any | None
    report: DataReport
    chat_template: str | None
    val_index: Any = None  # rows of the source file in the validation split (export renders them)


def _progress_fn(progress: Progress | None) -> Callable[[str, float | None], None]:
    """Accept callbacks taking (message, fraction) or just (message)."""
    if progress is None:
        return lambda msg, frac=None: None
    try:
        params = [p for p in _inspect.signature(progress).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        two = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        two = True
    if two:
        return lambda msg, frac=None: progress(msg, frac)
    return lambda msg, frac=None: progress(msg)


def parse_column_args(items: list[str] | None) -> dict[str, str] | None:
    """['prompt=question', ...] -> {'prompt': 'question'}."""
    if not items:
        return None
    out = {}
    for it in items:
        role, sep, col = it.partition("=")
        if not sep or not role.strip() or not col.strip():
            raise UserError(f"--column {it}: expected ROLE=COLUMN, e.g. --column prompt=question")
        out[role.strip()] = col.strip()
    return out


# ---------------------------------------------------------------------------------------------
# The per-batch work (picklable: datasets may run it in several processes)


class RowProcessor:
    def __init__(self, spec: FormatSpec, tokenizer, template: str | None, cfg: DataConfig,
                 chat_format: ChatFormat | None = None):
        self.spec = spec
        self.chat_format = chat_format or ChatFormat()
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = cfg.max_length
        self.truncate = cfg.clean.too_long == "truncate"
        c: CleaningConfig = cfg.clean
        self.drop_empty = c.drop_empty
        self.phrases = [p.lower() for p in (c.disclaimer_phrases or [])] if c.drop_disclaimers else []
        self._masker: ChatMasker | None = None
        self._direct: bool | None = None
        self._char_limit: int | None = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_masker"] = None  # compiled Jinja templates do not pickle; rebuilt in each process
        return d

    @property
    def masker(self) -> ChatMasker:
        if self._masker is None:
            self._masker = ChatMasker(self.tokenizer, self.template)
        return self._masker

    def _keep_row(self, i: int, ids: list, labs: list, status, flags, input_ids, labels, trained) -> None:
        """Row i's tokens and labels: cut to max_length (or dropped as too long), dropped when no
        token is trained, else stored."""
        if len(ids) > self.max_length:
            if not self.truncate:
                status[i] = _CODE["too_long"]
                return
            ids, labs = ids[: self.max_length], labs[: self.max_length]
            flags[i] |= FLAG_TRUNCATED
        k = len(labs) - labs.count(IGNORE)
        if k == 0:
            status[i] = _CODE["no_trained_tokens"]
            return
        input_ids[i], labels[i], trained[i] = ids, labs, k

    def _encode(self, texts: list[str]) -> list:
        """tokenizers.Encoding per text, without special tokens (templates add their own).

        The Rust tokenizer is called directly: the transformers wrapper would convert every
        encoding to Python dicts we do not use. Checked once against the wrapper's ids.
        """
        if self._direct is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            ok = backend is not None
            if ok:
                probe = texts[:8]
                want = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
                ok = [e.ids for e in backend.encode_batch(probe, add_special_tokens=False)] == want
            self._direct = ok
        if self._direct:
            return self.tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        enc = self.tokenizer(texts, add_special_tokens=False)
        if enc.encodings is None:
            raise UserError("this tokenizer has no fast (Rust) implementation, which loss masks need",
                            hint="use a model whose tokenizer.json is available (AutoTokenizer use_fast)")
        return enc.encodings

    @property
    def char_limit(self) -> int:
        """Characters above which a row is certainly over max_length tokens, without tokenizing it.

        Every token decodes to at most as many characters as its vocabulary entry is long (byte-level
        entries hold one character per byte), so a text of N characters has at least N / longest
        entry tokens; a factor 2 covers normalizers that drop characters. Tokenizing and templating
        a multi-megabyte row takes minutes (BPE on a long run without spaces is quadratic), and it
        would be dropped anyway.
        """
        if self._char_limit is None:
            try:
                longest = max((len(t) for t in self.tokenizer.get_vocab()), default=64)
            except Exception:  # a tokenizer without a vocabulary listing: a generous fixed bound
                longest = 64
            self._char_limit = 2 * max(longest, 1) * (self.max_length + 1)
        return self._char_limit

    def _has_disclaimer(self, text: str) -> bool:
        low = text.lower()
        return any(p in low for p in self.phrases)

    def conversation(self, row: dict[str, Any]) -> tuple[list[dict] | None, str]:
        """(messages, status) after conversion and the per-row cleaning rules."""
        try:
            msgs = to_messages(self.spec, row)
        except BadRow:
            return None, "bad_rows"
        msgs = [m for m in msgs if not (m["role"] == "system" and not m["content"])]
        if not any(m["role"] == "assistant" for m in msgs):
            if self.drop_empty and not any(m["content"] for m in msgs):
                return None, "empty"
            return None, "no_assistant"
        while msgs[-1]["role"] != "assistant":  # trailing user turns train nothing
            msgs.pop()
        if self.drop_empty and any(not m["content"] for m in msgs):
            return None, "empty"
        if not self.truncate and sum(len(m["content"]) for m in msgs) > self.char_limit:
            return None, "too_long"
        if self.phrases and any(m["role"] == "assistant" and self._has_disclaimer(m["content"]) for m in msgs):
            return None, "disclaimers"
        return self.chat_format.apply(msgs), "ok"

    def _dropped_by_cleaning(self, parts: list[tuple[str, bool]]) -> str | None:
        """The cleaning rule that drops a row made of (text, trained) parts: "empty" (no text at
        all), "disclaimers" (a trained part has a disclaimer phrase), or None to keep it."""
        if self.drop_empty and not any(t.strip() for t, _ in parts):
            return "empty"
        if self.phrases and any(trained and self._has_disclaimer(t) for t, trained in parts):
            return "disclaimers"
        return None

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if self.spec.name == "text":
            return self._text_batch(batch)
        if self.spec.name == "input_output":
            return self._segments_batch(batch)
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        status = [0] * n
        hashes = [0] * n
        flags = [0] * n  # FLAG_* bits
        why = [""] * n  # why the template or the mask refused a row
        texts: list[str] = []
        spans_of: list[list[tuple[int, int]]] = []
        where: list[int] = []
        masker = self.masker
        for i in range(n):
            row = {k: batch[k][i] for k in keys}
            msgs, st = self.conversation(row)
            if st != "ok":
                status[i] = _CODE[st]
                continue
            hashes[i] = _hash("\x1e".join(m["role"] + "\x1f" + m["content"] for m in msgs))
            try:
                full, spans, method = masker.spans(msgs)
            except TemplateRenderError as e:
                status[i] = _CODE["template_error"]
                why[i] = f"template_error: {e}"
                continue
            except UnmaskableRow as e:
                status[i] = _CODE["unmaskable"]
                why[i] = f"unmaskable: {e}"
                continue
            texts.append(full)
            spans_of.append(spans)
            where.append(i)
            flags[i] |= _METHOD_FLAG[method]
        input_ids: list[list[int]] = [[] for _ in range(n)]
        labels: list[list[int]] = [[] for _ in range(n)]
        trained = [0] * n
        if texts:
            encs = self._encode(texts)
            for j, i in enumerate(where):
                ids = encs[j].ids
                labs = masker.label(ids, encs[j], spans_of[j], len(texts[j]))
                self._keep_row(i, ids, labs, status, flags, input_ids, labels, trained)
        return {"input_ids": input_ids, "labels": labels, "length": [len(x) for x in input_ids],
                "_status": status, "_hash": hashes, "_trained": trained, "_flags": flags, "_why": why}

    def _segments_batch(self, batch: dict[str, list]) -> dict[str, list]:
        """axolotl's template-free input_output: each segment tokenized on its own (no special
        tokens added), concatenated; labels = ids where the segment's label is true."""
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        status, hashes, flags, trained = [0] * n, [0] * n, [0] * n, [0] * n
        input_ids: list[list[int]] = [[] for _ in range(n)]
        labels: list[list[int]] = [[] for _ in range(n)]
        rows: list[tuple[int, list[tuple[str, bool]]]] = []
        for i in range(n):
            try:
                segs = to_segments(self.spec, {k: batch[k][i] for k in keys})
            except BadRow:
                status[i] = _CODE["bad_rows"]
                continue
            dropped = self._dropped_by_cleaning(segs)
            if dropped:
                status[i] = _CODE[dropped]
                continue
            hashes[i] = _hash("\x1e".join(f"{int(lab)}\x1f{t}" for t, lab in segs))
            rows.append((i, segs))
        texts = [t for _, segs in rows for t, _ in segs]
        encs = self._encode(texts) if texts else []
        k = 0
        for i, segs in rows:
            ids: list[int] = []
            labs: list[int] = []
            for _, lab in segs:
                e = encs[k].ids
                k += 1
                ids += e
                labs += e if lab else [IGNORE] * len(e)
            self._keep_row(i, ids, labs, status, flags, input_ids, labels, trained)
        return {"input_ids": input_ids, "labels": labels, "length": [len(x) for x in input_ids],
                "_status": status, "_hash": hashes, "_trained": trained, "_flags": flags, "_why": [""] * n}

    def _text_batch(self, batch: dict[str, list]) -> dict[str, list]:
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        status = [0] * n
        hashes = [0] * n
        texts, where = [], []
        for i in range(n):
            try:
                text = to_text(self.spec, {k: batch[k][i] for k in keys})
            except BadRow:
                status[i] = _CODE["bad_rows"]
                continue
            dropped = self._dropped_by_cleaning([(text, True)])
            if dropped:
                status[i] = _CODE[dropped]
                continue
            hashes[i] = _hash(text)
            texts.append(text)
            where.append(i)
        input_ids: list[list[int]] = [[] for _ in range(n)]
        eos = self.tokenizer.eos_token_id
        if texts:
            enc = self.tokenizer(texts, add_special_tokens=True, return_attention_mask=False)
            for j, i in enumerate(where):
                ids = enc["input_ids"][j]
                input_ids[i] = ids + [eos] if eos is not None else ids
        lengths = [len(x) for x in input_ids]
        return {"input_ids": input_ids, "labels": [[] for _ in range(n)], "length": lengths,
                "_status": status, "_hash": hashes, "_trained": lengths, "_flags": [0] * n, "_why": [""] * n}


def _unmaskable_reason(raw, proc: "RowProcessor", status, n: int) -> str:
    """Why rows were unmaskable, from the first of them rendered again here (one row: cheap; the
    map ran in worker processes whose exceptions do not come back)."""
    import numpy as np

    i = int(np.flatnonzero(status == _CODE["unmaskable"])[0])
    reason = "no method could place the assistant replies in the rendered text"
    msgs, _ = proc.conversation(raw[i])
    try:
        if msgs is not None:
            proc.masker.spans(msgs)
    except TemplateRenderError as e:
        cause = e.__cause__
        if cause is not None and type(cause).__name__ == "SecurityError":  # jinja2.sandbox refused it
            reason = f"the chat template does something the sandbox blocks: {e}"
        else:
            reason = f"the chat template failed to render: {e}"
    return (f"{n:,} row{'s' if n != 1 else ''} unmaskable (dropped), e.g. row {i + 1}: {reason}")


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class _Packer:
    """Concatenate documents (each ending in EOS) and cut blocks of max_length; all tokens trained."""

    def __init__(self, max_length: int):
        self.max_length = max_length

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        flat: list[int] = []
        for ids in batch["input_ids"]:
            flat.extend(ids)
        L = self.max_length
        blocks = [flat[i:i + L] for i in range(0, len(flat), L)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks], "length": [len(b) for b in blocks]}


# ---------------------------------------------------------------------------------------------


def _fingerprint(ds_fp: str, tokenizer, template: str | None, spec: FormatSpec, cfg: DataConfig) -> str:
    h = hashlib.blake2b(digest_size=16)
    try:
        tok_state = tokenizer.backend_tokenizer.to_str()
    except Exception:
        tok_state = repr(getattr(tokenizer, "name_or_path", "")) + str(len(tokenizer))
    for part in (PIPELINE_VERSION, _code_version(), ds_fp, tok_state, json.dumps(tokenizer.special_tokens_map, sort_keys=True,
                                                                   default=str),
                 template or "", json.dumps(spec.to_dict(), sort_keys=True),
                 str(cfg.max_length), json.dumps(_clean_dict(cfg.clean), sort_keys=True)):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()


def _code_version() -> str:
    """Hash of the modules that decide the output: a changed pipeline never reuses a stale cache."""
    from pathlib import Path

    h = hashlib.blake2b(digest_size=8)
    here = Path(__file__).parent
    for name in ("prepare.py", "masking.py", "formats.py", "templates.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()


def _clean_dict(c: CleaningConfig) -> dict:
    import dataclasses

    return dataclasses.asdict(c)


def _features(names: tuple[str, ...] | None = None):
    """int32 token ids (half the bytes of Python ints' default int64) and small bookkeeping types."""
    from datasets import Features, List, Value

    all_ = {"input_ids": List(Value("int32")), "labels": List(Value("int32")), "length": Value("int32"),
            "_status": Value("int8"), "_hash": Value("int64"), "_trained": Value("int32"), "_flags": Value("int8"),
            "_why": Value("string")}
    return Features({k: v for k, v in all_.items() if names is None or k in names})


def _work_cache():
    from tui_tuner import paths

    d = paths.cache_dir() / "datasets" / "prepared"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _num_proc(n_rows: int) -> int | None:
    """Worker processes for the map pass (None = this process).

    Processes parallelise the Python part (templating, labels) next to the Rust tokenizer.
    bench/data_inspect.py, 100k rows on an idle 2-core machine: 1 process 0.94-0.98x of a bare
    single-process tokenization, 2 processes 1.26x (twice, 2026-12-01; an earlier 0.92x was measured
    while other jobs loaded the machine). Small inputs stay in one process: starting workers costs
    more than they save. TUI_TUNER_DATA_PROCS overrides.
    """
    env = os.environ.get("TUI_TUNER_DATA_PROCS")
    if env:
        v = int(env)
        return v if v > 1 else None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or n_rows < MIN_ROWS_FOR_PROCS:
        return None
    return min(max(2, cpus // 2), 4, max(2, n_rows // MIN_ROWS_FOR_PROCS))


def prepare_dataset(data_cfg: DataConfig, tokenizer, *, seed: int, progress: Progress | None = None,
                    keep_columns: bool = False) -> PreparedData:
    """Read, detect, clean, template, mask, split. Raises UserError for bad input.

    keep_columns=True leaves the bookkeeping columns (_status, _hash, _trained, _flags) in place.
    """
    say = _progress_fn(progress)
    loaded = load_raw(data_cfg.path, skip_bad_lines=data_cfg.skip_bad_lines, progress=say)
    raw = loaded.dataset
    n_read = len(raw)
    report = DataReport(path=data_cfg.path, source=loaded.display, input_type=loaded.kind, rows_read=n_read,
                        max_length=data_cfg.max_length, columns_found=list(raw.column_names))
    report.notes.extend(loaded.notes)
    report.errors.extend(loaded.errors)
    if loaded.bad_lines:
        report.dropped["bad_lines"] = loaded.bad_lines
    if n_read == 0:
        raise UserError(f"{loaded.display} has no rows", hint="the file holds no records")

    sample_rows = [raw[i] for i in range(min(20, n_read))]
    spec = detect_format(list(raw.column_names), sample_rows, fmt=data_cfg.format, mapping=data_cfg.columns,
                         display=loaded.display)
    report.format = spec.name
    report.columns = dict(spec.columns)
    report.columns_ignored = check_unused_columns(spec, list(raw.column_names), loaded.display, sample_rows,
                                                  explicit=bool(data_cfg.columns))

    template = None
    chat_format = None
    if spec.name not in ("text", "input_output"):
        template, label = resolve_chat_template(tokenizer, data_cfg.chat_template)
        report.chat_template = label
        check_chat_capable(tokenizer, template, label)
        chat_format = ChatFormat.probe(tokenizer, template)
        report.chat_format = chat_format.to_dict()
        if tokenizer.eos_token is None and label != "tokenizer":
            raise UserError("the tokenizer has no EOS token, so the fallback template has no end-of-turn",
                            hint="choose a template by name with data.chat_template / --chat-template")

    proc = RowProcessor(spec, tokenizer, template, data_cfg, chat_format)
    num_proc = _num_proc(n_read)
    if num_proc:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # forked workers: one thread each
    say(f"tokenizing {n_read:,} rows ({spec.name}" + (f", {num_proc} processes)" if num_proc else ")"), 0.3)
    fp = _fingerprint(getattr(raw, "_fingerprint", "") or "", tokenizer, template, spec, data_cfg)
    try:
        # Our cache dir, not next to the source (datasets would write into a save_to_disk folder).
        mapped = raw.map(proc, batched=True, batch_size=1000, remove_columns=list(raw.column_names),
                         num_proc=num_proc, new_fingerprint=fp, desc=None, features=_features(),
                         cache_file_name=str(_work_cache() / f"prepared-{fp}.arrow"))
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{loaded.display}: could not process the rows: {type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}") from e
    say("cleaning and splitting", 0.85)

    table = mapped.data
    status = table.column("_status").to_numpy()
    hashes = table.column("_hash").to_numpy()
    lengths = table.column("length").to_numpy()
    trained = table.column("_trained").to_numpy()
    flags = table.column("_flags").to_numpy()

    counts = np.bincount(status, minlength=len(STATUS))
    ok = status == 0
    keep = ok.copy()
    if data_cfg.clean.dedupe:
        ok_idx = np.nonzero(ok)[0]
        _, first = np.unique(hashes[ok_idx], return_index=True)
        keep[:] = False
        keep[ok_idx[np.sort(first)]] = True
    dropped = report.dropped
    if counts[_CODE["unmaskable"]]:
        report.notes.append(_unmaskable_reason(raw, proc, status, int(counts[_CODE["unmaskable"]])))
    for name in STATUS[1:]:
        if name == "too_long" and data_cfg.clean.too_long == "truncate":
            continue
        dropped[name] = int(counts[_CODE[name]])
    if data_cfg.clean.dedupe:
        dropped["duplicates"] = int(ok.sum() - keep.sum())
    kept_idx = np.nonzero(keep)[0]
    report.truncated = int((flags[kept_idx] & FLAG_TRUNCATED).astype(bool).sum())
    if spec.name not in ("text", "input_output"):
        differs = int((flags[kept_idx] & FLAG_PROMPT_DIFFERS).astype(bool).sum())
        report.mask_method = {"prefix": len(kept_idx) - differs, "prompt_differs": differs}
        refused = np.nonzero((status == _CODE["unmaskable"]) | (status == _CODE["template_error"]))[0]
        if len(refused):
            from collections import Counter

            whys = Counter(mapped.select(refused[:1000])["_why"])
            report.drop_reasons = {k: v for k, v in whys.most_common(5)}

    if spec.name == "text":
        report.documents = int(len(kept_idx))
        docs = mapped.select(kept_idx).remove_columns(["labels", "_status", "_hash", "_trained", "_flags", "_why"])
        say(f"packing {len(kept_idx):,} documents into blocks of {data_cfg.max_length}", 0.9)
        fp_pack = hashlib.md5((fp + "pack").encode()).hexdigest()
        mapped = docs.map(_Packer(data_cfg.max_length), batched=True, batch_size=1000,
                          remove_columns=list(docs.column_names), desc=None, new_fingerprint=fp_pack,
                          features=_features(("input_ids", "labels", "length")),
                          cache_file_name=str(_work_cache() / f"packed-{fp_pack}.arrow"))
        lengths = mapped.data.column("length").to_numpy()
        trained = lengths
        kept_idx = np.arange(len(mapped))

    n_keep = len(kept_idx)
    n_val = 0
    if data_cfg.val_ratio > 0 and n_keep >= 2:
        n_val = min(int(n_keep * data_cfg.val_ratio), n_keep - 1)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(kept_idx) if n_keep else kept_idx
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])

    extra = [c for c in ("_status", "_hash", "_trained", "_flags", "_why") if c in mapped.column_names]
    base = mapped if keep_columns else mapped.remove_columns(extra)
    train = base.select(train_idx)
    val = base.select(val_idx) if n_val else None

    report.train_rows = int(len(train_idx))
    report.val_rows = int(len(val_idx))
    report.train_tokens = int(lengths[train_idx].sum()) if len(train_idx) else 0
    report.val_tokens = int(lengths[val_idx].sum()) if len(val_idx) else 0
    report.trained_tokens = int(trained[train_idx].sum()) if len(train_idx) else 0
    report.set_lengths(lengths[np.concatenate([train_idx, val_idx])] if n_keep else np.array([], dtype=np.int64))
    if report.train_rows == 0:
        report.errors.append("no usable training rows after cleaning")
    say(f"dataset ready: {report.train_rows:,} train / {report.val_rows:,} validation rows", 1.0)
    return PreparedData(train=train, val=val, report=report, chat_template=template, val_index=val_idx)
