"""Finding and reading a dataset: local files, `save_to_disk` folders, hub ids, 'sample'.

Everything is read through `datasets` (Arrow, memory-mapped), so a large file never has to fit in
RAM. Before that, each text file gets one streaming pass (1 MiB chunks) that `datasets` cannot do
for us with a useful message: empty file, binary data, UTF-16/32 (transcoded to UTF-8), invalid
UTF-8 (named by line and byte), and a single line too large to be one record. Malformed JSON lines
are found only if `datasets` refuses the file (no cost on good files): its own error counts rows
inside a pyarrow block, so we re-scan the file line by line to name the real line number.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tui_tuner.errors import UserError

CHUNK = 1 << 20
# One record larger than this cannot be a training example (and would be read whole into memory).
MAX_LINE_BYTES = 64 << 20
# JSON documents (not JSON Lines) are parsed whole by `datasets`; above this, ask for JSONL.
MAX_JSON_DOCUMENT_BYTES = 2 << 30

EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
    ".txt": "txt", ".text": "txt", ".md": "txt",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

Progress = Callable[[str, "float | None"], None]


@dataclass
class Loaded:
    dataset: Any  # datasets.Dataset
    kind: str  # jsonl | json | csv | tsv | parquet | txt | disk | hub
    display: str  # what to call it in messages
    bad_lines: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. "transcoded from UTF-16"
    errors: list[str] = field(default_factory=list)  # the first skipped bad lines


def sample_path() -> Path:
    try:
        from tui_tuner import demo

        return Path(demo.sample_dataset_path())
    except (ImportError, AttributeError):
        import tui_tuner

        return Path(tui_tuner.__file__).parent / "assets" / "sample_faq.jsonl"


def _cache_dir() -> str:
    from tui_tuner import paths

    d = paths.cache_dir() / "datasets"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def _work_dir() -> Path:
    from tui_tuner import paths

    d = paths.cache_dir() / "data-work"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------


def load_raw(path: str, *, skip_bad_lines: bool = False, progress: Progress | None = None) -> Loaded:
    """Read `data.path` into a `datasets.Dataset` (not yet formatted). Raises UserError."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    # Its JSON reader logs every parse failure at ERROR level before raising; we turn that failure
    # into one line naming the real line number, so its own (block-relative) message is noise.
    logging.getLogger("datasets.packaged_modules.json.json").setLevel(logging.CRITICAL)
    ref = (path or "").strip()
    if not ref:
        raise UserError("data.path is empty", hint="give a file, a folder, 'sample' or a hub dataset id")
    if ref == "sample":
        p = sample_path()
        if not p.is_file():
            raise UserError(f"the sample dataset is missing: {p}", hint="reinstall tui-tuner")
        return _load_file(p, skip_bad_lines, progress)
    p = Path(ref).expanduser()
    if p.is_dir():
        return _load_dir(p, skip_bad_lines, progress)
    if p.is_file():
        return _load_file(p, skip_bad_lines, progress)
    problem = path_problem(ref)
    if problem is not None:
        raise problem
    return _load_hub(ref, progress)


def is_hub_id(ref: str) -> bool:
    """True when `data.path` names a hub dataset (owner/name) rather than a local file or folder:
    it reads as owner/name, has no dataset file suffix and nothing of that name is on disk."""
    ref = (ref or "").strip()
    p = Path(ref).expanduser()
    return bool(_HUB_ID.match(ref)) and p.suffix.lower() not in EXTENSIONS and not p.exists()


def path_problem(path: str) -> UserError | None:
    """What is wrong with `data.path` that a look at the disk can tell, before anything is loaded:
    a local file that is missing, a folder with no dataset file (or with files of several types), a
    file of a type the loader cannot read (judged by its suffix, else by its first 4 KiB). None when
    nothing is wrong that way, and for 'sample', a hub id and an empty path (the loader and the
    config check judge those). The CLI's `train` raises it; the wizard shows its one line."""
    ref = (path or "").strip()
    if not ref or ref == "sample" or is_hub_id(ref):
        return None
    p = Path(ref).expanduser()
    try:
        if p.is_dir():
            _dataset_files(p)
        elif p.is_file():
            _kind_of(p)
        elif p.exists():
            raise UserError(f"data.path {p} is not a regular file or folder")
        else:
            raise UserError(f"data.path: file not found: {p}",
                            hint="give an existing JSON/JSONL/CSV/TSV/Parquet/TXT file or folder, or 'sample'")
    except UserError as e:
        return e
    except OSError as e:
        return UserError(f"data.path {p}: {e.strerror or e}")
    return None


