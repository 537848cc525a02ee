//! The `wagate` command line (replay for now; the operator's commands come
//! with the CLI issue).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1..)) {
        (Some("replay"), Some(files)) if !files.is_empty() => replay(files),
        _ => {
            eprintln!("usage: wagate replay FILE...");
            ExitCode::from(2)
        }
    }
}

fn replay(files: &[String]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("wagate: cannot read {file}: {e}");
                return ExitCode::from(1);
            }
        };
        match wagate::scenario::Replay::run(&text) {
            Ok(report) => {
                for line in &report.lines {
                    println!("{line}");
                }
                failed |= report.errors > 0;
            }
            Err(e) => {
                eprintln!("wagate: {file}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
