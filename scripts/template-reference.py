#!/usr/bin/env python3
"""Chat-template renderings from the reference: transformers' render_jinja_template (the
core of tokenizer.apply_chat_template, Jinja2 in ImmutableSandboxedEnvironment).

  generate OUT_DIR [GGUF ...]
      Render every fixture template (fixtures/templates/benign/*.jinja) and the template
      embedded in each GGUF given, with the standard conversations
      (src/template/conversations.json), with and without the generation prompt; write
      OUT_DIR/<name>.json. tests/templates.rs compares gguf-gate's renderings with these
      files byte for byte. Special tokens come from fixtures/templates/tokens.json.

  compare DIR GGUF_GATE_BINARY
      Render every DIR/*.jinja with transformers and with `gguf-gate template --raw`, and
      report how many renderings are byte-equal (by hand, on third-party corpora that stay
      outside the repository). Bare templates get bos_token "<s>" and eos_token "</s>" on
      both sides.

strftime_now is pinned to 2026-01-15 09:30:00, as gguf-gate pins it. Needs the pinned
`transformers` and `jinja2` of requirements-dev.txt (torch is not needed).
"""

import datetime as _dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

ROOT = Path(__file__).resolve().parent.parent
CONVERSATIONS = ROOT / "src/template/conversations.json"
FIXTURES = ROOT / "fixtures/templates"
PLACEHOLDER = {"bos_token": "<s>", "eos_token": "</s>"}


class _PinnedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 15, 9, 30, 0)


ctu.datetime = _PinnedDatetime


def conversations():
    for c in json.loads(CONVERSATIONS.read_text(encoding="utf-8")):
        for agp in (True, False):
            yield c, agp


def render(template, conv, agp, tokens):
    """{"prompt": str} or {"error": str, "raised": bool}."""
    kwargs = {k: v for k, v in tokens.items() if v is not None}
    try:
        rendered, _ = ctu.render_jinja_template(
            conversations=[conv["messages"]],
            tools=conv.get("tools"),
            chat_template=template,
            add_generation_prompt=agp,
            **kwargs,
        )
        return {"prompt": rendered[0]}
    except Exception as e:  # the reference's failure is data, not a crash
        raised = type(e) is jinja2.exceptions.TemplateError
        return {"error": str(e), "raised": raised}


def renderings(template, tokens):
    out = []
    for conv, agp in conversations():
        r = render(template, conv, agp, tokens)
        out.append({"conversation": conv["name"], "add_generation_prompt": agp, **r})
    return out


def gguf_template(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    return f.contents()


def generate(out_dir, ggufs):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = json.loads((FIXTURES / "tokens.json").read_text(encoding="utf-8"))
    sources = []
    for p in sorted((FIXTURES / "benign").glob("*.jinja")):
        sources.append((p.stem, p.read_text(encoding="utf-8"), f"fixtures/templates/benign/{p.name}"))
    for g in ggufs:
        name = "smollm2" if "SmolLM2" in g else "qwen2.5-coder" if "qwen2.5-coder" in g else Path(g).stem
        sources.append((name, gguf_template(g), f"tokenizer.chat_template of {Path(g).name}"))
    for name, text, source in sources:
        doc = {
            "source": source,
            "template_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "generator": f"scripts/template-reference.py generate (transformers {transformers.__version__}, jinja2 {jinja2.__version__})",
            "tokens": tokens.get(name, PLACEHOLDER),
            "renderings": renderings(text, tokens.get(name, PLACEHOLDER)),
        }
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def ours(binary, template_path, conv, agp):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump({"messages": conv["messages"], "tools": conv.get("tools"), "add_generation_prompt": agp}, f)
        name = f.name
    try:
        p = subprocess.run([binary, "template", str(template_path), "--messages", name, "--raw"],
                           capture_output=True, timeout=30)
    finally:
        os.unlink(name)
    if p.returncode == 0:
        return {"prompt": p.stdout.decode("utf-8")}
    return {"error": p.stderr.decode("utf-8", "replace").strip()}


def compare(directory, binary):
    equal = both_fail = differ = 0
    for p in sorted(Path(directory).glob("*.jinja")):
        text = p.read_text(encoding="utf-8")
        for conv, agp in conversations():
            ref = render(text, conv, agp, PLACEHOLDER)
            got = ours(binary, p, conv, agp)
            if "prompt" in ref and ref.get("prompt") == got.get("prompt"):
                equal += 1
            elif "error" in ref and "error" in got:
                both_fail += 1
            else:
                differ += 1
                what = "reference failed: " + ref["error"][:120] if "error" in ref else (
                    "gguf-gate failed: " + got["error"][:160] if "error" in got else "the prompts differ")
                print(f"DIFF {p.name} {conv['name']} agp={agp}: {what}")
                if "prompt" in ref and "prompt" in got:
                    a, b = ref["prompt"], got["prompt"]
                    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
                    print(f"   reference: {a[max(0, i - 40):i + 60]!r}\n   gguf-gate: {b[max(0, i - 40):i + 60]!r}")
    total = equal + both_fail + differ
    print(f"renderings: {total}, byte-equal: {equal}, both fail: {both_fail}, differ: {differ}")
    return differ == 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
