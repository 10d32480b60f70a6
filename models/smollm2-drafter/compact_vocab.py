#!/usr/bin/env python3
"""Remap a prepared SmolLM2 dataset (`seqlab prepare text`, u16 shards) to a compact vocabulary.

The drafter is trained on the K most frequent ids of the train split (id `K` = every other id,
"rare"), which makes the 49152-way softmax of training K+1-way; `smollm2_drafter expand`
then writes the full-vocabulary drafter (rows of the compact embedding at their SmolLM2 ids,
zero rows for the rest). Usage: compact_vocab.py SRC_DIR DST_DIR K
Writes DST_DIR/{train_000.bin, val_000.bin, *_docs.u64, tokenizer.json, meta.json, id_map.json}
(id_map.json: the SmolLM2 id of each compact id 0..K-1).
"""
import json, os, shutil, sys
from array import array

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = json.load(open(os.path.join(src, "meta.json")))
assert meta["dtype"] == "u16", meta["dtype"]

def read(split):
    out = []
    for sh in meta["splits"][split]["shards"]:
        a = array("H")
        with open(os.path.join(src, sh["file"]), "rb") as f:
            a.frombytes(f.read())
        out.append((sh["file"], a))
    return out

train = read("train")
counts = [0] * meta["vocab_size"]
for _, a in train:
    for t in a:
        counts[t] += 1
# Most frequent first, ties by id; always keep the end-of-text id the shards separate docs with.
order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
keep = order[:k]
eos = meta["text"].get("eos_id")
if eos is not None and eos not in keep:
    keep[-1] = eos
remap = {old: new for new, old in enumerate(keep)}
os.makedirs(dst, exist_ok=True)
covered = sum(counts[i] for i in keep) / max(1, sum(counts))
for split in ("train", "val"):
    for name, a in read(split):
        b = array("H", (remap.get(t, k) for t in a))
        with open(os.path.join(dst, name), "wb") as f:
            f.write(b.tobytes())
    shutil.copy(os.path.join(src, meta["splits"][split]["docs_file"]), dst)
shutil.copy(os.path.join(src, "tokenizer.json"), dst)
meta["vocab_size"] = k + 1
meta["compact_vocab"] = {"from_vocab": len(counts), "kept": k, "rare_id": k,
                         "train_coverage": covered, "id_map": "id_map.json"}
json.dump(meta, open(os.path.join(dst, "meta.json"), "w"), indent=2)
json.dump(keep, open(os.path.join(dst, "id_map.json"), "w"))
print(f"{dst}: {k} ids + rare cover {covered:.4f} of the train tokens")
