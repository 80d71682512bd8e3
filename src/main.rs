//! The `dgecho` binary: parse, set up logging, dispatch, map errors to an
//! exit status. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use dgecho::activation::Inherited;
use dgecho::cli::{BenchArgs, Cli, Command};
use dgecho::defaults::BENCH_INTERVAL;
use dgecho::{bench, client, daemon, exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Read the environment before any thread exists: listenfd removes the
    // LISTEN_* variables as it takes the sockets.
    let inherited = Inherited::take();
    logging::init(cli.verbose, cli.quiet);

    let result = match &cli.command {
        Command::Serve(args) => daemon::run(args, inherited),
        Command::Client(args) => client::run(args, cli.verbose > 0),
        Command::Bench(args) => bench_options(args, cli.verbose > 0).and_then(|o| bench::run(&o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // In the journal, mark the lines as errors (priority 3).
            let prefix = if logging::stderr_is_journal() {
                "<3>"
            } else {
                ""
            };
            for (i, msg) in exit::messages(&err).enumerate() {
                if i == 0 {
                    eprintln!("{prefix}dgecho: error: {msg}");
                } else {
                    eprintln!("{prefix}  caused by: {msg}");
                }
            }
            ExitCode::from(exit::status(&err))
        }
    }
}

/// `bench`'s own options from its command line: `cli` and `bench` know
/// nothing of each other.
fn bench_options(args: &BenchArgs, verbose: bool) -> anyhow::Result<bench::Options> {
    let target = match &args.addr {
        Some(a) => a.clone(),
        None => client::default_target(verbose)?,
    };
    Ok(bench::Options {
        target,
        window: args.window as usize,
        size: args.size as usize,
        duration: args.duration,
        reply: args.reply,
        allow_remote: args.allow_remote,
        json: args.json,
        rate: args.rate,
        flows: args.flows as usize,
        interval: args
            .interval
            .or_else(|| std::io::stdout().is_terminal().then_some(BENCH_INTERVAL)),
        hgrm: args.hgrm.clone(),
    })
}
