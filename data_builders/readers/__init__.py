"""Readers for real datasets in their published layouts, all yielding data_builders.records.Record."""

from data_builders.readers.base import DatasetReader, LayoutError, Problem, ReadReport
from data_builders.readers.registry import READERS, build_reader

__all__ = ["READERS", "DatasetReader", "LayoutError", "Problem", "ReadReport", "build_reader"]
