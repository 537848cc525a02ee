//! `Address::parse`, `Address::parse_phone`, `Address::from_bsuid` and
//! `Timestamp::parse` on arbitrary text: an error, never a panic; what
//! parses re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::{Address, Timestamp};

fuzz_target!(|s: &str| {
    if let Ok(a) = Address::parse(s) {
        let again = Address::parse(a.as_str()).expect("a parsed address re-parses");
        assert_eq!(again.as_str(), a.as_str());
        let _ = (a.e164(), a.bsuid(), a.is_phone(), a.is_bsuid());
    }
    let _ = Address::parse_phone(s);
    let _ = Address::from_bsuid(s);
    if let Ok(t) = Timestamp::parse(s) {
        let printed = t.to_rfc3339();
        if let Ok(back) = Timestamp::parse(&printed) {
            assert_eq!(back, t, "{printed}");
        }
        let _ = t.to_string();
    }
});
