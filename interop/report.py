# The matrix: results of (server, client, case) shown as the runner fills
# them and written when it is done.  Owns the text table (one cell per
# client and server pair: the abbreviations of the cases passed, failed
# and unsupported), its live redrawing on a terminal, and the three files
# under the results directory: results.md, results.json (every result with
# its reason and artefacts; what CI compares against) and results.html
# (self-contained; cells coloured, each case linking to its run's
# directory).  Also the comparison CI makes: which cells passed in the
# committed results and fail now.  Result, one run's outcome, is defined here.
from __future__ import annotations

import html
import json
import shutil
import sys
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional, TextIO

from .testcases import BY_NAME, FAILED, PASSED, UNSUPPORTED

@dataclass
class Result:
    server: str
    client: str
    case: str
    result: str  # passed, failed, unsupported
    reason: str = ""
    value: Optional[float] = None
    seconds: float = 0.0
    directory: str = ""  # the run's artefacts, relative to the results directory
    mode: str = ""  # namespaces or loopback-relay
    artefacts: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)



MARK = {PASSED: "✓", FAILED: "✕", UNSUPPORTED: "?"}


def _abbrev(case: str) -> str:
    found = BY_NAME.get(case)
    return found.abbrev if found else case


def _cell(results: list[Result]) -> str:
    parts = []
    for outcome in (PASSED, FAILED, UNSUPPORTED):
        names = [_abbrev(r.case) for r in results if r.result == outcome]
        if names:
            parts.append(f"{MARK[outcome]}{','.join(names)}")
    return " ".join(parts) or "…"


def _pairs(results: Iterable[Result], servers: list[str], clients: list[str]) -> dict[tuple[str, str], list[Result]]:
    cells: dict[tuple[str, str], list[Result]] = {(s, c): [] for s in servers for c in clients}
    for r in results:
        cells.setdefault((r.server, r.client), []).append(r)
    return cells


def text_table(results: list[Result], servers: list[str], clients: list[str]) -> str:
    """Rows are servers, columns clients (as the reference's matrix)."""
    cells = _pairs(results, servers, clients)
    rows = [["server \\ client"] + clients]
    for s in servers:
        rows.append([s] + [_cell(cells[(s, c)]) if (s, c) in cells else "" for c in clients])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


class LiveTable:
    """Redraws the table after each result on a terminal; prints one line
    per result otherwise (CI logs)."""

    def __init__(self, servers: list[str], clients: list[str], stream: TextIO = sys.stdout) -> None:
        self.servers, self.clients, self.stream = servers, clients, stream
        self.results: list[Result] = []
        self.tty = stream.isatty()
        self._drawn = 0

    def add(self, result: Result) -> None:
        self.results.append(result)
        if self.tty:
            text = text_table(self.results, self.servers, self.clients)
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self.stream.write(text + "\n")
            self._drawn = text.count("\n") + 1
        else:
            value = f" ({result.reason})" if result.reason else ""
            self.stream.write(f"{result.case:<20} {result.server:>8} <- {result.client:<8} "
                              f"{result.result:<11} {result.seconds:6.1f}s{value}\n")
        self.stream.flush()


def markdown(results: list[Result], servers: list[str], clients: list[str], mode: str) -> str:
    cells = _pairs(results, servers, clients)
    lines = [f"# Interop results ({mode})", "",
             "Rows: servers; columns: clients. ✓ passed, ✕ failed, ? unsupported; case abbreviations as the "
             "quic-interop-runner's.", "",
             "| server \\ client | " + " | ".join(clients) + " |",
             "|---|" + "---|" * len(clients)]
    for s in servers:
        lines.append(f"| {s} | " + " | ".join(_cell(cells.get((s, c), [])) for c in clients) + " |")
    failed = [r for r in results if r.result == FAILED]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- {r.case}, {r.client} -> {r.server}: {r.reason}" for r in failed]
    measured = [r for r in results if r.value is not None]
    if measured:
        lines += ["", "## Measurements", ""]
        lines += [f"- {r.case}, {r.client} -> {r.server}: {r.value:.0f} kbit/s" for r in measured]
    return "\n".join(lines) + "\n"


