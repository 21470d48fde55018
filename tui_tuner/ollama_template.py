"""The run's chat template, translated into an Ollama Modelfile TEMPLATE (Go `text/template`).

No library translates a Jinja chat template into Ollama's Go template (Ollama ships hand-written
templates per family; llama.cpp matches known templates by string), so this is hand-written. It
does not parse Jinja: it *renders* the training template on probe conversations whose contents
are unique markers and reads off the literal text that goes between consecutive messages:

    start→system, start→user, system→user, user→assistant, assistant→user, and the generation
    prompt after the last user turn

(a default system block such as Qwen2.5's "You are Qwen…" or Llama 3.1's "Cutting Knowledge
Date…" is part of start→user). Templates that put the system prompt into the LAST user turn
(Mistral v0.3) get their own pair of texts around `.System`. The result is emitted as a Go
template over `.Messages` (Role/Content) and `.System`, every literal as a quoted Go string so no
whitespace trimming can touch it. Supported: ChatML/Qwen2.5/Qwen3 (without reasoning content),
Llama 3.x, Mistral, Gemma, Phi-3, the demo and the fallback templates. What Go cannot do (content
`| trim`, a date computed at render time) is listed in `notes`; the export's check renders the
run's own conversations through both templates and reports any difference.

`render_go` interprets exactly the subset `to_go` emits (tested against the real Go `text/template`
where `go` is installed); `render_with_go` runs a real Go program.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tui_tuner.errors import UserError

Render = Callable[[list, bool], str]

_M = {k: f"\u2063{k}\u2063" for k in ("S", "U1", "A1", "U2", "A2")}  # markers no template changes


def _msg(role: str, key: str) -> dict:
    return {"role": role, "content": _M[key]}


@dataclass
class Translation:
    between: dict[str, str]  # "prev>role" → literal text written before the message's content
    generation: str  # after the last user turn
    assistant_end: str  # after a final assistant turn (the end-of-turn text)
    system_mode: str  # "first" | "last_user" | "dropped"
    last_user_system: tuple[str, str, str] = ("", "", "")  # (after start, after assistant, after .System)
    notes: list[str] = field(default_factory=list)


def _split(text: str, keys: list[str]) -> list[str]:
    """The literal pieces around the markers `keys` (in that order) in `text`."""
    pieces, pos = [], 0
    for k in keys:
        i = text.find(_M[k], pos)
        if i < 0:
            raise ValueError(f"marker {k} missing or out of order")
        pieces.append(text[pos:i])
        pos = i + len(_M[k])
    pieces.append(text[pos:])
    return pieces


def translate(render: Render) -> Translation:
    """Derive the Go template's pieces from the training template (`render(messages, gen_prompt)`)."""
    u1, a1, u2, a2, s = _msg("user", "U1"), _msg("assistant", "A1"), _msg("user", "U2"), _msg("assistant", "A2"), \
        _msg("system", "S")
    try:
        t0, t1, t2, g = _split(render([u1, a1, u2], True), ["U1", "A1", "U2"])
        one0, g1 = _split(render([u1], True), ["U1"])
        *_, a_end = _split(render([u1, a1, u2, a2], False), ["U1", "A1", "U2", "A2"])
    except Exception as e:  # noqa: BLE001 - any template failure is reported as one line
        raise UserError(f"the chat template cannot be translated for Ollama: {type(e).__name__}: {e}"[:300],
                        hint="write the Modelfile TEMPLATE by hand (see README, export)") from None
    notes: list[str] = []
    if one0 != t0 or g1 != g:
        notes.append("the first turn renders differently from later turns")
    between = {"start>user": t0, "user>assistant": t1, "assistant>user": t2}
    tr = Translation(between=between, generation=g, assistant_end=a_end, system_mode="first", notes=notes)
    try:
        with_sys = render([s, u1, a1, u2], True)
    except Exception:  # noqa: BLE001 - a template that refuses a system role
        with_sys = ""
    if _M["S"] not in with_sys:
        tr.system_mode = "dropped"
        notes.append("the template has no system role: a system prompt is ignored")
    elif with_sys.find(_M["S"]) < with_sys.find(_M["U1"]):
        s0, s1, *rest = _split(with_sys, ["S", "U1", "A1", "U2"])
        between["start>system"], between["system>user"] = s0, s1
        if rest != [t1, t2, g]:
            notes.append("a system prompt changes later turns")
    else:  # the system prompt is written into the last user turn (Mistral v0.3)
        tr.system_mode = "last_user"
        _, _, pre, post, _ = _split(with_sys, ["U1", "A1", "S", "U2"])
        first, post1, _ = _split(render([s, u1], True), ["S", "U1"])
        if post1 != post:
            notes.append("the system prompt is joined differently on the first turn")
        tr.last_user_system = (first, pre, post)
    # Go's text/template has no `trim`: note templates that strip the content's whitespace.
    padded = {"role": "user", "content": " " + _M["U1"] + " "}
    try:
        if " " + _M["U1"] + " " not in render([padded], True):
            notes.append("the template trims whitespace around message contents; Ollama keeps it")
    except Exception:  # noqa: BLE001
        pass
    return tr


