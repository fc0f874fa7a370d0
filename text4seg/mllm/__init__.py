"""The multimodal LLM that answers in R-RLE: tiny checkpoints, loading, LoRA/QLoRA, constrained generation.

Submodules import transformers / peft lazily, so importing this package stays cheap:
`tiny` (random-weight checkpoints + tokenizer), `loading` (`load_mllm`), `lora`, `constrained`, `generate`.
"""
