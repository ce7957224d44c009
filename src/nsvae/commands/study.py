"""``nsvae study``: run what is left of a study and keep each finished run's small files under studies/NAME/."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .slurm_options import add_slurm_arguments, slurm_request

DESCRIPTION = """\
Run a study: a sweep file whose runs draw learning curves (eval.every) and end
with a full evaluation (see docs/sweeps.md, 'Studies'). STUDY is a sweep .toml
file or a sweep preset (the study presets are named study-*).

Every finished run leaves small files in STUDIES_DIR/NAME/runs/RUN/ (its config,
learning curve, final evaluation with the code commit, the machine and the
times, and a traversal picture), and the study's tables STUDIES_DIR/NAME/
results.csv (one row per method, seed and evaluated step) and final.csv (one row
per method and seed) are rewritten. A run with those files is never trained
again; the others train in --work-dir (default runs/NAME): a run whose
directory is still there is resumed, one whose directory is gone starts over.
With --commit each finished run's files are committed with git as it ends.
Ctrl-C or SIGTERM stops the running runs after their current step with a
checkpoint; the same command continues.

With --slurm each stage's (or seed batch's) runs go to SLURM as one job array
(the resources of the file's [resources] and [slurm] tables or --partition,
--time, --cpus, --gpus, --mem) and the command waits for them, exporting each
run as it ends; a preempted or timed-out job checkpoints, is requeued and
resumes. Ctrl-C stops only the waiting; the same command waits again. --status
shows each run's state and SLURM job.