def _go_str(s: str) -> str:
    """A Go interpreted string literal."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _lit(s: str) -> str:
    return "{{- " + _go_str(s) + " }}" if s else ""


def to_go(tr: Translation) -> str:
    """The Ollama TEMPLATE: Go text/template over .Messages and .System."""
    b = tr.between
    lines = ['{{- $prev := "start" }}', "{{- range $i, $m := .Messages }}",
             "{{- $last := eq (len (slice $.Messages $i)) 1 }}"]
    user_cases = [("start", b.get("start>user", "")), ("system", b.get("system>user", "")),
                  ("assistant", b.get("assistant>user", ""))]
    user = ""
    for j, (prev, text) in enumerate(user_cases):
        user += ("{{- if" if j == 0 else "{{- else if") + f' eq $prev "{prev}" }}}}' + _lit(text)
    user += "{{- end }}"
    if tr.system_mode == "last_user":
        first, pre, post = tr.last_user_system
        user = ('{{- if and $last $.System }}{{- if eq $prev "start" }}' + _lit(first) + "{{- else }}" + _lit(pre)
                + "{{- end }}{{- $.System }}" + _lit(post) + "{{- else }}" + user + "{{- end }}")
    lines.append('{{- if eq .Role "user" }}' + user + "{{- .Content }}")
    lines.append('{{- else if eq .Role "assistant" }}{{- if eq $prev "user" }}' + _lit(b.get("user>assistant", ""))
                 + "{{- end }}{{- .Content }}")
    if tr.system_mode == "first":
        lines.append('{{- else if eq .Role "system" }}{{- if eq $prev "start" }}' + _lit(b.get("start>system", ""))
                     + "{{- end }}{{- .Content }}")
    lines.append("{{- end }}")
    if tr.system_mode == "first":
        lines.append("{{- $prev = .Role }}")
    else:  # the system message is not written where it stands
        lines.append('{{- if ne .Role "system" }}{{- $prev = .Role }}{{- end }}')
    lines.append("{{- end }}")
    lines.append('{{- if eq $prev "user" }}' + _lit(tr.generation) + "{{- end }}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Rendering the TEMPLATE the way Ollama does


def ollama_system(messages: list[dict]) -> str:
    """Ollama's .System: the system messages' contents joined with blank lines."""
    return "\n\n".join(m["content"] for m in messages if m["role"] == "system")


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|\$\.\w+|\$\w*|\.\w+|[^\s()]+')


def _unquote(lit: str) -> str:
    return json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: "\\u00" + m.group(1), lit))


class _Eval:
    def __init__(self, root: dict, var: dict):
        self.root, self.var = root, var

    def expr(self, toks: list[str]):
        """Evaluate a pipeline: a function call `f a b`, or a single operand."""
        if toks[0] in ("eq", "ne", "and", "or", "not", "len", "slice"):
            args = self._operands(toks[1:])
            f = toks[0]
            if f == "eq":
                return any(args[0] == a for a in args[1:])
            if f == "ne":
                return args[0] != args[1]
            if f == "and":
                for a in args:
                    if not a:
                        return a
                return args[-1]
            if f == "or":
                for a in args:
                    if a:
                        return a
                return args[-1]
            if f == "not":
                return not args[0]
            if f == "len":
                return len(args[0])
            return args[0][args[1]:args[2]] if len(args) > 2 else args[0][args[1]:]
        vals = self._operands(toks)
        return vals[0]

    def _operands(self, toks: list[str]) -> list:
        out, i = [], 0
        while i < len(toks):
            t = toks[i]
            if t == "(":
                depth, j = 1, i + 1
                while depth:
                    depth += {"(": 1, ")": -1}.get(toks[j], 0)
                    j += 1
                out.append(self.expr(toks[i + 1:j - 1]))
                i = j
                continue
            out.append(self.value(t))
            i += 1
        return out

    def value(self, t: str):
        if t.startswith('"'):
            return _unquote(t)
        if t.isdigit():
            return int(t)
        if t.startswith("$."):
            return self.root.get(t[2:], "")
        if t.startswith("$"):
            return self.var[t]
        if t.startswith("."):
            return self.var["."].get(t[1:], "")
        raise ValueError(f"unsupported operand {t!r}")


def render_go(template: str, messages: list[dict]) -> str:
    """Render `template` (the subset `to_go` emits) with Ollama's data for `messages`."""
    root = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
            "System": ollama_system(messages)}
    # Split into text and actions; apply {{- / -}} trimming as Go does.
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in re.finditer(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", template, re.S):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if parts and parts[-1][0] == "trim_next":
            parts.pop()
            text = text.lstrip(" \t\r\n")
        parts.append(("text", text))
        parts.append(("action", m.group(2)))
        if m.group(3):
            parts.append(("trim_next", ""))
        pos = m.end()
    tail = template[pos:]
    if parts and parts[-1][0] == "trim_next":
        parts.pop()
        tail = tail.lstrip(" \t\r\n")
    parts.append(("text", tail))

    # Parse into a tree: ("text", s) | ("out", toks) | ("set", name, toks) | ("if", [(cond, body)], else)
    # | ("range", idx, elem, toks, body)
    def parse(i: int, stop: tuple[str, ...]):
        body = []
        while i < len(parts):
            kind, s = parts[i]
            if kind == "text":
                if s:
                    body.append(("text", s))
                i += 1
                continue
            word = s.split(None, 1)[0] if s else ""
            if word in stop or (s.startswith("else") and "else" in stop):
                return body, i
            if word == "if":
                branches, els = [], None
                cond = _TOKEN.findall(s[2:])
                i += 1
                while True:
                    blk, i = parse(i, ("end", "else"))
                    branches.append((cond, blk))
                    head = parts[i][1]
                    i += 1
                    if head == "end":
                        break
                    if head.startswith("else if"):
                        cond = _TOKEN.findall(head[len("else if"):])
                        continue
                    els, i = parse(i, ("end",))
                    i += 1
                    break
                body.append(("if", branches, els))
            elif word == "range":
                m = re.match(r"range\s+(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.*)", s)
                if not m:
                    raise ValueError(f"unsupported range: {s}")
                blk, i = parse(i + 1, ("end",))
                i += 1
                body.append(("range", m.group(1), m.group(2), _TOKEN.findall(m.group(3)), blk))
            elif re.match(r"\$\w+\s*:?=", s):
                m = re.match(r"(\$\w+)\s*:?=\s*(.*)", s)
                body.append(("set", m.group(1), _TOKEN.findall(m.group(2))))
                i += 1
            else:
                body.append(("out", _TOKEN.findall(s)))
                i += 1
        return body, i

    tree, _ = parse(0, ())
    out: list[str] = []

    def run(nodes, ev: _Eval):
        for n in nodes:
            if n[0] == "text":
                out.append(n[1])
            elif n[0] == "out":
                v = ev.expr(n[1])
                out.append(v if isinstance(v, str) else str(v))
            elif n[0] == "set":
                ev.var[n[1]] = ev.expr(n[2])
            elif n[0] == "if":
                for cond, blk in n[1]:
                    if ev.expr(cond):
                        run(blk, ev)
                        break
                else:
                    if n[2]:
                        run(n[2], ev)
            elif n[0] == "range":
                saved = ev.var["."]
                for idx, item in enumerate(ev.expr(n[3])):
                    ev.var[n[1]], ev.var[n[2]], ev.var["."] = idx, item, item
                    run(n[4], ev)
                ev.var["."] = saved

    run(tree, _Eval(root, {".": root}))
    return "".join(out)


_GO_MAIN = r'''package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

func main() {
	var in struct {
		Jobs []struct {
			Template string
			Cases    [][]Message
		}
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	outs := [][]string{}
	for _, job := range in.Jobs {
		t := template.Must(template.New("m").Parse(job.Template))
		rendered := []string{}
		for _, msgs := range job.Cases {
			var sys []string
			for _, m := range msgs {
				if m.Role == "system" {
					sys = append(sys, m.Content)
				}
			}
			var b strings.Builder
			data := map[string]any{"Messages": msgs, "System": strings.Join(sys, "\n\n"), "Prompt": "", "Response": ""}
			if err := t.Execute(&b, data); err != nil {
				panic(err)
			}
			rendered = append(rendered, b.String())
		}
		outs = append(outs, rendered)
	}
	json.NewEncoder(os.Stdout).Encode(outs)
}
'''


def go_available() -> bool:
    return shutil.which("go") is not None


def render_with_go(template: str, cases: list[list[dict]], timeout: float = 180.0) -> list[str]:
    """Render every conversation in `cases` through Go's real text/template (needs `go` on PATH)."""
    return render_many_with_go([(template, cases)], timeout)[0]


def render_many_with_go(jobs: list[tuple[str, list[list[dict]]]], timeout: float = 180.0) -> list[list[str]]:
    """Several (template, conversations) jobs in one `go run` (compiling is the slow part)."""
    import os

    with tempfile.TemporaryDirectory(prefix="tt-gotmpl-") as d:
        (Path(d) / "main.go").write_text(_GO_MAIN)
        payload = json.dumps({"Jobs": [{"Template": t, "Cases": [
            [{"Role": m["role"], "Content": m["content"]} for m in msgs] for msgs in cases]} for t, cases in jobs]})
        env = {**os.environ, "GOCACHE": str(Path(tempfile.gettempdir()) / "tt-gocache"), "GO111MODULE": "off",
               "GOFLAGS": ""}
        res = subprocess.run(["go", "run", "main.go"], cwd=d, input=payload, capture_output=True, text=True,
                             timeout=timeout, env=env)
        if res.returncode != 0:
            raise RuntimeError("go run failed: " + res.stderr.strip()[-500:])
        return json.loads(res.stdout)


# ---------------------------------------------------------------------------------------------
# Stop tokens and the Modelfile


def stop_tokens(tr: Translation, special_tokens: list[str], eos_token: str | None) -> list[str]:
    """Every special token the template writes after an assistant reply (its end of turn), in order,
    plus the tokens that open the next turn, so Ollama stops even if the model skips the end."""
    stops: list[str] = []
    end_text = tr.assistant_end + tr.between.get("assistant>user", "")
    found = sorted(((end_text.find(t), t) for t in set(special_tokens) if t and t in end_text))
    for _, t in found:
        if t not in stops:
            stops.append(t)
    if eos_token and eos_token in end_text and eos_token not in stops:
        stops.append(eos_token)
    return stops


def modelfile(gguf_name: str, template: str, stops: list[str], *, system: str | None = None,
              params: dict | None = None) -> str:
    if '"""' in template or (system and '"""' in system):
        raise UserError('the chat template or system prompt contains """, which a Modelfile cannot quote')
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""', ""]
    for s in stops:
        lines.append(f"PARAMETER stop {json.dumps(s, ensure_ascii=False)}")
    for k, v in (params or {}).items():
        lines.append(f"PARAMETER {k} {v}")
    if system:
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"


def tokenizer_render(tok) -> Render:
    def render(messages: list, gen: bool) -> str:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    return render
