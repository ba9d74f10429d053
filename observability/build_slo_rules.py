"""Builds the SLO recording rules and multiwindow, multi-burn-rate alerts (SRE workbook, ch. 5).

The rules follow what Sloth and Pyrra generate: per SLO, the SLI's error ratio over every alert
window and over the budget period, the objective and the error budget remaining, a page when the
budget burns fast (1h and 5m windows at 14.4x, or 6h and 30m at 6x) and a ticket when it burns
slowly (1d and 2h at 3x, or 3d and 6h at 1x). Both windows of a pair must burn: the long one proves
the burn is real, the short one ends the alert soon after the burn stops.

Targets, latency thresholds and windows are chart values (``slo`` in helm/talker/values.yaml). The
chart's copy, helm/talker/files/talker-slo-rules.yml, keeps them as Helm references that the
PrometheusRule template fills in (``tpl``); ``--plain`` renders a plain Prometheus rules file for
given values instead (the promtool tests and Prometheus without the Operator use it).

    python -m observability.build_slo_rules            # rewrite the chart's file
    python -m observability.build_slo_rules --check    # fail when it is stale
    python -m observability.build_slo_rules --plain [-f values.yaml ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "talker"
OUT = CHART / "files" / "talker-slo-rules.yml"

# Server-side failures: what availability counts. RESOURCE_EXHAUSTED (overload) is its own
# saturation signal and the other codes are the caller's (gateway/metrics.py says the same).
SERVER_CODES = "UNAVAILABLE|INTERNAL|UNKNOWN|DEADLINE_EXCEEDED"

# The alert window pairs, by the names the chart's values give them.
PAGE = ("page1", "page2")
TICKET = ("ticket1", "ticket2")
WINDOWS = [f"{pair}_{side}" for pair in PAGE + TICKET for side in ("long", "short")] + ["period"]


@dataclasses.dataclass(frozen=True)
class Slo:
    """One objective: ``errors`` and ``total`` are PromQL rates with ``{w}`` for the window and
    ``{threshold}`` for the latency bound; ``stage`` says how an alert names the stage to blame."""

    key: str            # its entry under slo.objectives in the chart's values
    name: str           # the slo label
    description: str
    errors: str
    total: str
    # "errors": the SLI's errors carry the failing stage; "critical_path": the stage with the
    # largest share of the time to first frame; anything else: that stage, always.
    stage: str


def _latency(metric: str) -> tuple[str, str]:
    count = f"sum by (namespace) (rate({metric}_count[{{w}}]))"
    fast = f'sum by (namespace) (rate({metric}_bucket{{{{le="{{threshold}}"}}}}[{{w}}]))'
    return f"({count} - {fast})", count


SLOS = (
    Slo("availability", "availability",
        "Turns that end without a server-side error (UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED).",
        f'sum by (namespace, stage) (rate(talker_gateway_turn_errors_total{{{{code=~"{SERVER_CODES}"}}}}[{{w}}]))',
        "sum by (namespace) (rate(talker_gateway_turns_total[{w}]))", "errors"),
    Slo("timeToFirstFrame", "time-to-first-frame",
        "Turns whose first video frame arrives within the threshold after the user's turn ends.",
        *_latency("talker_gateway_time_to_first_frame_seconds"), "critical_path"),
    Slo("endOfTurnDelay", "end-of-turn-delay",
        "Hands-free turns whose end is detected within the threshold after the user stops speaking.",
        *_latency("talker_gateway_end_of_turn_delay_seconds"), "gateway"),
)


@dataclasses.dataclass(frozen=True)
class Params:
    """What the values decide, as text: Helm references for the chart's file, numbers for a plain one."""

    target: dict[str, str]        # per SLO key: the objective in percent
    threshold: dict[str, str]     # per SLO key: the latency bound, as the histogram's le label reads
    window: dict[str, str]        # per window name: its duration
    burn: dict[str, str]          # per pair: its burn-rate factor
    helm: bool = False

    def prom(self, expr: str) -> str:
        """A Prometheus alert template (``{{ $labels.x }}``), escaped from Helm in the chart's file."""
        return f"{{{{`{{{{ {expr} }}}}`}}}}" if self.helm else f"{{{{ {expr} }}}}"


def helm_params() -> Params:
    v = ".Values.slo"
    return Params(
        target={s.key: f"{{{{ {v}.objectives.{s.key}.target }}}}" for s in SLOS},
        threshold={s.key: f"{{{{ {v}.objectives.{s.key}.threshold | default \"\" }}}}" for s in SLOS},
        window={**{f"{p}_{side}": f"{{{{ {v}.windows.{p}.{side} }}}}" for p in PAGE + TICKET
                   for side in ("long", "short")}, "period": f"{{{{ {v}.period }}}}"},
        burn={p: f"{{{{ {v}.windows.{p}.burnRate }}}}" for p in PAGE + TICKET}, helm=True)


def plain_params(values: dict) -> Params:
    slo = values["slo"]
    obj, win = slo["objectives"], slo["windows"]
    return Params(
        target={s.key: str(obj[s.key]["target"]) for s in SLOS},
        threshold={s.key: str(obj[s.key].get("threshold", "")) for s in SLOS},
        window={**{f"{p}_{side}": str(win[p][side]) for p in PAGE + TICKET for side in ("long", "short")},
                "period": str(slo["period"])},
        burn={p: str(win[p]["burnRate"]) for p in PAGE + TICKET})