def _load_hub(ref: str, progress: Progress | None) -> Loaded:
    import datasets

    from tui_tuner import hub

    offline = hub.go_offline_if_unreachable()
    if progress:
        progress(f"loading hub dataset {ref}", None)
    try:
        ds = datasets.load_dataset(ref, split="train", cache_dir=_cache_dir())
    except Exception as e:  # offline / unknown id / no train split
        msg = _one_line(e)
        if offline:
            raise UserError(f"cannot reach huggingface.co and dataset '{ref}' is not in the local cache",
                            hint="connect once to download it, or export it to a local JSONL/Parquet file") from e
        raise UserError(f"could not load hub dataset '{ref}': {msg}",
                        hint="check the id (owner/name) and that it has a 'train' split") from e
    return Loaded(ds, "hub", ref)


def _is_saved_dataset(p: Path) -> bool:
    """A folder written by datasets' save_to_disk."""
    return (p / "dataset_dict.json").is_file() or (p / "state.json").is_file()


def _dataset_files(p: Path) -> list[Path]:
    """The dataset files in folder `p`, all of one type ([] for a save_to_disk folder); raises
    UserError when it holds none or several types."""
    if _is_saved_dataset(p):
        return []
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
    kinds = {EXTENSIONS[f.suffix.lower()] for f in files}
    if not files:
        raise UserError(f"{p} is a folder with no dataset files",
                        hint="point to a file, or to a folder written by datasets' save_to_disk")
    if len(kinds) > 1:
        raise UserError(f"{p} mixes file types ({', '.join(sorted(kinds))})", hint="point to one file")
    return files


def _load_dir(p: Path, skip_bad_lines: bool, progress: Progress | None) -> Loaded:
    import datasets

    if _is_saved_dataset(p):
        try:
            obj = datasets.load_from_disk(str(p))
        except Exception as e:
            raise UserError(f"{p}: cannot read this save_to_disk folder: {_one_line(e)}") from e
        if isinstance(obj, datasets.DatasetDict):
            split = "train" if "train" in obj else next(iter(obj), None)
            if split is None:
                raise UserError(f"{p}: the saved DatasetDict has no splits")
            obj = obj[split]
        return Loaded(obj, "disk", str(p))
    files = _dataset_files(p)
    if len(files) == 1:
        return _load_file(files[0], skip_bad_lines, progress)
    parts = [_load_file(f, skip_bad_lines, progress) for f in files]
    try:
        ds = datasets.concatenate_datasets([x.dataset for x in parts])
    except Exception as e:
        raise UserError(f"{p}: the files do not share the same columns: {_one_line(e)}") from e
    return Loaded(ds, parts[0].kind, str(p), bad_lines=sum(x.bad_lines for x in parts),
                  notes=[n for x in parts for n in x.notes], errors=[m for x in parts for m in x.errors][:5])