_COLOURS = {PASSED: "#c8f0c8", FAILED: "#f4c0c0", UNSUPPORTED: "#e0e0e0"}


def html_page(results: list[Result], servers: list[str], clients: list[str], mode: str) -> str:
    cells = _pairs(results, servers, clients)
    out = ["<!doctype html><meta charset=utf-8><title>pyquic interop</title>",
           "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
           "padding:4px;vertical-align:top}a{display:inline-block;margin:1px;padding:1px 4px;border-radius:3px;"
           "color:#000;text-decoration:none}</style>",
           f"<h1>Interop results</h1><p>Network: {html.escape(mode)}. Rows: servers; columns: clients.</p>",
           "<table><tr><th>server \\ client</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in clients) + "</tr>"]
    for s in servers:
        row = [f"<tr><th>{html.escape(s)}</th>"]
        for c in clients:
            links = []
            for r in sorted(cells.get((s, c), []), key=lambda r: (r.result != FAILED, r.case)):
                title = html.escape(f"{r.case}: {r.result}" + (f" ({r.reason})" if r.reason else ""))
                links.append(f"<a href='{html.escape(r.directory)}/' title='{title}' "
                             f"style='background:{_COLOURS[r.result]}'>{html.escape(_abbrev(r.case))}</a>")
            row.append("<td>" + "".join(links) + "</td>")
        out.append("".join(row) + "</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def write_results(directory: Path, results: list[Result], servers: list[str], clients: list[str],
                  mode: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.md").write_text(markdown(results, servers, clients, mode))
    (directory / "results.html").write_text(html_page(results, servers, clients, mode))
    (directory / "results.json").write_text(json.dumps(
        {"mode": mode, "servers": servers, "clients": clients, "results": [r.to_json() for r in results]},
        indent=2) + "\n")


def regressions(results: list[Result], baseline: Optional[Path]) -> list[str]:
    """Cells that passed in the baseline's results.json and do not pass now."""
    if baseline is None or not baseline.exists():
        return []
    before = {(r["server"], r["client"], r["case"]): r["result"]
              for r in json.loads(baseline.read_text()).get("results", [])}
    return [f"{r.case}, {r.client} -> {r.server}: passed before, {r.result} now ({r.reason})"
            for r in results if before.get((r.server, r.client, r.case)) == PASSED and r.result != PASSED]


def export(src: Path, dst: Path, log_limit: int = 200_000) -> None:
    """A copy of a results directory small enough to commit: the three
    result files, and per run its verdict, the endpoints' logs (their last
    log_limit bytes) and the sim's log; no captures, files or qlogs."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("results.md", "results.json", "results.html"):
        (dst / name).write_bytes((src / name).read_bytes())
    for run in sorted((src / "runs").iterdir()) if (src / "runs").exists() else []:
        out = dst / "runs" / run.name
        out.mkdir(parents=True, exist_ok=True)
        for path in [run / "result.json", *sorted((run / "logs").glob("*.log")), run / "net" / "sim.log"]:
            if path.is_file():
                data = path.read_bytes()
                (out / path.name).write_bytes(data[-log_limit:])


def merge(base: Path, new: Path, dst: Path) -> None:
    """A results directory holding base's results with new's in place of
    the same cells (a few cases run again, or the measurements run alone),
    and the run directories of both, new's winning."""
    results: dict[tuple[str, str, str], Result] = {}
    order: dict[str, list[str]] = {"servers": [], "clients": []}
    mode = ""
    for src in (base, new):
        data = json.loads((src / "results.json").read_text())
        mode = mode or data.get("mode", "")
        for key in order:
            order[key] += [name for name in data.get(key, []) if name not in order[key]]
        for item in data.get("results", []):
            r = Result(**item)
            results[(r.server, r.client, r.case)] = r
            if r.directory and (src / r.directory).is_dir() and src.resolve() != dst.resolve():
                target = dst / r.directory
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(src / r.directory, target)
    write_results(dst, list(results.values()), order["servers"], order["clients"], mode)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        export(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "merge":
        merge(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit("usage: python -m interop.report export RESULTS_DIR DESTINATION\n"
                 "       python -m interop.report merge BASE_DIR NEW_DIR DESTINATION")
