//! `mcpproxyd`: see the library's documentation.

fn main() {
    std::process::exit(mcpproxyd::cli::main());
}
