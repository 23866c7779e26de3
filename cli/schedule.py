"""`dumpledger schedule install|status|test|uninstall`: parse, call the use cases, render."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import output
from cli.state import CONTEXT, JsonOpt, open_app, settings
from usecases.config.settings import Settings
from usecases.errors import BadInput, UseCaseError
from usecases.schedule.jobs import Job, Project, jobs_for, program_command, project_dir

schedule_app = typer.Typer(
    help="Run backups at the times of backup-config.json's schedule (systemd, cron, launchd).",
    context_settings=CONTEXT,
    no_args_is_help=True,
)

BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto (launchd on macOS; systemd when a user manager runs; else cron), "
        "systemd, cron or launchd.",
    ),
]
CrontabUserOpt = Annotated[
    str | None,
    typer.Option("--crontab-user", help="Root only: manage this user's crontab (crontab -u)."),
]


def _check_backend(name: str) -> None:
    from usecases.schedule.service import BACKENDS

    if name not in BACKENDS:
        raise BadInput(f"--backend {name!r}: choose one of {', '.join(BACKENDS)}")


def _project_doc(project: Project) -> dict[str, str]:
    return {"id": project.id, "backup_dir": str(project.backup_dir)}


def _jobs(s: Settings) -> list[Job]:
    program = program_command(sys.argv[0], sys.executable)
    workdir = project_dir(Path.cwd(), s.backup_dir)
    return jobs_for(s.schedule, program=program, backup_dir=s.backup_dir, workdir=workdir)


@schedule_app.command("install", context_settings=CONTEXT)
def install_cmd(
    backend: BackendOpt = "auto",
    crontab_user: CrontabUserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Install one scheduled backup per slot of the schedule; running it again changes nothing.

    Each slot runs `dumpledger --backup-dir <dir> backup --type <slot>` in the directory that
    holds .env, with DUMPLEDGER_VIA=scheduler; its output goes to backups/logs/. No password is
    written into a unit, plist or crontab. Units are per project: their names carry an id of
    the backup directory, and another project's schedule is left as it is.

    Examples:

      dumpledger schedule install

      dumpledger schedule install --backend cron
    """
    from usecases.schedule import service

    _check_backend(backend)
    host = service.Host(crontab_user=crontab_user)
    s = settings()
    project = Project.of(s.backup_dir)
    chosen = service.choose_backend(backend, host, project)
    jobs = _jobs(s)
    with open_app() as ctx:
        report = service.install(ctx, chosen, jobs)
    others = [b.name for b in service.installed_backends(host, project) if b.name != chosen.name]
    res = report.result
    if json_out:
        output.emit_json(
            {
                "backend": report.backend,
                "project": _project_doc(project),
                "units": res.units,
                "changed": res.changed,
                "problem": res.problem,
                "warning": res.warning,
                "also_installed": others,
            }
        )
    else:
        verb = "installed" if res.changed else "already installed, unchanged"
        print(f"{report.backend}: {verb} (project {project.id}, {project.backup_dir})")
        for unit in res.units:
            print(f"  {unit}")
        for name in others:
            output.info(
                f"note: {name} also holds this project's schedules; remove them with "
                f"`dumpledger schedule uninstall --backend {name}`"
            )
        if res.warning:
            output.info(f"warning: {res.warning}")
    if res.problem:
        raise UseCaseError(res.problem)


