"""Builds examples/my.csv and examples/my_dev.csv (the README quick start's own-data files)
from real SST-2 rows: 2,000 training sentences drawn with random.Random(0) and all 872 dev
sentences, columns in the order label,text (GLUE's is sentence,label) and labels by name
(0 negative, 1 positive). Run from the checkout: python examples/make_sst2_csv.py
"""
import csv
import random
from bortkit.tasks import get_task
names = {0: "negative", 1: "positive"}
task = get_task("SST-2")
for split, path, n in [("train", "examples/my.csv", 2000), ("dev", "examples/my_dev.csv", None)]:
    rows = task.read("../shared/data/glue", split)
    if n:
        rows = random.Random(0).sample(rows, n)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "text"])
        w.writerows([names[ex.label], ex.text_a.strip()] for ex in rows)
