"""The EntroPIC trainer: GRPO/PPO on Hugging Face causal LMs, driven by `pic.PIController`.

torch and transformers live here only. No code path contacts a model hub: the offline
switches below are set before transformers is imported, and every load passes
``local_files_only=True``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__all__: list[str] = []
