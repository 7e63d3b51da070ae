import pytest

import cntk as C


@pytest.fixture(params=["fused", "foreach"])
def kernels(request, monkeypatch):
    """Run with torch's fused optimizer kernels wherever a rule maps onto them (whatever the
    tensor size), and with the foreach formulation only."""
    if request.param == "foreach":
        monkeypatch.setattr(C.learners.fused, "partition", lambda kernel, *ts: ([], list(range(len(ts[0])))))
    else:
        monkeypatch.setattr(C.learners.fused, "MIN_FUSED_NUMEL", 0)
    return request.param
