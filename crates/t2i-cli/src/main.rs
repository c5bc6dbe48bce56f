//! `t2i`: train, run, control and evaluate text-to-image GANs.

mod commands;
mod cub_cmds;
mod demo;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "t2i",
    version,
    about = "Text-to-image GANs (GAN-INT-CLS, GAWWN, StackGAN, AttnGAN, StyleT2I) on CPU or GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare data sets.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Train a model into a run folder.
    Train(Box<commands::TrainArgs>),
    /// Generate images from text with a checkpoint.
    Generate(commands::GenerateArgs),
    /// Evaluate a checkpoint or a run (shapes checker, style AU-ROC,
    /// R-precision, FID, KID, IS; --run writes an HTML report).
    Eval(commands::EvalArgs),
    /// Train tiny GAN-INT-CLS on shapes and write grids, interpolations and an HTML summary.
    Demo(demo::DemoArgs),
    /// Print the parameter counts of a model's networks.
    Info(commands::InfoArgs),
    /// Time a training iteration and generation.
    Bench(commands::BenchArgs),
    /// Turn an official PyTorch generator (.pth, either pickle format) into
    /// a t2i checkpoint that `generate` and `eval` use.
    Import(commands::ImportArgs),
    /// Serve a local web app and JSON HTTP API over trained models.
    Serve(serve::ServeArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Crop, resize and cache a real data set's images; measure the loader.
    Prepare {
        /// Data set: cub.
        #[arg(long, default_value = "cub")]
        data: String,
        /// The data set's folder (for CUB: the folder holding CUB_200_2011/).
        #[arg(long)]
        root: PathBuf,
        /// train, test or all.
        #[arg(long, default_value = "all")]
        split: String,
        /// Training resolution (images are stored at size x 76/64).
        #[arg(long, default_value_t = 64)]
        size: i64,
        /// Cache folder (default: $T2I_CACHE or ~/.cache/t2i).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Write the built-in shapes data set to a folder in the CUB layout.
    Shapes {
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Image side in pixels (32 to 256).
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Objects per image at most (1 or 2).
        #[arg(long, default_value_t = 1)]
        max_objects: u8,
        /// Training images.
        #[arg(long, default_value_t = 2000)]
        train: usize,
        /// Images per test split.
        #[arg(long, default_value_t = 500)]
        test: usize,
        /// Data set seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() {
    // before libtorch starts its threads, which inherit the setting
    t2i::device::flush_denormals();
    // a write beyond the file-size limit (`ulimit -f`) then fails with an
    // error the tool reports, instead of killing the process mid-write
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" before any thread
    // starts has no memory-safety conditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    cap_address_space();
    keep_freed_memory();
    // freed libtorch blocks of 1 MiB and more are reused, up to a quarter of
    // the memory available now, or T2I_CPU_CACHE_MIB (0: off)
    // (docs/BENCHMARKS.md: page faults were a quarter of StackGAN Stage-II's
    // step)
    let limit = match std::env::var("T2I_CPU_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(mib) => mib << 20,
        None => t2i::device::available_memory().unwrap_or(4 << 30) / 4,
    };
    if limit > 0 {
        t2i::ops::cache_cpu_memory(limit);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("T2I_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // a panic (an allocation libtorch refused, a bug) reaches the user as
    // one line and exit code 1, like any other error
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        eprintln!("error: {}", panic_line(msg));
    }));
    let result = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| std::process::exit(1));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A training step allocates and frees the same activation sizes every
/// iteration. glibc serves blocks above its mmap threshold with fresh
/// mappings and unmaps them on free, so each iteration pays the kernel's page
/// faults and zeroing again, and it returns the heap's free top to the
/// kernel likewise: blocks up to 32 MiB come from the heap here and the heap
/// is never trimmed (StackGAN Stage-I training, batch 8: docs/BENCHMARKS.md).
/// Peak memory is unchanged; freed memory stays with the process.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's parameters, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// On CPU, caps this process's address space at what it uses now plus the
/// memory still available (and 1 GiB of headroom for reservations never
/// touched): a request too big for the machine then fails as an allocation
/// error, reported as "out of memory", instead of summoning the kernel's
/// OOM killer. Not with CUDA, whose driver reserves large address ranges.
fn cap_address_space() {
    #[cfg(target_os = "linux")]
    {
        if tch::Cuda::is_available() {
            return;
        }
        let vm_size = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                let l = t.lines().find(|l| l.starts_with("VmSize:"))?.to_string();
                l["VmSize:".len()..]
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024);
        let (Some(avail), Some(vm)) = (t2i::device::available_memory(), vm_size) else {
            return;
        };
        let want = vm + avail + (1 << 30);
        // SAFETY: getrlimit/setrlimit write and read the plain struct given.
        unsafe {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_AS, &mut rl) == 0 && want < rl.rlim_cur {
                rl.rlim_cur = want;
                libc::setrlimit(libc::RLIMIT_AS, &rl);
            }
        }
    }
}

/// One line for a panic message: libtorch's messages carry a C++ backtrace.
fn panic_line(msg: &str) -> String {
    // tch wraps libtorch's message (with escaped newlines) in its own
    let inner = msg
        .split_once("Torch(\"")
        .map_or(msg, |(_, rest)| rest)
        .split("\\n")
        .next()
        .unwrap_or(msg);
    let first = inner
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown");
    let lower = first.to_lowercase();
    if lower.contains("out of memory") || lower.contains("can't allocate memory") {
        let what = first
            .split_once("you tried to allocate")
            .map(|(_, b)| format!("an allocation of{}", b.split('.').next().unwrap_or(b)))
            .unwrap_or_else(|| first.to_string());
        format!(
            "out of memory: {what} failed (use a smaller batch, fewer images or a smaller model)"
        )
    } else {
        format!("internal error: {first}")
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data {
            what:
                DataCommand::Prepare {
                    data,
                    root,
                    split,
                    size,
                    cache,
                },
        } => cub_cmds::prepare(&data, &root, &split, size, cache),
        Command::Data {
            what:
                DataCommand::Shapes {
                    out,
                    size,
                    max_objects,
                    train,
                    test,
                    seed,
                },
        } => commands::data_shapes(&out, size, max_objects, train, test, seed),
        Command::Train(a) => commands::train(*a),
        Command::Generate(a) => commands::generate(a),
        Command::Eval(a) => commands::eval(a),
        Command::Demo(a) => demo::run(a),
        Command::Info(a) => commands::info(a),
        Command::Bench(a) => commands::bench(a),
        Command::Import(a) => commands::import(a),
        Command::Serve(a) => serve::run(a),
    }
}
