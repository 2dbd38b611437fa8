"""``dcops audit``: compliance audit of every managed host against a requirement catalogue."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit

app = typer.Typer(help="Compliance audit (TCVN 11930:2017 level 3): run, report, validate.", no_args_is_help=True)

CatalogueOpt = Annotated[
    Path | None, typer.Option("--catalogue", "-c", help="Catalogue folder (default: catalogues/tcvn-11930-2017).")
]
WaiversOpt = Annotated[Path | None, typer.Option("--waivers", help="Waivers file (default: <inventory>/audit/waivers.yml).")]
AttestOpt = Annotated[
    Path | None, typer.Option("--attestations", help="Attestations file (default: <inventory>/audit/attestations.yml).")
]
ThreshOpt = Annotated[
    Path | None, typer.Option("--thresholds", help="Province thresholds (default: <inventory>/audit/thresholds.yml).")
]
ResultsOpt = Annotated[Path | None, typer.Option("--results", help="Results folder (default: $DCOPS_AUDIT_DIR/<code>).")]


def _print_problems(e: Any) -> None:
    err_console.print(f"[bold red]{escape(str(e.source))}: {len(e.problems)} problem(s)[/]", highlight=False, soft_wrap=True)
    for p in e.problems:
        err_console.print(f"  [cyan]{escape(p.where())}[/]: {escape(p.reason)}", highlight=False, soft_wrap=True)


def _inputs(
    inventory: Path | None,
    catalogue: Path | None,
    waivers: Path | None,
    attestations: Path | None,
    thresholds: Path | None,
    strict: bool,
    as_json: bool,
) -> tuple[Any, Any]:
    from dcops.audit.catalogue import DEFAULT_CATALOGUE, load_catalogue, load_thresholds
    from dcops.audit.errors import AuditInputError
    from dcops.audit.run import RunInput
    from dcops.audit.waivers import Attestation, Placed, Waiver, load_attestations, load_waivers

    loaded = load_or_exit(inventory, as_json)
    inv = loaded.inventory
    adir = Path(inv.source) / "audit"
    wf = waivers or adir / "waivers.yml"
    af = attestations or adir / "attestations.yml"
    tf = thresholds or adir / "thresholds.yml"
    today = dt.datetime.now(dt.UTC).date()
    problems = []
    cat = None
    try:
        cat = load_catalogue(catalogue or DEFAULT_CATALOGUE)
    except AuditInputError as e:
        problems.append(e)
    values: dict[str, Any] | None = None
    w: list[tuple[Waiver, Placed]] | None = None
    a: list[tuple[Attestation, Placed]] | None = None
    if cat is not None:
        try:
            values = load_thresholds(cat, tf)
        except AuditInputError as err:
            problems.append(err)
        try:
            w = load_waivers(wf, cat, today, strict)
        except AuditInputError as err:
            problems.append(err)
        try:
            a = load_attestations(af, cat, today, strict)
        except AuditInputError as err:
            problems.append(err)
    if problems:
        if as_json:
            emit_json({"ok": False, "problems": [p.as_dict() for pe in problems for p in pe.problems]})
        else:
            for pe in problems:
                _print_problems(pe)
        raise typer.Exit(2)
    assert cat is not None and values is not None and w is not None and a is not None
    inp = RunInput(
        cat,
        values,
        w,
        a,
        inv.province.code,
        waivers_file=str(wf) if wf.exists() else None,
        attestations_file=str(af) if af.exists() else None,
    )
    return inv, inp


@app.command("validate")
def validate_cmd(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    catalogue: CatalogueOpt = None,
    waivers: WaiversOpt = None,
    attestations: AttestOpt = None,
    thresholds: ThreshOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the catalogue, thresholds, waivers and attestations (an expired waiver is refused here)."""
    _, inp = _inputs(inventory, catalogue, waivers, attestations, thresholds, True, as_json)
    summary = {
        "ok": True,
        "catalogue": inp.catalogue.head.id,
        "checks": len(inp.catalogue.checks),
        "requirements": len(inp.catalogue.requirements),
        "waivers": len(inp.waivers),
        "attestations": len(inp.attestations),
    }
    if as_json:
        emit_json(summary)
    else:
        console.print(
            f"{summary['catalogue']}: {summary['requirements']} requirements, {summary['checks']} checks, "
            f"{summary['waivers']} waivers, {summary['attestations']} attestations: ok",
            highlight=False,
        )


@app.command("catalogue")
def catalogue_cmd(
    catalogue: CatalogueOpt = None, lang: Annotated[str, typer.Option("--lang")] = "vi", as_json: JsonOpt = False
) -> None:
    """List the catalogue's checks."""
    from dcops.audit.catalogue import DEFAULT_CATALOGUE, load_catalogue
    from dcops.audit.errors import AuditInputError

    try:
        cat = load_catalogue(catalogue or DEFAULT_CATALOGUE)
    except AuditInputError as e:
        _print_problems(e)
        raise typer.Exit(2) from None
    rows = [
        {
            "id": c.id,
            "requirement": c.requirement,
            "severity": c.severity,
            "type": c.type,
            "title": c.title.get(lang),
            "references": c.references,
            "remediation": c.remediation.model_dump(),
        }
        for c in cat.checks
    ]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        console.print(f"{r['id']:40} {r['requirement']:9} {r['severity']:8} {r['title']}", highlight=False)


