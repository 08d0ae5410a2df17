"""Sizes the layers below the wire price frames by agree with the wire's own layout."""

from migcodec.codecs.base import RUN_BYTES
from migcodec.wire.format import RUN


def test_a_run_costs_what_the_wire_writes_for_it():
    """Codecs count ``RUN_BYTES`` per run in their measurements and the cost model prices
    frames by it: it is the size of the wire's run header."""
    assert RUN.size == RUN_BYTES
