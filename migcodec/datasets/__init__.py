"""Guest page contents, workloads and traces for tests, benchmarks and policy evaluation."""

from migcodec.datasets.pages import GENERATORS, generate_pages
from migcodec.datasets.window import Window

__all__ = ["GENERATORS", "Window", "generate_pages"]
