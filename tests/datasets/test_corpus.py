"""The committed corpora of captured traces (corpus/traces, and the held-out captures in
corpus/heldout): every trace opens, is complete
and reads back whole, each window passing its checksums and content digest; every window
that dirtied at least PROBE_PAGES pages stores at least that many (a policy's probe of a
window must see a sample of it, not all of it), and no trace directory exceeds MAX_BYTES."""

from __future__ import annotations

from pathlib import Path

import pytest

from migcodec.datasets import TraceReader

CORPORA = [Path(__file__).resolve().parents[2] / "corpus" / name for name in ("traces", "heldout")]
TRACES = sorted(m.parent for corpus in CORPORA for m in corpus.glob("*/manifest.json"))
MIN_WINDOWS = 24
MIN_PAGES = 20
PROBE_PAGES = 64
MAX_BYTES = 6 << 20


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda p: p.name)
def test_each_corpus_holds_traces_of_several_programs(corpus: Path) -> None:
    traces = sorted(m.parent.name for m in corpus.glob("*/manifest.json"))
    assert len(traces) >= 5, f"expected at least 5 traces under {corpus}, found {traces}"


@pytest.mark.parametrize("path", TRACES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_corpus_trace_is_complete_and_every_window_reads_back(path: Path) -> None:
    reader = TraceReader(path)  # refuses a trace whose writer did not close it
    info = reader.info()
    assert info.complete, f"{path}: not closed ({info.end_reason})"
    assert info.windows >= MIN_WINDOWS, f"{path}: only {info.windows} windows"
    bound = info.meta.get("max_pages")
    stored = 0
    with reader:
        for i, window in enumerate(reader):  # decoding checks checksums and the digest
            assert window.index == i
            assert window.previous is not None, f"{path}: window {i} has no previous"
            stored += window.n_pages
            dirty = window.n_pages if window.dirty_pages is None else window.dirty_pages
            if dirty >= PROBE_PAGES:
                assert window.n_pages >= PROBE_PAGES, (
                    f"{path}: window {i} dirtied {dirty} pages but stores only "
                    f"{window.n_pages} (capture it with --max-pages {PROBE_PAGES} or more)"
                )
            if window.dirty_pages is not None:  # a sample: exactly the bound, fewer than dirty
                assert window.n_pages == bound < window.dirty_pages
            elif bound is not None:
                assert window.n_pages <= bound
    assert stored == info.totals["pages"]
    assert stored >= MIN_PAGES, f"{path}: only {stored} pages stored"
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    assert size <= MAX_BYTES, f"{path}: {size / (1 << 20):.1f} MiB, more than the corpus allows"