def _kind_of(p: Path) -> str:
    kind = EXTENSIONS.get(p.suffix.lower())
    if kind:
        return kind
    with open(p, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(codecs.BOM_UTF8).lstrip()
    if stripped[:1] in (b"{", b"["):
        return "json"
    raise UserError(f"{p}: unknown file type '{p.suffix or '(none)'}'",
                    hint="use .jsonl, .json, .csv, .tsv, .parquet or .txt")


def _load_file(p: Path, skip_bad_lines: bool, progress: Progress | None) -> Loaded:
    import datasets

    kind = _kind_of(p)
    display = str(p)
    notes: list[str] = []
    if kind == "parquet":
        if p.stat().st_size == 0:
            raise UserError(f"{display} is empty")
        try:
            ds = datasets.load_dataset("parquet", data_files=str(p), split="train", cache_dir=_cache_dir())
        except Exception as e:
            raise UserError(f"{display} is not a readable Parquet file: {_one_line(e)}") from e
        return Loaded(ds, kind, display)

    if progress:
        progress(f"checking {p.name}", None)
    src, encoding = _prescan(p, kind, display)
    if encoding:
        notes.append(f"read as {encoding.upper()} (byte-order mark) and converted to UTF-8")

    field_name = None
    if kind in ("json", "jsonl"):
        kind, field_name = _json_layout(src, display)

    if progress:
        progress(f"reading {p.name}", None)
    bad = 0
    errors: list[str] = []
    try:
        ds = _read(kind, src, field_name)
    except UserError:
        raise
    except Exception as e:
        if kind != "jsonl":
            raise _read_error(kind, display, e) from e
        bad_lines = _find_bad_json_lines(src, limit=None if skip_bad_lines else 1)
        if not bad_lines:
            raise _read_error(kind, display, e) from e
        if not skip_bad_lines:
            line_no, why, snippet = bad_lines[0]
            raise UserError(f"{display} line {line_no}: {why}: {snippet}",
                            hint="fix that line, or skip malformed lines with --skip-bad-lines "
                                 "(data.skip_bad_lines: true)") from e
        bad = len(bad_lines)
        errors = [f"line {n}: {why}: {snip}" for n, why, snip in bad_lines[:5]]
        if progress:
            progress(f"skipping {bad} malformed line(s) in {p.name}", None)
        clean = _write_without_lines(src, {n for n, _, _ in bad_lines})
        try:
            ds = _read(kind, clean, None)
        except Exception as e2:
            raise _read_error(kind, display, e2) from e2
    return Loaded(ds, kind, display, bad_lines=bad, notes=notes, errors=errors)


def _read(kind: str, path: Path, field_name: str | None):
    import datasets

    cache = _cache_dir()
    if kind in ("json", "jsonl"):
        kw = {"field": field_name} if field_name else {}
        return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache, **kw)
    if kind in ("csv", "tsv"):
        kw = {"sep": "\t"} if kind == "tsv" else {}
        # keep_default_na=False: an empty field is "", not NaN (and "NA"/"null" stay text).
        return datasets.load_dataset("csv", data_files=str(path), split="train", cache_dir=cache,
                                     keep_default_na=False, encoding="utf-8-sig", **kw)
    if kind == "txt":
        return datasets.load_dataset("text", data_files=str(path), split="train", cache_dir=cache)
    raise AssertionError(kind)


def _read_error(kind: str, display: str, e: Exception) -> UserError:
    msg = _one_line(e)
    label = {"jsonl": "JSON Lines", "json": "JSON", "csv": "CSV", "tsv": "TSV", "txt": "text"}.get(kind, kind)
    return UserError(f"{display} is not a readable {label} file: {msg}",
                     hint="check the file, or convert it to JSONL (one JSON object per line)")


def _one_line(e: BaseException) -> str:
    """The most specific message in an exception chain, on one line, without pyarrow's block rows."""
    seen = e
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    text = str(seen) or str(e) or type(e).__name__
    text = " ".join(text.split())
    return text[:300]


# ---------------------------------------------------------------------------------------------
# The streaming pre-scan

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
]


