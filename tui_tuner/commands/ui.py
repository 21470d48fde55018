"""`tui-tuner` with no command (or `tui-tuner ui`): open the app; `tui-tuner monitor RUN`: its live monitor alone."""

from __future__ import annotations

import json
import os
import sys


def cmd_ui(args) -> int:
    from tui_tuner.ui.app import TunerApp

    app = TunerApp()
    app.run()
    report = os.environ.get("TUI_TUNER_MODULES_REPORT")
    if report:  # tests/ui/e2e: which heavy libraries did this UI process import, start to exit?
        from tui_tuner.ui.app import HEAVY_MODULES

        with open(report, "w", encoding="utf-8") as fh:
            json.dump(sorted(m for m in HEAVY_MODULES if m in sys.modules), fh)
    return int(app.return_code or 0)


def cmd_monitor(args) -> int:
    from tui_tuner.rundir import resolve_run
    from tui_tuner.ui.app import MonitorApp

    run = resolve_run(args.run)
    MonitorApp(run.path).run()
    return 0
