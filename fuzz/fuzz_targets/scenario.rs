//! Scenario lines: each line of the input through one `Replay`, in order
//! (as `wagate replay` does), and `scenario::parse_json` on each line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::scenario::{Replay, parse_json};

fuzz_target!(|data: &[u8]| {
    let mut replay = Replay::new();
    for (i, raw) in data.split(|b| *b == b'\n').enumerate().take(64) {
        match std::str::from_utf8(raw) {
            Ok(text) => {
                let _ = parse_json(text);
                let _ = replay.line(i + 1, text);
            }
            Err(e) => {
                let _ = replay.unreadable(i + 1, &e.to_string());
            }
        }
        if replay.stopped() {
            break;
        }
    }
});
