"""The check runner of the interop scripts: each check prints one JSON line, which the Swift side reads
(CeleryInteropTests.checks(in:)), and the script exits 1 when any failed."""
import json
import sys
import traceback


def run_checks(checks):
    """Runs each (name, fn) in order; fn returns (ok, detail). A check that raises fails with the exception, and
    never stops the others. Exits the process: 0 when every check passed, 1 otherwise."""
    results = []
    for name, fn in checks:
        try:
            ok, detail = fn()
        except Exception as exc:  # a check must report, never crash the run
            ok, detail = False, "".join(traceback.format_exception_only(type(exc), exc)).strip()
        results.append(ok)
        print(json.dumps({"check": name, "ok": bool(ok), "detail": str(detail)}), flush=True)
    sys.exit(0 if all(results) else 1)
