//! Project automation, run as `cargo xtask COMMAND`.
//!
//! Kept as a plain binary in the workspace (the rust-analyzer way) so that
//! maintenance tasks are Rust code, versioned and reviewed with the rest.

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask COMMAND

commands:
  help      print this message

planned:
  schemas   regenerate schemas/generated/ from the adapters' wire types
  check     fail when schemas/generated/ is stale or disagrees with schemas/published/
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("error: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
