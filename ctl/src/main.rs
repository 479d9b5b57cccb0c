//! `mcpproxyctl`: the operator's client for a running `mcpproxyd`; see the library's documentation.

fn main() -> std::process::ExitCode {
    mcpproxyctl::main()
}
