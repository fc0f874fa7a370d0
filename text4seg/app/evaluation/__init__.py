"""Batch evaluation: samples from any dataset, per-sample records (resumable, sharded), reports, plots."""