Exit status: 0 every run finished, 1 some run failed (or its SLURM job was
cancelled), 2 a usage or study-file error, 130/143 interrupted."""

EPILOG = """\
examples:
  nsvae study study-cpu --dry-run
  nice nsvae study study-cpu --workers 2 --commit       (two runs at once, one thread each)
  nice nsvae study study-authors --stage look-2 --commit (a stage marked on_request runs only when named)
  nsvae study study-paper --slurm --partition gpu --gpus 1 --time 12:00:00 --commit
  nsvae study study-paper --status
  nsvae plot study-curves studies/study-cpu -o docs/figures/study-cpu.png"""


def register(sub) -> None:
    p = sub.add_parser(
        "study",
        help="run what is left of a study; each finished run's small files go to studies/NAME/",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", metavar="STUDY", help="a study (sweep) .toml file or preset")
    p.add_argument("--studies-dir", default="studies", metavar="DIR", help="where studies keep files (default studies)")
    p.add_argument("--work-dir", metavar="DIR", help="where the runs train (default runs/NAME)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="runs at once, each with cores // N torch threads (default 2: on this project's 2-core machine two "
        "one-thread runs train 1.18x faster in all than one two-thread run; benchmarks/RESULTS.md). With --slurm: "
        "the most jobs that run at once (default: no limit)",
    )
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N for every run (overrides run.device)")
    p.add_argument("--only", nargs="+", metavar="RUN", help="run only these runs of the study")
    p.add_argument(
        "--stage",
        metavar="NAME",
        help="run only this stage of the study file's [[stages]] (the runs go in the stages' order; a stage marked "
        "on_request, such as a second look, runs only when named here)",
    )
    p.add_argument("--commit", action="store_true", help="git-commit each finished run's files as it ends")
    p.add_argument("--dry-run", action="store_true", help="list the runs, which are done and which are left, then exit")
    p.add_argument(
        "--in-flight",
        action="store_true",
        help="train nothing: write the curve points so far of the runs still training in --work-dir to "
        "STUDIES_DIR/NAME/in-flight/RUN.csv (with --commit, commit them): a session's progress, kept in the "
        "repository before it stops",
    )
    p.add_argument(
        "--carry",
        action="store_true",
        help="with --in-flight: also pack each run in flight (its newest intact checkpoint and its files, about 6 MB "
        "for the paper's network) into STUDIES_DIR/NAME/in-flight/RUN.run.tar, so that a machine that is not kept "
        "loses no step: the study's next start, on any machine, resumes the run from it. Each commit of it adds "
        "its size to the repository's history",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print the finished runs' machine time (CPU-hours from their final.json), the final table (mean ± sd "
        "(n) over seeds, Markdown), the synergy's terms (joint information, I_max, sum of singles, each / H(v_k)), "
        "the paired differences of --versus "
        "against every other method (95%% bootstrap and t intervals, the effect size mean / sd and the exact "
        "sign-flip p over the shared seeds), "
        "Spearman's rank correlation of S_max with each other metric (all runs, then per method; descriptive) and "
        "the study's findings (docs/results.md: a verdict needs both, so fewer than 5 seeds decide nothing), the "
        "minimal detectable effect of each finding's metric at 80%% power and a sentence on testing several claims; "
        "trains nothing",
    )
    p.add_argument(
        "--versus",
        metavar="METHOD",
        help="--summary: the method compared with the others (default: the Non-Syn VAE's, else the first)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="M",
        help="--summary: only these columns in the final table, the differences and the correlations (the findings "
        "keep theirs)",
    )
    add_slurm_arguments(p, "study")
    p.set_defaults(run=run_study_command)


def run_study_command(args: argparse.Namespace) -> int:
    from ..experiments import study, sweep

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.carry and not args.in_flight:
        raise UserError("--carry goes with --in-flight (nsvae study NAME --in-flight --carry [--commit])")
    if args.device is not None:
        from ..config.schema import DEVICE_PATTERN

        if not DEVICE_PATTERN.match(args.device):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    request = slurm_request(args)
    if args.status:
        return _status(args)
    if args.summary:
        return _summary(args)
    if args.in_flight:
        return _in_flight(args)
    if args.dry_run:
        spec = sweep.load_sweep(args.study)
        study.check_study(spec)
        study_dir = study.study_dir_for(spec, args.studies_dir)
        done, left = study.plan_study(spec, study_dir)
        print(f"{spec.name}: {len(spec.runs)} runs, {len(done)} done in {study_dir}, {len(left)} left")
        width = max(len(r.name) for r in spec.runs)
        on_request = {s.name for s in spec.stages if s.on_request}
        for run in spec.runs:
            cfg = run.config
            what = "done" if run.name in done else "left"
            stage = study.stage_of(spec, run.name)
            where = "" if stage is None else f"  [{stage}{', on request' if stage in on_request else ''}]"
            print(
                f"  {run.name:<{width}}  {what}  {cfg.method}, {cfg.run.steps:,} steps, "
                f"lr {cfg.optim.lr:g}, batch {cfg.data.batch_size}, curve every {cfg.eval.every:,}{where}"
            )
        if request is not None:
            from ..experiments.executors import slurm_resources_for

            resources = slurm_resources_for(spec, args.study, request)
            print(f"SLURM: {resources.describe()}")
        return 0
    outcome = study.run_study(
        args.study,
        studies_root=args.studies_dir,
        work_dir=args.work_dir,
        workers=args.workers or 2,
        device=args.device,
        commit=args.commit,
        only=args.only,
        stage=args.stage,
        slurm=request,
    )
    if outcome is None:
        spec = sweep.load_sweep(args.study)
        _, left = study.plan_study(spec, study.study_dir_for(spec, args.studies_dir))
        waiting = [s for s in spec.stages if s.on_request and s.name != args.stage and set(s.runs) & set(left)]
        if waiting:
            names = ", ".join(s.name for s in waiting)
            print(f"nsvae study: every run is done but those of {names}, which run only when named (--stage NAME)")
        else:
            print("nsvae study: every run is done")
        return 0
    from .sweep import outcome_exit_status

    return outcome_exit_status("nsvae study", outcome)


def _status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..experiments import study, study_carry, sweep, sweep_status

    spec = sweep.load_sweep(args.study)
    study.check_study(spec)
    study_dir = study.study_dir_for(spec, args.studies_dir)
    work = Path(args.work_dir) if args.work_dir is not None else Path("runs") / spec.name
    done, _ = study.plan_study(spec, study_dir)
    names = [r.name for r in spec.runs if not args.only or r.name in args.only]
    rows, queue_read = sweep_status.sweep_status(work, names, finished_elsewhere=done)
    title = f"{spec.name} ({len(done)} of {len(spec.runs)} runs in {study_dir}; runs train in {work})"
    print(sweep_status.format_status(title, rows, queue_read))
    carried = study_carry.carried_runs(study_dir / study.IN_FLIGHT)
    steps = {name: study_carry.carried_step(path) or 0 for name, path in carried.items() if name in names}
    shown = [f"{name} (step {step:,})" for name, step in steps.items()]
    if shown:
        print(
            f"carried in {study_dir / study.IN_FLIGHT} (resumed from there where a run's directory is absent): "
            + ", ".join(shown)
        )
    return 0


def _in_flight(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..experiments import study, sweep

    spec = sweep.load_sweep(args.study)
    study.check_study(spec)
    study_dir = study.study_dir_for(spec, args.studies_dir)
    work = Path(args.work_dir) if args.work_dir is not None else Path("runs") / spec.name
    written = study.export_in_flight(spec, study_dir, work)
    steps = [f"{name} {step:,}" for name, step in written.items()]
    print(f"nsvae study: {spec.name}: curve points of {len(written)} run(s) in flight ({', '.join(steps) or 'none'})")
    message = f"study {spec.name}: in-flight curve points ({', '.join(steps)})"
    carried = study.carry_in_flight(spec, study_dir, work) if args.carry else {}
    if args.carry:
        states = [f"{name} {step:,}" for name, step in carried.items()]
        shown = ", ".join(states) or "none"
        print(f"nsvae study: {spec.name}: training state of {len(carried)} run(s) carried ({shown})")
        if carried:
            message += f" and training state ({', '.join(states)})"
    if (written or carried) and args.commit:
        study.commit_files(study_dir, message, print)
    return 0


def _summary(args: argparse.Namespace) -> int:
    from ..experiments import study, study_analysis, sweep

    spec = sweep.load_sweep(args.study)
    folder = study.study_dir_for(spec, args.studies_dir)
    final_path = folder / study.FINAL_CSV
    rows = study.read_table(final_path) if final_path.is_file() else []
    if not rows:
        raise UserError(f"{spec.name} has no finished run yet ({final_path}); run nsvae study {args.study} first")
    methods = study_analysis.methods(rows)
    versus = args.versus
    if versus is None:
        nonsyn = [r.setting for r in spec.runs if r.config.method == "nonsyn" and r.setting in methods]
        versus = nonsyn[0] if nonsyn else methods[0]
    if versus not in methods:
        raise UserError(f"--versus {versus!r} has no finished run; methods: {', '.join(methods)}")
    metrics = study_analysis.metric_columns(rows)
    if args.metrics:
        unknown = [m for m in args.metrics if m not in metrics]
        if unknown:
            raise UserError(
                f"--metrics: {spec.name} has no column {', '.join(map(repr, unknown))}; columns: {', '.join(metrics)}"
            )
        metrics = list(args.metrics)
    done, left = study.plan_study(spec, folder)
    print(f"{spec.name}: {len(done)} of {len(spec.runs)} runs done, {len(left)} left ({final_path})\n")
    print(study.format_machine_time(study.machine_time(folder)) + "\n")
    print(study_analysis.format_final_table(study_analysis.final_table(rows, metrics), metrics))
    terms = study.synergy_terms(folder)
    if terms:
        print(
            "The synergy's terms (final evaluation; each / H(v_k), mean over factors; S_max = joint - I_max, "
            "WMS = joint - sum of singles): a lower S_max comes from a lower joint information or a higher I_max.\n"
        )
        columns = list(study.SYNERGY_TERMS)
        print(study_analysis.format_final_table(study_analysis.final_table(terms, columns), columns))
    diffs = study_analysis.paired_differences(rows, versus, metrics=metrics)
    if diffs:
        print(study_analysis.format_differences(diffs))
    others = [m for m in metrics if not m.startswith("synergy")]
    if "synergy" in study_analysis.metric_columns(rows) and others:
        print(
            "Synergy and disentanglement across runs (descriptive, no finding rests on it): Spearman's rank "
            "correlation of S_max with each metric over all finished runs, then within each method over its seeds. "
            "The pooled value mixes methods with seeds, and S_max subtracts single-latent informations that "
            "MIG-like metrics reward, so part of it is by construction.\n"
        )
        print(
            study_analysis.format_rank_correlations(
                study_analysis.rank_correlations(rows, "synergy", others), "synergy"
            )
        )
    udr = study.udr_scores_of(folder)
    if udr:
        udr_rows = [{"method": v["method"], "seed": v["seed"], "step": 0, "udr": v["udr"]} for v in udr.values()]
        print(
            "UDR (Duan et al. 2020; no labels: each run against the other seeds of its method, Lasso, the published "
            "protocol), from each run's udr_sample.npz; mean ± sd (n):\n"
        )
        print(study_analysis.format_final_table(study_analysis.final_table(udr_rows, ["udr"]), ["udr"]))
        by_key = {(v["method"], v["seed"]): v["udr"] for v in udr.values()}
        with_udr = [{**r, "udr": by_key[(r["method"], r["seed"])]} for r in rows if (r["method"], r["seed"]) in by_key]
        print(
            "Does UDR rank the runs as the supervised scores do? Spearman's rank correlation of UDR with each metric "
            "over the runs with a UDR score, then within each method (descriptive):\n"
        )
        print(
            study_analysis.format_rank_correlations(
                study_analysis.rank_correlations(with_udr, "udr", [m for m in metrics if m != "udr"]), "udr"
            )
        )
    settings: dict[str, str] = {}
    for run in spec.runs:
        if run.setting in methods:
            settings.setdefault(run.config.method, run.setting)
    from ..experiments import looks

    if looks.decided_in_looks(s.name for s in spec.stages):
        print(
            "Findings under the rule fixed before the runs (docs/results.md, 'study-authors: the rule'): the exact "
            "paired sign-flip test decides at each look's level; 'no effect larger than X' when the one-sided t-bound "
            "falls short of the minimal detectable effect X fixed then.\n"
        )
        found_looks = looks.look_findings(rows, settings)
        print(looks.format_look_findings(found_looks))
        if found_looks["secondary"]:
            print("Secondary metrics (reported, no verdict):\n")
            print(study_analysis.format_differences(found_looks["secondary"]))
        if "beta_tcvae" in settings and "vae" in settings:
            control = study_analysis.paired_differences(
                rows, settings["beta_tcvae"], [settings["vae"]], ["dci", "mig", "synergy"]
            )
            if control:
                print("The positive control (β-TCVAE − VAE on the primary metrics; descriptive, no verdict):\n")
                print(study_analysis.format_differences(control))
        return 0
    found = study_analysis.findings(rows, settings)
    if found:
        print(
            "Findings (paired over the shared seeds: a verdict needs the 95% bootstrap interval to exclude 0 and the "
            f"exact sign-flip test to give p <= {study_analysis.LEVEL} on the same side; its smallest p with n "
            "seeds is 2^-n, so fewer than 5 seeds decide nothing):"
        )
        print(study_analysis.format_findings(found))
        print(
            "What these seeds could detect: the minimal detectable effect of each finding's metric at 80% power "
            f"(the one-sided exact sign-flip test at {study_analysis.LEVEL}, the seeds the two methods share, normal "
            "differences with the observed sd):\n"
        )
        print(study_analysis.format_detectable_effects(study_analysis.detectable_effects(found)))
        print(study_analysis.multiple_comparisons_note(len(found)) + "\n")
    return 0