@app.command("run")
def run_cmd(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: Annotated[
        str | None, typer.Option("--limit", "-l", help="Hosts, sites, tiers or roles (patterns, comma-separated, !excl).")
    ] = None,
    catalogue: CatalogueOpt = None,
    waivers: WaiversOpt = None,
    attestations: AttestOpt = None,
    thresholds: ThreshOpt = None,
    results: ResultsOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=256, help="Hosts audited at once.")] = 16,
    timeout: Annotated[float, typer.Option("--timeout", help="SSH connect timeout per host (s).")] = 20.0,
    user: Annotated[str | None, typer.Option("--user", help="SSH user (default: the lab's, else root).")] = None,
    identity: Annotated[Path | None, typer.Option("--identity", help="SSH private key.")] = None,
    known_hosts: Annotated[Path | None, typer.Option("--known-hosts", help="known_hosts file (strict checking).")] = None,
    ssh_config: Annotated[Path | None, typer.Option("--ssh-config", help="ssh_config to read (default: the lab's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit every managed host (one SSH connection and one read-only collection each); exit 1 on failures."""
    from dcops.audit.collect import collect_all, scope
    from dcops.audit.run import evaluate_run, results_dir, save_run

    inv, inp = _inputs(inventory, catalogue, waivers, attestations, thresholds, False, as_json)
    inp.limit = limit
    targets = scope(inv, limit, user, str(identity) if identity else None, str(known_hosts) if known_hosts else None, ssh_config)
    if not targets:
        fail(f"no host matches -l {limit!r}" if limit else "the inventory has no managed host")
    base = results or results_dir(inv.province.code)
    started = time.time()
    got = collect_all(targets, workers=workers, timeout=timeout, progress=None if not as_json else False)
    doc = evaluate_run(inp, targets, got, base, started)
    run_dir = save_run(doc, got, base, inp)
    overall = doc["scores"]["overall"]["all"]
    if as_json:
        emit_json(
            {
                "run": doc["run"],
                "results": str(run_dir / "results.json"),
                "scores": doc["scores"]["overall"],
                "hosts": doc["hosts"],
                "diff": doc["diff"],
            }
        )
    else:
        console.print(
            f"audit {doc['run']['id']}: {len(targets)} hosts, {doc['catalogue']['checks']} checks, "
            f"{doc['run']['seconds']:.1f} s; results in {run_dir}",
            highlight=False,
        )
        console.print(
            f"  pass {overall['pass']}, fail {overall['fail']}, error {overall['error']}, waived {overall['waived']}, "
            f"not applicable {overall['notapplicable']}, manual {overall['manual']}; score "
            f"{'—' if overall['score'] is None else format(overall['score'] * 100, '.1f') + '%'}",
            highlight=False,
        )
        for h in doc["hosts"]:
            if not h["collected"]:
                console.print(f"  [red]{escape(h['name'])}: {escape(str(h['error']))}[/]", highlight=False)
    if overall["fail"] or overall["error"]:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    run: Annotated[Path | None, typer.Option("--run", help="A run folder or results.json (default: the latest run).")] = None,
    results: ResultsOpt = None,
    catalogue: CatalogueOpt = None,
    lang: Annotated[str, typer.Option("--lang", help="vi (default) or en.")] = "vi",
    formats: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: html, pdf, json, junit.")] = "html",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the reports (default: the run's folder).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the reports of a run: HTML (Vietnamese by default), PDF, JSON, JUnit."""
    from dcops.audit.catalogue import DEFAULT_CATALOGUE, load_catalogue
    from dcops.audit.errors import AuditInputError
    from dcops.audit.junit import junit_xml
    from dcops.audit.plan import load_plan
    from dcops.audit.report_html import render_html
    from dcops.audit.report_json import load_results, write_results
    from dcops.audit.report_pdf import PdfError, render_pdf
    from dcops.audit.run import latest, results_dir

    if lang not in ("vi", "en"):
        fail(f"--lang {lang!r}: vi or en")
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in wanted if f not in ("html", "pdf", "json", "junit")]
    if bad:
        fail(f"unknown format(s) {', '.join(bad)}: html, pdf, json, junit")
    if run is None:
        base = results or results_dir(load_or_exit(inventory).inventory.province.code)
        found = latest(base)
        if found is None:
            fail(f"no audit run in {base}: dcops audit run first")
        run = found
    rfile = run if run.is_file() else run / "results.json"
    try:
        doc = load_results(rfile)
        cat = load_catalogue(catalogue or DEFAULT_CATALOGUE)
        plan_file = rfile.parent.parent.parent / "plan.yml"
        plan = load_plan(plan_file) if plan_file.exists() else None
    except AuditInputError as e:
        _print_problems(e)
        raise typer.Exit(2) from None
    except (OSError, ValueError) as e:
        fail(f"{rfile}: {e}")
    out = output or rfile.parent
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    html_file = out / f"report.{lang}.html"
    if "html" in wanted or "pdf" in wanted:
        html_file.write_text(render_html(doc, cat, plan, lang), encoding="utf-8")
        written["html"] = str(html_file)
    if "pdf" in wanted:
        pdf = out / f"report.{lang}.pdf"
        try:
            written["pdf_engine"] = render_pdf(html_file, pdf)
        except PdfError as e:
            fail(str(e))
        written["pdf"] = str(pdf)
    if "json" in wanted:
        write_results(doc, out / "report.json")
        written["json"] = str(out / "report.json")
    if "junit" in wanted:
        (out / "junit.xml").write_bytes(junit_xml(doc))
        written["junit"] = str(out / "junit.xml")
    if as_json:
        emit_json(written)
    else:
        for k, v in written.items():
            console.print(f"{k}: {v}", highlight=False)
