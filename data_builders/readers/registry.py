"""Readers by config name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import MappingProxyType

from data_builders.readers.base import DatasetReader
from data_builders.readers.cocostuff import CocoStuffReader
from data_builders.readers.grefcoco import GRefCocoReader
from data_builders.readers.hiertext import HierTextReader
from data_builders.readers.icdar13 import Icdar13Reader
from data_builders.readers.icdar15 import Icdar15Reader
from data_builders.readers.refer import RefCocoReader
from data_builders.readers.textseg import TextSegReader
from data_builders.readers.totaltext import TotalTextReader

READERS: MappingProxyType[str, Callable[..., DatasetReader]] = MappingProxyType(
    {
        "textseg": TextSegReader,
        "totaltext": TotalTextReader,
        "icdar13": Icdar13Reader,
        "icdar15": Icdar15Reader,
        "hiertext": HierTextReader,
        "refcoco": partial(RefCocoReader, dataset="refcoco"),
        "refcoco+": partial(RefCocoReader, dataset="refcoco+"),
        "refcocog": partial(RefCocoReader, dataset="refcocog"),
        "grefcoco": GRefCocoReader,
        "cocostuff": CocoStuffReader,
    }
)


def build_reader(name: str, *, root, **kwargs) -> DatasetReader:
    """The reader registered as `name`, opened on `root` (raises LayoutError for a wrong root)."""
    if name not in READERS:
        raise ValueError(f"reader {name!r} not in {sorted(READERS)}")
    return READERS[name](root=root, **kwargs)
