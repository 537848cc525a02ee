//! `TemplateBody::parse` on arbitrary text, then `render` with variables
//! read by `Variables::from_json` from arbitrary JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::policy::{TemplateBody, Variables};

fuzz_target!(|input: (&str, &str)| {
    let (body, vars) = input;
    let Ok(t) = TemplateBody::parse(body) else {
        return;
    };
    let _ = t.keys();
    let vars = match serde_json::from_str::<serde_json::Value>(vars) {
        Ok(v) => Variables::from_json(&v),
        Err(_) => Variables::positional(vars.split('\u{1f}')),
    };
    let _ = vars.as_given();
    let _ = vars.to_json();
    let _ = t.render(&vars);
});
