"""Guest page contents, workloads and traces for tests, benchmarks and policy evaluation."""

from migcodec.datasets.pages import GENERATORS, generate_pages

__all__ = ["GENERATORS", "generate_pages"]