def _prescan(p: Path, kind: str, display: str) -> tuple[Path, str | None]:
    """Validate a text file in one streaming pass: (path to read, source encoding if transcoded)."""
    with open(p, "rb") as f:
        head = f.read(CHUNK)
    if not head:
        raise UserError(f"{display} is empty", hint="the file has no data")
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return _transcode(p, enc, display), enc
    if b"\x00" in head:
        raise UserError(f"{display} looks like a binary file, not text (it contains NUL bytes)",
                        hint="give a JSONL, JSON, CSV, TSV, Parquet or TXT file")
    line_limit = kind in ("jsonl", "csv", "tsv", "txt")
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    line_no = 1
    cur_line = 0  # bytes in the current (unfinished) line
    offset = 0
    has_text = False
    with open(p, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            try:
                dec.decode(chunk, final=False)
            except UnicodeDecodeError as e:
                bad_at = e.start
                n = line_no + chunk.count(b"\n", 0, bad_at)
                bad = chunk[bad_at:bad_at + 4].hex(" ")
                raise UserError(f"{display} is not valid UTF-8 (line {n}, byte {offset + bad_at}: 0x{bad})",
                                hint="save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in > out` "
                                     "(UTF-16/32 files with a BOM are converted automatically)") from None
            if not has_text and chunk.strip(b" \t\r\n\xef\xbb\xbf"):
                has_text = True
            if b"\x00" in chunk:
                raise UserError(f"{display} contains NUL bytes near line {line_no} (binary data?)",
                                hint="give a text file in UTF-8")
            nl = chunk.find(b"\n")
            if nl < 0:
                cur_line += len(chunk)
            else:
                cur_line += nl
                if line_limit and cur_line > MAX_LINE_BYTES:
                    raise _huge_line(display, line_no, cur_line)
                line_no += chunk.count(b"\n")
                cur_line = len(chunk) - chunk.rfind(b"\n") - 1
            if line_limit and cur_line > MAX_LINE_BYTES:
                raise _huge_line(display, line_no, cur_line)
            offset += len(chunk)
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(f"{display} is not valid UTF-8 (it ends in the middle of a character)",
                            hint="save it as UTF-8") from None
    if not has_text:
        raise UserError(f"{display} is empty", hint="the file holds only whitespace")
    if kind == "json" and offset > MAX_JSON_DOCUMENT_BYTES:
        raise UserError(f"{display} is a {offset / 2**30:.1f} GiB JSON document; it would be read whole",
                        hint="convert it to JSON Lines (one object per line), e.g. `jq -c '.[]' in.json > out.jsonl`")
    return p, None


def _huge_line(display: str, line_no: int, size: int) -> UserError:
    return UserError(f"{display} line {line_no} is over {MAX_LINE_BYTES >> 20} MiB long "
                     f"({'at least ' if size else ''}{size / 2**20:.0f} MiB)",
                     hint="one record per line is expected; split the file or check that it is not "
                          "minified JSON saved with the wrong extension")


def _transcode(p: Path, encoding: str, display: str) -> Path:
    """UTF-16/32 with a BOM is unambiguous: convert it to a UTF-8 copy in the cache, streaming."""
    st = p.stat()
    out = _work_dir() / f"{p.stem}-{st.st_size}-{int(st.st_mtime)}.{encoding}.utf8{p.suffix}"
    if out.is_file():
        return out
    dec = codecs.getincrementaldecoder(encoding)("strict")
    tmp = out.with_suffix(out.suffix + ".part")
    with open(p, "rb") as src, open(tmp, "w", encoding="utf-8", newline="") as dst:
        first = True
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            try:
                text = dec.decode(chunk)
            except UnicodeDecodeError as e:
                tmp.unlink(missing_ok=True)
                raise UserError(f"{display} starts with a {encoding.upper()} byte-order mark but is not valid "
                                f"{encoding.upper()} (byte {e.start})", hint="save it as UTF-8") from None
            if first:
                text = text.lstrip("\ufeff")
                first = False
            if "\x00" in text:
                tmp.unlink(missing_ok=True)
                raise UserError(f"{display} contains NUL characters (binary data?)", hint="give a text file")
            dst.write(text)
        dst.write(dec.decode(b"", final=True))
    os.replace(tmp, out)
    _prescan(out, EXTENSIONS.get(p.suffix.lower(), "txt"), display)
    return out


# ---------------------------------------------------------------------------------------------
# JSON specifics


def _json_layout(p: Path, display: str) -> tuple[str, str | None]:
    """('jsonl'|'json', field) — JSON Lines, a JSON array, or an object holding one list."""
    with open(p, "rb") as f:
        first = f.readline(MAX_LINE_BYTES + 1)
        while first and not first.strip(b" \t\r\n\xef\xbb\xbf"):
            first = f.readline(MAX_LINE_BYTES + 1)
        second = f.readline(MAX_LINE_BYTES + 1)
        while second and not second.strip():
            second = f.readline(MAX_LINE_BYTES + 1)
    s = first.lstrip(codecs.BOM_UTF8).strip()
    if s.startswith(b"["):
        _check_json_document(p, display)
        return "json", None
    if s.startswith(b"{"):
        try:
            obj = json.loads(s)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            list_keys = [k for k, v in obj.items() if _is_record_list(v)]
            # one object per line from the next line on too: JSON Lines, even when each row is one key
            # holding a list (pygmalion {"conversations": [...]}, axolotl {"segments": [...]})
            if len(obj) == 1 and list_keys and not _looks_like_conversation(obj[list_keys[0]]) \
                    and not second.strip().startswith(b"{"):
                return "json", list_keys[0]
            return "jsonl", None
        # a pretty-printed object: parse the document (datasets would read it whole too)
        doc = _check_json_document(p, display)
        if isinstance(doc, dict):
            list_keys = [k for k, v in doc.items() if _is_record_list(v)]
            if len(list_keys) == 1:
                return "json", list_keys[0]
            if not list_keys:
                raise UserError(f"{display} is one JSON object with no list of records in it",
                                hint="expected an array of objects, an object holding one such list, or JSONL")
            raise UserError(f"{display} holds several lists ({', '.join(list_keys)}); which one is the data?",
                            hint="save the list you want as its own JSON/JSONL file")
        return "json", None
    return "jsonl", None  # let the line scan explain


def _is_record_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v[:10])


