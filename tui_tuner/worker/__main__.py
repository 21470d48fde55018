from tui_tuner.worker.train import main

raise SystemExit(main())
