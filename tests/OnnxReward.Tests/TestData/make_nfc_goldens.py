#!/usr/bin/env python3
"""Regenerates nfc_goldens.jsonl: NFC by Python's unicodedata (the reference for UnicodeNfc's tables, same Unicode
version) of (1) the full canonical decomposition (NFD) of every character that has one, and (2) 400 random
sequences (seed 15) of starters, combining marks of mixed classes, Hangul jamo and precomposed characters, so
decomposition, canonical reordering, blocking and composition (Hangul LV/LVT included) are all exercised.
Run from this folder: python3 make_nfc_goldens.py
"""
import json, random, unicodedata

decomposable = [chr(cp) for cp in range(0x110000)
                if not 0xD800 <= cp <= 0xDFFF and unicodedata.decomposition(chr(cp)) and not unicodedata.decomposition(chr(cp)).startswith("<")]
marks = [chr(cp) for cp in range(0x300, 0x3700) if unicodedata.combining(chr(cp))] + ["\u0cd5", "\u0cd6", "\u093c", "\u09be", "\u0b3e"]
starters = list("aeiouAEIOUcnsyzkgωαεηιουΑΕικρ") + ["\u0915", "\u09c7", "\u0b47", "\u0cbf", "\u0cc6", "\u1100", "\u1161", "\u11a8", "\uac00", "\uac01", "\u1112", "\u1175", "\u11c2"]
rng = random.Random(15)
with open("nfc_goldens.jsonl", "w", encoding="utf-8") as f:
    for ch in decomposable:
        f.write(json.dumps({"input": unicodedata.normalize("NFD", ch), "nfc": unicodedata.normalize("NFC", ch)}, ensure_ascii=False) + "\n")
    for _ in range(400):
        pool = starters * 2 + marks[:60] + rng.sample(marks, 20) + rng.sample(decomposable, 20)
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        f.write(json.dumps({"input": s, "nfc": unicodedata.normalize("NFC", s)}, ensure_ascii=False) + "\n")
print("unicode", unicodedata.unidata_version, len(decomposable), "decomposable + 400 random")
