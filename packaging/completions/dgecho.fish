# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dgecho_global_optspecs
    string join \n v/verbose q/quiet h/help V/version
end

function __fish_dgecho_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dgecho_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dgecho_using_subcommand
    set -l cmd (__fish_dgecho_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dgecho -n "__fish_dgecho_needs_command" -s v -l verbose -d 'Log more: -v for debug, -vv for one line per datagram (trace). With `client`, -v also prints each reply\'s size, source and round-trip time on stderr'
complete -c dgecho -n "__fish_dgecho_needs_command" -s q -l quiet -d 'Log less: -q shows only warnings and errors, -qq only errors'
complete -c dgecho -n "__fish_dgecho_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dgecho -n "__fish_dgecho_needs_command" -s V -l version -d 'Print version'
complete -c dgecho -n "__fish_dgecho_needs_command" -f -a "serve" -d 'Answer datagrams on the sockets systemd passed in and on --listen addresses'
complete -c dgecho -n "__fish_dgecho_needs_command" -f -a "client" -d 'Send datagrams to an echo service and print the replies'
complete -c dgecho -n "__fish_dgecho_needs_command" -f -a "bench" -d 'Load an echo service and measure replies/s, loss and round-trip times, checking every reply'
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -s l -l listen -d 'Also bind and serve ADDR (repeatable). With neither this nor sockets from systemd, serve binds 127.0.0.1:7007 and $XDG_RUNTIME_DIR/dgecho.sock (without XDG_RUNTIME_DIR: dgecho-UID.sock in $TMPDIR, normally /tmp)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l socket-mode -d 'The mode of the socket files serve binds itself (--listen paths and the default path), in octal as for chmod, like SocketMode= of a socket unit. Connecting needs write permission: 0666 lets every local user in, 0660 with --socket-group only that group. Default: what the umask leaves, usually 0755 (only this user)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l socket-group -d 'The group of those socket files (a name or a number), like SocketGroup=. This user must be a member of it, or root' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l reply -d 'What to send back' -r -f -a "reverse\t'The datagram\'s bytes in reverse order, as the original ctypes echo server did'
echo\t'The datagram unchanged, as RFC 862 describes'"
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l guard-ports -d 'Never answer UDP datagrams from these source ports, to stop echo loops with other always-answering services. A comma-separated list; "none" turns the guard off' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l workers -d 'Threads per socket, all serving the same socket. More than 1 only helps with more than one CPU and heavy load, and may reorder the replies to one sender; ReusePort= sockets from systemd scale without reordering' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l rate-limit -d 'Answer each UDP source at most RATE datagrams per second (e.g. 20 or 20/s); the rest are dropped and counted as "rate limited". A source is an IPv4 address or an IPv6 /64, whatever its port. The limit applies to each socket, and with --workers N each worker allows 1/N of it. Sources are tracked in a table of fixed size (4096 per worker): a flood of distinct sources evicts the oldest, it never uses more memory. Unix sockets are not limited. Without this option, sources other than loopback get 1000/s with a burst of 2000: enough for any check, and it ends an echo loop that a forged datagram starts between two services within a fraction of a second. "none" turns every limit off' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l burst -d 'How many datagrams a source may send at once, before --rate-limit spaces them out. Default: one second\'s worth of RATE' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l gso -d 'Send runs of same-size UDP replies to one client as one GSO send (UDP_SEGMENT): "on" (the default) or "off", to compare. Where the kernel or the route refuses, dgecho falls back by itself' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -l idle-timeout -d 'Exit cleanly after this long without a datagram (e.g. 30s, 5m, 1h). Under socket activation, systemd starts dgecho again on the next datagram, which waits in the socket meanwhile' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -s v -l verbose -d 'Log more: -v for debug, -vv for one line per datagram (trace). With `client`, -v also prints each reply\'s size, source and round-trip time on stderr'
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -s q -l quiet -d 'Log less: -q shows only warnings and errors, -qq only errors'
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dgecho -n "__fish_dgecho_using_subcommand serve" -s V -l version -d 'Print version'
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s t -l timeout -d 'How long to wait for each reply (e.g. 500ms, 2s)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -l bind -d 'Bind the client\'s Unix socket to PATH instead of an automatic abstract address. The daemon\'s user must be able to write to PATH, and PATH must be visible to it (not under a private /tmp). Needed for servers that cannot answer an abstract address' -r -F
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s c -l count -d 'Ping mode: send N datagrams, one per --interval, print a line per reply (size, source, sequence number, round-trip time) and a summary. Exits 0 only when every reply came back' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s i -l interval -d 'Ping mode: the time between datagrams (default 1s). Without --count, ping mode runs until interrupted (Ctrl-C prints the summary)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s s -l size -d 'Ping mode: the size of each datagram in bytes (default 64)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s v -l verbose -d 'Log more: -v for debug, -vv for one line per datagram (trace). With `client`, -v also prints each reply\'s size, source and round-trip time on stderr'
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s q -l quiet -d 'Log less: -q shows only warnings and errors, -qq only errors'
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s h -l help -d 'Print help'
complete -c dgecho -n "__fish_dgecho_using_subcommand client" -s V -l version -d 'Print version'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s w -l window -d 'Closed loop: datagrams outstanding at once in each flow; 1 is ping-pong. Best for the most replies per second; for latency under a given load use --rate' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s r -l rate -d 'Open loop: send RATE datagrams per second (e.g. 10000 or 10000/s) on a fixed schedule, all flows together, whatever the replies do. Each round-trip time is measured from when its datagram was due, so a late sender or a stalled server shows in every datagram it delays (no coordinated omission). The report says how far behind schedule the sender fell' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s f -l flows -d 'Load from N sockets at once, each with its own address (its own UDP port or autobound Unix name), reporting each flow and the total. --window applies to each flow; --rate is shared evenly' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s i -l interval -d 'Print a report line every DURATION (e.g. 1s, 500ms): time, replies/s, sent, lost, and the interval\'s RTT p50/p99/max. Default: every second when the output is a terminal, else none' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -l hgrm -d 'Write the round-trip times to FILE as an HdrHistogram percentile distribution (.hgrm, values in microseconds), for HdrHistogram\'s plotFiles.html or hdr-plot' -r -F
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s s -l size -d 'Size of each datagram in bytes (at least 8: each carries its sequence number)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s d -l duration -d 'How long to send (e.g. 500ms, 5s, 1m)' -r
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -l reply -d 'What the service sends back, and so what each reply must be' -r -f -a "reverse\t'The datagram\'s bytes in reverse order, as the original ctypes echo server did'
echo\t'The datagram unchanged, as RFC 862 describes'"
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -l json -d 'Print the report as one JSON object, after one per interval line (JSON lines, each with a "type")'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -l allow-remote -d 'Load a target that is neither loopback nor a Unix socket. Only for hosts you are responsible for: this floods them'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s v -l verbose -d 'Log more: -v for debug, -vv for one line per datagram (trace). With `client`, -v also prints each reply\'s size, source and round-trip time on stderr'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s q -l quiet -d 'Log less: -q shows only warnings and errors, -qq only errors'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dgecho -n "__fish_dgecho_using_subcommand bench" -s V -l version -d 'Print version'
