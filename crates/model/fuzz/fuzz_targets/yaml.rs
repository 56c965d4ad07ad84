//! Fuzzes the YAML reader on its own: `model::yaml::parse` must never panic, and what it
//! returns must be usable (JSON conversion, pointer lookups).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = model::yaml::parse(text) {
        for doc in &docs {
            let _ = doc.root.to_json();
            let _ = doc.root.locate("/spec/resources/0/file");
            let _ = doc.root.locate("/metadata/name");
        }
    }
});
