"""End-to-end: the README's main job trains and reports its test error."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_atis_slot_tagger_trains_and_reports_error():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "atis_slot_tagger.py"),
                          "--epochs", "1", "--epoch-size", "5000", "--minibatch", "200", "--lr", "0.01",
                          "--progress", "5"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    # ProgressPrinter's lines: " Minibatch[   1-   5]: loss = 3.951114 * 967, metric = 45.60% * 967;"
    losses = [float(m) for m in re.findall(r"Minibatch\[\s*\d+-\s*\d+\]: loss = ([0-9.]+) \*", out)]
    assert len(losses) >= 4
    assert losses[-1] < 0.5 * losses[0]
    assert "Finished Epoch[1 of 1]" in out
    err = float(re.search(r"Final test slot error: ([0-9.]+)% of 10984 words", out).group(1))
    # 'O' is the label of 2/3 of the test words: tagging every word 'O' is wrong on 33% of them;
    # one short epoch already learns more than that
    assert err < 30.0
