"""benchmarks/race.py: a dry run of the four contestants at toy sizes (a few seconds).

It proves the race's plumbing, not its result: each contestant trains through
train.py to the step budget, the widths bring the parameter counts near the target,
the table, JSON and plot are written, the BLEU the race recomputes from its own
decoding equals the one train.py's metrics.json holds, and the length buckets
cover the test split.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, ROOT)

import race  # noqa: E402
import train  # noqa: E402
from models.objectives import make_objective  # noqa: E402

TINY = ["--task", "reverse", "--num-pairs", "300", "--steps", "4", "--params", "12000", "--batch-size", "4",
        "--beam-size", "2", "--layers", "1", "--length-in", "tokens", "--buckets", "4,7"]


def test_a_tiny_race_writes_its_table_and_plot(tmp_path):
    report = race.main(TINY + ["--out", str(tmp_path)])
    for name in ("race.md", "race.json", "race.png"):
        assert os.path.getsize(tmp_path / name) > 0, name
    results = report["results"]
    assert [r["name"] for r in results] == list(race.CONTESTANTS)
    assert json.loads((tmp_path / "race.json").read_text())["results"] == results
    table = (tmp_path / "race.md").read_text()
    for r in results:
        assert r["steps"] == 4
        assert abs(r["parameters"] - 12000) < 0.35 * 12000, (r["name"], r["parameters"])
        assert r["bleu_greedy_recomputed"] == r["bleu_greedy"], r["name"]
        assert sum(b["n"] for b in r["buckets"]) == r["test_pairs"] > 0
        matches = sum(b["exact_match"] * b["n"] for b in r["buckets"]) / r["test_pairs"]
        assert abs(matches - r["exact_match"]) < 1e-9                            # train.py's, in buckets
        assert [b["label"] for b in r["buckets"]][:2] == ["3-4", "5-7"]          # reverse: 3..10 letters
        assert 0 < r["train_seconds"] < r["wall_seconds"]
        assert r["peak_rss_mib"] > 10 and r["greedy_sentences_per_s"] > 0 and r["beam_sentences_per_s"] > 0
        assert f"| {r['label']} | {r['width']} | {r['parameters']:,} |" in table
        run = tmp_path / "runs" / r["name"]
        # The race decodes the test split as train.py did: samples.txt's hypotheses, in order.
        samples = [line[len("hypothesis: "):].split("   <- differs")[0]
                   for line in (run / "samples.txt").read_text(encoding="utf-8").splitlines()
                   if line.startswith("hypothesis: ")]
        greedy = (run / "race_greedy.txt").read_text(encoding="utf-8").splitlines()
        assert greedy == samples and len(greedy) == r["test_pairs"], r["name"]


def test_the_chosen_width_is_the_nearest_to_the_target():
    flags = race.base_flags(race.parse_args(TINY)) + race.CONTESTANTS["transformer"][1]
    parsed, _ = train.parse_args(flags)
    tokenizers = make_objective(train.new_config(parsed)).tokenizers()
    width, count = race.choose_width(flags, 12000, tokenizers)
    assert count == race.parameters_at(flags, width, tokenizers)
    for neighbour in (width - 8, width + 8):
        assert abs(race.parameters_at(flags, neighbour, tokenizers) - 12000) >= abs(count - 12000)
