"""Sparse point refinement: SAM-MI's text-guided sparse point prompter (TSPP) and shallow mask
aggregation (SMAgg) driven by the MLLM's per-class coarse descriptors, with grid / random /
Text4Seg-style baselines. See docs/points.md."""
