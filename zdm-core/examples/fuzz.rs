//! The recorded fuzzing run over zdm-core's readers (not run in CI; CI runs the smoke in
//! `tests/fuzz.rs`, which is also the harness this program drives). See `docs/src/fuzzing.md`.
//!
//! ```text
//! cargo run -p zdm-core --release --example fuzz -- --per-target 1000000 --jobs 2
//! cargo run -p zdm-core --release --example fuzz -- --target lint --seed 0x5eed --case 1234
//! cargo run -p zdm-core --release --example fuzz -- --depth
//! ```
//!
//! Prints a markdown table (target, inputs, panics, broken invariants, errors returned,
//! seconds), then the report of each failure (target, escaped input, panic message and
//! backtrace, the command that replays it). Exits 1 when anything failed.
//!
//! `--depth` instead measures how deep each shape of `fuzz::SHAPES` can nest before the
//! readers overflow a 2 MiB thread's stack. An overflow aborts the process, so each size
//! runs in a child process (this program, with `--probe SHAPE N STACK`).

#[path = "../tests/fuzz.rs"]
mod fuzz;

use std::process::ExitCode;
use std::time::Instant;

use fuzz::{Rng, Stats, TARGETS};

const USAGE: &str =
    "usage: fuzz [--per-target N] [--seed S] [--target NAME[,NAME..]] [--jobs J] [--show K] [--case N] [--depth]
  --per-target N  inputs per target (default 1000000)
  --seed S        decimal or 0x-hex (default 0x5eed)
  --jobs J        threads (default 1)
  --show K        failure reports kept per target (default 3)
  --case N        run input N of each target only, and show it
  --depth         measure the nesting depth the readers survive on a 2 MiB stack
  --target NAMES  only these targets (default all): ";

struct Args {
    per_target: u64,
    seed: u64,
    targets: Vec<&'static fuzz::Target>,
    jobs: u64,
    show: usize,
    case: Option<u64>,
    depth: bool,
    probe: Option<(String, usize, usize)>,
}

fn number(text: &str) -> Result<u64, String> {
    let text = text.replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|e| format!("`{text}`: {e}"))
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        per_target: 1_000_000,
        seed: 0x5eed,
        targets: TARGETS.iter().collect(),
        jobs: 1,
        show: 3,
        case: None,
        depth: false,
        probe: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--per-target" => args.per_target = number(&value()?)?,
            "--seed" => args.seed = number(&value()?)?,
            "--jobs" => args.jobs = number(&value()?)?.max(1),
            "--show" => args.show = number(&value()?)? as usize,
            "--case" => args.case = Some(number(&value()?)?),
            "--target" => {
                args.targets = value()?
                    .split(',')
                    .map(|n| fuzz::target(n.trim()).ok_or_else(|| format!("unknown target `{n}`")))
                    .collect::<Result<_, _>>()?
            }
            "--depth" => args.depth = true,
            "--probe" => {
                let shape = value()?;
                let n = number(&value()?)? as usize;
                args.probe = Some((shape, n, number(&value()?)? as usize));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
            eprintln!("{e}\n{USAGE}{}", names.join(", "));
            return ExitCode::from(2);
        }
    };

    if let Some((shape, n, stack)) = &args.probe {
        let Some((_, make)) = fuzz::SHAPES.iter().find(|(name, _)| name == shape) else {
            eprintln!("unknown shape `{shape}`");
            return ExitCode::from(2);
        };
        fuzz::read_on_stack(make(*n), *stack);
        return ExitCode::SUCCESS;
    }
    if args.depth {
        return depth();
    }

    // One input, shown with its outcome.
    if let Some(case) = args.case {
        let mut failed = false;
        for t in &args.targets {
            let input = (t.gen)(&mut Rng::for_case(args.seed, t.name, case));
            match fuzz::run_input(t.check, &input) {
                Ok(verdict) => {
                    println!("target `{}`, seed {:#x}, case {case}: {verdict:?}\ninput: {input}", t.name, args.seed)
                }
                Err(failure) => {
                    failed = true;
                    println!("{}", fuzz::report(t, args.seed, case, &input, &failure));
                }
            }
        }
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }

    println!(
        "zdm-core {} fuzz: {} inputs per target, seed {:#x}, {} job(s)\n",
        env!("CARGO_PKG_VERSION"),
        args.per_target,
        args.seed,
        args.jobs
    );
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    let started = Instant::now();
    for t in &args.targets {
        let start = Instant::now();
        let chunk = args.per_target.div_ceil(args.jobs);
        let stats = std::thread::scope(|s| {
            let handles: Vec<_> = (0..args.jobs)
                .map(|j| {
                    let range = (j * chunk).min(args.per_target)..((j + 1) * chunk).min(args.per_target);
                    s.spawn(move || fuzz::run_range(t, args.seed, range, args.show))
                })
                .collect();
            let mut total = Stats::default();
            for h in handles {
                total.merge(h.join().expect("a fuzzing thread"), args.show);
            }
            total
        });
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{:<10} {:>9} inputs  {} panics  {} broken  {:.1} s",
            t.name, stats.inputs, stats.panics, stats.violations, secs
        );
        reports.extend(stats.reports.iter().cloned());
        rows.push((t, stats, secs));
    }

    println!("| target | API | inputs | panics | broken invariants | errors returned | seconds |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (t, s, secs) in &rows {
        let errors = if t.can_fail { s.rejected.to_string() } else { "n/a".to_string() };
        println!(
            "| {} | `{}` | {} | {} | {} | {} | {:.1} |",
            t.name, t.api, s.inputs, s.panics, s.violations, errors, secs
        );
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    if reports.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!("\n## Failures (first {} per target)\n", args.show);
    for r in &reports {
        println!("{r}\n");
    }
    ExitCode::FAILURE
}

/// The deepest nesting of each shape that every reader survives on a 2 MiB thread, by
/// doubling sizes (64 .. 131072) in child processes.
fn depth() -> ExitCode {
    const STACK: usize = 2 << 20;
    const MAX: usize = 1 << 17;
    let exe = std::env::current_exe().expect("this program's path");
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("nesting depth the readers survive on a {} MiB thread ({build} build)\n", STACK >> 20);
    println!("| shape | example | passes at | aborts at |");
    println!("|---|---|---:|---:|");
    for (name, make) in fuzz::SHAPES {
        let mut passes = None;
        let mut aborts = None;
        let mut n = 64;
        while n <= MAX {
            let ok = std::process::Command::new(&exe)
                .args(["--probe", name, &n.to_string(), &STACK.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("a child process")
                .success();
            if !ok {
                aborts = Some(n);
                break;
            }
            passes = Some(n);
            n *= 2;
        }
        let example: String = make(2).chars().take(48).collect::<String>().replace('|', "\\|");
        let show = |v: Option<usize>| v.map_or("–".to_string(), |v| v.to_string());
        let aborts = aborts.map_or(format!("> {MAX}"), |v| v.to_string());
        println!("| {name} | `{example}` | {} | {aborts} |", show(passes));
    }
    ExitCode::SUCCESS
}
