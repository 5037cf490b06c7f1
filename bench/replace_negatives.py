"""Replace a third of each row's negatives with other corpus passages (a re-mine, for the score cache).

    python bench/replace_negatives.py TRAIN CORPUS OUT
"""

import json
import random
import sys

train, corpus_path, out = sys.argv[1:4]
corpus = [json.loads(line)["text"] for line in open(corpus_path, encoding="utf-8")]
rng = random.Random(1)
with open(train, encoding="utf-8") as source, open(out, "w", encoding="utf-8") as target:
    for line in source:
        row = json.loads(line)
        negatives = row["neg"]
        for index in rng.sample(range(len(negatives)), len(negatives) // 3):
            replacement = rng.choice(corpus)
            while replacement in negatives or replacement in row["pos"]:
                replacement = rng.choice(corpus)
            negatives[index] = replacement
        target.write(json.dumps(row, ensure_ascii=False) + "\n")
