//! `mcpproxy-bench`: what the proxy costs, measured in one run (see [`mcpproxy_tests::bench`]).

fn main() -> std::process::ExitCode {
    mcpproxy_tests::bench::main()
}
