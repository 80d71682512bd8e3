//! The `dgecho` binary: parse, set up logging, dispatch, map errors to an
//! exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use dgecho::activation::ListenEnv;
use dgecho::cli::{Cli, Command};
use dgecho::{bench, client, daemon, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Read the environment before any thread exists: listenfd removes the
    // LISTEN_* variables as it takes the sockets.
    let listen_env = ListenEnv::from_env();
    logging::init(cli.verbose, cli.quiet);

    let result = match &cli.command {
        Command::Serve(args) => daemon::run(args, &listen_env),
        Command::Client(args) => client::run(args, cli.verbose > 0),
        Command::Bench(args) => bench::run(args),
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
            eprintln!("{prefix}dgecho: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("{prefix}  caused by: {cause}");
            }
            // A bad address is a usage error, as when clap rejects one.
            if err.downcast_ref::<dgecho::addr::AddrError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
