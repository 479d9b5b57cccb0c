//! `mcpproxyctl`: the operator's client for a running `mcpproxyd` (admin socket).

fn main() {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("mcpproxyctl {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    eprintln!("mcpproxyctl: the admin commands are not implemented yet");
    std::process::exit(64);
}
