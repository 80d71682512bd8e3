//! The client's modes: one message from the command line, or one datagram
//! per line of standard input; ping mode is in [`super::ping`].

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{Result, anyhow, bail};

use super::{Client, Lost, Reply, default_target, ping, words};
use crate::cli::ClientArgs;

/// Writes to stdout; a reader that went away (a closed pipe) ends the run
/// quietly, as it does for other command-line tools.
pub(crate) fn print(out: &mut impl Write, data: &[u8]) -> Result<bool> {
    match out.write_all(data).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Runs `dgecho client`.
pub fn run(args: &ClientArgs, verbose: bool) -> Result<()> {
    let words = words::split(args.addr.as_deref(), &args.message, &args.literal)?;
    if args.ping() && !words.message.is_empty() {
        return Err(crate::exit::usage(anyhow!(
            "ping mode (--count, --interval, --size) sends its own datagrams: leave out the \
             message '{}', or give --size BYTES",
            words.message.join(" ")
        )));
    }
    let target = match words.addr {
        Some(a) => a,
        None => default_target(verbose)?,
    };
    let mut client = Client::open(&target, args.bind.as_deref(), args.timeout)?;
    if args.ping() {
        return ping::run(&mut client, args);
    }
    if !words.message.is_empty() {
        let reply = client.exchange(words.message.join(" ").as_bytes())?;
        return show(&reply, verbose).map(|_| ());
    }
    lines(&mut client, verbose)
}

/// Prints a reply, and with -v its size, source and time; false when
/// stdout is closed.
fn show(reply: &Reply, verbose: bool) -> Result<bool> {
    let mut out = io::stdout().lock();
    let mut line = reply.data.clone();
    line.push(b'\n');
    if !print(&mut out, &line)? {
        return Ok(false);
    }
    if verbose {
        eprintln!(
            "{} bytes from {} in {} µs",
            reply.data.len(),
            reply.from,
            reply.rtt.as_micros()
        );
    }
    Ok(true)
}

/// Stdin mode: each line one datagram. A lost reply is reported and the
/// next line sent; the run fails at the end if any was lost.
fn lines(client: &mut Client, verbose: bool) -> Result<()> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let (mut sent, mut lost) = (0u64, 0u64);
    loop {
        if interactive {
            eprint!(">> ");
        }
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            if interactive {
                eprintln!();
            }
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        sent += 1;
        match client.exchange(&line) {
            Ok(reply) if show(&reply, verbose)? => {}
            Ok(_) => return Ok(()),
            Err(e) if e.is::<Lost>() => {
                lost += 1;
                let msg: Vec<String> = crate::exit::messages(&e).collect();
                eprintln!("dgecho: line {sent}: {}", msg.join(": "));
            }
            Err(e) => return Err(e),
        }
    }
    if lost > 0 {
        bail!(
            "no reply to {lost} of {sent} datagrams from {}",
            client.target
        );
    }
    Ok(())
}
