#!/usr/bin/env python3
"""Regenerates template_goldens.jsonl: renderings by Python Jinja2 (what transformers' apply_chat_template uses:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), tojson with ensure_ascii=False,
raise_exception) of
  1. the early Meta Llama-3 template in ../shared/tokenizers/llama3/tokenizer_config.json over the 47 armorm-tiny
     golden conversations, with and without add_generation_prompt;
  2. small synthetic templates that exercise each construct OnnxReward's engine supports;
  3. templates modelled on other real chat templates (see the comment above `real_like`).
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
    "loop-set-scoping": "{% set s = 'ab' %}{% for m in messages %}{% if loop.first %}{% set s = 'X' %}{% endif %}{% set s = s + m.role[0] %}{{ s }},{% endfor %}{{ s }}",
    "comments": "{# a comment #}\n{% for m in messages %}{# inner #}{{ m.role[0] }}{% endfor %}\n{#- trailing -#}\n.",
}
for name, template in synthetic.items():
    for agp in (False,):
        out.append({"id": f"synthetic/{name}", "template": template, "add_generation_prompt": agp, "messages": msgs,
                    "bos_token": "<s>", "eos_token": "</s>",
                    "rendered": render(template, msgs, agp, bos_token="<s>", eos_token="</s>")})

# 3. Templates modelled on real models' chat templates (ChatML/Qwen2, Zephyr, Mistral-Instruct, Gemma, Llama-2-chat,
#    Llama-3.1), written for this file to exercise the constructs those templates use: default system turns, role
#    alternation checks through raise_exception, filter-vs-'+' precedence, cross-type comparisons ('str' != false),
#    str methods, rebinding `messages`, `not x is defined`, multi-line {%- -%} layouts. Each runs over three message
#    sets (with a system turn, without one, tricky contents) with and without add_generation_prompt; when Python's
#    Jinja2 raises (raise_exception), the expected outcome is that error message.
real_like = {
    "chatml-qwen2": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    "mistral-instruct": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    "gemma": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
    "llama2-chat": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    "llama3.1-like": "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n",
}
message_sets = {
    "system": msgs,
    "no-system": msgs[1:],
    "tricky": [{"role": "user", "content": "\u3000 {{ not a tag }} {% if %} \u0085"},
               {"role": "assistant", "content": "<|eot_id|>[PAD]\n\n"},
               {"role": "user", "content": ""},
               {"role": "assistant", "content": "\u00e9\u00e8 \U0001F600 \ufeff tab\there \u2028"}],
}
for name, template in real_like.items():
    for set_name, messages in message_sets.items():
        for agp in (False, True):
            case = {"id": f"real-like/{name}/{set_name}/agp={agp}", "template": template, "add_generation_prompt": agp,
                    "messages": messages, "bos_token": "<s>", "eos_token": "</s>"}
            try:
                case["rendered"] = render(template, messages, agp, bos_token="<s>", eos_token="</s>")
            except TemplateError as e:
                case["error"] = str(e)
            out.append(case)

(pathlib.Path(__file__).parent / "template_goldens.jsonl").write_text(
    "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out))
print(f"wrote {len(out)} renderings")
