"""`tui-tuner demo`: build the offline demo model, train it on the sample FAQ, show a few answers."""

from __future__ import annotations

import sys

from tui_tuner.demo import demo_preset_path, ensure_demo_model, faq_pairs, sample_dataset_path


def _print_progress(msg: str, fraction: float | None) -> None:
    pct = f"{fraction * 100:3.0f}% " if fraction is not None else "     "
    print(f"[demo] {pct}{msg}", flush=True)


def _show_answers(run, n: int = 3) -> None:
    """Ask the tuned model a few FAQ questions, greedily, through the chat engine."""
    from tui_tuner.inference.engine import Engine
    from tui_tuner.inference.params import SamplingParams
    from tui_tuner.inference.target import describe_target

    pairs = faq_pairs()
    picks = [pairs[i * (len(pairs) - 1) // max(1, n - 1)] for i in range(n)] if pairs else []
    print("\nAsking the tuned model a few FAQ questions (greedy):", flush=True)
    try:
        engine = Engine(describe_target(str(run.path)))
        engine.load()
        params = SamplingParams(max_new_tokens=128, temperature=0.0)
        for q, expected in picks:
            reply = engine.generate([{"role": "user", "content": q}], params).text.strip()
            same = reply == expected.strip()
            print(f"  Q: {q}\n  A: {reply}\n     " + ("(verbatim from the FAQ)" if same else f"(the FAQ says: {expected})"),
                  flush=True)
    except Exception as e:  # noqa: BLE001 - a chat problem must not hide the finished run
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"  (could not load the chat: {first}; try `tui-tuner chat {run.run_id}`)", flush=True)


def cmd_demo(args) -> int:
    path = ensure_demo_model(rebuild=getattr(args, "rebuild", False), progress=_print_progress)
    print(f"demo model: {path}")  # (a build already said how long it took)
    print(f"sample dataset: {sample_dataset_path()}")
    if getattr(args, "build_only", False):
        print("use it with `model.name_or_path: demo` and `data.path: sample`, e.g. "
              f"`tui-tuner train {demo_preset_path()}`")
        return 0

    from tui_tuner.config import load_config
    from tui_tuner.launcher import launch_run

    cfg = load_config(demo_preset_path())
    detach = getattr(args, "detach", False)
    run = launch_run(cfg, detach=detach, name="demo")
    if detach:
        print(f"\ntraining in the background: run {run.run_id}")
        print(f"  follow it:  tui-tuner monitor {run.run_id}   (or `tui-tuner logs {run.run_id}`)")
        print(f"  then chat:  tui-tuner chat {run.run_id}")
        return 0
    st = run.read_status()
    if st.state != "completed":
        print(f"\nthe demo run ended '{st.state}'" + (f": {st.error}" if st.error else ""), file=sys.stderr)
        if st.state == "stopped":
            print(f"resume it with `tui-tuner resume {run.run_id}`", file=sys.stderr)
        return 1
    _show_answers(run)
    print("\nNext:")
    print(f"  tui-tuner chat {run.run_id}      chat with the tuned demo model")
    print("  tui-tuner                        open the app (runs, monitor, new fine-tune wizard)")
    print(f"  tui-tuner train {demo_preset_path()}   train the demo again from the YAML")
    return 0
