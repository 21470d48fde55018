"""tui-tuner: QLoRA fine-tuning of open LLMs from the terminal."""

__version__ = "0.1.0"
