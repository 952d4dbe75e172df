"""`python -m convops check` passes on this install, and fails when an op is wrong."""
import torch

import convops.check as check
import convops.functional as F


def test_check_passes_and_prints_a_verdict(capsys):
    assert check.run(["cpu"])
    out = capsys.readouterr().out
    assert "convops check: PASS" in out and "FAIL" not in out.replace("convops check: PASS", "")
    for name in ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "unfold 3-D", "fold 1-D", "convops::col2im"):
        assert name in out


def test_check_reports_a_wrong_op(monkeypatch, capsys):
    right = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: right(*a, **k) * (1 + 1e-6))
    monkeypatch.setattr(check, "opcheck_cases", lambda device: [])
    assert not check.run(["cpu"])
    assert "convops check: FAIL" in capsys.readouterr().out