@schedule_app.command("status", context_settings=CONTEXT)
def status_cmd(
    backend: BackendOpt = "auto",
    crontab_user: CrontabUserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """This project's backend, whether it is active, each slot's next run, recent backups,
    last failure.

    Example: dumpledger schedule status --json
    """
    from usecases.schedule import service

    _check_backend(backend)
    host = service.Host(crontab_user=crontab_user)
    s = settings()
    jobs = _jobs(s)
    with open_app() as ctx:
        if backend == "auto":
            backend = service.last_installed_backend(ctx, Project.of(s.backup_dir)) or "auto"
        chosen = service.choose_backend(backend, host, Project.of(s.backup_dir))
        doc = service.status(ctx, chosen, jobs, datetime.now().astimezone())
    if json_out:
        output.emit_json(doc)
        return
    _print_status(doc)


def _print_status(doc: dict[str, Any]) -> None:
    state = "active" if doc["active"] else "NOT active"
    project = doc["project"]
    print(f"project:  {project['id']} ({project['backup_dir']})")
    print(f"backend:  {doc['backend']}, {state} ({doc['detail']})")
    for unit in doc["installed"]:
        print(f"  {unit}")
    output.table(
        ["SLOT", "TIME", "NEXT RUN"],
        [[s["backup_type"], s["time"], s["next_run"].replace("T", " ")[:16]] for s in doc["slots"]],
    )
    if doc["recent_backups"]:
        print("recent backups:")
        output.table(
            ["NAME", "STATUS", "STARTED", "BY"],
            [
                [r["name"], r["status"], output.local_time(r["started_at"]), r["actor"]]
                for r in doc["recent_backups"]
            ],
            [output.STATUS_COLOURS.get(r["status"]) for r in doc["recent_backups"]],
        )
    else:
        print("recent backups: none yet")
    fail = doc["last_failure"]
    if fail:
        print(
            f"last failure: {fail['name']} at {output.local_time(fail['started_at'])}: "
            f"{fail['failure_reason']}"
        )
    else:
        print("last failure: none")


@schedule_app.command("test", context_settings=CONTEXT)
def test_cmd(json_out: JsonOpt = False) -> None:
    """Run one backup of type `test` now, exactly as a scheduled slot runs it.

    Same command line, working directory and DUMPLEDGER_VIA=scheduler; it is named
    auto_test_YYYYMMDD_HHMMSS and retention treats it as an automatic backup.

    Example: dumpledger schedule test
    """
    from usecases.schedule import service

    s = settings()
    program = program_command(sys.argv[0], sys.executable)
    with open_app() as ctx:
        run = service.run_test_backup(
            ctx,
            program=program,
            workdir=project_dir(Path.cwd(), s.backup_dir),
            environ=os.environ,
        )
    ok = run.exit_code == 0 and run.backup is not None and run.backup["status"] == "completed"
    if json_out:
        output.emit_json(
            {
                "ok": ok,
                "command": run.argv,
                "exit_code": run.exit_code,
                "backup": run.backup["name"] if run.backup else None,
                "log": str(run.log_file) if run.log_file else None,
            }
        )
    else:
        sys.stdout.write(run.output)
        if ok and run.backup:
            print(f"schedule test passed: {run.backup['name']} ({run.backup['actor']})")
            print(f"  log: {run.log_file}")
    if not ok:
        last = run.output.strip().splitlines()[-1:] or ["no output"]
        raise UseCaseError(
            f"schedule test failed (exit {run.exit_code}): {last[0]}; "
            f"the command was: {' '.join(run.argv)}"
        )


@schedule_app.command("uninstall", context_settings=CONTEXT)
def uninstall_cmd(
    backend: BackendOpt = "auto",
    crontab_user: CrontabUserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove this project's schedules; auto removes them from every backend that has some.

    Only this backup directory's units and crontab lines go (those an older dumpledger wrote
    for it, without an id, too); other projects' and everything else stay as they were.

    Example: dumpledger schedule uninstall
    """
    from usecases.schedule import service

    _check_backend(backend)
    host = service.Host(crontab_user=crontab_user)
    project = Project.of(settings().backup_dir)
    if backend == "auto":
        backends = service.installed_backends(host, project)
    else:
        backends = [service.make_backend(backend, host, project)]
    with open_app() as ctx:
        removed = service.uninstall(ctx, backends)
    if json_out:
        output.emit_json(removed)
        return
    if not removed:
        output.info(
            f"no dumpledger schedule of project {project.id} ({project.backup_dir}) was "
            "installed; nothing removed"
        )
        return
    for name, units in removed.items():
        print(f"{name}: removed")
        for unit in units:
            print(f"  {unit}")
