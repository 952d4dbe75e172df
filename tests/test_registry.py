"""Every op the library registers is covered by an opcheck case."""
from convops._ops import OP_NAMES
from test_conv_autograd import _opcheck_cases
from test_pool_semantics import _pool_opcheck_cases


def test_every_op_has_an_opcheck_case():
    cases = list(_opcheck_cases().values()) + list(_pool_opcheck_cases().values())
    covered = {op.name().split("::")[-1].split(".")[0] for op, _ in cases}
    assert set(OP_NAMES) <= covered, set(OP_NAMES) - covered
