//! The `buildlog` command: argument parsing only; the work is in the library.

fn main() {
    std::process::exit(buildlog::cli::main());
}
