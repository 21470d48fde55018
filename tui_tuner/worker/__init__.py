"""The detached training process (`python -m tui_tuner.worker RUN_DIR [--resume]`)."""
