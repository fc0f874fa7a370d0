"""text4seg: semantic descriptors, the MLLM that writes them, and the coarse masks they decode to."""
