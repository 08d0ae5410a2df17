"""Sizes the layers below the wire price frames by agree with the wire's own layout."""

from migcodec.codecs.base import RUN_BYTES
from migcodec.codecs.delta import RECORD_ENTRY_BYTES
from migcodec.codecs.plugins.dsa_delta import RECORD_DTYPE
from migcodec.wire.format import RUN


def test_a_run_costs_what_the_wire_writes_for_it():
    """Codecs count ``RUN_BYTES`` per run in their measurements and the cost model prices
    frames by it: it is the size of the wire's run header."""
    assert RUN.size == RUN_BYTES


def test_a_record_entry_is_the_size_the_dsa_record_layout_gives():
    assert RECORD_DTYPE.itemsize == RECORD_ENTRY_BYTES
