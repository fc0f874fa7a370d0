"""benchmarks/word_colours.py: the colour selection names for each drawn word against the one drawn."""

import json

import numpy as np

from benchmarks import word_colours


def test_majority_name_counts_pixels():
    pixels = np.array([(215, 30, 35)] * 3 + [(30, 80, 210)] * 2, np.uint8)
    assert word_colours.majority_name(pixels) == "red"
    assert word_colours.majority_name(np.zeros((0, 3), np.uint8)) is None


def test_the_benchmark_scores_every_named_word_of_a_corpus(tmp_path, capsys):
    import datasets

    from data_builders.synthetic import SyntheticConfig
    from data_builders.synthetic.build import build

    cfg = SyntheticConfig(size=128, p_no_text=0.0, max_instances=4)
    list(build(cfg, n=4, out=tmp_path / "arrow", seed=11, workers=1))
    word_colours.main(["--data", str(tmp_path / "arrow"), "--min-area", "0"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = datasets.load_from_disk(str(tmp_path / "arrow"))
    named = [
        i
        for r in rows
        for i in r["instances"]
        if word_colours.SYNONYMS.get(i["colour"], i["colour"]) in word_colours.NAMES
    ]
    assert figures["words"] == len(named) > 0
    for key in ("ink.accuracy", "true_ink.accuracy"):
        assert 0.0 <= figures[key] <= 1.0
    wrong = round((1 - figures["ink.accuracy"]) * figures["words"])
    assert sum(figures["confusions"].values()) == wrong or len(figures["confusions"]) == 8