def record_name(window: str) -> str:
    return f"talker:slo_error_ratio:{window}"


def _ratio(slo: Slo, p: Params, window: str) -> str:
    fill = {"w": p.window[window], "threshold": p.threshold[slo.key]}
    errors, total = slo.errors.format(**fill), slo.total.format(**fill)
    return f"{errors}\n/ on (namespace) group_left\n{total}"


def _burning(slo: Slo, p: Params, pair: str) -> str:
    """Both windows of ``pair`` burn the budget faster than the pair's factor."""
    budget = f"({p.burn[pair]} * (1 - {p.target[slo.key]} / 100))"
    sel = f'{{slo="{slo.name}"}}'
    long_, short = record_name(f"{pair}_long") + sel, record_name(f"{pair}_short") + sel
    both = (f"(sum by (namespace) ({long_}) > {budget})\n"
            f"and on (namespace) (sum by (namespace) ({short}) > {budget})")
    if slo.stage == "errors":
        # One alert per failing stage, each valued at its share of the errors.
        return f"({long_} > 0 and on (namespace) (\n{both}))"
    return f"({both})"


def _alert(slo: Slo, p: Params, pairs: tuple[str, str], fast: bool) -> dict:
    expr = "\nor\n".join(_burning(slo, p, pair) for pair in pairs)
    if slo.stage == "critical_path":
        expr = (f"({expr})\n+ on (namespace) group_left (stage)\n"
                "(0 * topk by (namespace) (1, talker:critical_path_share:ratio5m))")
    elif slo.stage != "errors":
        expr = f'label_replace({expr}, "stage", "{slo.stage}", "", "")'
    a, b = pairs
    windows = (f"{p.window[a + '_long']}/{p.window[a + '_short']} at {p.burn[a]}x or "
               f"{p.window[b + '_long']}/{p.window[b + '_short']} at {p.burn[b]}x")
    speed = "fast" if fast else "slowly"
    return {
        "alert": "TalkerErrorBudgetBurnFast" if fast else "TalkerErrorBudgetBurnSlow",
        "expr": expr,
        "labels": {"severity": "critical" if fast else "warning", "slo": slo.name},
        "annotations": {
            "summary": f"SLO {slo.name} burns its error budget {speed}; stage {p.prom('$labels.stage')}",
            "description": (
                f"{slo.description} Objective {p.target[slo.key]}% over {p.window['period']}; the "
                f"error budget burns {windows} in namespace {p.prom('$labels.namespace')} "
                f"(error ratio {p.prom('$value | humanizePercentage')}). "
                + (f"The failing stage is {p.prom('$labels.stage')}." if slo.stage == "errors" else
                   f"{p.prom('$labels.stage')} has the largest share of the time to the first frame."
                   if slo.stage == "critical_path" else "")).strip(),
            "runbook_url": "docs/runbooks.md#talkererrorbudgetburn",
        },
    }


def groups(p: Params) -> list[dict]:
    out = []
    for slo in SLOS:
        labels = {"slo": slo.name}
        rules = [{"record": record_name(w), "expr": _ratio(slo, p, w), "labels": labels} for w in WINDOWS]
        rules += [
            {"record": "talker:slo_objective:ratio", "expr": f"vector({p.target[slo.key]} / 100)", "labels": labels},
            {"record": "talker:slo_error_budget_remaining:ratio",
             "expr": (f'1 - sum by (namespace) ({record_name("period")}{{slo="{slo.name}"}})\n'
                      f"/ (1 - {p.target[slo.key]} / 100)"), "labels": labels},
            _alert(slo, p, PAGE, fast=True),
            _alert(slo, p, TICKET, fast=False),
        ]
        out.append({"name": f"talker.slo.{slo.key}", "rules": rules})
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # every rule spells out its labels
        return True


def _str(dumper, data: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)

HEADER = """\
# Generated by observability/build_slo_rules.py (make slo-rules): do not edit.
# SLO recording rules and multiwindow, multi-burn-rate alerts. The Helm references are the chart's
# slo values, filled in by templates/prometheusrule.yaml; --plain writes a plain rules file.
"""


def render(p: Params, header: str = HEADER) -> str:
    return header + yaml.dump({"groups": groups(p)}, Dumper=_Dumper, sort_keys=False, width=10_000)


def merged_values(files: list[Path]) -> dict:
    """The chart's values with ``files`` merged over them (maps key by key, as Helm does)."""
    def merge(base: dict, over: dict) -> dict:
        for k, v in over.items():
            base[k] = merge(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
        return base

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for f in files:
        values = merge(values, yaml.safe_load(Path(f).read_text()) or {})
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail when the chart's file is stale")
    ap.add_argument("--plain", action="store_true", help="a plain rules file for the values given")
    ap.add_argument("-f", "--values", action="append", default=[], type=Path, help="values over the chart's")
    ap.add_argument("--out", type=Path, help="where to write (default: the chart's file; with --plain, stdout)")
    args = ap.parse_args(argv)
    if args.plain:
        text = render(plain_params(merged_values(args.values)),
                      "# Generated by observability/build_slo_rules.py --plain: do not edit.\n")
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.check:
        if not OUT.exists() or OUT.read_text() != render(helm_params()):
            print(f"{OUT} is stale; run make slo-rules", file=sys.stderr)
            return 1
        print("SLO rules match observability/build_slo_rules.py")
        return 0
    (args.out or OUT).write_text(render(helm_params()))
    print(f"wrote {args.out or OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
