"""The `tui-tuner` command handlers, one module per command group: argument → output glue over the core.

`tui_tuner.cli` (the argparse table) is the only importer of this package, and it imports each
module only when its command runs, so `tui-tuner --help` and the app start without the rest.
"""