def _looks_like_conversation(v: list) -> bool:
    return any(("role" in x and "content" in x) or ("from" in x and "value" in x) for x in v[:5])


def _check_json_document(p: Path, display: str) -> Any:
    try:
        with open(p, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        line = ""
        with open(p, encoding="utf-8-sig", errors="replace") as f:
            for i, text in enumerate(f, 1):
                if i == e.lineno:
                    line = text
                    break
        snippet = _snippet(line, e.colno - 1)
        raise UserError(f"{display} line {e.lineno} column {e.colno}: invalid JSON ({e.msg}): {snippet}",
                        hint="fix the JSON, or save one object per line as JSONL") from None


def _snippet(line: str, col: int | None = None, width: int = 60) -> str:
    line = line.rstrip("\r\n")
    if col is not None and len(line) > width:
        start = max(0, min(col - width // 2, len(line) - width))
        text = ("…" if start else "") + line[start:start + width] + ("…" if start + width < len(line) else "")
    else:
        text = line[:width] + ("…" if len(line) > width else "")
    return repr(text)


def _find_bad_json_lines(p: Path, limit: int | None) -> list[tuple[int, str, str]]:
    """Stream the file and return (line number, problem, snippet) for malformed lines.

    Syntax errors and non-object lines first; only if there are none, a field whose JSON type
    changes between lines (the other thing pyarrow refuses).
    """
    bad: list[tuple[int, str, str]] = []
    type_bad: list[tuple[int, str, str]] = []
    types: dict[str, tuple[str, int]] = {}
    with open(p, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            s = raw.strip()
            if not s:
                continue
            text = s.decode("utf-8", errors="replace")
            try:
                obj = json.loads(text)
            except ValueError as e:
                msg = getattr(e, "msg", str(e))
                col = getattr(e, "colno", None)
                bad.append((n, f"invalid JSON ({msg})", _snippet(text, col)))
            else:
                if not isinstance(obj, dict):
                    bad.append((n, f"expected a JSON object, found {type(obj).__name__}", _snippet(text)))
                elif not type_bad:
                    problem = _type_change(obj, types, n)
                    if problem:
                        type_bad.append((n, problem, _snippet(text)))
            if limit is not None and len(bad) >= limit:
                break
    return bad or type_bad


def _json_type(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    return "object"


def _type_change(obj: dict, types: dict[str, tuple[str, int]], n: int) -> str | None:
    for k, v in obj.items():
        t = _json_type(v)
        if t is None:
            continue
        seen = types.get(k)
        if seen is None:
            types[k] = (t, n)
        elif seen[0] != t and {seen[0], t} != {"number"}:
            return f"field '{k}' is a {t} here but a {seen[0]} on line {seen[1]}"
    return None


def _write_without_lines(p: Path, skip: set[int]) -> Path:
    fd, name = tempfile.mkstemp(prefix=p.stem + "-clean-", suffix=".jsonl", dir=_work_dir())
    with os.fdopen(fd, "wb") as out, open(p, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n not in skip:
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
    return Path(name)
