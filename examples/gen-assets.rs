//! Writes the Debian package's generated files from the gateway's own command line
//! definition, so the man page and the shell completions never drift from the flags:
//!
//! ```text
//! OUT/xmpp-rest-gateway.1                  man page (clap_mangen), one per subcommand too
//! OUT/completions/xmpp-rest-gateway.bash   bash
//! OUT/completions/_xmpp-rest-gateway       zsh
//! OUT/completions/xmpp-rest-gateway.fish   fish
//! ```
//!
//! `cargo run --example gen-assets -- OUT` (scripts/deb-e2e runs the copy `cargo test` built).
//! An example rather than a build script or a flag of the binary: clap_mangen and
//! clap_complete stay dev-dependencies and out of the gateway's release build.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use xmpp_rest_gateway::config::Cli;

const BIN: &str = "xmpp-rest-gateway";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-assets OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&out)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-assets: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    let mut written = Vec::new();

    // generate_to writes the page of the command and one page per subcommand
    // (xmpp-rest-gateway-token.1, ...), which the top page's SEE ALSO names.
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, out)?;
    for entry in fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "1") {
            written.push(path);
        }
    }
    written.sort();

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            BIN,
            &completions,
        )?);
    }
    Ok(written)
}
