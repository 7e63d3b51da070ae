"""End-to-end: examples/digits_convnet.py trains a ConvNet from CTF files, prints CNTK's progress
lines and the test error, and the saved model, loaded back, gives the same error."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_digits_convnet_trains_saves_and_reloads(tmp_path):
    pytest.importorskip("sklearn")
    model = str(tmp_path / "digits.model")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "digits_convnet.py"), "--epochs", "6",
                          "--data-dir", str(tmp_path), "--model", model],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "Training 62250 parameters in 10 parameter tensors." in out
    epochs = re.findall(r"Finished Epoch\[(\d+) of 6\]: \[Training\] loss = ([0-9.]+) \* 1438, "
                        r"metric = ([0-9.]+)% \* 1438 [0-9.]+s \( *[0-9.]+ samples/s\);", out)
    assert [int(e[0]) for e in epochs] == [1, 2, 3, 4, 5, 6]
    assert float(epochs[-1][1]) < float(epochs[0][1])
    assert re.search(r"Finished Evaluation \[1\]: Minibatch\[1-2\]: metric = [0-9.]+% \* 359;", out)
    err = float(re.search(r"Test error: ([0-9.]+)% of 359 images", out).group(1))
    reloaded = float(re.search(r"Test error of the model loaded from .*: ([0-9.]+)% of 359 images", out).group(1))
    assert reloaded == err
    assert err < 10.0          # six epochs already learn most digits (the default 20 reach under 3%)
    assert os.path.exists(model)
