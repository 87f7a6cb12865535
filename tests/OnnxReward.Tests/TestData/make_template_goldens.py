#!/usr/bin/env python3
"""Regenerates template_goldens.jsonl: renderings by Python Jinja2 (what transformers' apply_chat_template uses:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), tojson with ensure_ascii=False,
raise_exception) of
  1. the early Meta Llama-3 template in ../shared/tokenizers/llama3/tokenizer_config.json over the 47 armorm-tiny
     golden conversations, with and without add_generation_prompt;
  2. small synthetic templates that exercise each construct OnnxReward's engine supports.
Run from this folder with ../shared beside the repository:  python3 make_template_goldens.py
"""
import json, pathlib
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError

root = pathlib.Path(__file__).resolve().parents[3]
shared = root.parent / "shared"

def raise_exception(message):
    raise TemplateError(message)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
    x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
env.globals["raise_exception"] = raise_exception

def render(template, messages, add_generation_prompt, **tokens):
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **tokens)

out = []
cfg = json.loads((shared / "tokenizers/llama3/tokenizer_config.json").read_text())
goldens = [json.loads(l) for l in (shared / "reference/armorm-tiny/golden.jsonl").read_text().splitlines()]
for g in goldens:
    for agp in (False, True):
        out.append({"id": f"llama3/{g['id']}/agp={agp}", "template": "llama3", "add_generation_prompt": agp,
                    "messages": g["messages"], "bos_token": cfg["bos_token"],
                    "rendered": render(cfg["chat_template"], g["messages"], agp, bos_token=cfg["bos_token"])})

msgs = [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": " 4 "}]
synthetic = {
    "whitespace-control": "{%- for m in messages -%}\n  [{{- m.role -}}]\n  {{ m.content | trim }}\n{%- endfor -%}\n",
    "trim-and-lstrip-blocks": "{% for m in messages %}\n    {% if m.role == 'user' %}\n    U: {{ m['content'] }}\n    {% else %}\n    O: {{ m.content }}\n    {% endif %}\n{% endfor %}\n",
    "loop-vars": "{% for m in messages %}{{ loop.index0 }}/{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}",
    "namespace-and-system": "{% set ns = namespace(sys='') %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content | trim %}{% endif %}{% endfor %}<<{{ ns.sys }}>>{% for m in messages if m.role != 'system' %}{{ m.role | upper }}:{{ m.content }}|{% endfor %}",
    "slice-and-elif": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}{% for m in loop_messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% elif m.role == 'assistant' %}{{ m.content }}{{ eos_token }}{% else %}?{% endif %}{% endfor %}",
    "tojson-length-default": "{{ messages | length }} {{ messages[1] | tojson }} {{ undefined_var | default('dflt') }} {{ messages[0].missing is defined }} {{ 'x' ~ 3 ~ none ~ true }}",
    "string-methods": "{% for m in messages %}{{ m.content.strip() }}|{{ m.content.startswith('H') }}|{{ m.role.replace('a', 'A') }};{% endfor %}",
    "arithmetic-and-tests": "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ -1 }} {{ 1.5 }} {{ 10 / 4 }} {{ (messages | length) is even }} {{ 'a' in 'cat' }} {{ 'z' not in ['a'] }} {{ 1 if false else 2 }}",
    "comments": "{# a comment #}\n{% for m in messages %}{# inner #}{{ m.role[0] }}{% endfor %}\n{#- trailing -#}\n.",
}
for name, template in synthetic.items():
    for agp in (False,):
        out.append({"id": f"synthetic/{name}", "template": template, "add_generation_prompt": agp, "messages": msgs,
                    "bos_token": "<s>", "eos_token": "</s>",
                    "rendered": render(template, msgs, agp, bos_token="<s>", eos_token="</s>")})

(pathlib.Path(__file__).parent / "template_goldens.jsonl").write_text(
    "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out))
print(f"wrote {len(out)} renderings")
